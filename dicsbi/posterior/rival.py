"""The rival-world classifier of the out-of-world flag (:mod:`dicsbi.posterior.typicality`).

A density of one world cannot flag a train that lies in a region the world shares with another cell type, so a
typicality also carries a classifier that tells its own training world from the training worlds of the other
shipped models: :data:`RIVAL` ``["members"]`` small networks on the features' normal scores whose class
probabilities are averaged (:func:`rival_net`), each trained on balanced classes until ``RIVAL["patience"]``
epochs bring no better held-out cross-entropy (:func:`fit_rival`).  :func:`union_quantile` places the density's
and the classifier's thresholds at one common quantile so that their union flags the wanted share of the
calibration trains; :func:`operating_point` instead chooses how that share is split between the two scores, and
the share itself, on out-of-world validation trains (:meth:`~dicsbi.posterior.typicality.Typicality.calibrate`).
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


RATES = (0.01, 0.0125, 0.015, 0.0175, 0.02)  # in-world flag rates operating_point may choose, in this order
SHARES = tuple(np.linspace(0.0, 1.0, 21))      # shares of the in-world budget the density may spend
FLOOR = 0.9                                    # every validation kind should be flagged this often ...
Z_LOWER = 1.645                                # ... by the one-sided 95 % lower bound of its validation rate


def split_thresholds(a: np.ndarray, b: np.ndarray, rate: float, share: float) -> tuple[float, float]:
    """Return thresholds ``(ta, tb)`` under which ``a > ta or b > tb`` flags ``floor(rate n)`` of ``n`` trains.

    The density score ``a`` alone flags ``floor(share floor(rate n))`` of them (``ta = inf`` for none); ``tb``
    is set so that the rival score ``b`` flags the rest of the budget among the trains ``a`` leaves (as nearly
    as ties allow, never more; ``inf`` when the density spends it all).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    budget = int(np.floor(rate * a.size + 1e-9))
    k_a = int(np.floor(share * budget + 1e-9))
    ta = float(np.sort(a)[::-1][k_a]) if k_a > 0 else np.inf
    rest = np.sort(b[~(a > ta)])[::-1]
    k_b = budget - int((a > ta).sum())
    tb = np.inf if k_b <= 0 else float(rest[k_b]) if k_b < rest.size else -np.inf  # inf: the classifier spends none
    return ta, tb


def operating_point(a: np.ndarray, b: np.ndarray, validation: dict[str, tuple[np.ndarray, np.ndarray]],
                    rates=RATES, shares=SHARES, floor: float = FLOOR, z: float = Z_LOWER) -> dict:
    """Choose the in-world flag rate and its split between the density and the rival score.

    ``a, b`` are the density and rival scores of held-out in-world calibration trains; ``validation`` maps a
    kind of out-of-world train (another model's, Poisson-like, shuffled bursters; built from training data,
    never from the test sets, which measure the result) to its two scores.  A kind's *assured* rate is the
    one-sided lower bound ``p - z sqrt(p (1 - p) / n)`` of its validation flag rate ``p`` (``z`` 1.645: 95 %),
    so that a choice that only just clears the floor on the validation trains is not taken for one that clears
    it on fresh trains.  For each rate in ``rates`` (smallest first) the split is the share of the budget spent
    by the density alone that maximises the smallest assured rate over the kinds; the first rate at which it
    reaches ``floor`` is chosen, else the rate that does best.  Returns ``rate``, ``share``, the thresholds
    ``ta`` and ``tb``, the validation flag rate of every kind (``flagged``) and the smallest assured one
    (``worst``).
    """
    best: dict | None = None
    for rate in rates:
        here: dict | None = None
        for share in shares:
            ta, tb = split_thresholds(a, b, rate, share)
            flagged = {k: float(((va > ta) | (vb > tb)).mean()) for k, (va, vb) in validation.items()}
            worst = min((p - z * np.sqrt(p * (1.0 - p) / len(validation[k][0])) for k, p in flagged.items()),
                        default=1.0)
            if here is None or worst > here["worst"]:
                here = {"rate": float(rate), "share": float(share), "ta": ta, "tb": tb, "flagged": flagged,
                        "worst": worst}
        assert here is not None
        if best is None or here["worst"] > best["worst"]:
            best = here
        if here["worst"] >= floor:
            return here
    assert best is not None, "no rate to choose from"
    return best
