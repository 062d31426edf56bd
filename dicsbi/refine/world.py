"""The training world as the refinement's prior: seed parameters, DIC targets and the cells they make."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compensation import compensate, gamma_matched, seed_cells, seed_spec
from ..models import Model, get_model


def seed_log_prior(model: str | Model, params: np.ndarray) -> np.ndarray:
    """Log density of seed parameters under :func:`dicsbi.compensation.draw_seed_parameters`.

    ``-inf`` outside the uniform ranges or for g_leak <= 0.
    """
    from scipy.stats import gamma

    spec = seed_spec(get_model(model))
    params = np.atleast_2d(np.asarray(params, dtype=float))
    out = np.zeros(params.shape[0])
    for k, (lo, hi) in enumerate(spec.uniform.values()):
        inside = (params[:, k] >= lo) & (params[:, k] <= hi)
        out += np.where(inside, -np.log(hi - lo), -np.inf)
    shape, scale = gamma_matched(*spec.leak_range)
    with np.errstate(divide="ignore"):
        return out + gamma.logpdf(params[:, -1], shape, scale=scale)


@dataclass(frozen=True)
class World:
    """The training world of one posterior: model, V_th, DIC box and the pairs members are solved with."""

    model: Model
    vth: float
    box: np.ndarray          # [[gs_lo, gs_hi], [gu_lo, gu_hi]]
    pairs: list[tuple[str, str]]

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        """Log prior of ``theta`` (seed parameters, g_s, g_u) up to a constant; -inf outside the support."""
        dic = theta[:, -2:]
        inside = np.all((dic >= self.box[:, 0]) & (dic <= self.box[:, 1]), axis=1)
        return np.where(inside, seed_log_prior(self.model, theta[:, :-2]), -np.inf)

    def cells(self, theta: np.ndarray, pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conductances of ``theta`` solved with their pairs, and which are valid cells."""
        g = np.full((len(theta), self.model.n_conductances), np.nan)
        ok = np.zeros(len(theta), bool)
        seeds = seed_cells(self.model, theta[:, :-2], self.vth)
        for k, names in enumerate(self.pairs):
            idx = np.flatnonzero((pair == k) & seeds.valid)
            if idx.size:
                comp = compensate(self.model, seeds.conductances[idx],
                                  {"g_s": theta[idx, -2], "g_u": theta[idx, -1]}, names, self.vth)
                g[idx], ok[idx] = comp.conductances, comp.valid
        return g, ok

    def first_valid_pair(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each ``theta``, the first pair (in ranking order) that makes it a valid cell: (pair, conductances).

        The pair is -1 where none does.
        """
        pair = np.full(len(theta), -1)
        g = np.full((len(theta), self.model.n_conductances), np.nan)
        for k in range(len(self.pairs)):
            todo = np.flatnonzero(pair < 0)
            if not todo.size:
                break
            gk, ok = self.cells(theta[todo], np.full(todo.size, k))
            pair[todo[ok]], g[todo[ok]] = k, gk[ok]
        return pair, g


