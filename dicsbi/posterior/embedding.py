"""Spike-train representations for the posterior network, and training-time augmentation.

Two representations (chosen per posterior, recorded in its configuration):

``"summary"``
    The fixed vector of :func:`dicsbi.posterior.summary.summary_statistics`, z-scored by the flow.
``"summary_length"`` (experimental, not shipped)
    The summary vector plus the log of the number of intervals: the statistics are length-free by design, so a
    posterior on them alone cannot tell a 1 s train (noisy statistics) from a 9 s one and gives both the same
    spread.  The count is the rate times the length, so it helps only if training shows every length: trained
    with half of the trains at the full window (``p_clean`` 0.5), an STG posterior read the count as rate and
    broke off the window (MAE g_s 2.20 at 3 s, 3.42 at 2 s, 4.50 at 6 s).  With every length for every train
    (``TrainConfig.length_min_ms`` = 1000) it was calibrated from 1 s to the window (80% coverage 0.807 /
    0.797 / 0.796 at 1 / 2 / 3 s) and overconfident past it (0.706 at 6 s); docs/posterior.md.
``"sequence"``
    The first :data:`MAX_ISIS` interspike intervals as a ``[MAX_ISIS, 3]`` array per train: the standardised
    log-ISI, the standardised change of log-ISI (first one 0) and a mask channel (1 for a real interval, 0 for
    padding).  Padding is zeros, so no NaN ever reaches sbi; :class:`ISIEncoder` (a dilated residual 1-D CNN
    with masked mean and max pooling) is trained jointly with the flow.  The standardisation follows the
    published network: mu and sigma are the means over training trains of each train's mean and std.

Recordings of another length: both representations are built from ISIs only (no spike counts, no window
length), and training sees random contiguous sub-windows of the simulated trains (:func:`augment`), so a
shorter recording is in distribution as long as it holds enough spikes; a longer one uses its first
:data:`MAX_ISIS` intervals in the sequence representation and all of them in the summary one.

Augmentation (published pipeline, applied afresh every epoch): Gaussian jitter of every spike time (std 2 ms,
times re-sorted), deletion of each spike with probability 0.05 (undone if fewer than 5 would remain), and, for
trains of more than 10 spikes, a random contiguous window of between floor(n/2) and n - 1 spikes.  Training
leaves a fraction ``p_clean`` of the trains unchanged each epoch (0.5 by default,
:class:`dicsbi.posterior.TrainConfig`): a posterior trained on augmented trains only is out of distribution
on clean ones.  Measured on the first STG posterior (summary statistics, 43k training trains, all augmented):
HPD coverage 0.24 / 0.45 / 0.63 at
50 / 80 / 95% and MAE g_u 2.86 on the clean test set, but 0.49 / 0.81 / 0.95 and MAE g_u 1.84 on the same
trains augmented.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..spikes import SpikeTrains
from .summary import N_SUMMARY, summary_statistics

MAX_ISIS = 256
REPRESENTATIONS = ("summary", "summary_length", "sequence")


# ---------------------------------------------------------------------------- augmentation
@njit(cache=True)
def _augment_kernel(times, offsets, normal, uniform, window_u, clean, jitter_ms, p_drop, min_keep, window_above,
                    window_min_fraction, out_times, out_offsets):
    """Perturb the trains (the numba kernel of :func:`augment`), deterministic given the random draws.

    The draws are ``normal``/``uniform`` per spike, ``window_u`` [n_trains, 2], ``clean`` per train (copied
    unchanged).
    """
    pos = 0
    out_offsets[0] = 0
    for i in range(offsets.size - 1):
        if clean[i]:
            for k in range(offsets[i], offsets[i + 1]):
                out_times[pos] = times[k]
                pos += 1
            out_offsets[i + 1] = pos
            continue
        t = times[offsets[i] : offsets[i + 1]] + jitter_ms * normal[offsets[i] : offsets[i + 1]]
        t.sort()
        keep = uniform[offsets[i] : offsets[i + 1]] >= p_drop
        if keep.sum() < min_keep:
            keep[:] = True
        kept = t[keep]
        m = kept.size
        a, b = 0, m
        if m > window_above:
            lo = max(int(m * window_min_fraction), 3)  # floor(f m) .. m-1 spikes (f = 1/2: published)
            w = lo + min(int(window_u[i, 0] * (m - lo)), m - lo - 1)
            a = min(int(window_u[i, 1] * (m - w + 1)), m - w)
            b = a + w
        for k in range(a, b):
            out_times[pos] = kept[k]
            pos += 1
        out_offsets[i + 1] = pos
    return pos


def augment(trains: SpikeTrains, seed, jitter_ms: float = 2.0, p_drop: float = 0.05, min_keep: int = 5,
            window_above: int = 10, p_clean: float = 0.0, window_min_fraction: float = 0.5) -> SpikeTrains:
    """Return a randomly perturbed copy of ``trains`` (see the module docstring).

    Reproducible by ``seed`` (an int, a ``SeedSequence`` or a ``Generator``).  Each train is left unchanged with
    probability ``p_clean``; the random window keeps between ``floor(window_min_fraction * n)`` (at least 3) and
    ``n - 1`` spikes.
    """
    if not 0.0 < window_min_fraction < 1.0:
        raise ValueError(f"window_min_fraction must be in (0, 1), got {window_min_fraction!r}")
    rng = np.random.default_rng(seed)
    times = np.ascontiguousarray(trains.times_ms, dtype=float)
    normal = rng.standard_normal(times.size) if jitter_ms > 0 else np.zeros(times.size)
    uniform = rng.random(times.size) if p_drop > 0 else np.ones(times.size)
    window_u = rng.random((len(trains), 2))
    clean = rng.random(len(trains)) < p_clean
    out_t = np.empty(times.size)
    out_o = np.empty(len(trains) + 1, np.int64)
    pos = _augment_kernel(times, trains.offsets.astype(np.int64), normal, uniform, window_u, clean, float(jitter_ms),
                          float(p_drop), int(min_keep), int(window_above), float(window_min_fraction), out_t, out_o)
    return SpikeTrains(out_t[:pos], out_o, trains.t_start_ms.copy(), trains.t_stop_ms.copy(), trains.ids)


def random_windows(trains: SpikeTrains, seed, min_ms: float, p_cut: float = 0.5) -> SpikeTrains:
    """Cut each train, with probability ``p_cut``, to a random contiguous time window.

    The window's duration is uniform in ``[min_ms, its window]`` (placed uniformly; the new window starts at 0).
    Applied to every training train, clean or augmented, so that a length-aware posterior sees every recording
    length for every kind of train; a cut keeping fewer than 3 spikes leaves the train whole.
    """
    rng = np.random.default_rng(seed)
    n = len(trains)
    cut = rng.random(n) < p_cut
    u_len, u_pos = rng.random(n), rng.random(n)
    out, stops = [], []
    for i in range(n):
        t = trains[i] - trains.t_start_ms[i]
        T = float(trains.t_stop_ms[i] - trains.t_start_ms[i])
        if cut[i] and T > min_ms:
            L = min_ms + u_len[i] * (T - min_ms)
            a = u_pos[i] * (T - L)
            w = t[(t >= a) & (t <= a + L)] - a
            if w.size >= 3:
                out.append(w)
                stops.append(L)
                continue
        out.append(t)
        stops.append(T)
    return SpikeTrains.from_list(out, 0.0, stops, ids=list(trains.ids))


# ---------------------------------------------------------------------------- sequence representation
def _log_isis(trains: SpikeTrains, max_isis: int) -> tuple[np.ndarray, np.ndarray]:
    """Return padded ``[n, max_isis]`` log-ISIs (first ``max_isis`` intervals) and their counts, vectorised."""
    counts = np.minimum(np.maximum(trains.counts - 1, 0), max_isis)
    n = len(trains)
    col = np.arange(max_isis)
    valid = col[None, :] < counts[:, None]
    start = trains.offsets[:-1]
    idx = np.where(valid, start[:, None] + col[None, :], 0)
    t = trains.times_ms
    if t.size == 0:
        return np.zeros((n, max_isis)), counts
    nxt = np.minimum(idx + 1, t.size - 1)
    isi = np.where(valid, t[nxt] - t[idx], 1.0)
    return np.where(valid, np.log(np.maximum(isi, 1e-6)), 0.0), counts


def sequence_stats(trains: SpikeTrains, max_isis: int = MAX_ISIS) -> dict[str, list[float]]:
    """mu, sigma of (log-ISI, change of log-ISI): means over trains of per-train means and stds (published)."""
    l, c = _log_isis(trains, max_isis)
    d = np.diff(l, axis=1, prepend=l[:, :1])
    valid = np.arange(max_isis)[None, :] < c[:, None]
    dvalid = valid & (np.arange(max_isis)[None, :] > 0)

    def per_train(x, v):
        k = np.maximum(v.sum(1), 1)
        m = (x * v).sum(1) / k
        s = np.sqrt(np.maximum(((x - m[:, None]) ** 2 * v).sum(1) / k, 0.0))
        return m, s

    (m1, s1), (m2, s2) = per_train(l, valid), per_train(d, dvalid)
    return {"mu": [float(m1.mean()), float(m2.mean())],
            "sigma": [float(max(s1.mean(), 1e-3)), float(max(s2.mean(), 1e-3))]}


def sequence_array(trains: SpikeTrains, stats: dict, max_isis: int = MAX_ISIS) -> np.ndarray:
    """``[n, max_isis, 3]`` float32: standardised log-ISI, standardised change, mask; zero padding."""
    l, c = _log_isis(trains, max_isis)
    valid = np.arange(max_isis)[None, :] < c[:, None]
    d = np.diff(l, axis=1, prepend=l[:, :1])
    mu, sd = stats["mu"], stats["sigma"]
    out = np.zeros((len(trains), max_isis, 3), np.float32)
    out[..., 0] = np.where(valid, (l - mu[0]) / sd[0], 0.0)
    out[..., 1] = np.where(valid & (np.arange(max_isis)[None, :] > 0), (d - mu[1]) / sd[1], 0.0)
    out[..., 2] = valid
    return out


def represent(trains: SpikeTrains, representation: str, stats: dict | None = None) -> np.ndarray:
    """Return the network input for ``trains``: ``[n, N_SUMMARY]`` or ``[n, MAX_ISIS, 3]`` (float32)."""
    if representation == "summary":
        return summary_statistics(trains).astype(np.float32)
    if representation == "summary_length":
        n_isi = np.maximum(trains.counts - 1, 1).astype(float)
        return np.concatenate([summary_statistics(trains), np.log(n_isi)[:, None]], axis=1).astype(np.float32)
    if representation == "sequence":
        assert stats is not None, "the sequence representation needs the standardisation stats"
        return sequence_array(trains, stats)
    raise ValueError(f"unknown representation {representation!r}; expected one of {REPRESENTATIONS}")


def input_shape(representation: str) -> tuple[int, ...]:
    """Return the shape of one network input of ``representation`` (any other name: the sequence shape)."""
    return {"summary": (N_SUMMARY,), "summary_length": (N_SUMMARY + 1,)}.get(representation, (MAX_ISIS, 3))


# ---------------------------------------------------------------------------- learned encoder
def build_encoder(output_dim: int = 32, channels: int = 32, dilations=(1, 2, 4, 8, 16)):
    """:class:`ISIEncoder` (imported lazily so that numpy-only users never import torch)."""
    import torch
    from torch import nn

    class ISIEncoder(nn.Module):
        """Dilated residual 1-D CNN over ``[batch, L, 3]`` ISI sequences with masked mean + max pooling."""

        def __init__(self):
            super().__init__()
            self.inp = nn.Conv1d(2, channels, 1)
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.GELU(), nn.Conv1d(channels, channels, 3, padding=d, dilation=d)) for d in dilations)
            self.out = nn.Sequential(nn.Linear(2 * channels, 64), nn.GELU(), nn.Linear(64, output_dim))

        def forward(self, x):
            mask = x[..., 2:3].transpose(1, 2)  # [B, 1, L]
            h = self.inp(x[..., :2].transpose(1, 2)) * mask
            for block in self.blocks:
                h = (h + block(h)) * mask
            n = mask.sum(-1).clamp(min=1.0)
            mean = h.sum(-1) / n
            mx = torch.where(mask > 0, h, torch.full_like(h, -1e4)).amax(-1)
            return self.out(torch.cat([mean, mx], dim=1))

    return ISIEncoder()
