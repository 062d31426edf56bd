"""Simulation-refined populations (dicsbi.refine): the world prior, the distance, the sampler's promises."""

from pathlib import Path

import numpy as np
import pytest

from dicsbi.compensation import draw_seed_parameters, draw_seed_population, seed_cells
from dicsbi.models import get_model
from dicsbi.refine import RefineOptions, feature_distance, recording_window, refine, seed_log_prior, train_features
from dicsbi.spikes import SpikeTrains

FAST = RefineOptions(n_members=30, max_generations=6, max_simulations=600)


@pytest.fixture(scope="module")
def stg():
    from dicsbi.posterior import load_posterior

    return load_posterior("stg")


def _recording(cell, seed=0, ms=3000.0):
    from dicsbi.simulate import simulate

    sim = simulate("stg", cell[None], duration_ms=ms, seed=seed, tier="fast")
    return SpikeTrains.from_list([sim.trains[0]], 0.0, ms, ids=["cell"])


def test_seed_parameters_are_the_seed_population_and_their_density():
    for name in ("stg", "da"):
        params = draw_seed_parameters(name, 64, np.random.default_rng(5))
        comp = seed_cells(name, params)
        np.testing.assert_array_equal(comp.conductances[comp.valid],
                                      draw_seed_population(name, 64, np.random.default_rng(5)))
        lp = seed_log_prior(name, params)
        assert np.isfinite(lp).all()
        outside = params.copy()
        outside[0, 0] = 1e6
        outside[1, -1] = -1.0  # a negative leak
        assert np.isneginf(seed_log_prior(name, outside)[:2]).all()
    # the density, written out for DA: two uniform values and a gamma leak
    from scipy.stats import gamma

    from dicsbi.compensation import gamma_matched

    spec = get_model("da").seed_spec
    (a, b), (c, d) = spec.uniform["g_Kd"], spec.uniform["g_CaL"]
    shape, scale = gamma_matched(*spec.leak_range)
    want = -np.log(b - a) - np.log(d - c) + gamma.logpdf(0.01, shape, scale=scale)
    assert seed_log_prior("da", np.array([[8.0, 0.05, 0.01]]))[0] == pytest.approx(want)


def test_wide_world_draws_cells_that_hit_their_target_across_the_box():
    from dicsbi.compensation import candidate_pairs
    from dicsbi.dics import compute_dics
    from dicsbi.refine.world import SEEDED, WIDE, WIDE_DECADES, World

    for name in ("stg", "da"):
        m = get_model(name)
        world = World(m, m.vth_mV, np.array(m.dic_box, dtype=float), candidate_pairs(m), wide=0.5)
        rng = np.random.default_rng(3)
        dic = rng.uniform(*np.array(m.dic_box).T, (400, 2))
        theta, comp = world.draw(dic, rng)
        assert 0.4 < np.mean(comp == WIDE) < 0.6
        assert np.isfinite(world.log_prior(theta)).all()
        g, pair = world.cells(theta, comp)
        ok = pair >= 0
        assert ok[comp == WIDE].mean() > 0.3  # most wide draws are cells for some pair
        np.testing.assert_allclose(compute_dics(m, g[ok], m.vth_mV)[:, 1:], dic[ok], atol=1e-5)
        assert (g[ok] > 0).all()
        # outside the pair, a wide member's conductances are its z block; a seeded member's ignore it
        k = world.n_seed
        w = np.flatnonzero(ok & (comp == WIDE))[0]
        names = world.pairs[pair[w]]
        free = [i for i, c in enumerate(m.conductance_names) if c not in names]
        np.testing.assert_allclose(g[w, free], 10.0 ** theta[w, k:world.noise_column][free])
        s = np.flatnonzero(ok & (comp == SEEDED))[0]
        moved = theta[[s]].copy()
        moved[0, k:world.noise_column] = np.log10(m.upper_bounds) - WIDE_DECADES / 2
        np.testing.assert_array_equal(world.cells(moved, comp[[s]])[0], g[[s]])
        # the pair is the first valid one in the ranking of the member's own target's grid cell
        order = world.orders(dic[[w]])[0]
        assert pair[w] in order
        earlier = order[:order.index(pair[w])]
        for k in earlier:
            from dicsbi.compensation import compensate

            sol = compensate(m, 10.0 ** theta[[w], world.n_seed:world.noise_column],
                             {"g_s": dic[[w], 0], "g_u": dic[[w], 1]}, world.pairs[k], m.vth_mV)
            assert not sol.valid[0]
        # the z block's support: two decades below each maximum
        outside = theta[:1].copy()
        outside[0, k] = np.log10(m.upper_bounds[0]) + 0.1
        assert np.isneginf(world.log_prior(outside)).all()
    none = World(m, m.vth_mV, np.array(m.dic_box, dtype=float), candidate_pairs(m), wide=0.0)
    assert (none.draw(dic, rng)[1] == SEEDED).all()


def test_distance_is_zero_on_itself_and_counts_scales():
    t = np.arange(0.0, 3000.0, 100.0)  # 10 Hz tonic
    rec = train_features(SpikeTrains.from_list([t], 0.0, 3000.0))[0]
    faster = train_features(SpikeTrains.from_list([np.arange(0.0, 3000.0, 100.0 / 1.1)], 0.0, 3000.0))
    burst = np.concatenate([b + np.array([0.0, 5.0, 10.0, 15.0]) for b in np.arange(0.0, 3000.0, 500.0)])
    bursting = train_features(SpikeTrains.from_list([burst], 0.0, 3000.0))
    assert feature_distance(rec[None], rec)[0] == 0.0
    # 10% faster: one scale on log rate and log frequency, none on the CV (RMS over three features)
    assert feature_distance(faster, rec)[0] == pytest.approx(np.sqrt(2 / 3), rel=0.05)
    assert feature_distance(bursting, rec)[0] > 2.0  # another firing class


def test_refinement_reproduces_a_simulated_cell_and_keeps_degeneracy(stg):
    from dicsbi.compensation import generate_population
    from dicsbi.simulate import simulate
    from dicsbi.spikes import spike_features

    cell = generate_population("stg", 4.0, 6.0, 1, seed=2).conductances[0]
    train = _recording(cell)
    r = refine("stg", train, stg, None, FAST, seed=3)
    assert r.conductances.shape == (30, 8) and np.all(r.conductances > 0)
    assert r.distinct >= 27 and r.ess > 0 and r.simulations <= FAST.max_simulations + (6 * FAST.max_steps + 4) * 30
    assert not r.flagged and r.tolerance <= FAST.eps_flag
    shifted, window = recording_window(train)
    sim = simulate("stg", r.conductances, duration_ms=window, seed=11, tier="fast")
    f, f0 = spike_features(sim.trains), spike_features(shifted)
    key = "f_inter_hz" if f0["firing_class"][0] == 2 else "f_spiking_hz"
    assert np.mean(f["firing_class"] == f0["firing_class"][0]) >= 0.9
    assert np.mean(np.abs(f[key] / f0[key][0] - 1) <= 0.1) >= 0.8


def test_a_recording_no_model_reproduces_is_flagged(stg):
    t = np.arange(0.0, 3000.0, 4.0)  # 250 Hz tonic firing: far outside the STG world
    train = SpikeTrains.from_list([t], 0.0, 3000.0, ids=["fast"])
    r = refine("stg", train, stg, None, RefineOptions(n_members=20, max_generations=3,
                                                                     max_simulations=200), seed=0)
    assert r.flagged and any("no member reproduces" in w for w in r.why)


def test_same_seed_same_population_for_one_and_two_threads(stg):
    import numba

    from dicsbi.compensation import generate_population

    train = _recording(generate_population("stg", 2.0, 8.0, 1, seed=4).conductances[0], ms=1500.0)
    opts = RefineOptions(n_members=16, max_generations=2, max_simulations=150)
    before = numba.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            out.append(refine("stg", train, stg, None, opts, seed=9).conductances)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(out[0], out[1])


def test_infer_with_refine_reports_the_refinement(stg, tmp_path):
    import arviz as az
    from conftest import read_csv

    from dicsbi.io import read_spike_trains
    from dicsbi.pipeline import run_to_folder

    trains, _ = read_spike_trains("examples/stg_recordings.csv")
    trains = trains.select([0])
    run_to_folder(trains, tmp_path, "stg", 20, stg, seed=0, refine=RefineOptions(max_generations=2,
                                                                                   max_simulations=120))
    row = read_csv(tmp_path / "summary.csv")[0]
    assert int(row["n_models"]) == 20 and int(row["refine_distinct"]) <= 20
    assert float(row["refine_simulations"]) >= 20 and row["refine_flagged"] in ("0", "1")
    assert "refine_spread_g_Na" in row
    idata = az.from_netcdf(tmp_path / "posterior.nc")
    assert idata.observed_data["refine_tolerance"].shape == (1,)
    assert idata.observed_data["refine_spread_after"].shape == (1, 8)


def test_cli_infer_refine(tmp_path):
    import csv
    import subprocess
    import sys

    from conftest import read_csv

    one = tmp_path / "one.csv"  # the shipped example's tonic recording alone: the command, not the sampler, is tested
    rows = read_csv(Path("examples/stg_recordings.csv"), dict_rows=False)
    with open(one, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if r[0] == "stg_tonic"])
    out = tmp_path / "res"
    r = subprocess.run([sys.executable, "-m", "dicsbi.cli", "infer", str(one), "--n-models", "20", "--refine",
                        "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = read_csv(out / "summary.csv")
    assert len(rows) == 1 and int(rows[0]["n_models"]) == 20 and rows[0]["refine_tolerance"]
    assert "refinement" in (out / "report.html").read_text() and "refine_" in r.stderr


def test_tolerance_steps_under_a_plateau_of_equal_distances():
    from dicsbi.refine.sampler import _next_tolerance

    d = np.concatenate([np.full(70, 5.0), np.linspace(0.5, 4.0, 30)])  # 70 candidates lacking every feature
    logw = np.zeros(d.size)
    assert _next_tolerance(logw, d, 0.5, 0.3) == 5.0  # keeping half the ESS needs the plateau
    assert _next_tolerance(logw, d, 0.5, 0.3, current=5.0, floor_ess=10) == 4.0  # so step under it
    assert _next_tolerance(logw, d, 0.5, 0.3, current=5.0, floor_ess=40) == 5.0  # unless too few are left
    assert _next_tolerance(logw, np.linspace(0, 1, 100), 0.5, 0.3) == pytest.approx(0.5, abs=0.02)


def test_first_generation_weights_are_prior_over_the_defensive_proposal():
    """A posterior far off the truth: the box share of the proposal and the weights bring the prior back."""
    from scipy.stats import norm

    from dicsbi.compensation import candidate_pairs
    from dicsbi.refine.distance import Simulator
    from dicsbi.refine.proposal import Proposal, first_generation
    from dicsbi.refine.sampler import _Particles
    from dicsbi.refine.world import World

    m = get_model("stg")

    class Narrow:  # a 'posterior' N(centre, 1) over (g_s, g_u)
        def __init__(self, centre):
            self.centre = np.asarray(centre, dtype=float)

        def sample(self, train, n, seed=0):
            return self.centre + np.random.default_rng(seed).standard_normal((1, n, 2))

        def log_prob(self, theta, train):
            return norm.logpdf(theta, self.centre).sum(axis=1)

    world = World(m, m.vth_mV, np.array([[-20.0, 20.0], [0.0, 20.0]]), candidate_pairs(m), wide=0.0)
    rec = _recording(draw_seed_population("stg", 1, np.random.default_rng(2))[0], ms=500.0)
    sim = Simulator(m, 500.0, "fast", train_features(rec)[0])
    parts = _Particles(*first_generation(Proposal(Narrow((10.0, 10.0)), rec, world, 0.3), sim, 300, seed=4))
    w = np.exp(parts.logw - parts.logw.max())
    gs = parts.theta[:, -2]
    assert gs.mean() > 5.0  # most of the proposal is the narrow posterior
    assert abs(np.sum(w * gs) / w.sum()) < 4.0  # the weighted members are the (flat) prior over g_s in [-20, 20]
    far = np.abs(gs - 10.0) > 6.0
    np.testing.assert_allclose(parts.logw[far], -np.log(0.3), atol=1e-6)  # weight 1 / beta off the posterior
    edge = _Particles(*first_generation(Proposal(Narrow((10.0, 0.2)), rec, world, 0.3), sim, 100, seed=4))
    assert np.all(edge.theta[:, -1] >= 0.0) and np.all(np.isfinite(edge.logw + edge.lp))  # none outside the box


def test_refinement_simulates_on_the_device_it_is_given(stg):
    from dicsbi.errors import DicsbiError

    train = _recording(draw_seed_population("stg", 1, np.random.default_rng(2))[0], ms=500.0)
    with pytest.raises(DicsbiError, match="device must be 'cpu' or 'cuda', got 'tpu'"):
        refine("stg", train, stg, None, RefineOptions(n_members=10, device="tpu"), seed=1)


def test_noise_parameter_prior_and_proposal_weights():
    """The noise parameter: a point mass at 0 of the prior's weight, and proposal weights that give the prior back."""
    from dicsbi.compensation import candidate_pairs
    from dicsbi.refine.proposal import _noise_proposal
    from dicsbi.refine.world import World

    m = get_model("stg")
    world = World(m, m.vth_mV, np.array([[-20.0, 20.0], [0.0, 20.0]]), candidate_pairs(m), noise=(0.25, 8.0))
    lo, hi = world.s_range()
    assert lo == pytest.approx(-8.0 / 3.0) and hi == 8.0
    theta, _ = world.draw(np.zeros((20000, 2)), np.random.default_rng(0))
    sigma = world.sigma(theta)
    assert abs(np.mean(sigma == 0) - 0.25) < 0.015 and sigma.max() <= 8.0
    assert np.all(np.isfinite(world.log_prior(theta)))
    assert world.noise_column in world.columns(0) and world.noise_column in world.columns(1)
    s, logw = _noise_proposal(world, 5.0, 40000, np.random.default_rng(1))
    w = np.exp(logw)
    assert np.mean((s > 3.5) & (s < 6.5)) > 0.5  # most proposals near the centre
    np.testing.assert_allclose(np.sum(w * (s <= 0)) / w.sum(), 0.25, atol=0.02)  # the prior's clean share
    np.testing.assert_allclose(np.sum(w * s) / w.sum(), (lo + hi) / 2, atol=0.1)  # the prior's mean
    fixed = World(m, m.vth_mV, world.box, candidate_pairs(m), level=2.0)
    theta, _ = fixed.draw(np.zeros((5, 2)), np.random.default_rng(0))
    assert np.all(fixed.sigma(theta) == 2.0) and fixed.noise_column not in fixed.columns(1)



def test_noise_parameter_oversampling_and_final_moves_in_refine(stg):
    """The opt-in settings: per-member noise levels inside the prior, the requested members, more moves."""
    from dicsbi.compensation import generate_population
    from dicsbi.refine.proposal import noise_prior

    train = _recording(generate_population("stg", 2.0, 8.0, 1, seed=4).conductances[0], ms=1500.0)
    small = RefineOptions(n_members=16, max_generations=2, max_simulations=150)
    fixed = refine("stg", train, stg, None, small, seed=9, noise_std=1.5)
    assert np.all(fixed.noise == 1.5) and fixed.noise_std == 1.5
    p_zero, top = noise_prior(stg)
    free = refine("stg", train, stg, None, RefineOptions(n_members=16, max_generations=2, max_simulations=150,
                                                         noise_parameter=True, oversample=2), seed=9)
    assert free.conductances.shape == (16, 8) and np.all((free.noise >= 0) & (free.noise <= top))
    assert np.unique(free.noise).size > 1  # each member has its own level
    more = refine("stg", train, stg, None, RefineOptions(n_members=16, max_generations=2, max_simulations=150,
                                                         final_moves=2.0), seed=9, noise_std=1.5)
    assert more.simulations > fixed.simulations or more.acceptance == 0
    assert np.all(more.distance <= more.tolerance)


class _Everywhere:  # a 'simulator' under which every candidate reproduces the recording
    def distance(self, g, seed, noise=0.0):
        return np.zeros(len(g))


def _moved_prior_population(share: float = 0.0, de: float = 0.0, sweeps: int = 30):
    """300 members drawn from the prior (the target when every candidate is within the tolerance), moved by
    ``sweeps`` Metropolis-Hastings sweeps; returns the acceptance rates, the members before and after, the
    world and the generator."""
    from dicsbi.compensation import candidate_pairs
    from dicsbi.refine.sampler import _move, _Particles
    from dicsbi.refine.world import World

    m = get_model("stg")
    world = World(m, m.vth_mV, np.array([[-20.0, 20.0], [0.0, 20.0]]), candidate_pairs(m), wide=0.0)
    rng = np.random.default_rng(3)
    theta, comp = world.draw(rng.uniform(world.box[:, 0], world.box[:, 1], (900, 2)), rng)
    g, pair = world.cells(theta, comp)
    ok = pair >= 0
    theta, comp, g, pair = theta[ok][:300], comp[ok][:300], g[ok][:300], pair[ok][:300]
    parts = _Particles(theta.copy(), pair, comp, g, np.zeros(len(theta)), np.zeros(len(theta)), world.log_prior(theta))
    rates = [_move(parts, 1.0, world, _Everywhere(), rng, seed=k, share=share, de=de)[0] for k in range(sweeps)]
    return rates, theta, parts.theta, world, rng


def _spread_ratio(before, after, world):
    cols = world.columns(0)  # the seed parameters and (g_s, g_u)
    return np.std(after[:, cols], axis=0) / np.std(before[:, cols], axis=0)


def test_independent_proposals_leave_the_prior_invariant():
    """Moves with fitted independent proposals keep a population drawn from the target there (here the prior:
    every candidate within the tolerance), and their density is the Gaussian's."""
    from scipy.stats import multivariate_normal

    from dicsbi.refine.sampler import _log_normal

    rates, theta, moved, world, rng = _moved_prior_population(share=1.0)
    assert np.mean(rates) > 0.05 and np.mean(np.any(moved != theta, axis=1)) > 0.8  # they moved
    ratio = _spread_ratio(theta, moved, world)  # the members' spread stays the prior's
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio  # (the proposal ratio's sign flipped gives about 0.7)
    x, mean = rng.standard_normal((5, 3)), np.array([0.5, -1.0, 2.0])
    cov = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    got = _log_normal(x, mean, np.linalg.cholesky(cov))
    want = multivariate_normal(mean, cov).logpdf(x)
    np.testing.assert_allclose(got - got[0], want - want[0], atol=1e-10)


def test_differential_evolution_moves_leave_the_prior_invariant_and_use_other_members():
    """Differential-evolution proposals: the member plus gamma times the difference of two *other* members
    (plus a jitter of 1e-3 of their spread); moves made of them keep a population drawn from the prior."""
    from dicsbi.refine.sampler import _differential

    rng = np.random.default_rng(0)
    theta = rng.standard_normal((6, 3)) * [1.0, 10.0, 100.0]
    prop, walk = theta.copy(), np.ones(6, bool)
    _differential(prop, theta, np.arange(6), np.arange(3), walk, rng, share=1.0)
    assert not walk.any()
    for i in range(6):
        step = prop[i] - theta[i]
        fits = [np.abs(step - gm * (theta[a] - theta[b])).max() < 0.01 * np.abs(step).max()
                for a in range(6) for b in range(6) if len({a, b, i}) == 3 for gm in (1.0, 2.38 / np.sqrt(6))]
        assert any(fits), i
    rates, theta, moved, world, _ = _moved_prior_population(de=1.0)
    assert np.mean(rates) > 0.05 and np.mean(np.any(moved != theta, axis=1)) > 0.8
    ratio = _spread_ratio(theta, moved, world)
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio


@pytest.fixture(scope="module")
def small_flow():
    """Proposal flows fitted to 800 simulated cells of the STG refinement prior (a quick fit, not the shipped one)."""
    from dicsbi.compensation import candidate_pairs
    from dicsbi.refine import flow as F
    from dicsbi.refine.world import World

    m = get_model("stg")
    world = World(m, m.vth_mV, np.array([[-20.0, 20.0], [0.0, 20.0]]), candidate_pairs(m), wide=0.5)
    theta, comp, ctx = F.simulate_prior(world, 800, seed=3, chunk=500)
    assert len(theta) >= 800 and set(np.unique(comp)) == {0, 1}
    assert ctx["summary"].shape == (len(theta), 22) and ctx["features"].shape == (len(theta), 16)
    assert np.isfinite(ctx["features"]).all() and (ctx["features"][:, -4] == 0).all()   # none silent
    old = dict(F.FLOW)
    F.FLOW.update(epochs=8)
    try:
        flow = F.ProposalFlow.fit(world, theta, comp, ctx["features"], seed=1, context="features")
    finally:
        F.FLOW.clear()
        F.FLOW.update(old)
    return world, flow, theta, comp


def test_flow_proposal_weights_bring_back_the_prior(small_flow):
    """Self-normalised weights of the flow proposal's draws estimate prior expectations (no simulation)."""
    from dicsbi.refine.proposal import FlowProposal
    from dicsbi.refine.world import SEEDED

    world, flow, theta, comp = small_flow
    rec = _recording(draw_seed_population("stg", 1, np.random.default_rng(2))[0])
    q = FlowProposal(None, rec, world, 0.3, 0.0, flow)
    rng = np.random.default_rng(5)
    draws, labels = q.draw(6000, rng, seed=9)
    logw = q.log_weight(draws, labels)
    inside = np.isfinite(world.log_prior(draws))
    assert np.array_equal(np.isfinite(logw), inside) and inside.mean() > 0.5
    w = np.exp(logw[inside] - logw[inside].max())
    d, c = draws[inside], labels[inside]
    prior, prior_c = world.draw(rng.uniform(world.box[:, 0], world.box[:, 1], (20000, 2)), rng)
    for col in (-2, -1):   # g_s, g_u over the box, whichever component
        spread = world.box[col, 1] - world.box[col, 0]
        assert abs(np.sum(w * d[:, col]) / w.sum() - prior[:, col].mean()) < 0.04 * spread
    seeded = c == SEEDED
    for col in range(world.n_seed):   # the seeded block, as the seed population draws it
        est = np.sum(w[seeded] * d[seeded, col]) / w[seeded].sum()
        assert abs(est - prior[prior_c == SEEDED, col].mean()) < 0.1 * prior[:, col].std()
    assert abs(np.sum(w * (c == SEEDED)) / w.sum() - 0.5) < 0.04   # the component weights are the prior's
    assert logw[inside].max() <= -np.log(0.3) + 1e-9   # prior over (beta prior + ...) is at most 1 / beta


def test_proposal_flows_round_trip_and_refuse_damage(small_flow, tmp_path):
    from dicsbi.errors import DicsbiError
    from dicsbi.refine.flow import SETTINGS, WEIGHTS, ProposalFlow

    world, flow, theta, comp = small_flow
    flow.save(tmp_path)
    back = ProposalFlow.load(tmp_path)
    assert back.context == "features"
    x = np.zeros(16)
    for c in (0, 1):
        cols = flow.columns[c]
        np.testing.assert_array_equal(back.columns[c], cols)
        np.testing.assert_allclose(back.log_prob(c, theta[comp == c][:5, cols], x),
                                   flow.log_prob(c, theta[comp == c][:5, cols], x), rtol=1e-6)
        np.testing.assert_allclose(back.sample(c, x, 4, seed=2), flow.sample(c, x, 4, seed=2), rtol=1e-6)
    assert ProposalFlow.load(tmp_path / "nothing") is None and ProposalFlow.cached(None) is None
    (tmp_path / WEIGHTS).write_bytes((tmp_path / WEIGHTS).read_bytes()[:-10])
    with pytest.raises(DicsbiError, match=SETTINGS):
        ProposalFlow.load(tmp_path)


def test_refine_with_proposal_flows_is_seeded_and_needs_them(stg, small_flow, tmp_path):
    import copy

    from dicsbi.errors import DicsbiError

    world, flow, theta, comp = small_flow
    flow.save(tmp_path)
    post = copy.copy(stg)
    post.folder = tmp_path
    rec = _recording(draw_seed_population("stg", 1, np.random.default_rng(2))[0])
    opt = RefineOptions(n_members=20, max_generations=3, max_simulations=300, proposal="flow")
    a, b = refine("stg", rec, post, options=opt, seed=4), refine("stg", rec, post, options=opt, seed=4)
    np.testing.assert_array_equal(a.conductances, b.conductances)
    assert a.conductances.shape == (20, 8) and np.all(a.conductances > 0)
    bare = copy.copy(stg)
    bare.folder = tmp_path / "none"
    with pytest.raises(DicsbiError, match="ships no refinement proposal flow"):
        refine("stg", rec, bare, options=opt, seed=4)


def test_feature_context_keeps_what_the_distance_compares():
    from dicsbi.refine.flow import distance_view, feature_context
    from dicsbi.spikes import BURSTING

    tonic = [np.log(10.0), np.log(10.0), 4e-4, 0.7, np.nan, np.nan, 1.0]       # jitter CV, jitter correlation
    burst = [np.log(12.0), np.log(1.5), 1.8, -0.4, 8.0, 0.2, float(BURSTING)]
    f = feature_context(np.array([tonic, burst]))
    assert f.shape == (2, 16) and np.isfinite(f).all()
    assert f[0, 2] == 0.05 and f[0, 3] == 0.0 and f[0, 9] == 1.0     # CV floored, correlation read as missing
    assert f[0, 4] == f[0, 5] == 0.0 and f[0, 10] == f[0, 11] == 1.0  # no bursts
    np.testing.assert_array_equal(f[1, :6], burst[:6])
    assert f[1, 6:12].sum() == 0 and f[1, 12:].tolist() == [0, 0, 1, 0]
    np.testing.assert_array_equal(distance_view(f), f)   # idempotent: stored contexts can be read again


def test_infer_scales_the_simulation_budget_with_the_members():
    from dicsbi.pipeline import refine_for

    assert (refine_for(RefineOptions(), 100).max_simulations, refine_for(RefineOptions(), 300).max_simulations) \
        == (3000, 9000)
    small = refine_for(RefineOptions(max_simulations=120), 20)
    assert (small.n_members, small.max_simulations) == (20, 24)
