"""The refinement's distance: spike-train features of candidates against the recording's (see :mod:`dicsbi.refine`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models import Model
from ..spikes import BURSTING, CV_THRESHOLD, SILENT, SpikeTrains, firing_pattern, spike_features

FEATURES = ("log_rate", "log_main_freq", "isi_cv", "isi_corr", "spikes_per_burst", "duty_cycle")
CLASS_PENALTY = 2.0
MISSING = 3.0  # a feature the candidate lacks (e.g. no complete burst) counts this many scales

def spread(g: np.ndarray) -> np.ndarray:
    """Spread of each conductance over a population: the interquartile range of log10 g (decades)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.nanquantile(np.log10(g), [0.25, 0.75], axis=0)
    return q[1] - q[0]


def train_features(trains: SpikeTrains) -> np.ndarray:
    """Measure the refinement's features of every train: ``[n, len(FEATURES) + 1]``, firing pattern last.

    The pattern is :func:`dicsbi.spikes.firing_pattern` (silent, tonic, bursting or irregular); the main
    frequency is the burst frequency of a bursting train and the spiking frequency of any other.
    """
    f = spike_features(trains)
    cls = firing_pattern(trains, f["firing_class"]).astype(float)
    rate = trains.counts / np.maximum(trains.t_stop_ms - trains.t_start_ms, 1e-9) * 1e3
    main = np.where(cls == BURSTING, f["f_inter_hz"], f["f_spiking_hz"])
    corr = np.array([_isi_correlation(t) for t in trains])
    duty = f["burst_duration_ms"] * f["f_inter_hz"] / 1e3
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.column_stack([np.log(rate), np.log(main), f["isi_cv"], corr, f["spikes_per_burst"], duty, cls])
    out[cls == SILENT, :-1] = np.nan
    return out


def _isi_correlation(t: np.ndarray) -> float:
    """Lag-1 correlation of the ISIs (the return map's slope); NaN with fewer than 4 intervals or no spread."""
    isi = np.diff(t)
    if isi.size < 4 or np.std(isi[:-1]) == 0 or np.std(isi[1:]) == 0:
        return float("nan")
    return float(np.corrcoef(isi[:-1], isi[1:])[0, 1])


def feature_distance(candidates: np.ndarray, recording: np.ndarray) -> np.ndarray:
    """Standardised distance of each candidate's features to the recording's (see the module docstring)."""
    rec = recording
    bursting = rec[-1] == BURSTING
    scales = np.array([np.log(1.1), np.log(1.1), max(0.05, 0.2 * abs(rec[2])), 0.2,
                       max(1.0, 0.2 * abs(rec[4])) if bursting else 1.0, 0.05])
    use = np.isfinite(rec[:-1])
    use[3] &= abs(rec[2]) >= CV_THRESHOLD  # a regular train's ISI correlation is timing jitter
    if not bursting:
        use[4:] = False
    z = (candidates[:, :-1][:, use] - rec[:-1][use]) / scales[use]
    z = np.where(np.isfinite(z), z, MISSING)
    d = np.sqrt(np.mean(z**2, axis=1)) if use.any() else np.zeros(len(candidates))
    return d + CLASS_PENALTY * (candidates[:, -1] != rec[-1])



@dataclass(frozen=True)
class Simulator:
    """Simulates candidates over the recording's window and measures their distance to it."""

    model: Model
    window_ms: float
    tier: str
    features: np.ndarray     # the recording's train_features row
    device: str = "cpu"

    def distance(self, g: np.ndarray, seed: int, noise: np.ndarray | float = 0.0) -> np.ndarray:
        """Feature distance of freshly simulated cells ``g`` at noise levels ``noise`` (fresh noise from ``seed``).

        Clean cells are simulated apart from noisy ones, so they cost no noise current.
        """
        from ..simulate import simulate

        noise = np.broadcast_to(np.asarray(noise, dtype=float), (len(g),))
        d = np.full(len(g), np.inf)
        for rows, level in ((noise <= 0, 0.0), (noise > 0, noise[noise > 0])):
            if rows.any():
                sim = simulate(self.model, g[rows], duration_ms=self.window_ms, seed=seed, tier=self.tier,
                               noise_std=level, device=self.device)
                dist = feature_distance(train_features(sim.trains), self.features)
                d[rows] = np.where(sim.status == 0, dist, np.inf)
        return d


def recording_window(train: SpikeTrains) -> tuple[SpikeTrains, float]:
    """Shift the recording to start at 0; return it and the window length candidates are simulated for (ms)."""
    t = train[0]
    start = float(train.t_start_ms[0])
    window = float(max(train.t_stop_ms[0] - start, (t[-1] - start) if t.size else 0.0, 100.0))
    return SpikeTrains.from_list([t - start], 0.0, window, ids=list(train.ids)), window


