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
