"""Is a recording like the trains the posterior was trained on?  A typicality score and an out-of-world flag.

An amortised posterior answers every input, and on a train unlike any it saw (another cell type, an artefact,
a unit mix-up) it answers with confident nonsense.  The score here is the distance from the recording to its
``k``-th nearest training train (``k = 10``) in standardised *typicality features* (the k-nearest-neighbour
detector of out-of-distribution inputs, Sun et al. 2022, applied to the network's input rather than to a
learned embedding, so that a train unlike the training world in a direction the network learned to ignore is
still flagged):

* the posterior's summary statistics (:func:`dicsbi.features.summary_statistics`: ISI distribution, rate-free
  shape, serial correlation);
* two order statistics the summary lacks: the coefficient of variation of the spikes per burst and of the burst
  period (bursts split at ISIs above (max ISI + min ISI) / 2, first and last dropped, as
  :mod:`dicsbi.spikes`).  A burster with its intervals shuffled keeps every ISI statistic but loses the regular
  burst pattern of a conductance-based cell: measured on the STG posterior's world, the summary alone flagged
  26 % of shuffled bursters, with the two order statistics 99 %.

Standardisation: per feature, the median and the interquartile range of the reference trains (the standard
deviation where the IQR is 0).  The threshold is the ``quantile`` (0.99) of the scores of *held-out* in-world
trains (the posterior's test sets, never the reference trains themselves), so about 1 % of in-world recordings
are flagged by construction.  ``experiments/fit_typicality.py`` fits and saves it next to the posterior
(``typicality.npz``: arrays only, read with ``allow_pickle=False``; ``typicality.json``: settings and
provenance).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit, prange

from .errors import DicsbiError
from .features import summary_statistics
from .spikes import SpikeTrains, burst_starts

ARRAYS = "typicality.npz"
SETTINGS = "typicality.json"
K_NEIGHBOURS = 10
QUANTILE = 0.99
MEANING = ("this recording is unlike every spike train the posterior was trained on (its typicality score is "
           "above the level that 1% of in-world recordings reach): the intervals printed for it are not to be "
           "trusted; check the model, the time unit and the spike sorting")


@njit(cache=True)
def _order_one(t, out):
    out[0] = 0.0
    out[1] = 0.0
    n = t.size
    if n < 4:
        return
    starts, nb = burst_starts(t)
    if nb < 4:  # fewer than two complete bursts once the first and the last are dropped
        return
    counts = np.empty(nb - 2)
    onsets = np.empty(nb - 2)
    for b in range(1, nb - 1):
        counts[b - 1] = starts[b + 1] - starts[b]
        onsets[b - 1] = t[starts[b]]
    out[0] = counts.std() / counts.mean()
    if onsets.size >= 3:
        p = np.diff(onsets)
        out[1] = p.std() / p.mean()


@njit(cache=True, parallel=True)
def _order_kernel(times, offsets, out):
    for i in prange(offsets.size - 1):
        _order_one(times[offsets[i] : offsets[i + 1]], out[i])


def typicality_features(trains: SpikeTrains) -> np.ndarray:
    """``[n_trains, 24]``: the summary statistics and the two burst-order statistics (module docstring)."""
    order = np.empty((len(trains), 2))
    _order_kernel(np.ascontiguousarray(trains.times_ms, dtype=float), trains.offsets.astype(np.int64), order)
    return np.concatenate([summary_statistics(trains), order], axis=1)


@dataclass(frozen=True)
class Typicality:
    """A fitted typicality score: standardisation, reference trains' features, ``k`` and the threshold."""

    centre: np.ndarray
    scale: np.ndarray
    reference: np.ndarray          # [n_ref, n_features] standardised
    k: int
    threshold: float
    quantile: float
    info: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, reference: SpikeTrains, calibration: SpikeTrains, k: int = K_NEIGHBOURS,
            quantile: float = QUANTILE, info: dict | None = None) -> Typicality:
        """Standardise on ``reference`` (training trains), set the threshold at the ``quantile`` of the scores
        of ``calibration`` (held-out in-world trains)."""
        if not 0.5 < quantile < 1:
            raise DicsbiError(f"quantile must be in (0.5, 1), got {quantile}")
        f = typicality_features(reference)
        centre = np.median(f, axis=0)
        iqr = np.subtract(*np.quantile(f, [0.75, 0.25], axis=0))
        scale = np.where(iqr > 1e-9, iqr, f.std(axis=0) + 1e-9)
        z = ((f - centre) / scale).astype(np.float32)
        tmp = cls(centre, scale, z, int(k), np.inf, float(quantile), {})
        cal = tmp.score(calibration)
        return cls(centre, scale, z, int(k), float(np.quantile(cal, quantile)), float(quantile),
                   {**(info or {}), "n_reference": int(len(reference)), "n_calibration": int(len(calibration))})

    def score(self, trains: SpikeTrains, chunk: int = 512) -> np.ndarray:
        """Distance of each train to its ``k``-th nearest reference train (standardised features)."""
        z = ((typicality_features(trains) - self.centre) / self.scale).astype(np.float32)
        ref = self.reference.astype(np.float64)
        ref2 = np.sum(ref**2, axis=1)
        out = np.empty(len(z))
        for a in range(0, len(z), chunk):
            q = z[a:a + chunk].astype(np.float64)
            d2 = np.sum(q**2, 1)[:, None] + ref2[None, :] - 2.0 * q @ ref.T
            out[a:a + chunk] = np.sqrt(np.maximum(np.partition(d2, self.k - 1, axis=1)[:, self.k - 1], 0.0))
        return out

    def flag(self, trains: SpikeTrains) -> tuple[np.ndarray, np.ndarray]:
        """``(score, flagged)`` of every train."""
        s = self.score(trains)
        return s, s > self.threshold

    def save(self, folder: str | os.PathLike) -> Path:
        from .io import atomic_write_bytes, atomic_write_text

        folder = Path(folder)
        import io

        buf = io.BytesIO()
        np.savez(buf, centre=self.centre, scale=self.scale, reference=self.reference)
        atomic_write_bytes(folder / ARRAYS, buf.getvalue())
        atomic_write_text(folder / SETTINGS, json.dumps({"k": self.k, "threshold": self.threshold,
                                                         "quantile": self.quantile, "info": self.info},
                                                        indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Typicality | None:
        """The typicality saved in ``folder``, or None when it has none."""
        folder = Path(folder)
        if not (folder / ARRAYS).exists() or not (folder / SETTINGS).exists():
            return None
        try:
            with np.load(folder / ARRAYS, allow_pickle=False) as a:
                centre, scale, ref = a["centre"], a["scale"], a["reference"]
            s = json.loads((folder / SETTINGS).read_text())
            return cls(centre, scale, ref, int(s["k"]), float(s["threshold"]), float(s["quantile"]), s["info"])
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise DicsbiError(f"{folder}: damaged typicality files {ARRAYS} / {SETTINGS} ({e})") from None
