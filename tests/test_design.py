"""Experiment design: ranking current steps by how well they separate the leading hypotheses' predictions."""

from __future__ import annotations

import numpy as np
import pytest

from dicsbi.compensation import generate_population
from dicsbi.errors import DicsbiError
from dicsbi.modulation.design import design_cells, response_features, separation
from dicsbi.spikes import SpikeTrains


def test_separation_is_chance_for_one_distribution_and_one_for_disjoint_ones():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    assert abs(separation(a, b) - 0.5) < 0.08
    assert separation(a, b + 10.0) == 1.0
    same = np.ones((10, 3))
    assert separation(same, same) <= 0.5  # identical responses: ties split (9 of 19 left), no fake separation


def test_response_features_count_spikes_before_in_and_after_the_step():
    t = SpikeTrains.from_list([np.r_[np.arange(0, 1000, 100.0), np.arange(1000, 2000, 20.0)], [5.0]],
                              t_start_ms=0.0, t_stop_ms=3000.0)
    f = response_features(t, (1000.0, 2000.0))
    np.testing.assert_allclose(f[0, :3], np.log1p([10.0, 50.0, 0.0]))
    assert f[0, 3] == 1 and f[1, 3] == 0 and np.all(f[1, 4:] == 0)


def test_design_finds_the_step_that_separates_what_the_spontaneous_recording_cannot():
    pop = generate_population("stg", g_s=-4.0, g_u=5.0, n=48, seed=0).conductances
    same = design_cells("stg", {"a": pop[:24], "b": pop[24:]}, amplitudes=(-1.0, 1.0), seed=0, threads=1)
    assert same.accuracy.shape == (3, 1) and np.all(same.accuracy < 0.8)  # one distribution: near chance
    moved = pop[24:].copy()
    moved[:, 5] *= 2.5  # g_A
    diff = design_cells("stg", {"a": pop[:24], "A": moved}, amplitudes=(-1.0, 1.0), seed=0, threads=1)
    assert diff.score.max() >= 0.9 and diff.pairs == [("a", "A")]
    assert diff.order[0] == int(np.argmax(diff.score))
    table = diff.table()
    assert table["rank"][0] == 1 and len(table["rank"]) == 3
    assert len(diff.sentences()) == 1
    with pytest.raises(DicsbiError, match="at least two"):
        design_cells("stg", {"a": pop[:4], "b": pop[:0]})


def test_a_recording_under_the_protocol_matches_its_own_hypothesis():
    from dicsbi.modulation.design import protocol_stimulus
    from dicsbi.simulate import simulate

    pop = generate_population("stg", g_s=-4.0, g_u=5.0, n=50, seed=1).conductances
    moved = pop.copy()
    moved[:, 5] *= 2.5  # g_A
    d = design_cells("stg", {"a": pop[:24], "A": moved[:24]}, amplitudes=(1.0,), seed=0, threads=1)
    assert d.responses.shape == (2, 48, 26) and list(d.cell_hypothesis) == [0] * 24 + [1] * 24
    new = simulate("stg", np.vstack([pop[24:26], moved[24:26]]), duration_ms=3000.0, seed=0, tier="fast",
                   stimulus=protocol_stimulus(1.0, d.window_ms))  # cells the design never saw
    share = d.match(new.trains, 1)
    assert share.shape == (4, 2) and np.allclose(share.sum(1), 1.0)
    assert np.all(share[:2, 0] > 0.5) and np.all(share[2:, 1] > 0.5)


def test_modulate_cli_writes_the_design_when_asked(tmp_path):
    from conftest import read_csv
    from typer.testing import CliRunner

    from dicsbi.cli import app

    out = tmp_path / "mod"
    r = CliRunner().invoke(app, ["modulate", "examples/stg_before.csv", "examples/stg_after.csv", "--out", str(out),
                                 "--hypotheses", "A, H, A+H", "--n-members", "12", "--n-particles", "16",
                                 "--no-maps", "--design", "always", "--threads", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    rows = read_csv(out / "design.csv")
    assert {row["hypothesis_a"] for row in rows} | {row["hypothesis_b"] for row in rows} == {"A", "H", "A+H"}
    assert (out / "figures" / "design.png").stat().st_size > 0
    assert "Experiment design" in (out / "report.html").read_text()
    bad = CliRunner().invoke(app, ["modulate", "examples/stg_before.csv", "examples/stg_after.csv", "--out",
                                   str(tmp_path / "x"), "--design", "sometimes"])
    assert bad.exit_code != 0 and "--design must be" in str(bad.exception)
