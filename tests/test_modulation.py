"""The neuromodulation comparison: the evidence estimator against closed forms, quadrature and brute-force
integration on a real STG case; hypotheses, priors, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import read_csv
from scipy import integrate, stats

from dicsbi.errors import DicsbiError, InputError
from dicsbi.modulation import (
    ComparisonOptions,
    ModelMismatchError,
    enumerate_hypotheses,
    hypothesis_log_prior,
    modulate,
    parse_hypotheses,
)
from dicsbi.modulation.evidence import ConductanceForward, LinearForward, estimate_evidence
from dicsbi.modulation.likelihood import GaussianLikelihood, GridLikelihood
from dicsbi.report.page import CSS
from dicsbi.spikes import SpikeTrains


def test_hypotheses_enumerate_every_subset_of_one_to_three_modulable_channels():
    stg, da = enumerate_hypotheses("stg"), enumerate_hypotheses("da")
    assert len(stg) == 7 + 21 + 35 and len(da) == 6 + 15 + 20
    assert all("g_leak" not in h.channels for h in stg + da)
    assert len({h.channels for h in stg}) == 63
    assert [h.label for h in parse_hypotheses("stg", "A+CaS, H")] == ["CaS+A", "H"]
    with pytest.raises(DicsbiError, match="leak cannot be modulated"):
        parse_hypotheses("stg", "leak")
    with pytest.raises(DicsbiError, match="unknown conductance 'CaL'"):
        parse_hypotheses("stg", "CaL")
    with pytest.raises(DicsbiError, match="listed twice"):
        parse_hypotheses("stg", "CaS+A, A+CaS")
    with pytest.raises(DicsbiError, match="1 to 3 distinct"):
        parse_hypotheses("stg", "Na+Kd+CaT+CaS")


def test_hypothesis_prior_shares_mass_equally_between_sizes_and_penalises_larger_ones():
    hyps = enumerate_hypotheses("stg")
    sizes = np.array([h.size for h in hyps])
    p = np.exp(hypothesis_log_prior(hyps))
    assert p.sum() == pytest.approx(1.0)
    assert [p[sizes == s].sum() for s in (1, 2, 3)] == pytest.approx([1 / 3] * 3)
    p2 = np.exp(hypothesis_log_prior(hyps, 0.5))
    assert [p2[sizes == s].sum() for s in (1, 2, 3)] == pytest.approx(np.array([1, 0.5, 0.25]) / 1.75)
    assert np.exp(hypothesis_log_prior(hyps, "uniform")) == pytest.approx(np.full(63, 1 / 63))


def _linear_case(seed=0, H=3, s=2, N=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, 2)) * 0.5, rng.normal(size=(H, 2, s)) * 3.0


def test_evidence_matches_the_closed_form_of_a_linear_gaussian_stand_in():
    """Gaussian cost prior, linear map d = d0_k + B theta, Gaussian likelihood: Z = mean_k N(mu; d0_k,
    Sigma + b^2 B B^T).  Same code path as the real model (Pyro trace, two-stage proposals)."""
    mu, cov, b = np.array([1.0, -0.5]), np.array([[0.3, 0.1], [0.1, 0.2]]), 0.4
    for s in (1, 2, 3):
        d0, B = _linear_case(s, H=3, s=s)
        ev = estimate_evidence(LinearForward(d0, B), GaussianLikelihood(mu, cov), mu, cov, b, "gaussian", seed=s)
        for h in range(3):
            exact = np.log(np.mean([stats.multivariate_normal(d0[k], cov + b**2 * B[h] @ B[h].T).pdf(mu)
                                    for k in range(len(d0))]))
            assert abs(ev.log_z[h] - exact) < 0.1, (s, h, ev.log_z[h], exact)
            assert abs(ev.log_z[h] - exact) < 4 * ev.se[h] + 1e-3
            assert 0 < ev.se[h] < 0.05 and ev.ess[h] > 100


def test_evidence_with_truncated_laplace_prior_matches_quadrature():
    """Laplace cost prior truncated to [low, high] (renormalised) against scipy quadrature, 1 and 2 channels."""
    mu, cov, b = np.array([0.8, 0.3]), np.array([[0.2, 0.05], [0.05, 0.15]]), 0.4
    like = GaussianLikelihood(mu, cov)
    for s in (1, 2):
        d0, B = _linear_case(10 + s, H=2, s=s, N=1)
        low, high = np.full((2, 1, s), -np.inf), np.full((2, 1, s), 0.6)
        ev = estimate_evidence(LinearForward(d0, B, low, high), like, mu, cov, b, "laplace", seed=s)
        for h in range(2):
            mass = (stats.laplace.cdf(0.6, scale=b)) ** s

            def f(*th, h=h, d0=d0, B=B, mass=mass):
                th = np.array(th)
                d = d0[0] + B[h] @ th
                return np.exp(like(d) + stats.laplace.logpdf(th, scale=b).sum()) / mass

            lim = [(-8 * b - 4, 0.6)] * s
            ref, _ = integrate.nquad(f, lim, opts={"limit": 200, "points": [0.0]})
            assert abs(ev.log_z[h] - np.log(ref)) < 0.1, (s, h, ev.log_z[h], np.log(ref))
            assert abs(ev.log_z[h] - np.log(ref)) < 4 * ev.se[h] + 2e-3


def _brute_force(fw: ConductanceForward, like, scale, h: int, n1: int = 20001, n2=(241, 401)) -> float:
    """Log evidence of hypothesis ``h`` (1 or 2 channels) by trapezoidal integration over the log-ratios, per
    member, averaged over members; 2 channels: a coarse grid locates the mass, a fine grid integrates it."""
    N, s = fw.low.shape[1], fw.low.shape[2]
    out = np.empty(N)
    for k in range(N):
        lo = np.maximum(fw.low[h, k], -6.0)
        hi = np.minimum(fw.high[h, k], 6.0)
        mass = np.prod(stats.laplace.cdf(fw.high[h, k], scale=scale) - stats.laplace.cdf(fw.low[h, k], scale=scale))

        def integrand(th, k=k, mass=mass):
            full = np.zeros((fw.index.shape[0], 1, th.shape[0], s))
            full[h, 0] = th
            one = ConductanceForward.__new__(ConductanceForward)
            one.__dict__.update(fw.__dict__)
            one.members = fw.members[k : k + 1]
            d = one(full)[h, 0]
            return np.exp(like(d) + stats.laplace.logpdf(th, scale=scale).sum(-1)) / mass

        if s == 1:
            t = np.linspace(lo[0], hi[0], n1)
            out[k] = integrate.trapezoid(integrand(t[:, None]), t)
            continue
        a = [np.linspace(lo[j], hi[j], n2[0]) for j in range(2)]
        T = np.stack(np.meshgrid(*a, indexing="ij"), -1).reshape(-1, 2)
        v = integrand(T).reshape(n2[0], n2[0])
        keep = np.argwhere(v > v.max() * 1e-12)
        i0, i1 = np.maximum(keep.min(0) - 2, 0), np.minimum(keep.max(0) + 2, n2[0] - 1)
        a = [np.linspace(a[j][i0[j]], a[j][i1[j]], n2[1]) for j in range(2)]
        T = np.stack(np.meshgrid(*a, indexing="ij"), -1).reshape(-1, 2)
        v = integrand(T).reshape(n2[1], n2[1])
        out[k] = integrate.trapezoid(integrate.trapezoid(v, a[1], axis=1), a[0])
    return float(np.log(out.mean()))


@pytest.fixture(scope="module")
def stg_case():
    """A bursting STG cell whose CaS and H were scaled (x0.7, x1.5); the after train from simulation."""
    from dicsbi.compensation import generate_population
    from dicsbi.posterior.artifact import load_posterior
    from dicsbi.simulate import simulate

    post = load_posterior("stg")
    pop = generate_population("stg", -4.0, 6.0, 12, seed=3)
    g1 = pop.conductances[:1].copy()
    g1[0, 3] *= 0.7
    g1[0, 6] *= 1.5
    after = simulate("stg", g1, seed=0).trains
    like = GridLikelihood.from_posterior(post, after, seed=1)
    return post, pop.conductances, like


@pytest.mark.parametrize("channels", [[["g_CaS"], ["g_H"], ["g_A"]], [["g_CaS", "g_H"], ["g_A", "g_H"]]])
def test_evidence_agrees_with_brute_force_integration_on_a_real_stg_case(stg_case, channels):
    post, members, like = stg_case
    from dicsbi.models import get_model

    m = get_model("stg")
    index = np.array([[m.conductance_names.index(c) for c in hyp] for hyp in channels])
    fw = ConductanceForward(m, members, index)
    scale = np.log(1.5)
    ev = estimate_evidence(fw, like, like.mean, like.cov, scale, "laplace", seed=4)
    for h in range(len(channels)):
        ref = _brute_force(fw, like, scale, h)
        if not np.isfinite(ref):
            assert ev.log_z[h] == -np.inf or ev.log_z[h] < -30
            continue
        # within 3 reported standard errors (plus the quadrature's own error, ~1e-3)
        print(channels[h], round(float(ev.log_z[h]), 4), round(ref, 4), round(float(ev.se[h]), 4))
        assert abs(ev.log_z[h] - ref) < 3 * ev.se[h] + 2e-3, (channels[h], ev.log_z[h], ref, ev.se[h])


def _trains(ids, n=20, period=50.0):
    return SpikeTrains.from_list([np.arange(1, n + 1) * period] * len(ids), 0.0, n * period + 100.0, ids=ids)


def test_modulate_refuses_mismatched_ids_silent_recordings_and_other_models():
    with pytest.raises(InputError, match="same IDs.*in before only: n2.*in after only: n3"):
        modulate(_trains(["n1", "n2"]), _trains(["n1", "n3"]), "stg")
    with pytest.raises(InputError, match="after: recording\\(s\\) n1 have fewer than 3 spikes"):
        modulate(_trains(["n1"]), SpikeTrains.from_list([np.array([10.0])], 0.0, 1000.0, ids=["n1"]), "stg")
    with pytest.raises(InputError, match="appear more than once"):
        modulate(_trains(["n1", "n1"]), _trains(["n1", "n1"]), "stg")
    from dicsbi.pipeline import InferenceResult

    with pytest.raises(ModelMismatchError, match="model 'da', not 'stg'"):
        modulate(InferenceResult("da", -55.5, 0, []), _trains(["n1"]), "stg")
    with pytest.raises(DicsbiError, match="posterior for model 'stg', not 'da'"):
        modulate(_trains(["n1"]), _trains(["n1"]), "da", posterior="stg")
    with pytest.raises(DicsbiError, match="after must be spike trains"):
        modulate(_trains(["n1"]), InferenceResult("stg", -51.0, 0, []), "stg")
    with pytest.raises(InputError, match="missing_before.csv: no such file"):
        modulate("missing_before.csv", _trains(["n1"]), "stg")
    with pytest.raises(DicsbiError, match="typical_change"):
        modulate(_trains(["n1"]), _trains(["n1"]), "stg", options=ComparisonOptions(typical_change=1.0))


@pytest.fixture(scope="module")
def two_neuron_files(tmp_path_factory):
    """Two STG neurons (bursting and tonic) before and after H x1.6, A x0.7 (a 'DA on LP'-like change)."""
    from dicsbi.compensation import generate_population
    from dicsbi.io.tables import write_spike2pop_csv
    from dicsbi.simulate import simulate

    d = tmp_path_factory.mktemp("mod")
    g = np.vstack([generate_population("stg", -6.0, 5.0, 2, seed=5).conductances[:1],
                   generate_population("stg", 5.0, 5.0, 2, seed=6).conductances[:1]])
    g_after = g.copy()
    g_after[:, 6] *= 1.6
    g_after[:, 5] *= 0.7
    res = simulate("stg", np.vstack([g, g_after]), seed=0)
    b, a = res.trains.select([0, 1]), res.trains.select([3, 2])  # after file in another order
    b = SpikeTrains.from_list(b.to_list(), 0.0, float(b.t_stop_ms[0]), ids=["LP1", "LP2"])
    a = SpikeTrains.from_list(a.to_list(), 0.0, float(a.t_stop_ms[0]), ids=["LP2", "LP1"])
    write_spike2pop_csv(d / "before.csv", b)
    write_spike2pop_csv(d / "after.csv", a)
    return d


def test_modulate_cli_writes_every_output_for_paired_neurons(two_neuron_files, tmp_path):

    from typer.testing import CliRunner

    from dicsbi.cli import app
    from dicsbi.io.netcdf import from_netcdf

    out = tmp_path / "mod"
    r = CliRunner().invoke(app, ["modulate", str(two_neuron_files / "before.csv"), str(two_neuron_files / "after.csv"),
                                 "--model", "stg", "--out", str(out), "--hypotheses", "A+H, CaS+A, H, A, Kd+KCa",
                                 "--n-members", "40", "--n-particles", "96", "--no-progress"])
    assert r.exit_code == 0, r.output
    for f in ("hypotheses.csv", "channels.csv", "changes.csv", "modulation.nc", "report.html",
              "figures/hypotheses.png", "figures/channels.png"):
        assert (out / f).stat().st_size > 0, f
    assert len(list((out / "figures").glob("reachability_*.png"))) == 3
    rows = read_csv(out / "hypotheses.csv")
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    p = np.array([float(r["probability"]) for r in rows])
    assert p.sum() == pytest.approx(1.0) and np.all(np.diff(p) <= 0)
    assert all(float(r["log_evidence_se"]) < 0.2 for r in rows if np.isfinite(float(r["log_evidence"])))
    assert float(rows[0]["pareto_k_max"]) < 0.7  # pooled importance weights of the best hypothesis: reliable
    changes = read_csv(out / "changes.csv")
    assert {r["neuron"] for r in changes} == {"LP1", "LP2"}  # per-neuron changes, IDs matched across orders
    idata = from_netcdf(out / "modulation.nc")
    assert idata.posterior["log_ratio"].dims == ("chain", "draw", "hypothesis", "neuron", "channel")
    assert list(idata.posterior.neuron.values) == ["LP1", "LP2"]
    le = idata.sample_stats["log_evidence_neuron"].values
    assert np.allclose(le.sum(1), idata.sample_stats["log_evidence"].values)  # shared hypothesis: evidences add
    untouched = idata.posterior["log_ratio"].sel(hypothesis="H", channel="g_A").values
    assert np.all(untouched == 0)
    import arviz as az

    summary = az.summary(idata, var_names=["log_ratio"], coords={"hypothesis": ["A+H"], "channel": ["g_A", "g_H"]},
                         kind="stats")
    assert len(summary) == 4 and np.all(np.isfinite(summary["mean"]))
    assert idata.prior["conductance"].sizes["draw"] == 40
    page = (out / "report.html").read_text()
    assert "Which channels did the modulator change?" in page and CSS in page  # the one page template


def test_cost_maps_agree_with_an_independent_root_solve_and_the_geometry_of_h():
    from scipy.optimize import fsolve

    from dicsbi.compensation import generate_population, plausible_upper_bounds
    from dicsbi.dics import compute_dics
    from dicsbi.modulation import cost_map

    g = generate_population("stg", 4.0, 5.0, 3, seed=2).conductances
    one = g[:1]
    cm = cost_map("stg", ["CaS", "A"], one, g_s=np.array([-2.0, 0.0, 2.0]), g_u=np.array([4.0, 5.0]))
    for i, gu in enumerate(cm.g_u):
        for j, gs in enumerate(cm.g_s):

            def f(th, gs=gs, gu=gu):
                x = one[0].copy()
                x[[3, 5]] *= np.exp(th)
                return compute_dics("stg", x[None])[0, 1:] - [gs, gu]

            th, _, ok, _ = fsolve(f, np.zeros(2), full_output=True)
            x = one[0].copy()
            x[[3, 5]] *= np.exp(th)
            valid = ok == 1 and np.all(x <= plausible_upper_bounds(__import__("dicsbi").models.get_model("stg")))
            assert (cm.fraction[i, j] > 0) == valid
            if valid:
                assert cm.cost[i, j] == pytest.approx(np.abs(th).sum(), abs=1e-5)
    # H is (nearly) purely ultraslow at V_th: its curve is vertical, so each member reaches only its own g_s column
    h = cost_map("stg", ["H"], g)
    d = compute_dics("stg", g)
    reached_cols = set(np.nonzero(h.fraction.max(0) > 0)[0].tolist())
    assert reached_cols <= {int(np.rint(x - h.g_s[0])) for x in d[:, 1]} | {int(np.rint(x - h.g_s[0])) + s
                                                                           for x in d[:, 1] for s in (-1, 1)}
    assert h.fraction.max() > 0


def test_reachability_and_track_commands(tmp_path):
    from typer.testing import CliRunner

    from dicsbi.cli import app

    r = CliRunner().invoke(app, ["reachability", "--channels", "CaS+A", "--channels", "H", "--model", "stg",
                                 "--n-members", "20", "--out", str(tmp_path / "maps")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "maps" / "reachability_CaS+A.png").stat().st_size > 0
    rows = (tmp_path / "maps" / "reachability_H.csv").read_text().splitlines()
    assert rows[0] == "g_s,g_u,fraction_reached,median_cost" and len(rows) == 1 + 41 * 21
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dicsbi.cli", "reachability", "--channels", "leak", "--out",
                        str(tmp_path / "bad")], capture_output=True, text=True)
    assert r.returncode == 2 and "g_leak cannot be modulated" in r.stderr
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    r = CliRunner().invoke(app, ["track", "examples/stg_recordings.csv", "--window-ms", "1500", "--step-ms", "750",
                                 "--n-models", "10", "--no-progress", "--out", str(tmp_path / "trk")])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "trk" / "tracking.csv").read_text().splitlines()) == 1 + 3 * 2  # ~2.96 s each: 2 windows


def _modulate_cmd(files, out, *extra):
    import sys

    return [sys.executable, "-m", "dicsbi.cli", "modulate", str(files / "before.csv"), str(files / "after.csv"),
            "--out", str(out), "--hypotheses", "A+H, H, CaS", "--n-members", "20", "--n-particles", "32",
            "--no-progress", *extra]


@pytest.mark.slow  # two full CLI runs (~30 s); infer's equivalent runs in the default suite
def test_modulate_method_cost_ranks_subsets_by_the_cheapest_change(two_neuron_files, tmp_path):

    from typer.testing import CliRunner

    from dicsbi.cli import app

    out = tmp_path / "cost"
    r = CliRunner().invoke(app, ["modulate", str(two_neuron_files / "before.csv"), str(two_neuron_files / "after.csv"),
                                 "--model", "stg", "--out", str(out), "--method", "cost", "--n-members", "20",
                                 "--hypotheses", "A+H, CaS+A, H, A, Kd+KCa", "--no-maps", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "ranked by cost" in r.output
    for f in ("hypotheses.csv", "channels.csv", "report.html", "figures/costs_LP1.png", "figures/costs_LP2.png"):
        assert (out / f).stat().st_size > 0, f
    rows = read_csv(out / "hypotheses.csv")
    assert {r["neuron"] for r in rows} == {"LP1", "LP2"} and len(rows) == 10
    for nid in ("LP1", "LP2"):
        mine = [r for r in rows if r["neuron"] == nid]
        assert [int(r["rank"]) for r in mine] == [1, 2, 3, 4, 5]
        finite = [float(r["median_cost"]) for r in mine if r["median_cost"]]  # empty: under half reach
        assert finite == sorted(finite)  # no redundant supersets among these five: plain cost order
        assert all(0 <= float(r["fraction_reaching"]) <= 1 for r in mine)
    bad = CliRunner().invoke(app, ["modulate", str(two_neuron_files / "before.csv"),
                                   str(two_neuron_files / "after.csv"), "--out", str(tmp_path / "x"),
                                   "--method", "bayes"])
    assert bad.exit_code != 0 and "--method must be 'evidence' or 'cost'" in str(bad.exception)


def test_modulate_is_byte_identical_across_runs_and_thread_counts(two_neuron_files, tmp_path):
    import subprocess

    outs = []
    for k, threads in enumerate(["1", "2"]):
        r = subprocess.run(_modulate_cmd(two_neuron_files, tmp_path / f"m{k}", "--threads", threads, "--seed", "3",
                                         "--no-maps"), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append(tmp_path / f"m{k}")
    for name in ("hypotheses.csv", "channels.csv", "changes.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


@pytest.mark.slow  # two full CLI runs (~30 s); infer's equivalent runs in the default suite
def test_killed_modulate_leaves_temporary_names_only_and_rerun_completes(two_neuron_files, tmp_path):
    import subprocess

    from conftest import kill_while_writing

    out = tmp_path / "mod"
    left = kill_while_writing(_modulate_cmd(two_neuron_files, out), out)
    assert left <= {".dicsbi.lock"} | {p.name for p in out.glob(".partial-*")}, left
    r = subprocess.run(_modulate_cmd(two_neuron_files, out), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["changes.csv", "channels.csv", "figures", "hypotheses.csv",
                                                    "modulation.nc", "report.html"]


def test_dic_invisible_channels_are_flagged_and_equal_the_no_change_hypothesis():
    """DA NMDA is fully fast by the DIC convention: it cannot move (g_s, g_u), so 'NMDA' is the same hypothesis
    as 'nothing changed' and 'ERG+NMDA' the same as 'ERG'; the result says so instead of hiding it."""
    from dicsbi.compensation import generate_population
    from dicsbi.simulate import simulate

    g0 = generate_population("da", -1.5, 5.0, 2, seed=3).conductances[:1]
    g1 = g0.copy()
    g1[0, 4] *= 0.6  # ERG
    tr = simulate("da", np.vstack([g0, g1]), seed=0).trains
    b = SpikeTrains.from_list([tr[0]], 0.0, float(tr.t_stop_ms[0]), ids=["c"])
    a = SpikeTrains.from_list([tr[1]], 0.0, float(tr.t_stop_ms[1]), ids=["c"])
    res = modulate(b, a, "da", hypotheses="ERG, NMDA, ERG+NMDA", n_members=30, seed=1,
                   options=ComparisonOptions(n_particles=64))
    assert res.invisible_channels() == ["g_NMDA"]
    assert res.channel_sensitivity()["g_NMDA"] == 0.0 and res.channel_sensitivity()["g_ERG"] > 1.0
    le = dict(zip([h.label for h in res.hypotheses], res.log_evidence))
    se = dict(zip([h.label for h in res.hypotheses], res.se))
    # no DIC move at all: the importance-sampled evidence estimates the no-change evidence (exact, no integral)
    assert abs(le["NMDA"] - res.log_evidence_null) < 3 * se["NMDA"] + 1e-3, (le["NMDA"], res.log_evidence_null)
    assert abs(le["ERG+NMDA"] - le["ERG"]) < 3 * np.hypot(se["ERG"], se["ERG+NMDA"]) + 0.01
    assert le["ERG"] - res.log_evidence_null > 1.0  # the ERG change is seen
    assert any("NMDA barely move" in w for w in res.warnings())


@pytest.mark.parametrize("model,g_s,tol", [("stg", -4.0, 0.005), ("da", -1.5, 0.03)])
def test_likelihood_table_matches_the_flow_density_where_the_posterior_lives(model, g_s, tol):
    """The tabulated log q(d | x) against the flow's own log density at 2000 posterior draws."""
    from dicsbi.compensation import generate_population
    from dicsbi.posterior.artifact import load_posterior
    from dicsbi.simulate import simulate

    post = load_posterior(model)
    tr = simulate(model, generate_population(model, g_s, 5.0, 2, seed=3).conductances[:1], seed=0).trains
    like = GridLikelihood.from_posterior(post, tr, seed=1)
    pts = post.sample(tr, 2000, seed=9)[0]
    err = (like(pts) - like.log_area) - post.log_prob(pts[:, None, :], tr)[:, 0]
    assert np.all(np.isfinite(err))
    assert abs(np.log(np.mean(np.exp(err)))) < tol and np.mean(np.abs(err)) < 2 * tol
