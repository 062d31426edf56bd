"""The posterior predictive check of a population: simulate some of its models, compare them with the recording.

The comparison covers firing class, frequency, rate and ISI CV, and the van Rossum distance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..models import get_model
from ..spikes import SpikeTrains

if TYPE_CHECKING:
    from ..pipeline import RecordingPopulation


MAX_CHECK_MS = 60_000.0
LEAD_IN_MS = 100.0  # silence before the first spike that is part of the recording (and the shortest window)


CV_FLOOR = 0.02  # ISI CVs closer than this agree in the predictive check (regular spikers' CV is ~0)


def predictive_check(model, recording: SpikeTrains, rec: RecordingPopulation, n: int, seed: int = 0,
                     freq_tol: float = 0.10, tier: str = "fast") -> dict:
    """Simulate ``n`` members and compare them with the recording.

    Per member (simulated with its noise level from the noise posterior when the population has one, else
    noise-free): same firing class; main frequency within ``freq_tol`` (spiking frequency for tonic trains, burst
    frequency for bursting ones); rate within 20% and ISI CV within 30% of the recording's (``rate_cv_match``:
    the check that also reads irregular, noise-driven trains; CVs within :data:`CV_FLOOR` always agree, since a
    relative tolerance on a regular spiker's near-zero CV would compare timing jitter); van Rossum distance to
    the recording (tau from the recording, published choice) relative to the median distance between members
    (ratio near 1: as close as the population's own spread).  Members use the recording's window length, the
    model's default transient and the step of the accuracy ``tier`` (default the fast tier, validated for class
    and ISI: ``docs/simulator.md``); the step is recorded as ``dt_ms``.

    The comparison window is the recording's own, ``[t_start, t_stop]`` (see :func:`comparison_window`; its
    start is recorded as ``window_start_ms``, its length as ``window_ms``): members are simulated for the
    window's length and the recording's spikes in it are shifted to start at 0.
    """
    from ..simulate import simulate
    from ..spikes import firing_pattern, reference_tau_ms, spike_features, van_rossum_distance

    model = get_model(model)
    n = int(min(n, rec.conductances.shape[0]))
    t = recording[0]
    start, window = comparison_window(t, float(recording.t_start_ms[0]), float(recording.t_stop_ms[0]))
    noise = rec.noise[:n] if rec.noise is not None else 0.0
    sim = simulate(model, rec.conductances[:n], duration_ms=window, seed=seed, tier=tier, noise_std=noise)
    t = t[t - start <= window]
    rel = SpikeTrains.from_list([t - start], 0.0, window)
    f_rec, f_sim = spike_features(rel), spike_features(sim.trains)
    cls_rec = int(f_rec["firing_class"][0])
    key = "f_inter_hz" if cls_rec == 2 else "f_spiking_hz"
    class_ok = f_sim["firing_class"] == cls_rec
    pattern_ok = firing_pattern(sim.trains, f_sim["firing_class"]) == firing_pattern(rel, f_rec["firing_class"])[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        freq_ok = np.abs(f_sim[key] / f_rec[key][0] - 1.0) <= freq_tol
    freq_ok &= np.isfinite(f_sim[key])
    rate_rec, cv_rec = _rate(rel), np.where(rel.counts >= 3, f_rec["isi_cv"], np.nan)
    rate_sim, cv_sim = _rate(sim.trains), np.where(sim.trains.counts >= 3, f_sim["isi_cv"], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_cv_ok = (np.abs(rate_sim / rate_rec[0] - 1.0) <= 0.2) & (
            np.abs(cv_sim - cv_rec[0]) <= np.maximum(0.3 * cv_rec[0], CV_FLOOR))
    tau = reference_tau_ms(rel[0]) if rel.counts[0] >= 2 else 100.0
    vr = np.array([van_rossum_distance(rel[0], s, tau) for s in sim.trains])
    members = [sim.trains[k] for k in range(n)]
    spread = [van_rossum_distance(members[a], members[b], tau) for a in range(n) for b in range(a + 1, n)]
    ref = float(np.median(spread)) if spread else float("nan")
    return {"n": n, "class_match": float(class_ok.mean()), "pattern_match": float(pattern_ok.mean()),
            "freq_match": float(freq_ok.mean()),
            "reproduce": float((class_ok & freq_ok).mean()), "frequency_key": key,
            "rate_cv_match": float(rate_cv_ok.mean()),
            "noise_median": float(np.median(noise)) if np.ndim(noise) else float(noise),
            "vr_median": float(np.median(vr)), "vr_spread_median": ref,
            "vr_ratio": float(np.median(vr) / ref) if ref > 0 else float("nan"),
            "diverged": int((sim.status != 0).sum()), "trains": [t.copy() for t in sim.trains],
            "window_ms": window, "window_start_ms": start, "dt_ms": sim.settings["dt_ms"], "tier": tier}


def comparison_window(t: np.ndarray, t_start_ms: float, t_stop_ms: float) -> tuple[float, float]:
    """Return the start and the length (ms) of the window a recording is compared over.

    The window is the recording's ``[t_start, t_stop]``, with one exception, for a file of absolute times
    read without its window start: when ``t_start`` is 0 and the first spike comes later than
    ``max(2 x longest ISI, 100 ms)`` after it, the window starts one median ISI before the first spike (an
    explicit, non-zero ``t_start`` is always used as given).  The longest ISI, not the median, sets the
    lead-in a recording may have: a burster's median ISI is its intra-burst interval, and a first burst a few
    of those after 0 is a recording that starts at 0.  The length is at least the span of the spikes
    and 100 ms, and at most :data:`MAX_CHECK_MS` (a long recording is compared over its beginning).

    Parameters
    ----------
    t : ndarray
        The recording's spike times (ms, increasing).
    t_start_ms, t_stop_ms : float
        The recording's window.

    Returns
    -------
    tuple of float
        ``(window start, window length)`` in ms.
    """
    start = t_start_ms
    if t_start_ms == 0.0 and t.size >= 2:
        isi = np.diff(t)
        if t[0] - t_start_ms > max(2.0 * float(isi.max()), LEAD_IN_MS):
            start = float(t[0] - np.median(isi))
    window = float(max(t_stop_ms - start, t[-1] - t[0] if t.size else 0.0, LEAD_IN_MS))
    return start, min(window, MAX_CHECK_MS)


def _rate(trains: SpikeTrains) -> np.ndarray:
    """Spikes per second over each train's window."""
    return trains.counts / np.maximum(trains.t_stop_ms - trains.t_start_ms, 1e-9) * 1000.0
