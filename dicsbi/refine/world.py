"""The refinement's prior: a mixture of the training world's seeded cells and a wide world over the plausible box.

Every member carries both blocks of parameters and its noise, ``theta = (seed parameters, z, s, g_s, g_u)``,
and a component label (0: seeded, 1: wide) it keeps; its compensation pair is a function of ``theta``
(:meth:`World.cells`):

* **seeded** (the DIC posterior's training world): the seed parameters make a seed cell
  (:func:`dicsbi.compensation.seed_cells`) whose pair is re-solved for the target (g_s, g_u);
* **wide**: ``z`` holds log10 of every maximal conductance, uniform over the two decades below each maximum of
  the model's plausible box (``Model.bounds``), and the pair is re-solved from those for the target, so g_f and
  every conductance outside the pair range freely.  This is the training-worlds issue's "seed cells from wider
  plausible ranges (log-uniform over the model's plausible box)"; it is *not* the unseen test world (every
  conductance uniform in the box, no compensation), whose cells are drawn with another density and by
  another construction.

Noise (``s``; :meth:`World.sigma`) is a parameter when the DIC posterior has a noise posterior: the training
world's noise prior, a point mass ``p_zero`` at 0 and a uniform part up to ``top`` (:mod:`dicsbi.posterior.
noise_level`), written as ``s`` uniform on ``[-a, top]`` with ``a = p_zero top / (1 - p_zero)`` and noise
level ``max(s, 0)``: the point mass is the interval below 0, so one symmetric random walk moves clean and noisy
members alike and the density stays known.  Without a noise prior ``s`` is the fixed level and never moves.

The block a member's component does not use is a nuisance variable drawn from its prior and never moved, so
the extended target's marginal is the mixture.  The component weights cancel in every Metropolis-Hastings
ratio (labels never change) and the first generation draws the label from its prior, so its weights stay
prior over proposal in (g_s, g_u) alone.  Why a mixture: the seeded world alone spans a fraction of the
plausible box (its 5-95 % range per channel holds 59 % (STG) and 67 % (DA) of the unseen world's
conductances), so no population drawn from it can cover a cell made another way; the wide world alone would
forget what the training world knows about cells like the shipped data sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compensation import compensate, draw_seed_parameters, gamma_matched, seed_cells, seed_spec
from ..models import Model, get_model

WIDE_DECADES = 2.0  # the wide world's log-uniform range: [max / 10**WIDE_DECADES, max] per conductance
SEEDED, WIDE = 0, 1


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
    """The refinement's prior for one posterior.

    Its model, V_th, DIC box, the pairs members may be solved with, the wide world's weight (0: the training
    world alone), and the noise: the prior ``(p_zero, top)`` of a noise parameter, or None and a fixed ``level``.
    """

    model: Model
    vth: float
    box: np.ndarray          # [[gs_lo, gs_hi], [gu_lo, gu_hi]]
    pairs: list[tuple[str, str]]
    wide: float = 0.0
    noise: tuple[float, float] | None = None
    level: float = 0.0

    @property
    def noise_column(self) -> int:
        """Column of ``s`` (the noise parameter) in ``theta``; (g_s, g_u) are the last two."""
        return self.n_seed + self.model.n_conductances

    def s_range(self) -> tuple[float, float]:
        """Support of ``s``: ``[-a, top]`` with ``a = p_zero top / (1 - p_zero)`` (p_zero at most 0.95)."""
        if self.noise is None:
            return self.level, self.level
        p_zero, top = min(float(self.noise[0]), 0.95), float(self.noise[1])
        return -p_zero * top / (1.0 - p_zero), top

    def sigma(self, theta: np.ndarray) -> np.ndarray:
        """Noise level of each member (uA/cm^2): ``max(s, 0)``."""
        return np.maximum(theta[:, self.noise_column], 0.0)

    @property
    def n_seed(self) -> int:
        """Number of seed parameters (the first block of ``theta``)."""
        return len(seed_spec(self.model).uniform) + 1

    def columns(self, component: int) -> np.ndarray:
        """Columns of ``theta`` a member of ``component`` uses (and moves): its block, ``s`` if free, g_s, g_u."""
        k, n = self.n_seed, self.model.n_conductances
        block = np.arange(k) if component == SEEDED else np.arange(k, k + n)
        return np.concatenate([block, [k + n] if self.noise is not None else [], [k + n + 1, k + n + 2]]).astype(int)

    def _z_range(self) -> tuple[np.ndarray, np.ndarray]:
        hi = np.log10(self.model.upper_bounds)
        return hi - WIDE_DECADES, hi

    def draw(self, dic: np.ndarray, rng: np.random.Generator, s: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Draw from the prior for DIC targets ``dic`` and noise parameters ``s`` (proposed elsewhere).

        ``s`` defaults to draws from its prior.  Returns ``theta`` and the component labels.
        """
        n = len(dic)
        seeds = draw_seed_parameters(self.model, n, rng)
        lo, hi = self._z_range()
        z = rng.uniform(lo, hi, (n, lo.size))
        comp = (rng.random(n) < self.wide).astype(int)
        s = rng.uniform(*self.s_range(), n) if s is None else s
        return np.column_stack([seeds, z, s, dic]), comp

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        """Log prior of ``theta`` (both blocks, s, then g_s, g_u) up to a constant; -inf outside the support."""
        k = self.n_seed
        dic = theta[:, -2:]
        inside = np.all((dic >= self.box[:, 0]) & (dic <= self.box[:, 1]), axis=1)
        lo, hi = self._z_range()
        z = theta[:, k:self.noise_column]
        inside &= np.all((z >= lo) & (z <= hi), axis=1)
        s_lo, s_hi = self.s_range()
        inside &= (theta[:, self.noise_column] >= s_lo) & (theta[:, self.noise_column] <= s_hi)
        return np.where(inside, seed_log_prior(self.model, theta[:, :k]), -np.inf)

    def proposed_columns(self, component: int) -> np.ndarray:
        """Columns of ``theta`` a proposal flow draws for a member of ``component``: its block, g_s, g_u (no ``s``)."""
        cols = self.columns(component)
        return cols[cols != self.noise_column]

    def component_log_density(self, theta: np.ndarray, comp: np.ndarray) -> np.ndarray:
        """Normalised log prior density of each member's :meth:`proposed_columns` given its component.

        Seeded: the seed parameters' density (:func:`seed_log_prior`) times the uniform one of (g_s, g_u) over the
        box; wide: ``z`` uniform over :data:`WIDE_DECADES` decades per channel (density in log10 units) times the
        same.  ``-inf`` outside the prior's support (:meth:`log_prior`).  A proposal that mixes the prior with a
        flow needs the prior normalised, where :meth:`log_prior`'s constant would do for ratios.
        """
        comp = np.asarray(comp)
        out = np.full(len(theta), -np.log(np.prod(self.box[:, 1] - self.box[:, 0])))
        out[np.isneginf(self.log_prior(theta))] = -np.inf
        seeded = comp == SEEDED
        out[seeded] += seed_log_prior(self.model, theta[seeded, :self.n_seed])
        out[~seeded] -= self.model.n_conductances * np.log(WIDE_DECADES)
        return out

    def _bases(self, theta: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conductances before the pair is re-solved (seed cells, or 10**z), and which exist."""
        base = np.full((len(theta), self.model.n_conductances), np.nan)
        valid = np.ones(len(theta), bool)
        seeded = np.flatnonzero(comp == SEEDED)
        if seeded.size:
            s = seed_cells(self.model, theta[seeded, :self.n_seed], self.vth)
            base[seeded], valid[seeded] = s.conductances, s.valid
        wide = np.flatnonzero(comp == WIDE)
        base[wide] = 10.0 ** theta[wide, self.n_seed:self.noise_column]
        return base, valid

    def orders(self, dic: np.ndarray) -> list[list[int]]:
        """Per target, the indices into ``pairs`` in the ranking of its own grid cell (every pair if none)."""
        from ..pair_ranking import pair_ranking

        index = {tuple(p): k for k, p in enumerate(self.pairs)}
        out = []
        for gs, gu in np.asarray(dic, dtype=float):
            ranked = [index[tuple(p)] for p in pair_ranking(self.model, gs, gu, self.vth) if tuple(p) in index]
            out.append(ranked or list(range(len(self.pairs))))
        return out

    def cells(self, theta: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conductances of every ``theta`` and the pair (index into ``pairs``) that made it a cell (-1: none).

        The pair is the first in the ranking of the target's own grid cell
        (:func:`dicsbi.pair_ranking.pair_ranking`, the training world's best-yield rule) that gives a valid
        cell: a function of ``theta``, so the prior does not depend on the recording.
        """
        base, valid = self._bases(theta, comp)
        orders = self.orders(theta[:, -2:])
        g = np.full_like(base, np.nan)
        pair = np.full(len(theta), -1)
        for r in range(max((len(o) for o in orders), default=0)):
            todo = [i for i, o in enumerate(orders) if pair[i] < 0 and valid[i] and r < len(o)]
            groups: dict[int, list[int]] = {}
            for i in todo:
                groups.setdefault(orders[i][r], []).append(i)
            for k, members in groups.items():
                idx = np.array(members)
                sol = compensate(self.model, base[idx], {"g_s": theta[idx, -2], "g_u": theta[idx, -1]},
                                 self.pairs[k], self.vth)
                g[idx[sol.valid]], pair[idx[sol.valid]] = sol.conductances[sol.valid], k
        return g, pair
