"""Firing classes, burst features and the van Rossum distance on trains with known answers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicsbi.errors import InputError
from dicsbi.spikes import (
    BURSTING,
    SILENT,
    SPIKING,
    SpikeTrains,
    firing_class,
    reference_tau_ms,
    spike_features,
    van_rossum_distance,
)


def burst_train(n_bursts=6, spikes=4, intra_isi=5.0, period=200.0, t0=10.0):
    return np.concatenate([t0 + b * period + intra_isi * np.arange(spikes) for b in range(n_bursts)])


def test_classes():
    trains = SpikeTrains.from_list([[], [5.0, 10.0], np.arange(10) * 50.0 + 3, burst_train()], 0, 2000)
    np.testing.assert_array_equal(firing_class(trains), [SILENT, SILENT, SPIKING, BURSTING])


def test_cv_threshold_is_inclusive():
    mean, cv = 100.0, 0.15  # alternating ISIs mean*(1 -+ cv) have exactly this CV
    isi = np.where(np.arange(20) % 2 == 0, mean * (1 - cv), mean * (1 + cv))
    t = np.concatenate([[0.0], np.cumsum(isi)])
    assert firing_class(SpikeTrains.from_list([t])) == [SPIKING]
    isi = np.where(np.arange(20) % 2 == 0, mean * (1 - 0.151), mean * (1 + 0.151))
    assert firing_class(SpikeTrains.from_list([np.concatenate([[0.0], np.cumsum(isi)])])) == [BURSTING]


def test_burst_features_known_values():
    f = spike_features(SpikeTrains.from_list([burst_train(n_bursts=6, spikes=4, intra_isi=5.0, period=200.0)]))
    assert f["n_bursts"][0] == 4  # first and last dropped
    assert f["spikes_per_burst"][0] == pytest.approx(4.0)
    assert f["burst_duration_ms"][0] == pytest.approx(15.0)
    assert f["f_intra_hz"][0] == pytest.approx(4 / 15.0 * 1000.0)
    assert f["f_inter_hz"][0] == pytest.approx(5.0)


def test_spiking_frequency():
    t = np.arange(20) * 40.0
    f = spike_features(SpikeTrains.from_list([t, []]))
    assert f["f_spiking_hz"][0] == pytest.approx(25.0)
    assert np.isnan(f["f_spiking_hz"][1]) and np.isnan(f["spikes_per_burst"][0])


def test_van_rossum_matches_numerical_integral():
    a = np.array([10.0, 30.0, 31.0, 70.0])
    b = np.array([12.0, 50.0, 72.0])
    tau = 8.0
    dt = 0.001
    t = np.arange(0, 400, dt)

    def filt(s):
        x = t[:, None] - s[None, :]
        return (np.where(x >= 0, np.exp(-np.clip(x, 0, None) / tau), 0.0) / tau).sum(axis=1)

    numeric = np.sqrt(((filt(a) - filt(b)) ** 2).sum() * dt)
    assert van_rossum_distance(a, b, tau) == pytest.approx(numeric, rel=1e-3)
    assert van_rossum_distance(a, a, tau) == 0.0
    assert van_rossum_distance(a, b, tau) == pytest.approx(van_rossum_distance(b, a, tau))
    with pytest.raises(InputError):
        van_rossum_distance(a, b, 0.0)
    assert reference_tau_ms(a) == pytest.approx((39.0 + 1.0) / 2)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(0.0, 1e4, allow_nan=False), max_size=60))
def test_features_never_fail_on_sorted_finite_trains(times):
    t = np.unique(np.array(times, dtype=float))
    f = spike_features(SpikeTrains.from_list([t], 0.0, 1e4))
    assert f["firing_class"][0] in (SILENT, SPIKING, BURSTING)
    assert (f["firing_class"][0] == SILENT) == (t.size < 3)


def test_spiketrains_container():
    tr = SpikeTrains.from_list([[1.0, 2.0], [], [3.0]], 0.0, 10.0, ids=["a", "b", "c"])
    assert len(tr) == 3 and tr.counts.tolist() == [2, 0, 1]
    np.testing.assert_array_equal(tr[2], [3.0])
    sub = tr.select([0, 2])
    assert list(sub.ids) == ["a", "c"] and sub.counts.tolist() == [2, 1]
    back = tr.select(np.array([False, True, True]))  # a mask, an empty train kept, order kept
    assert list(back.ids) == ["b", "c"] and back.counts.tolist() == [0, 1] and back[1].tolist() == [3.0]
    assert tr.select([2, 0])[1].tolist() == [1.0, 2.0] and len(tr.select([])) == 0
    with pytest.raises(InputError):
        SpikeTrains.from_list([[1.0]], ids=["a", "b"])


# ---------------------------------------------------------------------------- the one spike-train validator
@pytest.mark.parametrize("bad, why", [
    ([1.0, np.nan, 9.0], "spike time nan is not a finite number"),
    ([-1.0, 3.0, 9.0], "negative spike time -1.0"),
    ([5.0, 3.0, 9.0], "not strictly increasing (3.0 after 5.0)"),
    ([0.1, 0.2, 0.3], "are the times in seconds? use --unit s"),
    ([1.0, 2.0, 1e9], "use --unit us"),
])
def test_every_entry_point_refuses_a_bad_train_with_the_same_reason(tmp_path, bad, why):
    from dicsbi.io import read_spike_trains
    from dicsbi.modulation.inputs import _as_trains
    from dicsbi.posterior.inputs import as_trains
    from dicsbi.spikes import first_train_problem, train_problem

    good = [10.0, 20.0, 35.0]
    assert why in train_problem(bad)
    assert first_train_problem(SpikeTrains.from_list([good, good, bad])) == (2, train_problem(bad))
    assert first_train_problem(SpikeTrains.from_list([good, good])) is None
    path = tmp_path / "s.csv"
    path.write_text("ID,spiking_times\nok,\"[10, 20, 35]\"\nx,\"[" + ", ".join(map(str, bad)) + "]\"\n")
    calls = (lambda: read_spike_trains(path), lambda: as_trains([good, bad]), lambda: _as_trains([good, bad], "x"))
    for call in calls:
        with pytest.raises(InputError) as err:
            call()
        assert why in str(err.value)


@given(st.lists(st.lists(st.floats(-10, 2e8) | st.just(float("nan")), max_size=6), min_size=1, max_size=5))
def test_the_vectorised_screen_agrees_with_the_validator(trains):
    from dicsbi.spikes import first_train_problem, train_problem

    st_ = SpikeTrains.from_list([np.array(t, dtype=float) for t in trains])
    problems = [k for k, t in enumerate(trains) if train_problem(np.array(t, dtype=float))]
    found = first_train_problem(st_)
    assert (found is None) == (not problems)
    if problems:
        assert found[0] == problems[0]


def test_firing_pattern_tells_bursts_from_irregular_spiking():
    from dicsbi.spikes import BURSTING, IRREGULAR, SPIKING, firing_pattern

    rng = np.random.default_rng(1)
    bursts = np.concatenate([b + np.arange(5) * 8.0 for b in np.arange(0.0, 6000.0, 600.0)])
    noisy_bursts = np.sort(bursts + rng.normal(0, 1.0, bursts.size))
    jittered = np.cumsum(rng.normal(100.0, 25.0, 60))  # a tonic spiker made irregular (ISI CV 0.25)
    poisson = np.cumsum(rng.exponential(100.0, 60))
    tonic = np.arange(0.0, 3000.0, 100.0)
    trains = SpikeTrains.from_list([bursts, noisy_bursts, jittered, poisson, tonic, [1.0, 2.0]])
    assert firing_class(trains).tolist() == [BURSTING, BURSTING, BURSTING, BURSTING, SPIKING, SILENT]
    assert firing_pattern(trains).tolist() == [BURSTING, BURSTING, IRREGULAR, IRREGULAR, SPIKING, SILENT]
