"""Training a DIC posterior on a dicsbi training set: :class:`TrainConfig`, :func:`train_posterior` and its loop.

See :mod:`dicsbi.posterior`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import _seeds
from ..errors import DicsbiError
from ..io.files import package_versions
from ..models import get_model
from ..progress import ProgressBar
from ..spikes import MIN_SPIKES
from .artifact import DICPosterior, _build_estimator
from .config import FLOWS, REPRESENTATIONS, Flow, PosteriorConfig, Representation
from .embedding import augment, input_shape, random_windows, represent, sequence_stats

if TYPE_CHECKING:
    from ..datasets.storage import TrainingSet


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train_posterior` (all recorded in the artifact)."""

    representation: Representation = "summary"
    flow: Flow = "nsf"
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

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise DicsbiError(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        if self.flow not in FLOWS:
            raise DicsbiError(f"flow must be one of {FLOWS}, got {self.flow!r}")


def _noise_levels(noise_std) -> tuple[float, ...]:
    """Return the sorted distinct noise levels (uA/cm^2) of a data set (one) or of combined sets."""
    return tuple(sorted({float(v) for v in np.atleast_1d(noise_std)}))


def _noise_parts(manifest: dict) -> list[dict]:
    """Return the training world's noise: per data set part its fixed level or ``noise_max`` and its share of cells.

    The shares are the parts' design sizes, so that :func:`dicsbi.diagnostics.runner.diagnose` can draw fresh
    test cells from the same mixture.
    """
    parts = [p["config"] for p in manifest.get("parts", [])] or [manifest["config"]]
    sizes = np.array([float(c["n_targets"]) * float(c["cells_per_target"]) for c in parts])
    return [{"noise_std": float(c["noise_std"]), "noise_max": c.get("noise_max"), "share": float(w)}
            for c, w in zip(parts, sizes / sizes.sum())]


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
    """What :func:`train_posterior` reports: epochs, best validation loss, time, train sizes, exclusions, history."""

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
    """Train a :class:`DICPosterior` on a data set folder, a loaded training set, or a list of them trained as one.

    ``data`` is a data set folder, a loaded :class:`~dicsbi.datasets.TrainingSet`, or a list of them trained
    as one (:func:`~dicsbi.datasets.combine_datasets`: e.g. clean and noisy simulations, so that one posterior
    serves both; ``noise_std`` in the artifact is then the list of levels).

    ``resume_from``: continue from a posterior trained on the same data with the same network settings (its
    weights and z-scoring are kept; epochs and seconds add up in the artifact), so a long training can run in
    several sessions.

    Silent trains and failed simulations are excluded and counted in the report and the artifact.
    ``max_seconds`` stops training (keeping the best weights so far) when the time is up.
    """
    import torch

    cfg = config or TrainConfig()
    ds, tr_idx, va_idx, excluded = _training_split(data, cfg)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train_trains, val_trains = ds.trains.select(tr_idx), ds.trains.select(va_idx)
    stats = sequence_stats(train_trains) if cfg.representation == "sequence" else None
    if resume_from is not None and resume_from.config.sequence_stats is not None:
        stats = dict(resume_from.config.sequence_stats)  # a plain copy: read only, as the stats it replaces
    meta = _artifact_meta(ds, cfg, tr_idx, va_idx, excluded, stats)

    def feats(trains, seed):
        tr = (augment(trains, seed, cfg.jitter_ms, cfg.p_drop, p_clean=cfg.p_clean,
                      window_min_fraction=cfg.window_min_fraction) if cfg.augment else trains)
        if cfg.augment and cfg.length_min_ms:
            tr = random_windows(tr, _seeds.stream(seed, _seeds.WINDOWS), cfg.length_min_ms)
        return torch.as_tensor(represent(tr, cfg.representation, stats))

    u_train, u_val = _to_u(ds.targets[tr_idx], meta.box), _to_u(ds.targets[va_idx], meta.box)
    x_val = feats(val_trains, cfg.seed + 10**6)  # fixed augmented copy
    x0 = feats(train_trains, int(rng.integers(2**31)))
    net = _build_estimator(meta, u_train, x0)
    before = _resume(net, resume_from, meta, cfg)
    net = net.to(cfg.device)
    noise = _noise_trainer(ds, cfg, tr_idx, va_idx, x0, x_val, meta.box, resume_from)
    t0 = time.perf_counter()
    epoch, best, history = _fit(net, noise, u_train, u_val, x_val, x0,
                                lambda: feats(train_trains, int(rng.integers(2**31))), rng, cfg, progress,
                                max_seconds)
    net = net.to("cpu")
    seconds = time.perf_counter() - t0
    report = TrainingReport(epoch, best, seconds, int(tr_idx.size), int(va_idx.size), *excluded, history)
    training = {"epochs": int(before["epochs"]) + epoch, "best_val_loss": best,
                "seconds": round(float(before["seconds"]) + seconds, 1), "seed": cfg.seed}
    post = DICPosterior(net, meta.replace(training=training))
    if noise is not None:
        post.noise_level = noise.finish()
        post.config = post.config.replace(training={**training, "noise_level_best_val_loss": noise.best})
    return post, report


def _training_split(data, cfg: TrainConfig) -> tuple[TrainingSet, np.ndarray, np.ndarray, tuple[int, int]]:
    """Return the combined data set, the indices of its training and validation trains and the excluded counts.

    The trains used are non-silent and not diverged, validation is by held-out targets, and the excluded counts
    are (silent, diverged).
    """
    from ..datasets.storage import TrainingSet, combine_datasets, load_dataset

    parts = list(data) if isinstance(data, (list, tuple)) else [data]
    ds, is_val = combine_datasets([d if isinstance(d, TrainingSet) else load_dataset(d) for d in parts],
                                  cfg.val_fraction)
    ok = (ds.status == 0) & (ds.trains.counts >= MIN_SPIKES)
    n_silent = int(((ds.status == 0) & (ds.trains.counts < MIN_SPIKES)).sum())
    n_diverged = int((ds.status != 0).sum())
    tr_idx, va_idx = np.flatnonzero(ok & ~is_val), np.flatnonzero(ok & is_val)
    if tr_idx.size < 10 or va_idx.size < 2:
        raise DicsbiError(f"too few non-silent trains to train on ({tr_idx.size} train, {va_idx.size} validation)")
    return ds, tr_idx, va_idx, (n_silent, n_diverged)


def _world_shares(ds, tr_idx) -> dict[str, float]:
    """Share of the training trains each world made (:mod:`dicsbi.datasets.worlds`): the mixture's weights."""
    names, counts = np.unique(ds.world[tr_idx] if ds.world is not None else ["generator"], return_counts=True)
    return {str(k): round(float(c) / counts.sum(), 6) for k, c in zip(names, counts)}


def _artifact_meta(ds, cfg: TrainConfig, tr_idx, va_idx, excluded, stats) -> PosteriorConfig:
    """``posterior.json`` of a posterior trained on ``ds`` (everything but the training summary)."""
    dcfg = ds.manifest["config"]
    (gs_lo, gs_hi), (gu_lo, gu_hi) = (map(float, dcfg[k]) for k in ("g_s_range", "g_u_range"))
    box = ((gs_lo, gs_hi), (gu_lo, gu_hi))
    return PosteriorConfig(
        model=get_model(ds.model).name, vth_mV=float(np.median(ds.vth_mV)), box=box,
        representation=cfg.representation, input_shape=tuple(input_shape(cfg.representation)),
        sequence_stats=stats, flow=cfg.flow, hidden_features=cfg.hidden_features,
        num_transforms=cfg.num_transforms, num_bins=cfg.num_bins, embedding_dim=cfg.embedding_dim,
        window_ms=float(dcfg["duration_ms"]), noise_std=_noise_levels(dcfg["noise_std"]),
        simulator={**{k: dcfg.get(k) for k in ("duration_ms", "transient_ms", "dt_ms", "noise_std", "pair")},
                   "noise_parts": _noise_parts(ds.manifest)},
        training_data={"fingerprint": ds.manifest["fingerprint"], "rows": int(len(ds)),
                       "train_trains": int(tr_idx.size), "val_trains": int(va_idx.size),
                       "excluded_silent": excluded[0], "excluded_diverged": excluded[1],
                       "worlds": _world_shares(ds, tr_idx)},
        train_config={k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("threads", "device")},
        class_map=_class_map(ds.targets[ds.status == 0], ds.firing_class[ds.status == 0], box),
        versions=package_versions(("dicsbi", "sbi", "torch", "numpy")),
    )


def _to_u(theta, box):
    """Return the flow's unbounded coordinates of DICs in ``box`` (the artifact's own transform)."""
    import torch

    post = DICPosterior.__new__(DICPosterior)
    post._lo, post._hi = np.array(box).T
    return post._to_u(torch.as_tensor(theta, dtype=torch.float32))[0]


def _resume(net, resume_from: DICPosterior | None, meta: PosteriorConfig, cfg: TrainConfig) -> dict:
    """Load the weights of ``resume_from`` into ``net`` after checking it was trained alike.

    Returns the epochs and seconds it had (zero without one).
    """
    if resume_from is None:
        return {"epochs": 0, "seconds": 0.0}
    keys = ("representation", "flow", "hidden_features", "num_transforms", "num_bins", "box") + (
        ("embedding_dim",) if cfg.representation == "sequence" else ())
    differ = [k for k in keys if getattr(resume_from.config, k) != getattr(meta, k)]
    if resume_from.config.fingerprint != meta.fingerprint:
        differ.append("training data")
    if differ:
        raise DicsbiError(f"cannot resume: the earlier posterior differs in {', '.join(differ)}")
    net.load_state_dict(resume_from.estimator.state_dict())
    return dict(resume_from.config.training) or {"epochs": 0, "seconds": 0.0}


def _fit(net, noise, u_train, u_val, x_val, x0, fresh_copy, rng, cfg: TrainConfig, progress: bool,
         max_seconds: float | None):
    """Run the training loop and load the best weights into ``net``.

    Adam with gradient clipping, a new augmented copy of the training trains each epoch after the first
    (``fresh_copy()``), the learning rate halved on plateaus, early stopping on the validation loss.  Returns
    (epochs run, best validation loss, history).
    """
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(cfg.patience // 3, 2))
    best, best_state, bad_epochs, history = math.inf, None, 0, []
    t0 = time.perf_counter()
    epoch = 0
    with ProgressBar(progress, cfg.max_epochs, "training epochs") as bar:
        for epoch in range(1, cfg.max_epochs + 1):
            x_tr = x0 if epoch == 1 else fresh_copy()
            train_loss = _epoch(net, opt, noise, u_train, x_tr, torch.as_tensor(rng.permutation(len(u_train))), cfg)
            vl = _validation_loss(net, u_val, x_val, cfg.device)
            sched.step(vl)
            if noise is not None:
                noise.validate()
            history.append((epoch, train_loss, vl))
            if vl < best - 1e-4:
                best, bad_epochs = vl, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad_epochs += 1
            bar.update(epoch, f"loss {train_loss:.3f}  val {vl:.3f}  best {best:.3f}")
            if bad_epochs >= cfg.patience or (max_seconds is not None and time.perf_counter() - t0 > max_seconds):
                break
    net.load_state_dict(best_state)
    return epoch, best, history


def _epoch(net, opt, noise, u_train, x_tr, perm, cfg: TrainConfig) -> float:
    """One pass over the training trains in ``perm`` order; returns the mean training loss."""
    import torch

    net.train()
    total = 0.0
    for s in range(0, len(perm), cfg.batch_size):
        b = perm[s : s + cfg.batch_size]
        opt.zero_grad()
        loss = net.loss(u_train[b].to(cfg.device), condition=x_tr[b].to(cfg.device)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_norm)
        opt.step()
        total += float(loss.detach()) * len(b)
        if noise is not None:
            noise.step(b, x_tr[b])
    return total / len(perm)


def _validation_loss(net, u_val, x_val, device) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        return float(np.mean([net.loss(u_val[s:s + 4096].to(device), condition=x_val[s:s + 4096].to(device)).mean()
                              for s in range(0, len(u_val), 4096)]))


class _NoiseTrainer:
    """Trains p(noise level | DICs, train) next to the flow, on the flow's batches.

    See :mod:`dicsbi.posterior.noise_level`.
    """

    def __init__(self, model, sigma_tr, theta_tr, sigma_va, theta_va, x_val, lr: float):
        import torch

        self.model, self.x_val = model, x_val
        self.s_tr, self.th_tr = (torch.as_tensor(a, dtype=torch.float32) for a in (sigma_tr, theta_tr))
        self.s_va, self.th_va = (torch.as_tensor(a, dtype=torch.float32) for a in (sigma_va, theta_va))
        self.opt = torch.optim.Adam(model.net.parameters(), lr=lr)
        self.best: float = math.inf
        self.best_state: dict | None = None

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
    """Return the noise model's trainer when the training noise levels vary (and ``cfg.noise_model``), else None.

    The prior's top is the largest ``noise_max`` (or fixed level) of the data sets; its point mass the share of
    clean training trains.
    """
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
