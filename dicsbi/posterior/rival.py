"""The rival-world classifier of the out-of-world flag (:mod:`dicsbi.posterior.typicality`).

A density of one world cannot flag a train that lies in a region the world shares with another cell type, so a
typicality also carries a classifier that tells its own training world from the training worlds of the other
shipped models: :data:`RIVAL` ``["members"]`` small networks on the features' normal scores whose class
probabilities are averaged (:func:`rival_net`), each trained on balanced classes until ``RIVAL["patience"]``
epochs bring no better held-out cross-entropy (:func:`fit_rival`).  :func:`union_quantile` places the density's
and the classifier's thresholds at one common quantile so that their union flags the wanted share of the
calibration trains.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np


class RivalSettings(TypedDict):
    """The rival-world classifier's settings (:data:`RIVAL`)."""

    hidden: int
    epochs: int
    patience: int
    batch: int
    lr: float
    members: int


RIVAL: RivalSettings = {"hidden": 128, "epochs": 400, "patience": 30, "batch": 512, "lr": 1e-3, "members": 5}


def _rival_member(n_features: int, n_rivals: int) -> Any:
    """Build one member: logits of (own world, rival 1, ...) from the normal scores."""
    import torch

    h = RIVAL["hidden"]
    return torch.nn.Sequential(torch.nn.Linear(n_features, h), torch.nn.SiLU(), torch.nn.Linear(h, h),
                               torch.nn.SiLU(), torch.nn.Linear(h, n_rivals + 1))


def rival_net(n_features: int, n_rivals: int) -> Any:
    """Build the rival-world classifier: ``RIVAL["members"]`` networks whose class probabilities are averaged."""
    import torch

    class Ensemble(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.members = torch.nn.ModuleList(_rival_member(n_features, n_rivals) for _ in range(RIVAL["members"]))

        def forward(self, z):
            return torch.stack([torch.softmax(m(z), dim=1) for m in self.members]).mean(0)

    return Ensemble()


def fit_rival(z_own: np.ndarray, z_rivals: list[np.ndarray], gen: Any) -> tuple[Any, list[float], list[int]]:
    """Train the rival-world classifier, each member on its own shuffles and initialisation.

    Classes are weighted to balance; a tenth is held out for early stopping, the same tenth for all.  Returns
    the ensemble, the members' validation cross-entropies and their best epochs.
    """
    import torch

    x = torch.as_tensor(np.concatenate([z_own, *z_rivals]), dtype=torch.float32)
    y = torch.as_tensor(np.concatenate([np.full(len(z), k) for k, z in enumerate([z_own, *z_rivals])]))
    counts = torch.bincount(y).float()
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (len(counts) * counts))
    perm = torch.randperm(len(x), generator=gen)
    n_val = max(len(x) // 10, 5)
    (xv, yv), (xt, yt) = (x[perm[:n_val]], y[perm[:n_val]]), (x[perm[n_val:]], y[perm[n_val:]])
    ens = rival_net(x.shape[1], len(z_rivals))
    losses, epochs = [], []
    for net in ens.members:
        opt = torch.optim.Adam(net.parameters(), lr=RIVAL["lr"])
        best, state, best_epoch = np.inf, None, -1
        for epoch in range(RIVAL["epochs"]):
            net.train()
            order = torch.randperm(len(xt), generator=gen)
            for b in range(0, len(xt), RIVAL["batch"]):
                i = order[b:b + RIVAL["batch"]]
                loss = loss_fn(net(xt[i]), yt[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                vl = float(loss_fn(net(xv), yv))
            if vl < best:
                best, state, best_epoch = vl, {k: v.detach().clone() for k, v in net.state_dict().items()}, epoch
            elif epoch - best_epoch >= RIVAL["patience"]:
                break
        net.load_state_dict(state)
        losses.append(best)
        epochs.append(best_epoch)
    return ens.eval(), losses, epochs


def union_quantile(a: np.ndarray, b: np.ndarray, rate: float) -> tuple[float, float]:
    """Return the thresholds of two scores at one common quantile q of their own values.

    q is chosen by bisection so that ``a > ta or b > tb`` holds for ``rate`` of the trains (as nearly as ties
    allow).
    """
    lo, hi = 1.0 - rate, 1.0
    for _ in range(40):
        q = 0.5 * (lo + hi)
        ta, tb = np.quantile(a, q), np.quantile(b, q)
        lo, hi = (q, hi) if ((a > ta) | (b > tb)).mean() > rate else (lo, q)
    return float(np.quantile(a, hi)), float(np.quantile(b, hi))
