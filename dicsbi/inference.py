"""The amortised DIC posterior p(g_s, g_u | spike train): training, the posterior object, safe save and load.

Estimator
    Neural posterior estimation (sbi's conditional normalising flows, ``posterior_nn``; neural spline flow by
    default) trained by maximum likelihood on (DIC target, spike train) pairs of a dicsbi training set
    (:mod:`dicsbi.datasets`).  The flow lives on an unbounded copy of the prior box: with ``lo``/``hi`` the
    box, ``u = logit((theta - lo) / (hi - lo))``, and ``log p(theta | x) = log q(u | x) + sum log |du/dtheta|``.
    Every sample therefore lies inside the box and the density integrates to one over it (no leakage, no
    rejection step).  The labels are the targets each cell's population was solved for (as published).

Training loop
    Our own loop around sbi's estimator (``estimator.loss``), because the published augmentation (jitter, spike
    deletion, random sub-windows; :func:`dicsbi.embedding.augment`) draws a new copy of every train each
    epoch, which sbi's fixed-data ``NPE.train`` cannot do.  Adam, gradient clipping, early stopping on a
    validation split (held-out targets, augmented once with a fixed seed), rich progress, torch threads and
    device configurable.  Silent trains (< 3 spikes) and diverged simulations are excluded and counted.

Artifacts
    A folder with ``weights.pt`` (a state dict, loaded with ``weights_only=True``; never a pickle) and
    ``posterior.json`` (model, V_th, box, representation and its normalisation, flow settings, the training
    data's manifest fingerprint, seed, versions, training summary and the SHA-256 of the weights).  Loading
    checks the format, the checksum and, when asked, the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .embedding import REPRESENTATIONS, augment, build_encoder, input_shape, random_windows, represent, sequence_stats
from .errors import DicsbiError, InputError
from .models import get_model
from .spikes import MAX_RECORDING_MS, MIN_SPIKES, REFRACTORY_MS, SpikeTrains, implausible

ARTIFACT_FORMAT = "dicsbi-posterior"
ARTIFACT_VERSION = 1
WEIGHTS = "weights.pt"
CONFIG = "posterior.json"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


# nflows (inside sbi) calls a deprecated torch function on every sample; it is not ours to fix and floods output
warnings.filterwarnings("ignore", message="torch.triangular_solve is deprecated", category=UserWarning)


class PosteriorError(DicsbiError):
    """A posterior artifact that cannot be used (missing, corrupted, other model, other format)."""


@dataclass
class TrainConfig:
    """Settings of :func:`train_posterior` (all recorded in the artifact)."""

    representation: str = "summary"
    flow: str = "nsf"
    hidden_features: int = 64
    num_transforms: int = 5
    num_bins: int = 10
    embedding_dim: int = 32
    batch_size: int = 256
    learning_rate: float = 1e-3
    max_epochs: int = 300
    patience: int = 20
    val_fraction: float = 0.1
    clip_norm: float = 5.0
    augment: bool = True
    jitter_ms: float = 2.0
    p_drop: float = 0.05
    p_clean: float = 0.5
    window_min_fraction: float = 0.5   # shortest augmentation window, as a fraction of the train's spikes
    length_min_ms: float | None = None  # if set, half the trains (clean ones too) cut to [length_min_ms, window]
    noise_model: bool = True  # train p(noise level | DICs, train) when the training noise levels vary
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"


# ---------------------------------------------------------------------------- input checking
def as_trains(trains, name: str = "spike trains") -> SpikeTrains:
    """Accept a :class:`SpikeTrains`, one array of spike times, a list of arrays or Neo spike trains (a
    ``neo.SpikeTrain``, a list of them, a ``Segment`` or a ``Block``; see :func:`dicsbi.io.from_neo`); check
    every train.

    A train must be finite, non-negative, strictly increasing and hold at least 3 spikes; the error names the
    train (its id) and what is wrong.
    """
    if type(trains).__module__.startswith("neo") or (
            isinstance(trains, (list, tuple)) and trains and type(trains[0]).__module__.startswith("neo")):
        from .io import from_neo

        trains = from_neo(trains, name)
    if not isinstance(trains, SpikeTrains):
        if isinstance(trains, np.ndarray) and trains.ndim == 1 or (
                isinstance(trains, (list, tuple)) and trains and np.isscalar(trains[0])):
            trains = [trains]
        try:
            trains = SpikeTrains.from_list([np.asarray(t, dtype=float) for t in trains], 0.0)
        except (TypeError, ValueError) as e:
            raise InputError(f"{name}: expected arrays of spike times in ms ({e})") from None
    if len(trains) == 0:
        raise InputError(f"{name}: no spike train given")
    t, off = trains.times_ms, trains.offsets
    bad_value = ~np.isfinite(t) | (t < 0)
    if bad_value.any():
        i = int(np.searchsorted(off, np.flatnonzero(bad_value)[0], side="right") - 1)
        raise InputError(f"{name}: train {trains.ids[i]!r} has a spike time that is NaN, infinite or negative "
                         f"({trains[i][~np.isfinite(trains[i]) | (trains[i] < 0)][0]!r}); expected times >= 0 ms")
    d = np.diff(t)
    same_train = np.ones(d.size, bool)
    same_train[off[1:-1][off[1:-1] < t.size] - 1] = False  # boundaries between trains
    unsorted = np.flatnonzero((d <= 0) & same_train)
    if unsorted.size:
        i = int(np.searchsorted(off, unsorted[0] + 1, side="right") - 1)
        raise InputError(f"{name}: train {trains.ids[i]!r} is not strictly increasing (spike "
                         f"{unsorted[0] + 1 - off[i]} at {t[unsorted[0] + 1]} ms follows {t[unsorted[0]]} ms)")
    few = np.flatnonzero(trains.counts < MIN_SPIKES)
    if few.size:
        i = int(few[0])
        raise InputError(f"{name}: train {trains.ids[i]!r} has {trains.counts[i]} spikes; at least {MIN_SPIKES} "
                         "are needed (fewer is 'silent', which has no DIC posterior)")
    suspect = (t > MAX_RECORDING_MS)[1:] | ((d < REFRACTORY_MS) & same_train)
    if suspect.any():
        i = int(np.searchsorted(off, np.flatnonzero(suspect)[0] + 1, side="right") - 1)
        raise InputError(f"{name}: train {trains.ids[i]!r}: {implausible(trains[i])}")
    return trains


# ---------------------------------------------------------------------------- the posterior
class DICPosterior:
    """p(g_s, g_u | spike train) at the model's V_th, amortised over trains.

    Build with :func:`train_posterior` or :func:`load_posterior`.  All methods take one train or many
    (anything :func:`as_trains` accepts) and are vectorised over them.
    """

    def __init__(self, estimator, config: dict):
        self.estimator = estimator.eval()
        self.device = "cpu"
        self.config = config
        self.model = config["model"]
        self.vth_mV = config["vth_mV"]
        self.representation = config["representation"]
        lo, hi = np.array(config["box"], dtype=float).T
        self._lo, self._hi = lo, hi
        self._fused_cache = None
        self.typicality = None   # a dicsbi.typicality.Typicality when the artifact ships one
        self.noise_level = None  # a dicsbi.noise_level.NoiseLevelModel when trained on several noise levels

    def __repr__(self) -> str:
        return (f"DICPosterior(model={self.model!r}, representation={self.representation!r}, "
                f"box={self.config['box']}, V_th={self.vth_mV} mV)")

    def to(self, device: str) -> DICPosterior:
        """Run the network on ``device`` (``"cuda"``: worth it for large batches; samples come back as numpy
        either way, and differ from the CPU's in the last bits, so a seed reproduces a result per device)."""
        import torch

        try:
            self.estimator.to(torch.device(device))
        except (RuntimeError, AssertionError) as e:
            raise DicsbiError(f"cannot use torch device {device!r}: {e}") from None
        self.device = str(device)
        self._fused_cache = None
        return self

    def _fused(self):
        """The flow's fused CPU evaluator (:mod:`dicsbi.flow`), or None (another device or flow structure:
        sbi's own code is used then)."""
        if self._fused_cache is None:
            from .flow import FusedNSF, UnsupportedFlow

            try:
                if self.device != "cpu":
                    raise UnsupportedFlow("fused evaluation runs on the CPU")
                self._fused_cache = FusedNSF(getattr(self.estimator, "net", None))
            except UnsupportedFlow:
                self._fused_cache = False
        return self._fused_cache or None

    def _sample_u(self, n: int, x):
        """``n`` draws of the flow's variable per condition row, ``[n, B, 2]`` on the CPU."""
        fused = self._fused()
        return fused.sample(n, x) if fused else self.estimator.sample((n,), condition=x).cpu()

    # -- transforms between the box and the flow's unbounded space
    def _to_u(self, theta):
        import torch

        lo, hi = (torch.as_tensor(a, dtype=torch.float32) for a in (self._lo, self._hi))
        p = ((theta - lo) / (hi - lo)).clamp(1e-7, 1 - 1e-7)
        u = torch.log(p) - torch.log1p(-p)
        log_jac = (-torch.log(hi - lo) - torch.log(p) - torch.log1p(-p)).sum(-1)  # log |du/dtheta|
        return u, log_jac

    def _to_theta(self, u):
        import torch

        lo, hi = (torch.as_tensor(a, dtype=u.dtype) for a in (self._lo, self._hi))
        return lo + (hi - lo) * torch.sigmoid(u)

    def features(self, trains) -> np.ndarray:
        """The network input of ``trains`` (checked).  With the length-aware representation a train longer than
        the training window is read over its first window: the network never saw longer trains (trained on
        lengths from ``length_min_ms`` to the window it was calibrated on all of them; past the window it was
        overconfident, docs/posterior.md), and less data keeps the posterior calibrated."""
        trains = as_trains(trains)
        if self.representation == "summary_length":
            trains = first_window(trains, float(self.config["window_ms"]))
        return represent(trains, self.representation, self.config.get("sequence_stats"))

    def _condition(self, trains):
        import torch

        return torch.as_tensor(self.features(trains)).to(self.device)

    def sample(self, trains, n: int, seed: int | None = 0) -> np.ndarray:
        """``n`` posterior samples of (g_s, g_u) per train: shape ``[n_trains, n, 2]`` (``[n, 2]`` for one
        train given as a plain array).  Reproducible by ``seed`` (``None``: torch's global state)."""
        import torch

        single = not isinstance(trains, SpikeTrains) and _is_single(trains)
        x = self._condition(trains)
        gen_state = None
        if seed is not None:
            gen_state = torch.random.get_rng_state()
            torch.manual_seed(int(seed))
        try:
            with torch.no_grad():
                u = self._sample_u(int(n), x)
        finally:
            if gen_state is not None:
                torch.random.set_rng_state(gen_state)
        theta = self._to_theta(u).permute(1, 0, 2).numpy().astype(float)
        return theta[0] if single else theta

    def sample_noise(self, trains, theta, seed: int = 0) -> np.ndarray:
        """One noise level (uA/cm^2) per DIC sample from p(sigma | g_s, g_u, train): ``theta`` is
        ``[n_trains, n, 2]`` (or ``[n, 2]`` for one train), the result ``[n_trains, n]`` (or ``[n]``); zeros are
        the point mass (a clean recording).  Together with :meth:`sample` these are joint posterior samples.
        Raises if the posterior has no noise model (trained on one noise level)."""
        import torch

        if self.noise_level is None:
            raise DicsbiError("this posterior was trained on one noise level and has no noise posterior")
        th = np.asarray(theta, dtype=np.float32)
        single = th.ndim == 2
        th = th[None] if single else th
        x = self._condition(trains).cpu()
        if x.shape[0] != th.shape[0]:
            raise InputError(f"theta holds samples for {th.shape[0]} trains, got {x.shape[0]} trains")
        n = th.shape[1]
        xr = x.repeat_interleave(n, 0)
        g = torch.Generator().manual_seed(int(seed))
        sig = self.noise_level.sample(xr, torch.as_tensor(th.reshape(-1, 2)), generator=g).reshape(th.shape[:2])
        return sig[0] if single else sig

    def log_prob(self, theta, trains) -> np.ndarray:
        """log p(theta | train).  ``theta`` broadcasts to ``[..., n_trains, 2]``; the result has shape
        ``[..., n_trains]`` (the train axis dropped for one train given as a plain array).  Outside the box
        the density is 0 (log = -inf)."""
        import torch

        single = not isinstance(trains, SpikeTrains) and _is_single(trains)
        x = self._condition(trains)
        n_trains = x.shape[0]
        th = np.asarray(theta, dtype=np.float32)
        if th.shape[-1:] != (2,):
            raise InputError(f"theta must end with the 2 DICs (g_s, g_u); got shape {th.shape}")
        lead = th.shape[:-2] if th.ndim >= 2 and th.shape[-2] == n_trains else th.shape[:-1]
        th = np.broadcast_to(th if th.ndim >= 2 and th.shape[-2] == n_trains else th[..., None, :],
                             (*lead, n_trains, 2)).reshape(-1, n_trains, 2)
        th = torch.as_tensor(np.array(th))  # a writable copy
        inside = ((th >= torch.as_tensor(self._lo, dtype=th.dtype)) &
                  (th <= torch.as_tensor(self._hi, dtype=th.dtype))).all(-1)
        u, log_jac = self._to_u(th)
        with torch.no_grad():
            lp = self._flow_log_prob(u.to(self.device), x).cpu() + log_jac
        lp = torch.where(inside, lp, torch.full_like(lp, -math.inf)).numpy().astype(float)
        lp = lp.reshape(*lead, n_trains)
        return lp[..., 0] if single else lp

    def _flow_log_prob(self, u, x, max_rows: int = 65536):
        """log q(u | x) for ``u`` of shape [S, B, 2]: the condition is embedded once per train and the flow is
        evaluated in chunks of ``max_rows`` rows.  (sbi's ``log_prob`` repeats each condition S times before the
        embedding, which for the sequence CNN costs S embeddings per train and ran a 24 GB machine out of memory
        at 500 samples x 500 trains.)  Same numbers as sbi's path (a test compares them)."""
        import torch

        fused = self._fused()
        if fused:
            step = max(1, max_rows // max(u.shape[1], 1))
            return torch.cat([fused.log_prob(u[s0 : s0 + step], x) for s0 in range(0, u.shape[0], step)])
        net = getattr(self.estimator, "net", None)
        if net is None or not all(hasattr(net, a) for a in ("_embedding_net", "_transform", "_distribution")):
            return self.estimator.log_prob(u, condition=x)
        emb = net._embedding_net(x)
        n_s, n_b = u.shape[:2]
        out = torch.empty((n_s, n_b), dtype=u.dtype, device=u.device)
        step = max(1, max_rows // max(n_b, 1))
        for s0 in range(0, n_s, step):
            chunk = u[s0 : s0 + step]
            k = chunk.shape[0]
            ctx = emb.repeat(k, 1)
            noise, logabsdet = net._transform(chunk.reshape(k * n_b, -1), context=ctx)
            out[s0 : s0 + k] = (net._distribution.log_prob(noise, context=ctx) + logabsdet).reshape(k, n_b)
        return out

    def map(self, trains, n: int = 2000, seed: int = 0) -> np.ndarray:
        """Maximum a posteriori (g_s, g_u) per train ``[n_trains, 2]``: the best of ``n`` samples, refined by
        gradient ascent on log p in the unbounded space."""
        import torch

        x = self._condition(trains)
        torch.manual_seed(seed)
        with torch.no_grad():
            u0 = self._sample_u(n, x)
            lp = self._flow_log_prob(u0.to(self.device), x).cpu() + self._u_log_jac_theta(u0)
        u = u0[lp.argmax(0), torch.arange(x.shape[0])].clone().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=0.02)
        for _ in range(100):
            opt.zero_grad()
            loss = -(self.estimator.log_prob(u[None].to(self.device), condition=x)[0].cpu()
                     + self._u_log_jac_theta(u)).sum()
            loss.backward()
            opt.step()
        return self._to_theta(u.detach()).numpy().astype(float)

    def _u_log_jac_theta(self, u):
        """log |dtheta/du|^-1 written in u: log q(u|x) - log|dtheta/du| = log p(theta|x)."""
        import torch

        lo, hi = (torch.as_tensor(a, dtype=u.dtype) for a in (self._lo, self._hi))
        s = torch.sigmoid(u)
        return -(torch.log(hi - lo) + torch.log(s) + torch.log1p(-s)).sum(-1)

    def class_probabilities(self, trains, n: int = 500, seed: int = 0) -> np.ndarray:
        """``[n_trains, 3]`` probabilities that a cell at a posterior (g_s, g_u) is silent, spiking or bursting,
        from the class frequencies of the training set on a grid over the box."""
        grid = np.asarray(self.config["class_map"]["frequencies"], dtype=float)  # [nx, ny, 3]
        nx, ny = grid.shape[:2]
        theta = self.sample(as_trains(trains), n, seed)
        if theta.ndim == 2:
            theta = theta[None]
        ix = np.clip(((theta[..., 0] - self._lo[0]) / (self._hi[0] - self._lo[0]) * nx).astype(int), 0, nx - 1)
        iy = np.clip(((theta[..., 1] - self._lo[1]) / (self._hi[1] - self._lo[1]) * ny).astype(int), 0, ny - 1)
        return grid[ix, iy].mean(axis=1)

    # -- persistence
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``weights.pt`` + ``posterior.json`` into ``folder`` (atomically, checksummed)."""
        import torch

        from .io import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{WEIGHTS}.{os.getpid()}.tmp"
        try:
            torch.save(self.estimator.state_dict(), tmp)
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            os.replace(tmp, folder / WEIGHTS)
        finally:
            tmp.unlink(missing_ok=True)
        cfg = {**self.config, "weights_sha256": digest}
        if self.noise_level is not None:
            cfg["noise_level"] = self.noise_level.save(folder)
        atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=1) + "\n")
        self.config = cfg
        if self.typicality is not None:
            self.typicality.save(folder)
        return folder


def first_window(trains: SpikeTrains, window_ms: float) -> SpikeTrains:
    """Each train whose spikes span more than ``window_ms`` cut to the ``window_ms`` from its first spike (not
    from ``t_start``: files of absolute times may start long after 0); others as given."""
    t, off, has = trains.times_ms, trains.offsets, trains.counts > 0
    if not has.any():
        return trains
    first = np.where(has, t[np.minimum(off[:-1], t.size - 1)], trains.t_start_ms)
    last = np.where(has, t[np.maximum(off[1:] - 1, 0)], trains.t_start_ms)
    long = last - first > window_ms
    if not long.any():
        return trains
    out = [t[t <= a + window_ms] if cut else t for t, a, cut in zip(trains, first, long)]
    starts = np.where(long, first, trains.t_start_ms)
    stops = np.where(long, first + window_ms, trains.t_stop_ms)
    return SpikeTrains.from_list(out, starts, stops, ids=list(trains.ids))


def _is_single(trains) -> bool:
    return (isinstance(trains, np.ndarray) and trains.ndim == 1) or (
        isinstance(trains, (list, tuple)) and len(trains) > 0 and np.isscalar(trains[0]))


# ---------------------------------------------------------------------------- building the estimator
def _build_estimator(config: dict, theta_u, x):
    """sbi's flow with our embedding; z-scoring statistics come from (theta_u, x)."""
    import torch
    from sbi.neural_nets import posterior_nn
    from torch import nn

    rep = config["representation"]
    embedding = build_encoder(config["embedding_dim"]) if rep == "sequence" else nn.Identity()
    builder = posterior_nn(config["flow"], z_score_theta="independent",
                           z_score_x="independent" if rep.startswith("summary") else "none",
                           hidden_features=config["hidden_features"], num_transforms=config["num_transforms"],
                           num_bins=config["num_bins"], embedding_net=embedding)
    return builder(torch.as_tensor(theta_u, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32))


def _noise_levels(noise_std):
    """A data set's noise std (uA/cm^2), or the sorted distinct levels of combined sets (one level: a float)."""
    levels = sorted({float(v) for v in np.atleast_1d(noise_std)})
    return levels[0] if len(levels) == 1 else levels


def _noise_parts(manifest: dict) -> list[dict]:
    """The training world's noise: per data set part its fixed level or ``noise_max`` and its share of the cells
    (design sizes), so that :func:`dicsbi.diagnose.diagnose` can draw fresh test cells from the same mixture."""
    parts = [p["config"] for p in manifest.get("parts", [])] or [manifest["config"]]
    sizes = np.array([float(c["n_targets"]) * float(c["cells_per_target"]) for c in parts])
    return [{"noise_std": float(c["noise_std"]), "noise_max": c.get("noise_max"), "share": float(w)}
            for c, w in zip(parts, sizes / sizes.sum())]


def _versions() -> dict:
    from .io import package_versions

    return package_versions(("dicsbi", "sbi", "torch", "numpy"))


def _class_map(targets: np.ndarray, classes: np.ndarray, box, bins: int = 40) -> dict:
    """Class frequencies on a bins x bins grid over the box (empty cells borrow the nearest filled one)."""
    from scipy.ndimage import distance_transform_edt

    (a, b), (c, d) = box
    ix = np.clip(((targets[:, 0] - a) / (b - a) * bins).astype(int), 0, bins - 1)
    iy = np.clip(((targets[:, 1] - c) / (d - c) * bins).astype(int), 0, bins - 1)
    counts = np.zeros((bins, bins, 3))
    np.add.at(counts, (ix, iy, classes.astype(int)), 1.0)
    tot = counts.sum(-1)
    empty = tot == 0
    if empty.all():
        freq = np.full((bins, bins, 3), 1.0 / 3)
    else:
        _, (jx, jy) = distance_transform_edt(empty, return_indices=True)
        counts = counts[jx, jy]
        freq = counts / counts.sum(-1, keepdims=True)
    return {"bins": bins, "frequencies": np.round(freq, 4).tolist()}


@dataclass
class TrainingReport:
    epochs: int
    best_val_loss: float
    seconds: float
    n_train: int
    n_val: int
    excluded_silent: int
    excluded_diverged: int
    history: list = field(default_factory=list)


def train_posterior(data, config: TrainConfig | None = None, progress: bool = True,
                    max_seconds: float | None = None,
                    resume_from: DICPosterior | None = None) -> tuple[DICPosterior, TrainingReport]:
    """Train a :class:`DICPosterior` on a data set folder (or a loaded :class:`~dicsbi.datasets.TrainingSet`),
    or on a list of them trained as one (:func:`~dicsbi.datasets.combine_datasets`: e.g. clean and noisy
    simulations, so that one posterior serves both; ``noise_std`` in the artifact is then the list of levels).

    ``resume_from``: continue from a posterior trained on the same data with the same network settings (its
    weights and z-scoring are kept; epochs and seconds add up in the artifact), so a long training can run in
    several sessions.

    Silent trains and failed simulations are excluded and counted in the report and the artifact.
    ``max_seconds`` stops training (keeping the best weights so far) when the time is up.
    """
    import torch

    from .datasets import TrainingSet, combine_datasets, load_dataset

    cfg = config or TrainConfig()
    if cfg.representation not in REPRESENTATIONS:
        raise DicsbiError(f"representation must be one of {REPRESENTATIONS}, got {cfg.representation!r}")
    parts = list(data) if isinstance(data, (list, tuple)) else [data]
    ds, is_val = combine_datasets([d if isinstance(d, TrainingSet) else load_dataset(d) for d in parts],
                                  cfg.val_fraction)
    model = get_model(ds.model)
    ok = (ds.status == 0) & (ds.trains.counts >= MIN_SPIKES)
    n_silent = int(((ds.status == 0) & (ds.trains.counts < MIN_SPIKES)).sum())
    n_diverged = int((ds.status != 0).sum())
    tr_idx, va_idx = np.flatnonzero(ok & ~is_val), np.flatnonzero(ok & is_val)
    if tr_idx.size < 10 or va_idx.size < 2:
        raise DicsbiError(f"too few non-silent trains to train on ({tr_idx.size} train, {va_idx.size} validation)")
    dcfg = ds.manifest["config"]
    box = [list(dcfg["g_s_range"]), list(dcfg["g_u_range"])]
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train_trains, val_trains = ds.trains.select(tr_idx), ds.trains.select(va_idx)
    stats = sequence_stats(train_trains) if cfg.representation == "sequence" else None
    if resume_from is not None and resume_from.config.get("sequence_stats") is not None:
        stats = resume_from.config["sequence_stats"]
    meta = {
        "format": ARTIFACT_FORMAT, "format_version": ARTIFACT_VERSION, "model": model.name,
        "vth_mV": float(np.median(ds.vth_mV)), "box": box, "representation": cfg.representation,
        "input_shape": list(input_shape(cfg.representation)), "sequence_stats": stats,
        "flow": cfg.flow, "hidden_features": cfg.hidden_features, "num_transforms": cfg.num_transforms,
        "num_bins": cfg.num_bins, "embedding_dim": cfg.embedding_dim,
        "window_ms": float(dcfg["duration_ms"]), "noise_std": _noise_levels(dcfg["noise_std"]),
        "simulator": {**{k: dcfg.get(k) for k in ("duration_ms", "transient_ms", "dt_ms", "noise_std", "pair")},
                      "noise_parts": _noise_parts(ds.manifest)},
        "training_data": {"fingerprint": ds.manifest["fingerprint"], "rows": int(len(ds)),
                          "train_trains": int(tr_idx.size), "val_trains": int(va_idx.size),
                          "excluded_silent": n_silent, "excluded_diverged": n_diverged},
        "train_config": {k: v for k, v in cfg.__dict__.items() if k not in ("threads", "device")},
        "class_map": _class_map(ds.targets[ds.status == 0], ds.firing_class[ds.status == 0], box),
        "versions": _versions(),
    }
    lo, hi = np.array(box).T
    post_for_u = DICPosterior.__new__(DICPosterior)
    post_for_u._lo, post_for_u._hi = lo, hi

    def u_of(theta):
        return post_for_u._to_u(torch.as_tensor(theta, dtype=torch.float32))[0]

    def feats(trains, seed):
        tr = (augment(trains, seed, cfg.jitter_ms, cfg.p_drop, p_clean=cfg.p_clean,
                      window_min_fraction=cfg.window_min_fraction) if cfg.augment else trains)
        if cfg.augment and cfg.length_min_ms:
            tr = random_windows(tr, np.random.SeedSequence(seed, spawn_key=(1,)), cfg.length_min_ms)
        return torch.as_tensor(represent(tr, cfg.representation, stats))

    u_train, u_val = u_of(ds.targets[tr_idx]), u_of(ds.targets[va_idx])
    x_val = feats(val_trains, cfg.seed + 10**6)  # fixed augmented copy
    x0 = feats(train_trains, int(rng.integers(2**31)))
    net = _build_estimator(meta, u_train, x0)
    before = {"epochs": 0, "seconds": 0.0}
    if resume_from is not None:
        keys = ("representation", "flow", "hidden_features", "num_transforms", "num_bins", "box") + (
            ("embedding_dim",) if cfg.representation == "sequence" else ())
        differ = [k for k in keys if resume_from.config.get(k) != meta[k]]
        if resume_from.config["training_data"]["fingerprint"] != meta["training_data"]["fingerprint"]:
            differ.append("training data")
        if differ:
            raise DicsbiError(f"cannot resume: the earlier posterior differs in {', '.join(differ)}")
        net.load_state_dict(resume_from.estimator.state_dict())
        before = resume_from.config.get("training", before)
    net = net.to(cfg.device)
    noise = _noise_trainer(ds, cfg, tr_idx, va_idx, x0, x_val, box, resume_from)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(cfg.patience // 3, 2))
    best, best_state, bad_epochs, history = math.inf, None, 0, []
    t0 = time.perf_counter()
    n_tr = tr_idx.size
    bar = _EpochBar(progress, cfg.max_epochs)
    epoch = 0
    with bar:
        for epoch in range(1, cfg.max_epochs + 1):
            x_tr = x0 if epoch == 1 else feats(train_trains, int(rng.integers(2**31)))
            perm = torch.as_tensor(rng.permutation(n_tr))
            net.train()
            total = 0.0
            for s in range(0, n_tr, cfg.batch_size):
                b = perm[s : s + cfg.batch_size]
                opt.zero_grad()
                loss = net.loss(u_train[b].to(cfg.device), condition=x_tr[b].to(cfg.device)).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_norm)
                opt.step()
                total += float(loss.detach()) * len(b)
                if noise is not None:
                    noise.step(b, x_tr[b])
            net.eval()
            with torch.no_grad():
                vl = float(np.mean([net.loss(u_val[s:s + 4096].to(cfg.device),
                                             condition=x_val[s:s + 4096].to(cfg.device)).mean()
                                    for s in range(0, len(u_val), 4096)]))
            sched.step(vl)
            if noise is not None:
                noise.validate()
            history.append((epoch, total / n_tr, vl))
            if vl < best - 1e-4:
                best, bad_epochs = vl, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad_epochs += 1
            bar.update(epoch, total / n_tr, vl, best)
            if bad_epochs >= cfg.patience:
                break
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
    net.load_state_dict(best_state)
    net = net.to("cpu")
    seconds = time.perf_counter() - t0
    report = TrainingReport(epoch, best, seconds, int(n_tr), int(va_idx.size), n_silent, n_diverged, history)
    meta["training"] = {"epochs": int(before["epochs"]) + epoch, "best_val_loss": best,
                        "seconds": round(float(before["seconds"]) + seconds, 1), "seed": cfg.seed}
    post = DICPosterior(net, meta)
    if noise is not None:
        post.noise_level = noise.finish()
        meta["training"]["noise_level_best_val_loss"] = noise.best
    return post, report


class _NoiseTrainer:
    """Trains p(noise level | DICs, train) next to the flow, on the flow's batches (:mod:`dicsbi.noise_level`)."""

    def __init__(self, model, sigma_tr, theta_tr, sigma_va, theta_va, x_val, lr: float):
        import torch

        self.model, self.x_val = model, x_val
        self.s_tr, self.th_tr = (torch.as_tensor(a, dtype=torch.float32) for a in (sigma_tr, theta_tr))
        self.s_va, self.th_va = (torch.as_tensor(a, dtype=torch.float32) for a in (sigma_va, theta_va))
        self.opt = torch.optim.Adam(model.net.parameters(), lr=lr)
        self.best, self.best_state = math.inf, None

    def step(self, rows, x) -> None:
        self.model.net.train()
        self.opt.zero_grad()
        self.model.loss(self.s_tr[rows], x.float(), self.th_tr[rows]).backward()
        self.opt.step()

    def validate(self) -> None:
        import torch

        self.model.net.eval()
        with torch.no_grad():
            vl = float(self.model.loss(self.s_va, self.x_val.float(), self.th_va))
        if vl < self.best:
            self.best = vl
            self.best_state = {k: v.detach().clone() for k, v in self.model.net.state_dict().items()}

    def finish(self):
        self.model.net.load_state_dict(self.best_state)
        self.model.net.eval()
        return self.model


def _noise_trainer(ds, cfg: TrainConfig, tr_idx, va_idx, x0, x_val, box, resume_from) -> _NoiseTrainer | None:
    """The noise model's trainer when the training noise levels vary (and ``cfg.noise_model``), else None.
    The prior's top is the largest ``noise_max`` (or fixed level) of the data sets; its point mass the share of
    clean training trains."""
    from .noise_level import NoiseLevelModel

    sigma = ds.noise_std if ds.noise_std is not None else np.zeros(len(ds))
    if not cfg.noise_model or np.unique(sigma[tr_idx]).size < 2:
        return None
    top = max([float(sigma.max())] + [float(p["noise_max"] or p["noise_std"]) for p in _noise_parts(ds.manifest)])
    if resume_from is not None and resume_from.noise_level is not None:
        model = resume_from.noise_level
    else:
        model = NoiseLevelModel.create(x0, box, top, float((sigma[tr_idx] == 0).mean()), seed=cfg.seed)
    return _NoiseTrainer(model, sigma[tr_idx], ds.targets[tr_idx], sigma[va_idx], ds.targets[va_idx], x_val,
                         cfg.learning_rate)


class _EpochBar:
    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if self.enabled:
            from rich import progress as rp

            self.bar = rp.Progress(rp.TextColumn("training"), rp.BarColumn(), rp.MofNCompleteColumn(),
                                   rp.TextColumn("{task.fields[info]}"), rp.TimeElapsedColumn())
            self.bar.start()
            self.task = self.bar.add_task("epochs", total=self.total, info="")
        return self

    def update(self, epoch, train_loss, val_loss, best):
        if self.enabled:
            self.bar.update(self.task, completed=epoch,
                            info=f"loss {train_loss:.3f}  val {val_loss:.3f}  best {best:.3f}")

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()


# ---------------------------------------------------------------------------- loading
CONFIG_KEYS = {"format", "format_version", "model", "vth_mV", "box", "representation", "input_shape",
               "sequence_stats", "flow", "hidden_features", "num_transforms", "num_bins", "embedding_dim",
               "window_ms", "noise_std", "simulator", "training_data", "train_config", "class_map", "versions",
               "training", "weights_sha256", "noise_level"}
FLOWS = ("nsf", "maf", "mdn")


def _validate_config(config: dict, path: Path) -> None:
    """Refuse a configuration with unknown keys or fields of the wrong kind before anything is built from it."""
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise PosteriorError(f"{path}: unexpected field(s) {', '.join(map(repr, unknown))}; this file was not "
                             "written by dicsbi (or by a newer version) and is refused")
    problems = []
    try:
        get_model(config.get("model", ""))
    except DicsbiError:
        problems.append(f"unknown model {config.get('model')!r}")
    box = config.get("box")
    if not (isinstance(box, list) and len(box) == 2 and all(
            isinstance(b, list) and len(b) == 2 and all(isinstance(v, (int, float)) for v in b) and b[0] < b[1]
            for b in box)):
        problems.append(f"box must be [[g_s lo, hi], [g_u lo, hi]], got {box!r}")
    if config.get("representation") not in REPRESENTATIONS:
        problems.append(f"representation must be one of {REPRESENTATIONS}, got {config.get('representation')!r}")
    if config.get("flow") not in FLOWS:
        problems.append(f"flow must be one of {FLOWS}, got {config.get('flow')!r}")
    for key, hi in (("hidden_features", 4096), ("num_transforms", 64), ("num_bins", 256), ("embedding_dim", 4096)):
        v = config.get(key)
        if not (isinstance(v, int) and 0 < v <= hi):
            problems.append(f"{key} must be an integer in 1..{hi}, got {v!r}")
    if not isinstance(config.get("vth_mV"), (int, float)):
        problems.append(f"vth_mV must be a number, got {config.get('vth_mV')!r}")
    if not isinstance(config.get("weights_sha256"), str):
        problems.append("weights_sha256 is missing")
    if problems:
        raise PosteriorError(f"{path}: invalid posterior configuration: {'; '.join(problems)}")


def load_posterior(source: str | os.PathLike, model: str | None = None) -> DICPosterior:
    """Load a posterior: a shipped one by model name (``"stg"``, ``"da"``) or a folder written by
    :meth:`DICPosterior.save`.  ``model`` makes loading refuse an artifact made for another model."""
    import torch

    folder = Path(source)
    if not folder.exists() and str(source) in ("stg", "da"):
        folder = PRETRAINED_DIR / str(source)
        model = model or str(source)
        if not (folder / CONFIG).exists():
            raise PosteriorError(f"no shipped posterior for {source!r} in this installation ({folder})")
    if folder.is_file():
        folder = folder.parent
    try:
        config = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise PosteriorError(f"{folder}: not a dicsbi posterior (no {CONFIG})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PosteriorError(f"{folder / CONFIG}: damaged posterior configuration ({e})") from None
    if not isinstance(config, dict) or config.get("format") != ARTIFACT_FORMAT:
        raise PosteriorError(f"{folder / CONFIG}: not a dicsbi posterior configuration")
    if config.get("format_version") != ARTIFACT_VERSION:
        raise PosteriorError(f"{folder / CONFIG}: format version {config.get('format_version')}, this dicsbi "
                             f"reads {ARTIFACT_VERSION}")
    _validate_config(config, folder / CONFIG)
    if model is not None and config.get("model") != get_model(model).name:
        raise PosteriorError(f"{folder} holds a posterior for model {config.get('model')!r}, not {model!r}")
    wpath = folder / WEIGHTS
    try:
        raw = wpath.read_bytes()
    except FileNotFoundError:
        raise PosteriorError(f"{folder}: weights file {WEIGHTS} is missing") from None
    if hashlib.sha256(raw).hexdigest() != config.get("weights_sha256"):
        raise PosteriorError(f"{wpath}: checksum mismatch (the file is corrupted, truncated or not the one "
                             f"{CONFIG} was written with)")
    import io

    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:
        raise PosteriorError(f"{wpath}: unreadable weights ({e})") from None
    shape = tuple(config["input_shape"])
    g = torch.Generator().manual_seed(0)
    x = torch.randn((64, *shape), generator=g)
    if config["representation"] == "sequence":
        x[..., 2] = 1.0
    net = _build_estimator(config, torch.randn((64, 2), generator=g), x)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise PosteriorError(f"{wpath}: weights do not fit the network in {CONFIG} ({e})") from None
    from .typicality import Typicality

    post = DICPosterior(net, config)
    post.typicality = Typicality.load(folder)
    if "noise_level" in config:
        from .noise_level import NoiseLevelModel

        post.noise_level = NoiseLevelModel.load(folder, config["noise_level"], PosteriorError)
    return post
