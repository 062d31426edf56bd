"""The refinement's first-generation proposal: the DIC posterior mixed with the prior box, and the noise's."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _seeds
from ..errors import DicsbiError
from ..spikes import SpikeTrains
from .distance import Simulator
from .flow import ProposalFlow
from .world import SEEDED, WIDE, World


def noise_prior(post) -> tuple[float, float] | None:
    """Return the training world's noise prior ``(p_zero, top)`` of a posterior with a noise posterior, else None."""
    model = getattr(post, "noise_level", None)
    if model is None:
        return None
    return float(model.config["p_zero"]), float(model.config["max"])


def _noise_proposal(world: World, centre: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` noise parameters ``s`` and their log weights, prior over proposal.

    The proposal is half the prior, half uniform within ``max(1, 0.3 centre)`` of ``centre`` (the noise
    posterior's median level): the posterior guides, the prior half keeps every level reachable.  Without a
    noise prior ``s`` is the fixed level (weights 0).
    """
    lo, hi = world.s_range()
    if world.noise is None:
        return np.full(n, lo), np.zeros(n)
    w_lo, w_hi = _noise_window(world, centre)
    near = rng.random(n) < 0.5
    s = np.where(near, rng.uniform(w_lo, w_hi, n), rng.uniform(lo, hi, n))
    return s, _noise_log_weight(world, centre, s)


def _noise_window(world: World, centre: float) -> tuple[float, float]:
    lo, hi = world.s_range()
    half = max(1.0, 0.3 * centre)
    return max(lo, centre - half), min(hi, centre + half)


def _noise_log_weight(world: World, centre: float, s: np.ndarray) -> np.ndarray:
    """Log prior over proposal of noise parameters ``s`` (:func:`_noise_proposal`; 0 without a noise prior)."""
    if world.noise is None:
        return np.zeros(len(s))
    lo, hi = world.s_range()
    w_lo, w_hi = _noise_window(world, centre)
    inside = (s >= w_lo) & (s <= w_hi)
    return -np.log(hi - lo) - np.log(0.5 / (hi - lo) + 0.5 * inside / (w_hi - w_lo))


@dataclass(frozen=True)
class Proposal:
    """The first generation's proposal ``q0``.

    (g_s, g_u) from the defensive mixture ``beta U(box) + (1 - beta) q(g_s, g_u | x)`` of the prior box and the
    DIC posterior (``beta``: ``defensive``), the noise parameter from :func:`_noise_proposal` around ``centre``,
    and the component label and every other parameter from the prior (:meth:`World.draw`), so those cancel in
    every weight.
    """

    post: Any  # a DICPosterior (sample, log_prob)
    train: SpikeTrains
    world: World
    defensive: float
    centre: float = 0.0

    def draw(self, m: int, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``m`` members' ``theta`` and component labels (valid cells or not)."""
        dic = np.asarray(self.post.sample(self.train, m, seed=seed), dtype=float).reshape(m, 2)
        from_box = rng.random(m) < self.defensive
        dic[from_box] = rng.uniform(self.world.box[:, 0], self.world.box[:, 1], (int(from_box.sum()), 2))
        noise, _ = _noise_proposal(self.world, self.centre, m, rng)
        return self.world.draw(dic, rng, noise)

    def log_weight(self, theta: np.ndarray, comp: np.ndarray | None = None) -> np.ndarray:
        """Log prior over proposal density of each ``theta`` (up to a constant): its (g_s, g_u) and noise.

        ``comp`` (the members' components) is not needed: both draw every other parameter from the prior.
        """
        box = self.world.box
        log_box = -np.log(np.prod(box[:, 1] - box[:, 0]))
        logq = np.asarray(self.post.log_prob(theta[:, -2:], self.train), dtype=float).reshape(-1)
        with np.errstate(divide="ignore"):
            log_proposal = np.logaddexp(np.log(self.defensive) + log_box, np.log1p(-self.defensive) + logq)
        s = theta[:, self.world.noise_column]
        return log_box - log_proposal + _noise_log_weight(self.world, self.centre, s)


@dataclass(frozen=True)
class FlowProposal(Proposal):
    """The first generation's proposal from the refinement's proposal flows (:mod:`dicsbi.refine.flow`).

    A member's component comes from the prior; with probability ``defensive`` all of its parameters too, else
    its component's proposed columns (block, g_s, g_u) from that component's flow given the recording's
    context (:meth:`ProposalFlow.context_of`), the other block from the prior and the noise parameter from
    :func:`_noise_proposal`.  Its weight is prior over proposal in the proposed columns (the normalised prior,
    :meth:`World.component_log_density`, against ``defensive * prior + (1 - defensive) * flow``) and in the
    noise; the rest cancels.
    """

    flow: ProposalFlow | None = None
    spread: float = 1.0  # the flows' base distribution this many times wider (ProposalFlow.sample)

    @functools.cached_property
    def _context(self) -> np.ndarray:
        """The recording's context for the flows, computed once (every draw and weight uses it)."""
        assert self.flow is not None
        return self.flow.context_of(self.train)

    def draw(self, m: int, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``m`` members' ``theta`` and component labels (inside the prior's support or not)."""
        assert self.flow is not None
        box = self.world.box
        noise, _ = _noise_proposal(self.world, self.centre, m, rng)
        theta, comp = self.world.draw(rng.uniform(box[:, 0], box[:, 1], (m, 2)), rng, noise)
        use = rng.random(m) >= self.defensive
        x = self._context
        for c in (SEEDED, WIDE):
            rows = np.flatnonzero(use & (comp == c))
            if rows.size:
                theta[np.ix_(rows, self.flow.columns[c])] = self.flow.sample(c, x, rows.size, seed + c, self.spread)
        return theta, comp

    def log_weight(self, theta: np.ndarray, comp: np.ndarray | None = None) -> np.ndarray:
        """Log prior over proposal density of each member (up to a constant; see the class docstring)."""
        assert self.flow is not None and comp is not None
        lp = self.world.component_log_density(theta, comp)
        lq = np.full(len(theta), -np.inf)
        x = self._context
        for c in (SEEDED, WIDE):
            rows = np.flatnonzero(comp == c)
            if rows.size:
                lq[rows] = self.flow.log_prob(c, theta[np.ix_(rows, self.flow.columns[c])], x, self.spread)
        with np.errstate(divide="ignore"):
            log_proposal = np.logaddexp(np.log(self.defensive) + lp, np.log1p(-self.defensive) + lq)
        s = theta[:, self.world.noise_column]
        return np.where(np.isfinite(lp), lp - log_proposal, -np.inf) + _noise_log_weight(self.world, self.centre, s)


def first_generation(proposal: Proposal, sim: Simulator, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Propose ``n`` valid members (``n_members * oversample``) from ``proposal``, weighted prior over proposal.

    A draw outside the prior's support (a posterior sample outside the box, a flow's draw outside a seed
    parameter's range) or that no pair makes a cell is dropped: the proposal and the prior are both restricted
    to valid cells in the box.  Returns ``(theta, pair, comp, g, d, log_weight, log_prior)``.
    """
    rng = _seeds.rng(seed, _seeds.REFINE_FIRST)
    world = proposal.world
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    found, tries = 0, 0
    while found < n and tries < 6:
        m = int(1.5 * (n - found)) + 16
        theta, comp = proposal.draw(m, rng, _seeds.int_seed(seed, _seeds.REFINE_FIRST, tries))
        lp = world.log_prior(theta)
        g, pair = np.full((m, world.model.n_conductances), np.nan), np.full(m, -1)
        inside = np.isfinite(lp)
        g[inside], pair[inside] = world.cells(theta[inside], comp[inside])
        ok = (pair >= 0) & inside
        for store, values in zip(parts, (theta, pair, comp, g, lp)):
            store.append(values[ok])
        found += int(ok.sum())
        tries += 1
    if found == 0:
        raise DicsbiError("no posterior sample could be made a valid cell: nothing to refine")
    theta, pair, comp, g, lp = (np.concatenate(a)[:n] for a in parts)
    d = sim.distance(g, _seeds.int_seed(seed, _seeds.REFINE_FIRST, 10**6), world.sigma(theta))
    return theta, pair, comp, g, d, proposal.log_weight(theta, comp), lp
