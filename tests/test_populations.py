"""The pipeline: posterior samples -> one compensated model each; predictive check."""

import numpy as np
import pytest
from conftest import read_csv

from dicsbi.compensation import plausible_upper_bounds
from dicsbi.dics import compute_dics
from dicsbi.errors import DicsbiError
from dicsbi.models import STG
from dicsbi.pipeline import infer
from dicsbi.report.page import CSS
from dicsbi.spikes import SpikeTrains


@pytest.fixture(scope="module")
def recordings(tiny_set):
    from dicsbi.datasets.storage import load_dataset

    d = load_dataset(tiny_set)
    cls = d.firing_class
    pick = [int(np.flatnonzero(cls == 1)[0]), int(np.flatnonzero(cls == 2)[0])]
    trains = d.trains.select(pick)
    silent = SpikeTrains.from_list([[5.0, 900.0]], 0.0, 1000.0, ids=["quiet"])
    both = SpikeTrains.from_list([*trains.to_list(), silent[0]], 0.0, 1000.0, ids=["tonic", "burst", "quiet"])
    return both


def test_every_model_hits_the_posterior_sample_it_came_from(tiny_posteriors, recordings):
    post, _ = tiny_posteriors["summary"]
    res = infer(recordings, "stg", n_models=200, posterior=post, seed=3)
    assert [r.id for r in res.recordings] == ["tonic", "burst"] and res.silent == ["quiet"]
    ub = plausible_upper_bounds(STG)
    for rec in res.recordings:
        assert rec.conductances.shape == (200, STG.n_conductances)
        # recomputed independently of the solver's own DICs
        np.testing.assert_allclose(compute_dics(STG, rec.conductances)[:, 1:], rec.samples, atol=1e-5)
        np.testing.assert_allclose(rec.dics, compute_dics(STG, rec.conductances), atol=1e-9)
        assert (rec.conductances > 0).all() and (rec.conductances <= ub).all()
        assert np.unique(rec.sample_index).size == 200  # one model per posterior sample
        assert rec.samples.std(0).min() > 0  # the posterior's spread reaches the population
    again = infer(recordings, "stg", n_models=200, posterior=post, seed=3)
    for a, b in zip(res.recordings, again.recordings):
        np.testing.assert_array_equal(a.conductances, b.conductances)


def test_predictive_check_reports_fractions(tiny_posteriors, recordings):
    post, _ = tiny_posteriors["summary"]
    res = infer(recordings.select([1]), "stg", n_models=20, posterior=post, seed=0, check=6)
    c = res.recordings[0].check
    assert c["n"] == 6 and 0 <= c["class_match"] <= 1 and 0 <= c["reproduce"] <= c["class_match"]
    assert c["frequency_key"] == "f_inter_hz" and np.isfinite(c["vr_median"]) and c["diverged"] == 0
    assert c["tier"] == "fast" and c["dt_ms"] == 0.05  # members are simulated at the fast tier, recorded


def test_wrong_model_is_refused(tiny_posteriors, recordings):
    post, _ = tiny_posteriors["summary"]
    with pytest.raises(DicsbiError, match="posterior is for model 'stg', not 'da'"):
        infer(recordings, "da", posterior=post)


def test_inference_data_round_trips_through_netcdf(tiny_posteriors, recordings, tmp_path):
    from dicsbi.io.netcdf import from_netcdf, inference_data, to_netcdf

    post, _ = tiny_posteriors["summary"]
    res = infer(recordings, "stg", n_models=25, posterior=post, seed=2)
    idata = inference_data(res, recordings)
    to_netcdf(idata, tmp_path / "posterior.nc")
    back = from_netcdf(tmp_path / "posterior.nc")
    assert dict(back.posterior.sizes) == {"chain": 1, "draw": 25, "recording": 2}
    assert list(back.posterior.recording.values) == ["tonic", "burst"]  # the silent one has no posterior
    np.testing.assert_array_equal(back.posterior.g_s.values[0, :, 1], res.recordings[1].samples[:, 0])
    g = back.posterior_predictive.conductance
    assert g.dims == ("chain", "draw", "recording", "channel") and list(g.channel.values) == list(STG.conductance_names)
    np.testing.assert_array_equal(g.values[0, :, 0], res.recordings[0].conductances)
    assert back.observed_data.n_spikes.values.tolist() == recordings.counts[:2].tolist()
    assert back.posterior.attrs["model"] == "stg" and back.posterior.attrs["seed"] == 2


def test_cli_infer_writes_tables_and_netcdf(tiny_posteriors, recordings, tmp_path):
    import subprocess
    import sys

    from dicsbi.io.tables import write_spike2pop_csv

    post, _ = tiny_posteriors["summary"]
    post.save(tmp_path / "post")
    write_spike2pop_csv(tmp_path / "rec.csv", recordings)
    out = tmp_path / "res"
    r = subprocess.run([sys.executable, "-m", "dicsbi.cli", "infer", str(tmp_path / "rec.csv"), "--out", str(out),
                        "--posterior", str(tmp_path / "post"), "--n-models", "30", "--check", "4", "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["figures", "populations.csv", "posterior.nc", "report.html",
                                                    "summary.csv"]
    assert len(list((out / "figures").glob("*.png"))) == 8
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 8 and "Silent recordings" in page and "quiet" in page
    assert CSS in page  # the one page template
    rows = read_csv(out / "populations.csv")
    assert len(rows) == 60 and {row["recording"] for row in rows} == {"tonic", "burst"}
    assert "g_Na [mS/cm^2]" in rows[0] and "g_s [g_leak]" in rows[0] and "posterior_sample" in rows[0]
    summary = {row["recording"]: row for row in read_csv(out / "summary.csv")}
    assert summary["quiet"]["firing_class"] == "silent" and summary["quiet"]["n_models"] == "0"
    assert summary["burst"]["check_n"] == "4" and 0 <= float(summary["burst"]["check_class_match"]) <= 1
    assert float(summary["burst"]["check_dt_ms"]) == 0.05  # the predictive check's step, in the table
    # a bad input file: one clear error, exit 2, nothing written
    (tmp_path / "bad.csv").write_text('ID,spiking_times\na,"[3, 1, 2]"\n')
    r = subprocess.run([sys.executable, "-m", "dicsbi.cli", "infer", str(tmp_path / "bad.csv"), "--out",
                        str(tmp_path / "res2"), "--posterior", str(tmp_path / "post")], capture_output=True, text=True)
    assert r.returncode == 2 and "row 2, column spiking_times" in r.stderr and not (tmp_path / "res2").exists()


def _infer_cmd(tmp_path, out, *extra):
    import sys

    return [sys.executable, "-m", "dicsbi.cli", "infer", str(tmp_path / "rec.csv"), "--out", str(out),
            "--posterior", str(tmp_path / "post"), "--n-models", "30", "--check", "4", "--no-progress", *extra]


def test_killed_run_leaves_no_finished_looking_output_and_rerun_completes(tiny_posteriors, recordings, tmp_path):
    import subprocess

    from conftest import kill_while_writing

    from dicsbi.io.tables import write_spike2pop_csv

    tiny_posteriors["summary"][0].save(tmp_path / "post")
    write_spike2pop_csv(tmp_path / "rec.csv", recordings)
    out = tmp_path / "res"
    left = kill_while_writing(_infer_cmd(tmp_path, out), out, timeout_s=120)
    assert left <= {".dicsbi.lock"} | {p.name for p in out.glob(".partial-*")}, left  # temporary names only
    r = subprocess.run(_infer_cmd(tmp_path, out), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["figures", "populations.csv", "posterior.nc", "report.html",
                                                    "summary.csv"]  # stale lock taken over, stage removed


def test_failure_while_writing_keeps_the_previous_outputs(tiny_posteriors, recordings, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import dicsbi.report.page
    from dicsbi.cli import app
    from dicsbi.io.tables import write_spike2pop_csv

    tiny_posteriors["summary"][0].save(tmp_path / "post")
    write_spike2pop_csv(tmp_path / "rec.csv", recordings)
    out = tmp_path / "res"
    out.mkdir()
    (out / "summary.csv").write_text("an earlier result\n")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dicsbi.report.page, "write_figures_and_report", boom)
    args = _infer_cmd(tmp_path, out)[3:]
    r = CliRunner().invoke(app, args)
    assert r.exit_code != 0
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]
    assert (out / "summary.csv").read_text() == "an earlier result\n"


def test_two_runs_on_one_folder_refuse_each_other(tiny_posteriors, recordings, tmp_path):
    import subprocess
    import sys

    from dicsbi.errors import DicsbiError
    from dicsbi.io.files import OutputFolder

    out = tmp_path / "res"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.mkdir()
        (out / ".dicsbi.lock").write_text(str(other.pid))
        with pytest.raises(DicsbiError, match=f"another dicsbi run \\(process {other.pid}\\)"):
            with OutputFolder(out):
                pass
    finally:
        other.kill()
        other.wait()
    with OutputFolder(out) as stage:  # the holder is gone: its lock is stale and taken over
        (stage / "a.txt").write_text("x")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("model", ["stg", "da"])
def test_shipped_pair_table_equals_recomputation(model):
    import json

    from dicsbi.pair_ranking import compute_pair_ranking, pair_table_path

    path = pair_table_path(model)
    if not path.exists():
        pytest.skip(f"no shipped pair table for {model}")
    table = json.loads(path.read_text())
    keys = sorted(table["cells"])
    for key in np.random.default_rng(3).choice(keys, 3, replace=False):
        i, j = map(int, key.split(","))
        assert [list(p) for p in compute_pair_ranking(model, i, j, table["vth_mV"])] == table["cells"][key]


def test_report_renders_in_headless_chromium(tiny_posteriors, recordings, tmp_path):
    import importlib.util
    import shutil
    from pathlib import Path

    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    spec = importlib.util.spec_from_file_location(
        "screenshot_report", Path(__file__).parents[1] / "experiments" / "screenshot_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from dicsbi.report.page import write_figures_and_report

    res = infer(recordings, "stg", 20, posterior=tiny_posteriors["summary"][0], seed=0, check=3)
    page = write_figures_and_report(res, recordings, tmp_path)
    r = mod.render(page, tmp_path / "report.png", height=1500)
    assert r["returncode"] == 0 and r["errors"] == []
    assert r["rendered_images"] == r["expected_images"] == 8
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_same_seed_gives_byte_identical_tables_across_runs_and_thread_counts(tiny_posteriors, recordings, tmp_path):
    import subprocess

    from dicsbi.io.tables import write_spike2pop_csv

    tiny_posteriors["summary"][0].save(tmp_path / "post")
    write_spike2pop_csv(tmp_path / "rec.csv", recordings)
    outs = []
    for k, threads in enumerate(["1", "2"]):  # two runs: across runs and across thread counts at once
        out = tmp_path / f"res{k}"
        r = subprocess.run(_infer_cmd(tmp_path, out, "--threads", threads, "--seed", "7"), capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        outs.append(out)
    for name in ("populations.csv", "summary.csv"):
        first = (outs[0] / name).read_bytes()
        assert all((o / name).read_bytes() == first for o in outs[1:]), name


def test_streamed_output_in_chunks_matches_the_in_memory_result(tiny_posteriors, recordings, tmp_path, monkeypatch):

    import dicsbi.pipeline as pops
    from dicsbi.io.netcdf import from_netcdf

    monkeypatch.setattr(pops, "CHUNK", 2)
    trains = SpikeTrains.from_list([recordings[k % 3] for k in range(7)], 0.0, 1000.0,
                                   ids=[f"r{k}" for k in range(7)])  # r2 and r5 are silent
    post = tiny_posteriors["summary"][0]
    whole = infer(trains, "stg", 12, posterior=post, seed=3)
    n_rec, n_silent, _ = pops.run_to_folder(trains, tmp_path, "stg", 12, post, seed=3)
    assert (n_rec, n_silent) == (5, 2) and [r.id for r in whole.recordings] == ["r0", "r1", "r3", "r4", "r6"]
    rows = read_csv(tmp_path / "populations.csv")
    assert len(rows) == 60 and [r["recording"] for r in rows[::12]] == ["r0", "r1", "r3", "r4", "r6"]
    got = np.array([[float(r["g_s [g_leak]"]), float(r["g_u [g_leak]"])] for r in rows])
    np.testing.assert_allclose(got, np.concatenate([r.dics[:, 1:] for r in whole.recordings]), rtol=1e-6, atol=1e-6)
    summary = read_csv(tmp_path / "summary.csv")
    assert [r["recording"] for r in summary] == [f"r{k}" for k in range(7)]
    idata = from_netcdf(tmp_path / "posterior.nc")
    assert list(idata.posterior["recording"].values) == ["r0", "r1", "r3", "r4", "r6"]
    np.testing.assert_allclose(idata.posterior["g_s"].values[0, :, 2], whole.recordings[2].samples[:, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "populations.csv", "posterior.nc",
                                                          "report.html", "summary.csv"]


class _FarPosterior:
    """Wraps a posterior; a chosen fraction of its samples sits far outside the box, where no valid cell reaches."""

    def __init__(self, post, frac_unreachable):
        self.post, self.frac = post, frac_unreachable
        self.model, self.vth_mV, self.config = post.model, post.vth_mV, post.config

    def sample(self, trains, n, seed=0):
        x = np.array(self.post.sample(trains, n, seed=seed))
        bad = np.random.default_rng(seed).random(x.shape[:2]) < self.frac
        x[bad] = (300.0, 300.0)  # far outside the box: no valid (positive, plausible) cell reaches it
        return x


def test_mostly_unreachable_posteriors_do_not_abort_the_run(tiny_posteriors, recordings):
    from dicsbi.compensation import UnreachableTargetError, generate_population

    with pytest.raises((UnreachableTargetError, DicsbiError)):
        generate_population("stg", 300.0, 300.0, 4, seed=0)  # really unreachable
    post = tiny_posteriors["summary"][0]
    res = infer(recordings, "stg", 20, posterior=_FarPosterior(post, 0.9), seed=1)
    for rec in res.recordings:  # extra draws and re-solved samples fill the population
        assert len(rec.conductances) == 20 and rec.n_replaced > 0
        np.testing.assert_allclose(rec.dics[:, 1:], rec.samples, atol=1e-4)
    res = infer(recordings, "stg", 20, posterior=_FarPosterior(post, 1.0), seed=1)
    assert res.recordings == [] and res.unreachable == ["tonic", "burst"] and res.silent == ["quiet"]


def test_arviz_summary_and_plots_work_on_the_inference_data(tiny_posteriors, recordings):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dicsbi.io.netcdf import _arviz, inference_data

    az = _arviz()
    res = infer(recordings, "stg", n_models=30, posterior=tiny_posteriors["summary"][0], seed=4)
    idata = inference_data(res, recordings)
    table = az.summary(idata, var_names=["g_s", "g_u"], kind="stats")
    assert list(table.index) == ["g_s[tonic]", "g_s[burst]", "g_u[tonic]", "g_u[burst]"]
    np.testing.assert_allclose(table.loc["g_u[burst]", "mean"], res.recordings[1].samples[:, 1].mean(), atol=1e-3)
    for plot in (az.plot_pair, az.plot_forest, az.plot_posterior):
        axes = plot(idata, var_names=["g_s", "g_u"])
        assert np.size(axes) >= 1
        plt.close("all")
    axes = az.plot_forest(idata.posterior_predictive, var_names=["conductance"], combined=True)  # the population
    assert np.size(axes) >= 1
    plt.close("all")


def test_comparison_window_rule():
    from dicsbi.diagnostics.predictive import MAX_CHECK_MS, comparison_window

    t = np.arange(150.0, 1000.0, 100.0)  # every ISI 100 ms
    assert comparison_window(t, 0.0, 1000.0) == (0.0, 1000.0)  # first spike within 2 ISIs: the window as given
    assert comparison_window(t + 60.0, 0.0, 1060.0) == (110.0, 950.0)  # later: from one ISI before the first spike
    bursts = np.concatenate([b + np.arange(4) * 10.0 for b in (400.0, 1400.0, 2400.0)])
    assert comparison_window(bursts, 0.0, 3000.0) == (0.0, 3000.0)  # a late first burst: its long ISI rules
    assert comparison_window(t + 3000.0, 3000.0, 4000.0) == (3000.0, 1000.0)  # an explicit start is kept
    assert comparison_window(np.arange(90.0, 200.0, 10.0), 0.0, 200.0) == (0.0, 200.0)  # 100 ms floor
    assert comparison_window(np.array([5.0, 9.0]), 0.0, 20.0) == (0.0, 100.0)  # at least 100 ms
    assert comparison_window(t, 0.0, 1e6)[1] == MAX_CHECK_MS


def test_predictive_check_on_absolute_times_matches_the_relative_recording():
    """The same trains shifted by +3000 ms (read with or without their window start) get the same check."""
    from pathlib import Path

    from dicsbi.diagnostics.predictive import predictive_check
    from dicsbi.io.readers import read_spike_trains
    from dicsbi.posterior.artifact import load_posterior

    trains, _ = read_spike_trains(Path(__file__).parents[1] / "examples" / "stg_recordings.csv")
    res = infer(trains, "stg", n_models=20, posterior=load_posterior("stg"), seed=0)
    keys = ("class_match", "freq_match", "rate_cv_match")
    for k, rec in enumerate(res.recordings):
        t, stop = trains[k], float(trains.t_stop_ms[k])
        base = predictive_check("stg", trains.select([k]), rec, 6, seed=k)
        assert base["window_start_ms"] == 0.0 and base["window_ms"] == stop  # window from 0: as before
        absolute = predictive_check("stg", SpikeTrains.from_list([t + 3000.0], 0.0, ids=[rec.id]), rec, 6, seed=k)
        isi = float(np.median(np.diff(t)))
        assert absolute["window_start_ms"] == pytest.approx(t[0] + 3000.0 - isi)
        for key in keys:
            assert abs(absolute[key] - base[key]) <= 1 / 6 + 1e-9, (rec.id, key, absolute[key], base[key])
        given = predictive_check("stg", SpikeTrains.from_list([t + 3000.0], 3000.0, stop + 3000.0, ids=[rec.id]),
                                 rec, 6, seed=k)
        assert given["window_start_ms"] == 3000.0 and given["window_ms"] == pytest.approx(stop)
        assert [given[key] for key in keys] == [base[key] for key in keys]
        assert given["vr_ratio"] == pytest.approx(base["vr_ratio"], rel=1e-6)
