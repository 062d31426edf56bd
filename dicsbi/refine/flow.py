"""Proposal flows of the refinement: ``q_c(theta_c | x)``, one conditional density per world component (opt-in).

Why.  The first generation draws (g_s, g_u) from the DIC posterior and every other parameter from the prior,
so the seed parameters (or ``z``), which decide the rhythm the DICs do not fix, are blind to the recording: on
40 own-world STG recordings (2026-12-08, ``eval_populations.fresh_recordings`` seed 31) a median of 11 of 100
first-generation candidates lay within the final tolerance 0.3 (their importance weights' ESS 7.1), and the
refined members descended from a median of 8 of them.  A population of a few lineages covers the truth 0.841
there, 0.81 on 200 recordings, where the same target sampled by 16,000 importance draws covers it 0.91
(``experiments/refine_reference.py``); 300 members instead of 100 (2.6 times the simulations) covered 0.906.
A proposal that already knows which cells fire like the recording should give the SMC more ancestors for the
same budget.

What it measured (same 40 recordings, ``RefineOptions(proposal="flow")``, one core): the flows do put more
candidates within 0.3 (a median of 31-36 of 100 instead of 11) but their weights, prior over proposal, are
more uneven (ESS 4.0-5.7 instead of 7.1: the target at 0.3 reaches where the flow has little mass), the members
still descend from 6-9 ancestors, and the truth coverage fell: 0.750 (flow on the summary statistics), 0.766
(on the refinement's features), 0.787 (on the features as the distance reads them, :func:`distance_view`),
0.800 with that flow's base distribution 1.5 times wider, against 0.841 [0.766, 0.903] with the DIC posterior.
So none ships and ``"posterior"`` stays the default; the flows and their training script stay for the proposal
this needs (one whose spread matches the tolerance's, e.g. trained on the training-worlds mixture).

What.  For each component (seeded, wide; :mod:`dicsbi.refine.world`) a neural spline flow (zuko ``NSF``,
:data:`FLOW`) over the columns it proposes (:meth:`~dicsbi.refine.world.World.proposed_columns`: the component's
block, g_s and g_u), conditioned on the recording's summary statistics
(:func:`dicsbi.posterior.summary.summary_statistics`, the DIC posterior's input) or on the refinement's own
features as the distance reads them (:func:`feature_context`; :data:`CONTEXTS`); both standardised by the
training data's mean and spread (fixed affine maps, so weights change by a constant only).  It is an amortised
posterior of the refinement's own prior, trained on pairs simulated from that prior (:func:`simulate_prior`: the
DIC targets uniform in the box, valid cells only, fast tier, the recording window of the model; a share
:data:`NOISE_SHARE` of the trains with noise uniform up to :data:`NOISE_TOP` uA/cm^2, so noisy recordings find
their cells too).

Data used once.  The flow is only a proposal: the first generation draws from the defensive mixture of the
prior and the flow (:class:`~dicsbi.refine.proposal.FlowProposal`), weighted prior over proposal, so the target
is unchanged and the recording enters it through the ABC indicator alone.

Files.  ``refine_proposal.pt`` (the flows' state dicts, read with ``weights_only=True``) and
``refine_proposal.json`` (settings, context, standardisation, columns, training record and the weights'
SHA-256), in the posterior's folder; written by ``experiments/train_refine_proposal.py`` (``--save-to``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DicsbiError
from .world import SEEDED, WIDE, World

WEIGHTS = "refine_proposal.pt"
SETTINGS = "refine_proposal.json"
VERSION = 1
FLOW: dict[str, Any] = {"transforms": 3, "hidden": 128, "epochs": 200, "patience": 15, "batch": 512, "lr": 1e-3}
NOISE_SHARE = 0.35  # share of the training trains simulated with noise ...
NOISE_TOP = 8.0     # ... uniform up to this level (uA/cm^2; the noise prior's top of the shipped posteriors)


def _net(n_features: int, n_context: int):
    import zuko

    return zuko.flows.NSF(n_features, n_context, transforms=FLOW["transforms"],
                          hidden_features=(FLOW["hidden"],) * 2)


CONTEXTS = ("summary", "features")  # what a flow is conditioned on (ProposalFlow.context)


def feature_context(features: np.ndarray) -> np.ndarray:
    """Encode :func:`~dicsbi.refine.distance.train_features` rows as a flow's context, as the distance reads them.

    Each feature (a missing one as 0) and whether it is missing, then the firing pattern one-hot (silent, tonic,
    bursting, irregular); then :func:`distance_view`.
    """
    f = np.atleast_2d(np.asarray(features, dtype=float))
    values, pattern = f[:, :-1], f[:, -1].astype(int)
    missing = ~np.isfinite(values)
    return distance_view(np.column_stack([np.where(missing, 0.0, values), missing,
                                          np.eye(4)[np.clip(pattern, 0, 3)]]))


def distance_view(encoded: np.ndarray) -> np.ndarray:
    """Keep of an encoded context only what :func:`~dicsbi.refine.distance.feature_distance` compares.

    The ISI CV below the distance's smallest scale (0.05) is timing jitter (the solver's step, a recording's
    sampling), so it is floored there; the lag-1 ISI correlation counts only at a CV of at least
    :data:`~dicsbi.spikes.CV_THRESHOLD`, spikes per burst and the duty cycle only for a bursting train: otherwise
    they read as missing.  Without this the flows learned the fast tier's jitter floor and, given a recording of
    another step, proposed elsewhere.  Idempotent.
    """
    from ..spikes import CV_THRESHOLD

    out = np.array(encoded, dtype=float, copy=True)
    cv, corr, spb, duty, m_cv, m_corr, m_spb, m_duty, bursting = 2, 3, 4, 5, 8, 9, 10, 11, 14
    out[:, cv] = np.where(out[:, m_cv] > 0, 0.0, np.maximum(out[:, cv], 0.05))
    regular = (out[:, m_cv] > 0) | (out[:, cv] < CV_THRESHOLD)
    out[regular, corr], out[regular, m_corr] = 0.0, 1.0
    single = out[:, bursting] == 0
    out[np.ix_(single, [spb, duty])], out[np.ix_(single, [m_spb, m_duty])] = 0.0, 1.0
    return out


def contexts(trains, kinds=CONTEXTS) -> dict[str, np.ndarray]:
    """Return the ``kinds`` (:data:`CONTEXTS`) of context of every train.

    The DIC posterior's summary statistics, the refinement's features (:func:`feature_context`), or both; the
    trains start at 0, as :func:`~dicsbi.refine.distance.recording_window` shifts a recording.
    """
    from ..posterior.summary import summary_statistics
    from .distance import train_features

    make = {"summary": lambda: summary_statistics(trains),
            "features": lambda: feature_context(train_features(trains))}
    return {kind: make[kind]() for kind in kinds}


def simulate_prior(world: World, n: int, seed: int, chunk: int = 2000) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate at least ``n`` firing cells of the refinement's prior: ``(theta, component, contexts)``.

    Every draw uses its own stream of ``seed``; cells that no pair makes valid, that diverge or fire fewer than
    3 spikes are dropped (the flow is asked only about recordings that fire).  ``contexts`` maps each of
    :data:`CONTEXTS` to its ``[n, k]`` array (:func:`contexts`).
    """
    from .. import _seeds
    from ..simulate import simulate

    out: list[list] = [[], [], []]
    done, k = 0, 0
    while done < n:
        rng = _seeds.rng(seed, _seeds.REFINE_FLOW, k)
        theta, comp = world.draw(rng.uniform(world.box[:, 0], world.box[:, 1], (chunk, 2)), rng)
        g, pair = world.cells(theta, comp)
        ok = pair >= 0
        noise = np.where(rng.random(chunk) < NOISE_SHARE, rng.uniform(0.0, NOISE_TOP, chunk), 0.0)[ok]
        res = simulate(world.model, g[ok], tier="fast", seed=_seeds.int_seed(seed, _seeds.REFINE_FLOW, k, 1),
                       noise_std=noise)
        keep = (res.status == 0) & (res.trains.counts >= 3)
        rows = np.flatnonzero(ok)[keep]
        for store, values in zip(out, (theta[rows], comp[rows], contexts(res.trains.select(np.flatnonzero(keep))))):
            store.append(values)
        done, k = done + rows.size, k + 1
    ctx = {name: np.concatenate([c[name] for c in out[2]]) for name in CONTEXTS}
    return np.concatenate(out[0]), np.concatenate(out[1]), ctx


@dataclass
class ProposalFlow:
    """The two conditional flows with their standardisation (see the module docstring)."""

    nets: dict[int, Any]
    stats: dict[int, dict[str, np.ndarray]]  # per component: theta_mean, theta_std, x_mean, x_std
    columns: dict[int, np.ndarray]           # per component: the columns of theta it proposes
    context: str = "summary"                 # what it is conditioned on (CONTEXTS)
    info: dict = field(default_factory=dict)

    def context_of(self, train) -> np.ndarray:
        """Return the flow's context vector of one recording (shifted to start at 0, as the refinement does)."""
        from .distance import recording_window

        return contexts(recording_window(train)[0], (self.context,))[self.context][0]

    def _context(self, c: int, x: np.ndarray):
        import torch

        s = self.stats[c]
        return torch.as_tensor((np.asarray(x, dtype=float) - s["x_mean"]) / s["x_std"], dtype=torch.float32)

    def _dist(self, c: int, x: np.ndarray, spread: float):
        """Component ``c``'s flow given ``x``, its base distribution ``spread`` times wider (1: the fitted flow)."""
        from zuko.distributions import DiagNormal, NormalizingFlow

        dist = self.nets[c](self._context(c, x))
        if spread == 1.0:
            return dist
        base = dist.base.base_dist
        return NormalizingFlow(dist.transform, DiagNormal(base.loc, base.scale * float(spread)))

    def sample(self, c: int, x: np.ndarray, n: int, seed: int, spread: float = 1.0) -> np.ndarray:
        """``n`` draws of component ``c``'s proposed columns for one recording's summary ``x``.

        ``spread`` widens the flow's base distribution (a tempered flow: the same shape, heavier reach).
        """
        import torch

        s = self.stats[c]
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(int(seed) % 2**63)
            z = self._dist(c, x, spread).sample((int(n),)).numpy().astype(float)
        return z * s["theta_std"] + s["theta_mean"]

    def log_prob(self, c: int, theta_c: np.ndarray, x: np.ndarray, spread: float = 1.0) -> np.ndarray:
        """Log density of component ``c``'s proposed columns ``theta_c`` given one recording's summary ``x``."""
        import torch

        s = self.stats[c]
        z = torch.as_tensor((np.asarray(theta_c, dtype=float) - s["theta_mean"]) / s["theta_std"],
                            dtype=torch.float32)
        with torch.no_grad():
            lp = self._dist(c, x, spread).log_prob(z).numpy().astype(float)
        return lp - float(np.log(s["theta_std"]).sum())

    @classmethod
    def fit(cls, world: World, theta: np.ndarray, comp: np.ndarray, x: np.ndarray, seed: int = 0,
            info: dict | None = None, context: str = "summary") -> ProposalFlow:
        """Fit one flow per component to simulated ``(theta, comp, x)`` (a tenth held out for early stopping).

        ``x`` is the ``context`` (:data:`CONTEXTS`) of each cell's train.
        """
        import torch

        nets, stats, columns, record = {}, {}, {}, {}
        for c in (SEEDED, WIDE):
            cols = world.proposed_columns(c)
            th, xc = theta[comp == c][:, cols], x[comp == c]
            ok = np.all(np.isfinite(th), axis=1) & np.all(np.isfinite(xc), axis=1)
            th, xc = th[ok], xc[ok]
            if len(th) < 100:
                raise DicsbiError(f"need at least 100 simulated cells of component {c} to fit a proposal flow")
            stats[c] = {"theta_mean": th.mean(0), "theta_std": th.std(0) + 1e-9, "x_mean": xc.mean(0),
                        "x_std": xc.std(0) + 1e-9}
            columns[c] = cols
            s = stats[c]
            t = torch.as_tensor((th - s["theta_mean"]) / s["theta_std"], dtype=torch.float32)
            xt = torch.as_tensor((xc - s["x_mean"]) / s["x_std"], dtype=torch.float32)
            nets[c], record[str(c)] = _train(t, xt, torch.Generator().manual_seed(int(seed) + c))
            record[str(c)]["n"] = int(len(th))
        return cls(nets, stats, columns, context, {**(info or {}), "fit_seed": int(seed), "components": record})

    def save(self, folder: str | os.PathLike) -> Path:
        """Write :data:`WEIGHTS` and :data:`SETTINGS` into ``folder``."""
        import torch

        from ..io.files import atomic_write_bytes, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({f"{c}.{k}": v for c, net in self.nets.items() for k, v in net.state_dict().items()}, buf)
        atomic_write_bytes(folder / WEIGHTS, buf.getvalue())
        doc = {"version": VERSION, "flow": FLOW, "context": self.context,
               "n_features": {str(c): len(v) for c, v in self.columns.items()},
               "columns": {str(c): [int(i) for i in v] for c, v in self.columns.items()},
               "stats": {str(c): {k: [float(a) for a in v] for k, v in s.items()} for c, s in self.stats.items()},
               "weights_sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "info": self.info}
        atomic_write_text(folder / SETTINGS, json.dumps(doc, indent=1) + "\n")
        return folder

    @classmethod
    def cached(cls, folder: str | os.PathLike | None) -> ProposalFlow | None:
        """:meth:`load`, once per folder and process (every recording of a run uses the same flows)."""
        return _cached(None if folder is None else str(Path(folder).resolve()))

    @classmethod
    def load(cls, folder: str | os.PathLike | None) -> ProposalFlow | None:
        """Load the flows saved in ``folder``; None when it holds none."""
        import torch

        if folder is None or not (Path(folder) / SETTINGS).exists():
            return None
        folder = Path(folder)
        try:
            doc = json.loads((folder / SETTINGS).read_text())
            if doc.get("version") != VERSION or doc.get("flow") != FLOW:
                raise ValueError(f"version {doc.get('version')}, this dicsbi reads {VERSION}: retrain it")
            raw = (folder / WEIGHTS).read_bytes()
            if hashlib.sha256(raw).hexdigest() != doc["weights_sha256"]:
                raise ValueError(f"{WEIGHTS} does not match its checksum")
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            nets, stats, columns = {}, {}, {}
            for key, cols in doc["columns"].items():
                c = int(key)
                columns[c] = np.asarray(cols, dtype=int)
                stats[c] = {k: np.asarray(v, dtype=float) for k, v in doc["stats"][key].items()}
                nets[c] = _net(len(cols), len(stats[c]["x_mean"]))
                nets[c].load_state_dict({k[len(key) + 1:]: v for k, v in state.items() if k.startswith(key + ".")})
                nets[c].eval()
            return cls(nets, stats, columns, doc["context"], doc["info"])
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
            raise DicsbiError(f"{folder}: damaged refinement proposal {WEIGHTS} / {SETTINGS} ({e})") from None


@functools.lru_cache(maxsize=4)
def _cached(folder: str | None) -> ProposalFlow | None:
    return ProposalFlow.load(folder)


def _train(t, x, gen) -> tuple[Any, dict]:
    """Fit one conditional flow by maximum likelihood until ``FLOW["patience"]`` epochs bring no better held-out NLL."""
    import torch

    torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
    perm = torch.randperm(len(t), generator=gen)
    n_val = max(len(t) // 10, 10)
    (tv, xv), (tt, xt) = (t[perm[:n_val]], x[perm[:n_val]]), (t[perm[n_val:]], x[perm[n_val:]])
    net = _net(t.shape[1], x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=FLOW["lr"])
    best, state, best_epoch = np.inf, None, -1
    for epoch in range(int(FLOW["epochs"])):
        net.train()
        order = torch.randperm(len(tt), generator=gen)
        batch = int(FLOW["batch"])
        for b in range(0, len(tt), batch):
            i = order[b:b + batch]
            loss = -net(xt[i]).log_prob(tt[i]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            vl = float(-net(xv).log_prob(tv).mean())
        if vl < best:
            best, best_epoch, state = vl, epoch, {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= FLOW["patience"]:
            break
    net.load_state_dict(state)
    return net.eval(), {"validation_nll": best, "best_epoch": best_epoch}
