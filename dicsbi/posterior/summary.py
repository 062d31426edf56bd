"""Fixed-length summary statistics of spike trains: the hand-crafted representation the posterior can use.

Every statistic is finite for any train with at least :data:`MIN_SPIKES` spikes (3), is computed from the
interspike intervals (ISIs, ms) only, and does not depend on the recording's length or on where it starts, so
recordings shorter or longer than the training window land in the same space (a shorter window gives noisier
statistics; training-time sub-windows teach the posterior that noise, see :mod:`dicsbi.posterior`).

The vector (:data:`SUMMARY_NAMES`; ``l`` = natural log of the ISI in ms):

==  =====================  ==========================================================================
 0  ``log_rate``           log of the mean firing rate over the spiking span, (n - 1) / (t_n - t_1), Hz
 1  ``l_mean``             mean of l
 2  ``l_std``              standard deviation of l, floored at the timing resolution: sqrt(sd^2 + r^2)
 3  ``l_skew``             skewness of l, shrunk below the timing resolution (see below; clipped to [-10, 10])
 4  ``l_min``              minimum of l
 5  ``l_q10``..``l_q90``   10, 25, 50, 75, 90% quantiles of l (linear interpolation)
10  ``l_max``              maximum of l
11  ``log_cv``             log sqrt(CV^2 + r^2), CV = std / mean of the ISIs (the published class rule's CV)
12  ``lv``                 local variation (Shinomoto 2003), 3/(n-1) sum ((I_k - I_k+1)/(I_k + I_k+1))^2, + r^2
13  ``l_autocorr``         lag-1 autocorrelation of l, shrunk below the timing resolution (see below)
14  ``l_absdiff``          mean |l_k+1 - l_k| (return-map spread), floored: sqrt(mean^2 + r^2)
15  ``gap``                largest gap between consecutive sorted values of l (bimodality), floored likewise
16  ``frac_short``         fraction of ISIs below that gap (intra-burst fraction for a burster)
17  ``l_short``            mean l below the gap (intra-burst ISI)
18  ``l_long``             mean l above the gap (inter-burst ISI)
19  ``log_spb``            log of the mean number of spikes per burst, bursts split at the gap
20  ``log_bdur``           log(1 + mean burst duration in ms), bursts split at the gap
21  ``bursting``           1 if CV > 0.15 (the published bursting rule), else 0
==  =====================  ==========================================================================

Timing resolution (``r`` = :data:`LOG_ISI_RESOLUTION` = 0.005).  No recording times spikes to better than a
few hundredths of a millisecond, and a simulation's spike times sit on its step's grid, so ISI variability
below about 0.5% (0.1 ms on a 20 ms ISI) says nothing about the cell.  Every variability statistic therefore
has a smooth floor at ``r`` (``l_std``, ``log_cv``, ``lv``, ``l_absdiff``, ``gap``: unchanged for variable
trains, constant for trains more regular than the resolution), and the two shape statistics are shrunk.
Skewness and autocorrelation are scale-free: they describe the *shape* of the ISI variability however small
it is.  For a regular tonic train the variability left is the sampling grid of the
spike times (a simulator's step, a recording's sampling interval), and its shape is a pattern of ISI modulo
the grid, not a property of the cell.  Measured on 2000 STG test cells: the tonic median of ``l_autocorr``
was 0.72 with spike times on a 0.01 ms grid and -0.01 on a 0.05 ms grid (1.2 standard deviations of the
feature), which moved a posterior trained at one step by +1.2 in the MAE of g_s at the other; the old
``log(1e-3 + CV)`` floor was below the 0.05 ms grid's CV of fast tonic trains and was the largest single
source of the tier dependence of the next posterior (swapping it alone between the two tiers' values cost
0.21 (STG) and 0.46 (DA) nats of test log density).  The shape statistics are multiplied by
``sd^2 / (sd^2 + r^2)``, ``sd`` the standard deviation of l: they fade to 0 continuously as the variability
drops below the resolution, and are unchanged (factor > 0.96) for trains that vary by 2.5% or more.

The gap-based burst split is the largest jump of the sorted log-ISIs, used only if it is at least
:data:`MIN_GAP` = log 2 (consecutive sorted ISIs differ by a factor of 2 or more); unlike the published
(max + min) / 2 threshold it does not move with the longest ISI of the window.  Without a split (tonic firing,
or numerically equal ISIs) every interval counts as long and every spike as its own burst: ``frac_short`` 0,
``log_spb`` 0, ``log_bdur`` 0 and ``l_short`` = ``l_long`` = ``l_mean``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..errors import InputError
from ..spikes import CV_THRESHOLD, MIN_SPIKES, SpikeTrains

SUMMARY_NAMES = ("log_rate", "l_mean", "l_std", "l_skew", "l_min", "l_q10", "l_q25", "l_q50", "l_q75", "l_q90",
                 "l_max", "log_cv", "lv", "l_autocorr", "l_absdiff", "gap", "frac_short", "l_short", "l_long",
                 "log_spb", "log_bdur", "bursting")
N_SUMMARY = len(SUMMARY_NAMES)
MIN_GAP = float(np.log(2.0))  # a burst split needs consecutive sorted ISIs to differ by a factor >= 2
LOG_ISI_RESOLUTION = 5e-3  # log-ISI variability below this is timing resolution, not firing (module docstring)


@njit(cache=True)
def _quantile_sorted(s, q):
    pos = q * (s.size - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, s.size - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


@njit(cache=True)
def _summary_one(t, out):
    n = t.size - 1  # number of ISIs (>= 2)
    isi = np.empty(n)
    for k in range(n):
        isi[k] = max(t[k + 1] - t[k], 1e-6)
    l = np.log(isi)
    span = max(t[-1] - t[0], 1e-6)
    out[0] = np.log(1000.0 * n / span)
    m = l.mean()
    sd = np.sqrt(max(((l - m) ** 2).mean(), 0.0))
    out[1] = m
    r2 = LOG_ISI_RESOLUTION * LOG_ISI_RESOLUTION
    out[2] = np.sqrt(sd * sd + r2)
    shrink = sd * sd / (sd * sd + LOG_ISI_RESOLUTION * LOG_ISI_RESOLUTION)
    if sd > 1e-9:
        z = (l - m) / sd
        out[3] = shrink * min(max((z ** 3).mean(), -10.0), 10.0)
    else:
        out[3] = 0.0
    s = np.sort(l)
    out[4] = s[0]
    for j in range(5):
        out[5 + j] = _quantile_sorted(s, (0.10, 0.25, 0.50, 0.75, 0.90)[j])
    out[10] = s[-1]
    mi = isi.mean()
    cv = np.sqrt(max(((isi - mi) ** 2).mean(), 0.0)) / mi
    out[11] = 0.5 * np.log(cv * cv + r2)
    lv = 0.0
    for k in range(n - 1):
        r = (isi[k] - isi[k + 1]) / (isi[k] + isi[k + 1])
        lv += r * r
    out[12] = 3.0 * lv / (n - 1) + r2
    if sd > 1e-9:
        c = 0.0
        for k in range(n - 1):
            c += (l[k] - m) * (l[k + 1] - m)
        out[13] = shrink * c / ((n - 1) * sd * sd)
    else:
        out[13] = 0.0
    d = 0.0
    for k in range(n - 1):
        d += abs(l[k + 1] - l[k])
    out[14] = np.sqrt((d / (n - 1)) ** 2 + r2)
    # largest gap of the sorted log-ISIs splits short (intra-burst) from long (inter-burst) intervals; below
    # MIN_GAP there is no split: every interval is "long" and every spike its own burst (tonic firing)
    best = 0.0
    cut = -np.inf
    for k in range(n - 1):
        g = s[k + 1] - s[k]
        if g > best:
            best = g
            if g >= MIN_GAP:
                cut = 0.5 * (s[k + 1] + s[k])
    out[15] = np.sqrt(best * best + r2)
    n_short = 0
    sum_short = 0.0
    sum_long = 0.0
    for k in range(n):
        if l[k] < cut:
            n_short += 1
            sum_short += l[k]
        else:
            sum_long += l[k]
    out[16] = n_short / n
    out[17] = sum_short / n_short if n_short > 0 else m
    out[18] = sum_long / (n - n_short) if n - n_short > 0 else m
    # bursts: runs of spikes joined by short ISIs
    n_bursts = 1
    dur = 0.0
    start = t[0]
    for k in range(n):
        if l[k] >= cut:
            dur += t[k] - start
            start = t[k + 1]
            n_bursts += 1
    dur += t[-1] - start
    out[19] = np.log((n + 1.0) / n_bursts)
    out[20] = np.log1p(dur / n_bursts)
    out[21] = 1.0 if cv > CV_THRESHOLD else 0.0


@njit(cache=True, parallel=True)
def _summary_kernel(times, offsets, out):
    for i in prange(offsets.size - 1):
        _summary_one(times[offsets[i] : offsets[i + 1]], out[i])


def summary_statistics(trains: SpikeTrains) -> np.ndarray:
    """``[n_trains, N_SUMMARY]`` summary vectors (see the module docstring).

    Raises :class:`InputError` naming the first train with fewer than 3 spikes (silent trains have no
    DIC posterior; filter them with :func:`dicsbi.spikes.firing_class` first).
    """
    counts = trains.counts
    few = np.flatnonzero(counts < MIN_SPIKES)
    if few.size:
        i = int(few[0])
        raise InputError(f"spike train {trains.ids[i]!r} has {counts[i]} spikes; at least {MIN_SPIKES} are "
                         f"needed ({few.size} such trains; they are silent and have no DIC posterior)")
    out = np.empty((len(trains), N_SUMMARY))
    _summary_kernel(np.ascontiguousarray(trains.times_ms, dtype=float), trains.offsets.astype(np.int64), out)
    return out
