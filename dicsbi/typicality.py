"""Is a recording like the trains the posterior was trained on?  A typicality score and an out-of-world flag.

An amortised posterior answers every input, and on a train unlike any it saw (another cell type, an artefact,
a unit mix-up) it answers with confident nonsense.  The score here is the negative log density of the
recording's *typicality features* under a density model of the training trains' features (a marginal model of
the network's input, as likelihood-based out-of-distribution detectors do; on the network's input rather than a
learned embedding, so that a train unlike the training world in a direction the network learned to ignore is
still flagged).  The features:

* the posterior's summary statistics (:func:`dicsbi.features.summary_statistics`: ISI distribution, rate-free
  shape, serial correlation);
* four burst-order statistics the summary lacks: the coefficient of variation of the spikes per burst and of
  the burst period, the share of single-spike bursts and the range of the spikes per burst over its mean
  (bursts split at ISIs above (max ISI + min ISI) / 2, first and last dropped, as :mod:`dicsbi.spikes`; all 0
  unless the longest ISI is at least twice the shortest, so a regular spiker's timing jitter is no "burst").
  A burster with its intervals shuffled keeps every ISI statistic but loses the regular burst pattern of a
  conductance-based cell.

The density model: each feature is mapped to normal scores under the reference trains' empirical distribution
(Phi^-1 of the mid-rank; beyond the reference's range continued linearly in units of its outer 1%, so a value
far outside counts as far), and a neural spline flow (zuko ``NSF``, 3 transforms, 128 x 2 hidden units) is fitted
to them with Gaussian dequantisation noise (SD 0.1: many features have point masses, e.g. every variability
statistic of a regular spiker sits at the timing floor); the score averages the density over 4 fixed noise
draws.  The threshold is the ``quantile`` (0.99) of the scores of *held-out* in-world trains (the posterior's
test sets, never the reference trains), so about 1 % of in-world recordings are flagged by construction.

Why a flow and not the distance to the k-th nearest training train (the first version): in the DA world (clean
and noisy trains), at the same 1 % in-world rate, the 10-NN distance on median / IQR scaled features flagged
0.59 / 0.65 / 0.31 of other-model / Poisson / shuffled-burster trains, on normal scores 0.51 / 0.91 / 0.56 (STG
0.95 / 1.00 / 0.85), and the flow 0.52 / 0.95 / 0.90 (STG 0.92 / 1.00 / 0.99); ``experiments/fit_typicality.py``
prints the shipped figures.  ``fit_typicality.py`` fits and saves it next to the posterior
(``typicality.npz``: the reference features, read with ``allow_pickle=False``; ``typicality.pt``: the flow's
state dict, read with ``weights_only=True``; ``typicality.json``: settings, checksum and provenance).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
from numba import njit, prange

from .errors import DicsbiError
from .features import SUMMARY_NAMES, summary_statistics
from .spikes import SpikeTrains, burst_starts

ARRAYS = "typicality.npz"
WEIGHTS = "typicality.pt"
SETTINGS = "typicality.json"
QUANTILE = 0.99
VERSION = 3  # 3: flow density on normal scores (2: k-NN on normal scores, 1: k-NN on median / IQR scales)
ORDER_NAMES = ("cv_spikes_per_burst", "cv_burst_period", "single_spike_bursts", "spikes_per_burst_range")
FEATURE_NAMES = tuple(SUMMARY_NAMES) + ORDER_NAMES
FLOW = {"transforms": 3, "hidden": 128, "dequantisation": 0.1, "draws": 4}
MEANING = ("this recording is unlike every spike train the posterior was trained on (its typicality score is "
           "above the level that 1% of in-world recordings reach): the intervals printed for it are not to be "
           "trusted; check the model, the time unit and the spike sorting")


@njit(cache=True)
def _order_one(t, out):
    out[:] = 0.0
    n = t.size
    if n < 4:
        return
    isi = np.diff(t)
    if isi.max() < 2.0 * isi.min():  # no factor-2 gap: no bursts to speak of (regular or jittered spiking)
        return
    starts, nb = burst_starts(t)
    if nb < 4:  # fewer than two complete bursts once the first and the last are dropped
        return
    counts = np.empty(nb - 2)
    onsets = np.empty(nb - 2)
    for b in range(1, nb - 1):
        counts[b - 1] = starts[b + 1] - starts[b]
        onsets[b - 1] = t[starts[b]]
    mean = counts.mean()
    out[0] = counts.std() / mean
    out[2] = (counts == 1).mean()
    out[3] = (counts.max() - counts.min()) / mean
    if onsets.size >= 3:
        p = np.diff(onsets)
        out[1] = p.std() / p.mean()


@njit(cache=True, parallel=True)
def _order_kernel(times, offsets, out):
    for i in prange(offsets.size - 1):
        _order_one(times[offsets[i] : offsets[i + 1]], out[i])


def typicality_features(trains: SpikeTrains) -> np.ndarray:
    """``[n_trains, 26]``: the summary statistics and the four burst-order statistics (:data:`FEATURE_NAMES`)."""
    order = np.empty((len(trains), len(ORDER_NAMES)))
    _order_kernel(np.ascontiguousarray(trains.times_ms, dtype=float), trains.offsets.astype(np.int64), order)
    return np.concatenate([summary_statistics(trains), order], axis=1)


def _ecdf_scores(f: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    """Normal scores of ``f`` under each feature's empirical distribution (``sorted_ref``: the reference's sorted
    columns): Phi^-1 of the mid-rank, ties shared; beyond the reference's range continued linearly in units of
    the outer 1% of the reference, so a value far outside still counts as far."""
    from scipy.special import ndtri

    n = sorted_ref.shape[0]
    out = np.empty(f.shape, dtype=float)
    top, bottom = ndtri((n + 0.5) / (n + 1)), ndtri(0.5 / (n + 1))
    for k in range(f.shape[1]):
        s, x = sorted_ref[:, k], f[:, k]
        u = (0.5 * (np.searchsorted(s, x, "left") + np.searchsorted(s, x, "right")) + 0.5) / (n + 1)
        z = ndtri(u)
        span_hi = max(s[-1] - s[int(0.99 * (n - 1))], 1e-9)
        span_lo = max(s[int(0.01 * (n - 1))] - s[0], 1e-9)
        z = np.where(x > s[-1], top + (x - s[-1]) / span_hi, z)
        out[:, k] = np.where(x < s[0], bottom - (s[0] - x) / span_lo, z)
    return out


def _flow(n_features: int):
    import zuko

    return zuko.flows.NSF(n_features, 0, transforms=FLOW["transforms"], hidden_features=(FLOW["hidden"],) * 2)


class Typicality:
    """A fitted typicality score: the reference trains' features (for the normal scores), the flow, the threshold."""

    def __init__(self, features: np.ndarray, flow, threshold: float, quantile: float, info: dict | None = None):
        # float32 precision, as saved: a fitted typicality and its reloaded copy score alike
        self.features = np.asarray(features, dtype=np.float32).astype(float)
        self.flow = flow.eval()
        self.threshold, self.quantile, self.info = float(threshold), float(quantile), dict(info or {})
        self._sorted = np.sort(self.features, axis=0)

    def _scores(self, f: np.ndarray) -> np.ndarray:
        return np.clip(_ecdf_scores(f, self._sorted), -30.0, 30.0)

    @classmethod
    def fit(cls, reference: SpikeTrains, calibration: SpikeTrains, quantile: float = QUANTILE,
            info: dict | None = None, epochs: int = 30, seed: int = 0, progress: bool = False) -> Typicality:
        """Fit the density to ``reference`` (training trains; a tenth held out for early stopping), set the
        threshold at the ``quantile`` of the scores of ``calibration`` (held-out in-world trains)."""
        import torch

        if not 0.5 < quantile < 1:
            raise DicsbiError(f"quantile must be in (0.5, 1), got {quantile}")
        f = typicality_features(reference).astype(np.float32).astype(float)
        if len(f) < 50:
            raise DicsbiError(f"need at least 50 reference trains to fit a typicality, got {len(f)}")
        gen = torch.Generator().manual_seed(int(seed))
        torch.manual_seed(int(seed))
        tmp = cls(f, _flow(f.shape[1]), np.inf, quantile)
        x = torch.as_tensor(tmp._scores(f), dtype=torch.float32)
        x = x[torch.randperm(len(x), generator=gen)]
        n_val = max(len(x) // 10, 5)
        xv, xt = x[:n_val], x[n_val:]
        eps = FLOW["dequantisation"]
        xv_noisy = xv + eps * torch.randn(xv.shape, generator=gen)
        opt = torch.optim.Adam(tmp.flow.parameters(), lr=1e-3)
        best, state = np.inf, None
        for _ in range(int(epochs)):
            tmp.flow.train()
            perm = torch.randperm(len(xt), generator=gen)
            for b in range(0, len(xt), 256):
                xb = xt[perm[b:b + 256]]
                loss = -tmp.flow().log_prob(xb + eps * torch.randn(xb.shape, generator=gen)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            tmp.flow.eval()
            with torch.no_grad():
                vl = float(-tmp.flow().log_prob(xv_noisy).mean())
            if vl < best:
                best, state = vl, {k: v.detach().clone() for k, v in tmp.flow.state_dict().items()}
        tmp.flow.load_state_dict(state)
        thr = float(np.quantile(tmp.score(calibration), quantile))
        return cls(f, tmp.flow, thr, quantile, {**(info or {}), "n_reference": int(len(reference)),
                                               "n_calibration": int(len(calibration)), "epochs": int(epochs),
                                               "validation_nll": best, "fit_seed": int(seed)})

    def score(self, trains: SpikeTrains) -> np.ndarray:
        """Negative log density of each train's features (normal scores) under the training world's flow."""
        import torch

        z = torch.as_tensor(self._scores(typicality_features(trains)), dtype=torch.float32)
        gen = torch.Generator().manual_seed(0)
        eps, k = FLOW["dequantisation"], FLOW["draws"]
        with torch.no_grad():
            lp = torch.stack([self.flow().log_prob(z + eps * torch.randn(z.shape, generator=gen)) for _ in range(k)])
            return -(torch.logsumexp(lp, 0) - np.log(k)).numpy().astype(float)

    def flag(self, trains: SpikeTrains) -> tuple[np.ndarray, np.ndarray]:
        """``(score, flagged)`` of every train."""
        s = self.score(trains)
        return s, s > self.threshold

    def save(self, folder: str | os.PathLike) -> Path:
        import torch

        from .io import atomic_write_bytes, atomic_write_text

        folder = Path(folder)
        buf = io.BytesIO()
        np.savez_compressed(buf, features=self.features.astype(np.float32))
        atomic_write_bytes(folder / ARRAYS, buf.getvalue())
        wbuf = io.BytesIO()
        torch.save(self.flow.state_dict(), wbuf)
        atomic_write_bytes(folder / WEIGHTS, wbuf.getvalue())
        doc = {"version": VERSION, "threshold": self.threshold, "quantile": self.quantile, "flow": FLOW,
               "features": list(FEATURE_NAMES), "weights_sha256": hashlib.sha256(wbuf.getvalue()).hexdigest(),
               "info": self.info}
        atomic_write_text(folder / SETTINGS, json.dumps(doc, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Typicality | None:
        """The typicality saved in ``folder``, or None when it has none."""
        import torch

        folder = Path(folder)
        if not (folder / ARRAYS).exists() or not (folder / SETTINGS).exists():
            return None
        try:
            s = json.loads((folder / SETTINGS).read_text())
            if s.get("version") != VERSION or s.get("flow") != FLOW:
                raise ValueError(f"version {s.get('version')}, this dicsbi reads {VERSION}: refit it")
            raw = (folder / WEIGHTS).read_bytes()
            if hashlib.sha256(raw).hexdigest() != s["weights_sha256"]:
                raise ValueError(f"{WEIGHTS} does not match its checksum")
            with np.load(folder / ARRAYS, allow_pickle=False) as a:
                features = a["features"].astype(float)
            flow = _flow(features.shape[1])
            flow.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
            return cls(features, flow, float(s["threshold"]), float(s["quantile"]), s["info"])
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
            raise DicsbiError(f"{folder}: damaged typicality files {ARRAYS} / {WEIGHTS} / {SETTINGS} ({e})") from None
