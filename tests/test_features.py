"""Summary statistics and sequence representation: against direct numpy computations, invariances, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicsbi.errors import InputError
from dicsbi.posterior.embedding import MAX_ISIS, augment, sequence_array, sequence_stats
from dicsbi.posterior.summary import N_SUMMARY, SUMMARY_NAMES, summary_statistics
from dicsbi.spikes import SpikeTrains


def direct(t):
    """The documented statistics, written plainly with numpy/scipy for one train."""
    isi = np.diff(t)
    l = np.log(isi)
    m, sd = l.mean(), l.std()
    shrink = sd**2 / (sd**2 + 0.005**2)  # shape statistics fade below the timing resolution
    r2 = 0.005**2  # variability statistics have a smooth floor at the timing resolution
    out = {"log_rate": np.log(1000 * isi.size / (t[-1] - t[0])), "l_mean": m, "l_std": np.sqrt(sd**2 + r2),
           "l_skew": shrink * np.clip(np.mean(((l - m) / sd) ** 3), -10, 10) if sd > 1e-9 else 0.0,
           "l_min": l.min(), "l_max": l.max(), "log_cv": 0.5 * np.log((isi.std() / isi.mean()) ** 2 + r2),
           "lv": 3 * np.mean(((isi[:-1] - isi[1:]) / (isi[:-1] + isi[1:])) ** 2) + r2,
           "l_absdiff": np.sqrt(np.abs(np.diff(l)).mean() ** 2 + r2), "bursting": float(isi.std() / isi.mean() > 0.15)}
    for q, name in zip((10, 25, 50, 75, 90), ("l_q10", "l_q25", "l_q50", "l_q75", "l_q90")):
        out[name] = np.percentile(l, q)
    out["l_autocorr"] = shrink * np.sum((l[:-1] - m) * (l[1:] - m)) / ((l.size - 1) * sd**2) if sd > 1e-9 else 0.0
    s = np.sort(l)
    k = np.argmax(np.diff(s))
    cut = 0.5 * (s[k] + s[k + 1]) if np.diff(s).max() >= np.log(2) else -np.inf
    short = l < cut
    out.update(gap=np.sqrt(np.diff(s).max() ** 2 + r2), frac_short=short.mean(),
               l_short=l[short].mean() if short.any() else m, l_long=l[~short].mean())
    bursts = np.split(t, np.flatnonzero(~short) + 1)
    out["log_spb"] = np.log(np.mean([b.size for b in bursts]))
    out["log_bdur"] = np.log1p(np.mean([b[-1] - b[0] for b in bursts]))
    return out


def burster(rng, n_bursts=8, spb=5, intra=8.0, period=400.0):
    on = np.arange(n_bursts) * period + rng.uniform(0, 20, n_bursts)
    return np.sort(np.concatenate([o + np.arange(spb) * intra * rng.uniform(0.9, 1.1, spb) for o in on]))


def test_summary_statistics_match_direct_computation(rng):
    trains = [np.cumsum(rng.gamma(20, 2.5, 40)), burster(rng), np.cumsum(rng.exponential(30, 12)) + 5]
    S = summary_statistics(SpikeTrains.from_list(trains, 0.0))
    assert S.shape == (3, N_SUMMARY) and np.isfinite(S).all()
    for row, t in zip(S, trains):
        ref = direct(t)
        for name, value in zip(SUMMARY_NAMES, row):
            np.testing.assert_allclose(value, ref[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_burster_and_tonic_statistics_are_what_they_should_be(rng):
    S = summary_statistics(SpikeTrains.from_list([burster(rng), np.arange(30) * 50.0], 0.0))
    b, t = (dict(zip(SUMMARY_NAMES, r)) for r in S)
    assert b["bursting"] == 1 and t["bursting"] == 0
    np.testing.assert_allclose(np.exp(b["log_spb"]), 5.0)  # 8 bursts of 5 spikes
    np.testing.assert_allclose(b["frac_short"], 32 / 39)
    np.testing.assert_allclose(t["log_rate"], np.log(20.0))
    assert abs(t["l_std"] - 0.005) < 1e-12 and t["l_skew"] == 0 and t["l_autocorr"] == 0  # floor: resolution


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.5, 500.0), min_size=2, max_size=60), st.floats(0.0, 1e5))
def test_shift_invariant_and_finite(isis, shift):
    t = np.concatenate([[0.0], np.cumsum(isis)])
    a, b = summary_statistics(SpikeTrains.from_list([t, t + shift], 0.0))
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_fewer_than_three_spikes_is_refused():
    with pytest.raises(InputError, match="'b' has 2 spikes"):
        summary_statistics(SpikeTrains.from_list([[1.0, 2.0, 3.0], [1.0, 2.0]], 0.0, ids=["a", "b"]))


def test_sequence_array_pads_with_zeros_and_masks(rng):
    short, long = np.cumsum(rng.uniform(5, 50, 10)), np.cumsum(rng.uniform(5, 50, 400))
    tr = SpikeTrains.from_list([short, long], 0.0)
    stats = sequence_stats(tr)
    x = sequence_array(tr, stats)
    assert x.shape == (2, MAX_ISIS, 3) and np.isfinite(x).all()
    assert x[0, :9, 2].all() and not x[0, 9:].any()  # 9 ISIs, then zeros
    assert x[1, :, 2].all()  # truncated to the first MAX_ISIS intervals
    l = np.log(np.diff(short))
    np.testing.assert_allclose(x[0, :9, 0], (l - stats["mu"][0]) / stats["sigma"][0], rtol=1e-5)
    np.testing.assert_allclose(x[0, 1:9, 1], (np.diff(l) - stats["mu"][1]) / stats["sigma"][1], rtol=1e-4,
                               atol=1e-5)
    assert x[0, 0, 1] == 0


def test_augmentation_is_seeded_sorted_and_windows_long_trains(rng):
    tr = SpikeTrains.from_list([np.arange(100) * 20.0, np.arange(6) * 30.0], 0.0)
    a, b, c = augment(tr, 1), augment(tr, 1), augment(tr, 2)
    np.testing.assert_array_equal(a.times_ms, b.times_ms)
    assert not np.array_equal(a.times_ms, c.times_ms)
    for k in range(2):
        assert np.all(np.diff(a[k]) > 0)
    assert 100 // 2 * 0.85 <= a.counts[0] <= 99  # a window of floor(n/2)..n-1 of the kept spikes
    assert 5 <= a.counts[1] <= 6  # short trains: no window; deletions undone below 5 spikes
    noj = augment(tr, 3, jitter_ms=0.0, p_drop=0.0)
    assert set(np.round(noj[0], 9)) <= set(np.round(tr[0], 9))  # windows only: a contiguous run of spikes
    k = int(np.searchsorted(tr[0], noj[0][0]))
    np.testing.assert_array_equal(noj[0], tr[0][k : k + noj.counts[0]])
    many = SpikeTrains.from_list([np.arange(100) * 20.0] * 400, 0.0)
    short = augment(many, 4, jitter_ms=0.0, p_drop=0.0, window_min_fraction=0.2).counts
    assert short.min() == 20 and short.max() == 99 and np.mean(short < 50) > 0.3   # windows down to a fifth
    with pytest.raises(ValueError, match="window_min_fraction"):
        augment(many, 4, window_min_fraction=1.0)


def test_shape_statistics_of_a_regular_train_do_not_depend_on_the_time_grid():
    """A regular tonic train read on a 0.01 ms and on a 0.05 ms grid (a fine and a coarse simulator step, or
    two recording rates): the ISI jitter left is the grid's, and its skewness and autocorrelation describe the
    grid, not the cell; they fade below LOG_ISI_RESOLUTION so both versions give the same summary."""
    t = 3.0 + np.arange(60) * 47.123456
    fine, coarse = (np.ceil(t / h) * h for h in (0.01, 0.05))
    S = summary_statistics(SpikeTrains.from_list([fine, coarse], 0.0))
    for name in ("l_skew", "l_autocorr"):
        k = SUMMARY_NAMES.index(name)
        assert abs(S[0, k]) < 0.05 and abs(S[1, k]) < 0.05, name
    irregular = np.cumsum(np.random.default_rng(0).gamma(20, 2.5, 80))  # CV ~ 0.2: untouched in practice
    raw = direct(irregular)
    got = dict(zip(SUMMARY_NAMES, summary_statistics(SpikeTrains.from_list([irregular], 0.0))[0]))
    sd = np.log(np.diff(irregular)).std()
    assert sd**2 / (sd**2 + 0.005**2) > 0.999 and abs(got["l_autocorr"] - raw["l_autocorr"]) < 1e-9


def test_summary_length_representation_adds_the_log_interval_count():
    from dicsbi.posterior.embedding import input_shape, represent

    tr = SpikeTrains.from_list([np.arange(11) * 20.0, np.arange(101) * 20.0], 0.0)
    x = represent(tr, "summary_length")
    assert x.shape == (2, input_shape("summary_length")[0]) == (2, 23)
    np.testing.assert_allclose(x[:, :-1], represent(tr, "summary"))
    np.testing.assert_allclose(x[:, -1], np.log([10.0, 100.0]), rtol=1e-6)


def test_random_windows_cut_half_the_trains_to_lengths_between_the_floor_and_the_window():
    from dicsbi.posterior.embedding import random_windows

    tr = SpikeTrains.from_list([np.arange(150) * 20.0] * 400, 0.0, 3000.0)
    a, b = random_windows(tr, 5, 1000.0), random_windows(tr, 5, 1000.0)
    np.testing.assert_array_equal(a.times_ms, b.times_ms)
    length = a.t_stop_ms - a.t_start_ms
    cut = length < 3000.0
    assert 0.4 < cut.mean() < 0.6 and length.min() >= 1000.0
    assert np.all(a.counts[cut] >= 3) and np.all(a.counts[cut] <= length[cut] / 20.0 + 1)
    for k in np.flatnonzero(cut)[:20]:
        assert a[k].min() >= 0 and a[k].max() <= length[k]
