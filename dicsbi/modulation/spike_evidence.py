"""Spike-level evidence: which channels changed, read from the whole before and after spike trains.

Design (issue "evidence from the whole spike train", option (a) without its continuous part)
    An amortised posterior over the hypotheses, ``q(m | x_before, x_after)``: a classifier network trained by
    cross-entropy on before/after pairs drawn from the modulation model's own prior (the Pyro program of
    :func:`dicsbi.modulation.model.change_prior`, simulated by :mod:`dicsbi.modulation.pairs`).  With the
    cross-entropy loss the optimum is the posterior over hypotheses under that prior (conditioned, as the
    benchmark's ``prior`` scenarios, on a change visible in the spikes), so its probabilities are posterior model
    probabilities, not scores.  Why not sbi's ``MNPE`` over (subset, log-ratios): the benchmark scores the
    subset, the discrete part is what MNPE would add to a flow, and the change sizes given a subset are
    already the DIC-level comparison's (:func:`dicsbi.modulation.compare_population`), which reads the same
    Pyro model.  The classifier is milliseconds per pair after training.

Input
    Both trains' ISI summary statistics (:func:`dicsbi.posterior.summary.summary_statistics`: rate, log-ISI
    moments and quantiles, variability, return map, burst structure) and their difference: 3 x 22 numbers.
    They hold the burst period, spikes per burst and ISI shape that two DIC numbers cannot.  With a DIC
    posterior (the shipped one by default, its weights' SHA-256 recorded), also the mean and standard deviation
    of each train's (g_s, g_u) posterior and their difference: 3 x 4 numbers.  They are a function of the same
    trains, so they add no information, but they carry what the DIC posterior learnt from far more simulations
    than the classifier sees (measured on the STG validation pairs: 0.07 nats lower loss, top-3 0.225 against
    0.212).  Everything is z-scored with the training set's moments.

Calibration
    The network stops at its best validation loss (validation: other before cells), then one temperature is
    fitted on the validation pairs by minimising their negative log-likelihood (Guo et al. 2017); it never sees
    the benchmark's scenarios.

Several neurons
    Neurons share the hypothesis and each has its own change, so their likelihood ratios multiply:
    ``log P(m | all) = log p(m) + sum_i [log q(m | x_i) - log p(m)] + const`` (:meth:`SpikeEvidence.combine`).

Weights: a state dict loaded with ``weights_only=True`` next to a JSON configuration (labels, z-scoring,
temperature, training record, the weights' SHA-256).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DicsbiError
from ..spikes import SpikeTrains

WEIGHTS, CONFIG = "spike_evidence.pt", "spike_evidence.json"


class SpikeEvidenceError(DicsbiError):
    """A spike-level evidence model that cannot be loaded or used."""


N_DIC_DRAWS = 64  # posterior draws per train for the DIC features (seeds 0 and 1: before and after)


def _with_difference(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.concatenate([b, a, a - b], 1)


def pair_features(before: SpikeTrains, after: SpikeTrains, posterior=None) -> np.ndarray:
    """Return ``[n, 66]`` (``[n, 78]`` with a DIC ``posterior``): the input of the classifier (docstring)."""
    from ..posterior.summary import summary_statistics

    if len(before) != len(after):
        raise SpikeEvidenceError(f"{len(before)} before trains but {len(after)} after trains: pairs are needed")
    out = _with_difference(summary_statistics(before), summary_statistics(after))
    if posterior is None:
        return out
    db, da = posterior.sample(before, N_DIC_DRAWS, seed=0), posterior.sample(after, N_DIC_DRAWS, seed=1)
    dic = _with_difference(np.concatenate([db.mean(1), db.std(1)], 1), np.concatenate([da.mean(1), da.std(1)], 1))
    return np.concatenate([out, dic], 1)


def _member(n_in: int, n_out: int, hidden: int, depth: int):
    from torch import nn

    layers: list = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def _net(n_in: int, n_out: int, hidden: int, depth: int, members: int = 1):
    """Return an ensemble of ``members`` MLPs whose output is the log of their mean probability (deep ensemble)."""
    import torch
    from torch import nn

    class Ensemble(nn.Module):
        def __init__(self):
            super().__init__()
            self.members = nn.ModuleList(_member(n_in, n_out, hidden, depth) for _ in range(members))

        def forward(self, x):
            logp = torch.stack([torch.log_softmax(m(x), -1) for m in self.members])
            return torch.logsumexp(logp, 0) - math.log(len(self.members))

    return Ensemble()


class SpikeEvidence:
    """The amortised posterior over hypotheses (module docstring); ``config`` as written by :meth:`save`."""

    def __init__(self, net, config: dict):
        import torch

        self.net = net.eval()
        self.config = config
        self.labels = list(config["labels"])
        self.log_prior = np.asarray(config["log_prior"], dtype=float)
        self._mean = torch.as_tensor(config["x_mean"], dtype=torch.float32)
        self._std = torch.as_tensor(config["x_std"], dtype=torch.float32)
        self.temperature = float(config["temperature"])

    def posterior(self):
        """Return the DIC posterior whose features the model reads (None: spike statistics only), checksum checked."""
        sha = self.config.get("dic_posterior_sha256")
        if sha is None:
            return None
        if getattr(self, "_posterior", None) is None:
            from ..posterior.artifact import load_posterior

            post = load_posterior(self.config["model"])
            if post.config.weights_sha256 != sha:
                raise SpikeEvidenceError(f"the spike-level evidence of {self.config['model']!r} was trained on the "
                                         f"features of DIC posterior {sha[:12]}, but the installed one is "
                                         f"{post.config.weights_sha256[:12]}: retrain it "
                                         "(experiments/train_spike_evidence.py)")
            self._posterior = post
        return self._posterior

    def logits(self, x):
        """Untempered network outputs for rows of features (a float tensor)."""
        return self.net((x - self._mean) / self._std)

    def log_probability(self, before: SpikeTrains, after: SpikeTrains) -> np.ndarray:
        """Return ``[n_pairs, n_hypotheses]`` log posterior probabilities, one row per (before, after) pair."""
        import torch

        x = torch.as_tensor(pair_features(before, after, self.posterior()), dtype=torch.float32)
        with torch.no_grad():
            out = torch.log_softmax(self.logits(x) / self.temperature, -1)
        return out.numpy().astype(float)

    def combine(self, log_q: np.ndarray) -> np.ndarray:
        """Return the hypothesis probabilities given several neurons' rows ``log_q`` (module docstring)."""
        z = self.log_prior + np.sum(np.atleast_2d(log_q) - self.log_prior, 0)
        z = z - z.max()
        return np.exp(z) / np.exp(z).sum()

    def probability(self, before: SpikeTrains, after: SpikeTrains) -> np.ndarray:
        """Return the hypothesis probabilities given all pairs (one shared hypothesis)."""
        return self.combine(self.log_probability(before, after))

    # -- persistence
    def save(self, folder) -> Path:
        """Write the weights and the configuration into ``folder``; returns the configuration's path."""
        import torch

        from ..io.files import atomic_write_bytes, atomic_write_text

        buf = io.BytesIO()
        torch.save(self.net.state_dict(), buf)
        raw = buf.getvalue()
        atomic_write_bytes(Path(folder) / WEIGHTS, raw)
        self.config = {**self.config, "weights_sha256": hashlib.sha256(raw).hexdigest()}
        return atomic_write_text(Path(folder) / CONFIG, json.dumps(self.config, indent=1))

    @classmethod
    def load(cls, folder) -> SpikeEvidence:
        """Load a model written by :meth:`save` (checksum verified, ``weights_only=True``)."""
        import torch

        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG).read_text())
            raw = (folder / WEIGHTS).read_bytes()
        except FileNotFoundError as e:
            raise SpikeEvidenceError(f"{folder}: no spike-level evidence model ({Path(e.filename).name} is "
                                     "missing; experiments/train_spike_evidence.py makes one)") from None
        except json.JSONDecodeError as e:
            raise SpikeEvidenceError(f"{folder / CONFIG}: not valid JSON ({e})") from None
        if hashlib.sha256(raw).hexdigest() != config.get("weights_sha256"):
            raise SpikeEvidenceError(f"{folder / WEIGHTS}: checksum mismatch (corrupted, or not the weights "
                                     "the configuration was written with)")
        net = _net(len(config["x_mean"]), len(config["labels"]), int(config["hidden"]), int(config["depth"]),
                   int(config["members"]))
        net.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
        return cls(net, config)


def _epoch(net, opt, x, y, batch: int, gen) -> None:
    import torch
    import torch.nn.functional as F

    net.train()
    for idx in torch.randperm(len(x), generator=gen).split(batch):
        opt.zero_grad()
        F.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    net.eval()


def _nll(logits, y, temperature: float = 1.0) -> float:
    import torch.nn.functional as F

    return float(F.cross_entropy(logits / temperature, y))


def _fit_member(net, train, val, batch: int, lr: float, max_epochs: int, patience: int, deadline: float, gen,
                bar) -> int:
    """Train one member in place until its validation loss stops falling; returns the epochs run."""
    import copy
    import time

    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    best, best_state, stale, epoch = np.inf, copy.deepcopy(net.state_dict()), 0, 0
    for epoch in range(1, max_epochs + 1):  # noqa: B007 (the last epoch is returned)
        _epoch(net, opt, train[0], train[1], batch, gen)
        with torch.no_grad():
            loss = _nll(net(val[0]), val[1])
        if loss < best:
            best, best_state, stale = loss, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
        bar.advance(1, info=f"val {loss:.4f} (best {best:.4f})")
        if stale >= patience or time.time() > deadline:
            break
    net.load_state_dict(best_state)
    return epoch


def fit_temperature(logits, y) -> float:
    """Return the temperature minimising the negative log-likelihood of ``y`` (a grid on log T, then refined)."""
    grid = np.exp(np.linspace(-1.5, 1.5, 61))
    best = grid[int(np.argmin([_nll(logits, y, t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.05, 0.05, 21))
    return float(fine[int(np.argmin([_nll(logits, y, t) for t in fine]))])


def fit_spike_evidence(x: np.ndarray, y: np.ndarray, val: np.ndarray, labels: list[str], model: str,
                       dic_posterior_sha256: str | None = None, seed: int = 0, hidden: int = 256, depth: int = 3,
                       batch: int = 512, lr: float = 1e-3, max_epochs: int = 200, patience: int = 12,
                       max_seconds: float = 3600.0, members: int = 5, progress: bool = True) -> SpikeEvidence:
    """Train the classifier on features ``x`` and hypothesis indices ``y``; ``val`` marks the validation rows.

    ``dic_posterior_sha256``: the DIC posterior whose features ``x`` holds (None: spike statistics only).
    ``members`` networks start from other seeds and stop early each on the validation loss; the temperature is
    fitted to their averaged probabilities.  The prior over hypotheses it is calibrated to is the training
    labels' frequencies (the model's prior conditioned on a visible change); it is stored for
    :meth:`SpikeEvidence.combine`.
    """
    import time

    import torch

    from ..progress import ProgressBar

    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
    tr, va = ~np.asarray(val, bool), np.asarray(val, bool)
    mean, std = xt[tr].mean(0), xt[tr].std(0).clamp_min(1e-6)
    counts = np.bincount(y[tr], minlength=len(labels)) + 1.0
    config = {"model": model, "labels": list(labels), "log_prior": np.log(counts / counts.sum()).tolist(),
              "x_mean": mean.tolist(), "x_std": std.tolist(), "hidden": hidden, "depth": depth, "members": members,
              "temperature": 1.0, "dic_posterior_sha256": dic_posterior_sha256}
    ev = SpikeEvidence(_net(x.shape[1], len(labels), hidden, depth, members), config)
    xs_tr, xs_va = (xt[tr] - mean) / std, (xt[va] - mean) / std
    t0, epochs = time.time(), []
    with ProgressBar(progress, max_epochs * members, "spike evidence") as bar:
        for k, net in enumerate(ev.net.members):
            torch.manual_seed(seed + k)
            epochs.append(_fit_member(net, (xs_tr, yt[tr]), (xs_va, yt[va]), batch, lr, max_epochs, patience,
                                      t0 + max_seconds * (k + 1) / members, torch.Generator().manual_seed(seed + k),
                                      bar))
    with torch.no_grad():
        logits = ev.net(xs_va)
    temp = fit_temperature(logits, yt[va])
    top = torch.topk(logits, 3, -1).indices
    ev.config.update(temperature=temp, training={
        "n_train": int(tr.sum()), "n_val": int(va.sum()), "epochs": epochs, "seconds": round(time.time() - t0, 1),
        "val_nll": _nll(logits, yt[va], temp),
        "val_nll_prior": float(-np.mean(np.log(counts / counts.sum())[y[va]])),
        "val_top1": float((top[:, 0] == yt[va]).float().mean()),
        "val_top3": float((top == yt[va][:, None]).any(-1).float().mean()), "seed": seed, "lr": lr, "batch": batch})
    ev.temperature = temp
    return ev


def pretrained_spike_evidence(model: str) -> SpikeEvidence:
    """Return the spike-level evidence model shipped with dicsbi for ``model`` (``"stg"`` or ``"da"``)."""
    from ..models import get_model

    return SpikeEvidence.load(Path(__file__).resolve().parent.parent / "pretrained" / get_model(model).name)


@dataclass
class SpikeLevel:
    """The spike-level evidence of one comparison (:func:`spike_level`), over the comparison's hypotheses.

    ``log_q_neuron[i, h]``: neuron ``i``'s own log posterior probability of hypothesis ``h`` (its pair alone, the
    comparison's prior); ``probability``: all neurons together (likelihood ratios multiply).
    """

    probability: np.ndarray
    log_q_neuron: np.ndarray
    neurons: list[str]
    weights_sha256: str


def spike_level(ev: SpikeEvidence, hypotheses, log_prior: np.ndarray, before: SpikeTrains, after: SpikeTrains,
                options=None) -> SpikeLevel:
    """Score a comparison's ``hypotheses`` with the spike-level evidence ``ev`` (pairs ``before[i]``/``after[i]``).

    The classifier was trained under the benchmark's prior (every subset of 1..3 channels, equal mass per size,
    the Laplace cost prior of typical change 1.5, conditioned on a visible change).  A comparison with another
    hypothesis prior (``log_prior``: a size penalty, or a list of hypotheses) is served by reweighting, exact for
    a change of the prior over hypotheses: ``P(m | x) ~ q(m | x) p(m) / p_default(m)`` restricted to the
    comparison's hypotheses.  Another cost prior changes what each hypothesis predicts, which no reweighting
    undoes: :class:`SpikeEvidenceError` then, as for a hypothesis the classifier never saw.
    """
    from .hypotheses import enumerate_hypotheses, hypothesis_log_prior
    from .scenarios import TYPICAL_CHANGE  # the cost prior the training pairs were drawn with

    if options is not None and (options.cost != "laplace" or float(options.typical_change) != TYPICAL_CHANGE):
        raise SpikeEvidenceError("the spike-level evidence was trained with the Laplace cost prior of typical "
                                 f"change {TYPICAL_CHANGE}; this comparison uses {options.cost} with "
                                 f"{options.typical_change}")
    index = {lab: k for k, lab in enumerate(ev.labels)}
    unknown = [h.label for h in hypotheses if h.label not in index]
    if unknown:
        raise SpikeEvidenceError("the spike-level evidence knows subsets of 1-3 channels of its model; not "
                                 + ", ".join(unknown[:5]))
    cols = np.array([index[h.label] for h in hypotheses])
    shift = np.asarray(log_prior) - hypothesis_log_prior(enumerate_hypotheses(ev.config["model"]))[cols]
    log_q = ev.log_probability(before, after)                      # [n, all labels], the classifier's prior
    combined = np.log(ev.combine(log_q))[cols] + shift              # all neurons, then the comparison's prior
    per = log_q[:, cols] + shift
    per = per - np.logaddexp.reduce(per, axis=1, keepdims=True)
    return SpikeLevel(np.exp(combined - np.logaddexp.reduce(combined)), per, [str(i) for i in before.ids],
                      str(ev.config.get("weights_sha256", "unsaved")))
