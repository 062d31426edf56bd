"""A third model defined outside the package runs through the unchanged simulator."""

import numpy as np
from conftest import read_csv
from scipy.special import exprel

from dicsbi.models import Channel, Gate, Model
from dicsbi.oracle import compare_trains, run_references
from dicsbi.simulate import simulate


def _rates_to_gate(name, alpha, beta):
    return Gate(name, lambda V: alpha(V) / (alpha(V) + beta(V)), lambda V: 1.0 / (alpha(V) + beta(V)))


def _a_m(V):
    return 1.0 / exprel(-(V + 40.0) / 10.0)  # 0.1 (V+40) / (1 - exp(-(V+40)/10)), smooth at V = -40


def _a_n(V):
    return 0.1 / exprel(-(V + 55.0) / 10.0)


HH = Model(
    name="hh_test",
    description="Hodgkin-Huxley squid axon with a depolarised leak so that it fires on its own",
    channels=(
        Channel("Na", 50.0, (("m", 3), ("h", 1))),
        Channel("K", -77.0, (("n", 4),)),
        Channel("leak", -30.0),
    ),
    gates=(
        _rates_to_gate("m", _a_m, lambda V: 4.0 * np.exp(-(V + 65.0) / 18.0)),
        _rates_to_gate("h", lambda V: 0.07 * np.exp(-(V + 65.0) / 20.0),
                       lambda V: 1.0 / (1.0 + np.exp(-(V + 35.0) / 10.0))),
        _rates_to_gate("n", _a_n, lambda V: 0.125 * np.exp(-(V + 65.0) / 80.0)),
    ),
    calcium=None,
    bounds={"g_Na": (0.0, 240.0), "g_K": (0.0, 72.0), "g_leak": (0.0, 3.0)},
    vth_mV=-55.0, v0_mV=-65.0, default_dt_ms=0.01, default_duration_ms=200.0, default_transient_ms=50.0,
    noise_dt_ms=0.05,
)


def test_user_defined_model_matches_reference():
    g = np.array([[120.0, 36.0, 0.3], [120.0, 36.0, 1.0], [120.0, 36.0, 0.01]])
    res = simulate(HH, g)
    refs = run_references(HH, g, HH.default_duration_ms, HH.default_transient_ms)
    cmp = compare_trains(res.trains, refs)
    assert res.trains.counts[1] > 5 and res.trains.counts[2] == 0
    np.testing.assert_array_equal(cmp["class_kernel"], cmp["class_reference"])
    assert cmp["count_ok"].all()
    err = cmp["isi_relerr"][np.isfinite(cmp["isi_relerr"])]
    assert err.size and err.max() < 0.005


def test_a_registered_model_runs_through_every_command(tmp_path):
    """A third model, defined here (the STG equations with a 2 mV lower leak reversal), registered, then taken
    through simulate-dataset, train (tiny), infer and modulate on the command line."""
    import dataclasses
    import json

    import pytest
    from typer.testing import CliRunner

    from dicsbi.cli import app
    from dicsbi.compensation import generate_population
    from dicsbi.errors import ModelError
    from dicsbi.io import write_spike2pop_csv
    from dicsbi.models import MODELS, STG, get_model, register_model
    from dicsbi.spikes import SpikeTrains

    third = dataclasses.replace(
        STG, name="stg_variant", description="STG with a 2 mV lower leak reversal",
        channels=tuple(dataclasses.replace(c, reversal_mV=c.reversal_mV - 2.0) if c.name == "leak" else c
                       for c in STG.channels))
    with pytest.raises(ModelError, match="shipped"):
        register_model(dataclasses.replace(STG, description="another STG"))
    register_model(third)
    try:
        assert get_model("STG_variant") is third
        with pytest.raises(ModelError, match="replace=True"):
            register_model(dataclasses.replace(third, description="again"))

        def run(*args):
            res = CliRunner().invoke(app, [str(a) for a in args])
            assert res.exit_code == 0, res.output
            return res.output

        run("simulate-dataset", "--out", tmp_path / "data", "--model", "stg_variant", "--n-targets", 60,
            "--cells-per-target", 2, "--seed", 1, "--duration-ms", 1000, "--transient-ms", 300, "--no-progress")
        run("train", "--data", tmp_path / "data", "--out", tmp_path / "post", "--max-epochs", 2, "--batch-size", 64,
            "--no-progress")
        assert json.loads((tmp_path / "post" / "posterior.json").read_text())["model"] == "stg_variant"
        g = np.vstack([generate_population("stg_variant", gs, gu, 1, seed=k).conductances
                       for k, (gs, gu) in enumerate([(-4.0, 5.0), (6.0, 6.0)])])
        after = g.copy()
        after[:, 1] *= 1.5
        for name, cond in (("before", g), ("after", after)):
            res = simulate("stg_variant", cond, 1000.0, transient_ms=300.0, seed=0, tier="fast")
            write_spike2pop_csv(tmp_path / f"{name}.csv", SpikeTrains.from_list(list(res.trains), 0.0, 1000.0,
                                                                                ids=["a", "b"]))
        common = ("--model", "stg_variant", "--posterior", tmp_path / "post", "--no-progress")
        run("infer", tmp_path / "before.csv", "--out", tmp_path / "res", "--n-models", 20, "--check", 2, *common)
        rows = read_csv(tmp_path / "res" / "summary.csv")
        assert [r["recording"] for r in rows] == ["a", "b"] and all(int(r["n_models"]) == 20 for r in rows)
        run("modulate", tmp_path / "before.csv", tmp_path / "after.csv", "--out", tmp_path / "mod", "--hypotheses",
            "CaS, A", "--n-members", 10, "--n-particles", 32, "--no-maps", *common)
        hyps = read_csv(tmp_path / "mod" / "hypotheses.csv")
        assert {h["hypothesis"] for h in hyps} >= {"CaS", "A"}
    finally:
        MODELS.pop("stg_variant", None)
