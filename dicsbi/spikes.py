"""Spike trains (ragged, CSR-style) and what is measured on them.

``SpikeTrains`` stores every spike time of many trains in one array plus offsets, with a recording window
per train.  The functions below work on that layout with numba loops over trains, never Python lists.

Firing classes and features follow ``paper-and-models.md`` section 6 (the published feature extractor):

* fewer than 3 spikes: silent (0); else ISI CV = std/mean (population std) <= 0.15: tonic spiking (1);
  otherwise bursting (2);
* spiking frequency: mean of 1000/ISI (Hz) over the train;
* bursts: split at ISIs above (max ISI + min ISI)/2; bursts with at least 2 spikes are kept; the first and the
  last burst are dropped (they may be truncated by the window).  Features: spikes per burst (mean count),
  burst duration (mean last - first spike, ms), intra-burst frequency (mean of count/duration, Hz, the
  published definition) and inter-burst frequency (1000 / mean difference of burst onsets, Hz; NaN with
  fewer than two bursts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .errors import InputError

SILENT, SPIKING, BURSTING = 0, 1, 2
REFRACTORY_MS = 1.0              # no neuron fires twice within 1 ms (its spike and absolute refractory period)
MAX_RECORDING_MS = 86_400_000.0  # 24 h: longer is not a recording of spike times in ms
CLASS_NAMES = ("silent", "spiking", "bursting")
IRREGULAR = 3
PATTERN_NAMES = (*CLASS_NAMES, "irregular")
BURST_ETA = 0.8     # a bursting train's log ISIs split into two clusters holding >= 80% of their variance ...
BURST_RATIO = 3.0   # ... whose mean ISIs differ at least 3-fold (firing_pattern; measured in its docstring)
CV_THRESHOLD = 0.15
MIN_SPIKES = 3


def implausible(times: np.ndarray) -> str | None:
    """Why one sorted, finite train cannot be a neuron's spike times in ms (with the likely cause), or None.

    Intervals below :data:`REFRACTORY_MS` (usually times in seconds read as ms: the hint says ``--unit s``; or a
    double detection; the shortest interval of the shipped models' simulated trains is 2.7 ms, noise included)
    and times beyond :data:`MAX_RECORDING_MS` (usually microseconds or samples read as ms).
    """
    times = np.asarray(times, dtype=float)
    if times.size and times[-1] > MAX_RECORDING_MS:
        return (f"spike time {float(times[-1]):.6g} ms is {times[-1] / 3.6e6:.3g} hours into the recording (more "
                f"than {MAX_RECORDING_MS / 3.6e6:.0f} h): are the times in microseconds or samples? use --unit us, "
                "or convert samples to times")
    d = np.diff(times)
    if (d < REFRACTORY_MS).any():
        k = int(np.argmin(d))
        hint = ("are the times in seconds? use --unit s" if times[-1] < 1000.0 else
                "two detections of one spike? merge events closer than the refractory period")
        return (f"an interval of {float(d[k]):.3g} ms (spikes at {float(times[k]):.6g} and {float(times[k + 1]):.6g} "
                f"ms) is shorter than the {REFRACTORY_MS:g} ms refractory floor of any neuron: {hint}")
    return None


def train_problem(times: np.ndarray) -> str | None:
    """Why one train cannot be a neuron's spike times in ms, or None: the one spike-train validator.

    Every reader and the posterior's input check call it (the caller adds the file, row or train id):
    a time that is not finite, a negative time, times not strictly increasing, then the physical checks of
    :func:`implausible` (refractory floor, recording length), each with its likely cause.
    """
    times = np.asarray(times, dtype=float)
    bad = ~np.isfinite(times)
    if bad.any():
        return f"spike time {float(times[bad][0])} is not a finite number"
    if (times < 0).any():
        return (f"negative spike time {float(times[times < 0][0])}; times are measured from the start of the "
                "recording")
    d = np.diff(times)
    if (d <= 0).any():
        k = int(np.flatnonzero(d <= 0)[0])
        return f"spike times are not strictly increasing ({float(times[k + 1])} after {float(times[k])})"
    return implausible(times)


def first_train_problem(trains: SpikeTrains) -> tuple[int, str] | None:
    """Return the first train of ``trains`` that :func:`train_problem` refuses, as (index, why), or None.

    A vectorised screen over all spikes finds the suspect trains; only the first is examined one by one.
    """
    t, off = trains.times_ms, trains.offsets
    d = np.diff(t)
    same_train = np.ones(d.size, bool)
    inner = off[1:-1]
    same_train[inner[(inner > 0) & (inner < t.size)] - 1] = False  # pairs across a boundary between trains
    suspect = ~np.isfinite(t) | (t < 0) | (t > MAX_RECORDING_MS)
    suspect[1:] |= same_train & ~(d >= REFRACTORY_MS)
    if not suspect.any():
        return None
    i = int(np.searchsorted(off, np.flatnonzero(suspect)[0], side="right") - 1)
    why = train_problem(trains[i])
    assert why is not None, "the screen and the validator disagree"
    return i, why


@dataclass(frozen=True, eq=False)
class SpikeTrains:
    """Many spike trains in one array.

    Attributes
    ----------
    times_ms : ndarray, shape (n_spikes,)
        All spike times, train after train, each train sorted, in ms.
    offsets : ndarray of int64, shape (n_trains + 1,)
        Train ``i`` is ``times_ms[offsets[i]:offsets[i + 1]]``.
    t_start_ms, t_stop_ms : ndarray, shape (n_trains,)
        Recording window of each train (ms).
    ids : ndarray of str, shape (n_trains,)
        Train identifiers.
    """

    times_ms: np.ndarray
    offsets: np.ndarray
    t_start_ms: np.ndarray
    t_stop_ms: np.ndarray
    ids: np.ndarray

    @classmethod
    def from_list(cls, trains: Iterable[Sequence[float] | np.ndarray], t_start_ms=0.0, t_stop_ms=None,
                  ids: Sequence[str] | None = None) -> SpikeTrains:
        """Build from a list of 1-D arrays; ``t_stop_ms`` defaults to each train's last spike."""
        arrays = [np.asarray(t, dtype=float).ravel() for t in trains]
        counts = np.array([a.size for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        times = np.concatenate(arrays) if arrays else np.empty(0)
        n = len(arrays)
        t_start = np.broadcast_to(np.asarray(t_start_ms, dtype=float), (n,)).copy()
        if t_stop_ms is None:
            t_stop = np.array([a[-1] if a.size else s for a, s in zip(arrays, t_start)], dtype=float)
        else:
            t_stop = np.broadcast_to(np.asarray(t_stop_ms, dtype=float), (n,)).copy()
        ids_arr = np.array([str(i) for i in (range(n) if ids is None else ids)], dtype=object)
        if ids_arr.shape != (n,):
            raise InputError(f"got {ids_arr.size} ids for {n} spike trains")
        return cls(times, offsets, t_start, t_stop, ids_arr)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.times_ms[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def counts(self) -> np.ndarray:
        """Number of spikes of each train."""
        return np.diff(self.offsets)

    @property
    def duration_ms(self) -> np.ndarray:
        """Return each train's window length, ``t_stop_ms - t_start_ms``."""
        return self.t_stop_ms - self.t_start_ms

    def to_list(self) -> list[np.ndarray]:
        """Return the trains as a list of arrays of spike times (copies)."""
        return [self[i].copy() for i in range(len(self))]

    @classmethod
    def concat(cls, parts: Sequence[SpikeTrains]) -> SpikeTrains:
        """One collection holding the trains of ``parts`` in order."""
        counts = np.concatenate([p.counts for p in parts])
        return cls(np.concatenate([p.times_ms for p in parts]),
                   np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   np.concatenate([p.t_start_ms for p in parts]), np.concatenate([p.t_stop_ms for p in parts]),
                   np.concatenate([p.ids for p in parts]))

    def select(self, index) -> SpikeTrains:
        """Subset of trains (boolean mask or integer indices), order kept."""
        idx = np.arange(len(self))[index]
        counts = self.counts[idx]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        spike = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - self.offsets[idx], counts)
        return SpikeTrains(self.times_ms[spike], offsets, self.t_start_ms[idx], self.t_stop_ms[idx],
                           self.ids[idx])


# ---------------------------------------------------------------------------- kernels over CSR trains
@njit(cache=True)
def _isi_stats(t: np.ndarray):
    """Mean, population std and mean of 1000/ISI of one train (NaN when fewer than 2 spikes)."""
    n = t.size - 1
    if n < 1:
        return np.nan, np.nan, np.nan
    s = 0.0
    s2 = 0.0
    inv = 0.0
    for k in range(n):
        isi = t[k + 1] - t[k]
        s += isi
        s2 += isi * isi
        inv += 1000.0 / isi if isi > 0 else np.inf
    mean = s / n
    var = max(s2 / n - mean * mean, 0.0)
    return mean, np.sqrt(var), inv / n


@njit(cache=True)
def burst_starts(t: np.ndarray):
    """Return ``(starts, nb)``: the first spike of each of the ``nb`` bursts of a train of at least 2 spikes.

    Bursts are split at ISIs above (max ISI + min ISI) / 2 (the published rule; ``starts[:nb]`` is valid).
    """
    isi = np.diff(t)
    thr = 0.5 * (isi.max() + isi.min())
    starts = np.empty(t.size, np.int64)
    nb = 1
    starts[0] = 0
    for k in range(t.size - 1):
        if isi[k] > thr:
            starts[nb] = k + 1
            nb += 1
    return starts, nb


@njit(cache=True)
def _burst_features(t: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` = (spikes per burst, duration ms, intra Hz, inter Hz, n bursts kept) for one train."""
    out[:] = np.nan
    out[4] = 0.0
    n = t.size
    if n < 3:
        return
    starts, nb = burst_starts(t)
    # burst b spans spikes [start_b, end_b]
    ends = np.empty(nb, np.int64)
    ends[: nb - 1] = starts[1:nb] - 1
    ends[nb - 1] = n - 1
    count = 0.0
    dur = 0.0
    intra = 0.0
    kept = 0
    first_onset = 0.0
    last_onset = 0.0
    for b in range(1, nb - 1):  # drop the first and the last burst
        c = ends[b] - starts[b] + 1
        if c < 2:
            continue
        d = t[ends[b]] - t[starts[b]]
        if kept == 0:
            first_onset = t[starts[b]]
        last_onset = t[starts[b]]
        count += c
        dur += d
        intra += c / d * 1000.0 if d > 0 else np.inf
        kept += 1
    if kept == 0:
        return
    out[0] = count / kept
    out[1] = dur / kept
    out[2] = intra / kept
    if kept >= 2:
        out[3] = 1000.0 / ((last_onset - first_onset) / (kept - 1))
    out[4] = kept


@njit(cache=True, parallel=True)
def _features_kernel(times, offsets, cv_threshold, min_spikes, out):
    for i in prange(offsets.size - 1):
        t = times[offsets[i] : offsets[i + 1]]
        mean, std, inv = _isi_stats(t)
        out[i, 1] = std / mean if mean > 0 else np.nan
        if t.size < min_spikes:
            out[i, 0] = SILENT
        elif out[i, 1] <= cv_threshold:
            out[i, 0] = SPIKING
        else:
            out[i, 0] = BURSTING
        out[i, 2] = inv
        _burst_features(t, out[i, 3:8])


FEATURE_NAMES = ("firing_class", "isi_cv", "f_spiking_hz", "spikes_per_burst", "burst_duration_ms",
                 "f_intra_hz", "f_inter_hz", "n_bursts")


def spike_features(trains: SpikeTrains) -> dict[str, np.ndarray]:
    """Return the firing class and ISI / burst features of every train (see module docstring).

    Returns a dict of arrays of length ``len(trains)`` keyed by :data:`FEATURE_NAMES`.  Burst features are
    NaN for non-bursting trains (and for bursting trains with no complete burst left after dropping the first
    and last); ``f_spiking_hz`` is NaN for silent trains.
    """
    out = np.empty((len(trains), len(FEATURE_NAMES)))
    _features_kernel(np.ascontiguousarray(trains.times_ms, dtype=float), trains.offsets, CV_THRESHOLD,
                     MIN_SPIKES, out)
    feats: dict[str, np.ndarray] = {name: out[:, k] for k, name in enumerate(FEATURE_NAMES)}
    cls = out[:, 0].astype(np.int8)
    feats["firing_class"] = cls
    feats["n_bursts"] = out[:, 7].astype(np.int64)
    feats["f_spiking_hz"] = np.where(cls == SILENT, np.nan, out[:, 2])
    for name in FEATURE_NAMES[3:7]:
        feats[name] = np.where(cls == BURSTING, feats[name], np.nan)
    return feats


def firing_class(trains: SpikeTrains) -> np.ndarray:
    """0 silent, 1 tonic spiking, 2 bursting for every train (see module docstring)."""
    return spike_features(trains)["firing_class"]


# ---------------------------------------------------------------------------- van Rossum distance
@njit(cache=True)
def _kernel_sum(a, b, tau):
    s = 0.0
    for x in a:
        for y in b:
            s += np.exp(-abs(x - y) / tau)
    return s


@njit(cache=True)
def _van_rossum(a, b, tau):
    d2 = (_kernel_sum(a, a, tau) + _kernel_sum(b, b, tau) - 2.0 * _kernel_sum(a, b, tau)) / (2.0 * tau)
    return np.sqrt(max(d2, 0.0))


def van_rossum_distance(a, b, tau_ms: float) -> float:
    """Van Rossum distance between two spike trains (ms), computed exactly.

    Each train is filtered with the causal, unit-area kernel ``exp(-t/tau)/tau`` and the distance is the
    L2 norm of the difference, ``sqrt(int (f - g)^2 dt)`` over the whole real line, in 1/sqrt(ms).  The
    closed form ``(sum_ij e^{-|a_i-a_j|/tau} + sum_ij e^{-|b_i-b_j|/tau} - 2 sum_ij e^{-|a_i-b_j|/tau}) / (2 tau)``
    replaces the published pipeline's discretised, truncated kernel (dt 0.1 ms, cut at 1e-6); ratios of
    distances, which is how the pipeline uses them, are unaffected by the normalisation.
    """
    if not tau_ms > 0:
        raise InputError(f"van Rossum tau must be > 0 ms, got {tau_ms!r}")
    return float(_van_rossum(np.asarray(a, dtype=float), np.asarray(b, dtype=float), float(tau_ms)))


def reference_tau_ms(train) -> float:
    """Return the published time scale for a reference train: (max ISI + min ISI) / 2 (ms)."""
    isi = np.diff(np.asarray(train, dtype=float))
    if isi.size == 0:
        raise InputError("a reference train needs at least 2 spikes to set the van Rossum time scale")
    return float(0.5 * (isi.max() + isi.min()))


@njit(cache=True, parallel=True)
def _bimodality_kernel(times, offsets, out):
    for i in prange(offsets.size - 1):
        t = times[offsets[i] : offsets[i + 1]]
        out[i, 0], out[i, 1] = np.nan, np.nan
        if t.size < 4:
            continue
        isi = np.diff(t)
        li = np.sort(np.log(np.maximum(isi, 1e-9)))
        n = li.size
        total, var = li.sum(), li.var() * n
        best, k_best, left = 0.0, 1, 0.0
        for k in range(1, n):
            left += li[k - 1]
            m1, m2 = left / k, (total - left) / (n - k)
            between = k * (n - k) / n * (m1 - m2) ** 2
            if between > best:
                best, k_best = between, k
        threshold = np.exp(0.5 * (li[k_best - 1] + li[k_best]))
        short, long = isi[isi <= threshold], isi[isi > threshold]
        out[i, 0] = best / var if var > 0 else 0.0
        out[i, 1] = long.mean() / short.mean() if short.size and long.size else 1.0


def firing_pattern(trains: SpikeTrains, classes: np.ndarray | None = None) -> np.ndarray:
    """Return 0 silent, 1 tonic, 2 bursting or 3 irregular for every train.

    The published three classes call every train with an ISI CV above 0.15 bursting, so a noise-driven
    irregular spiker is "bursting" there.  Here such a train is bursting only if its ISIs form two groups: the
    best two-cluster split of its log ISIs (Otsu) holds at least :data:`BURST_ETA` of their variance and the
    groups' mean ISIs differ at least :data:`BURST_RATIO`-fold (a valley in the log-ISI distribution between
    intra- and inter-burst intervals); otherwise it is irregular.  Measured on the shipped models' noise-prior
    test cells labelled by their noise-free class (``experiments/eval_patterns.py``): STG bursters kept
    bursting 0.984, cells made irregular by noise (tonic or silent without it) called irregular 0.969; DA
    0.970 and 0.838 (a sixth of noise-driven DA trains fire doublets with a real valley in their log ISIs).
    ``classes``: the trains' :func:`firing_class` when the caller has it already (it is not computed again).
    """
    cls = (firing_class(trains) if classes is None else np.asarray(classes)).astype(np.int8)
    stats = np.empty((len(trains), 2))
    _bimodality_kernel(np.ascontiguousarray(trains.times_ms, dtype=float), trains.offsets, stats)
    bursty = (stats[:, 0] >= BURST_ETA) & (stats[:, 1] >= BURST_RATIO)
    return np.where((cls == BURSTING) & ~bursty, IRREGULAR, cls).astype(np.int8)
