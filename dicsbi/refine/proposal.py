"""The refinement's first-generation proposal: the DIC posterior mixed with the prior box, and the noise's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spikes import SpikeTrains
from .world import World


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

    def log_weight(self, theta: np.ndarray) -> np.ndarray:
        """Log prior over proposal density of each ``theta`` (up to a constant): its (g_s, g_u) and noise."""
        box = self.world.box
        log_box = -np.log(np.prod(box[:, 1] - box[:, 0]))
        logq = np.asarray(self.post.log_prob(theta[:, -2:], self.train), dtype=float).reshape(-1)
        with np.errstate(divide="ignore"):
            log_proposal = np.logaddexp(np.log(self.defensive) + log_box, np.log1p(-self.defensive) + logq)
        s = theta[:, self.world.noise_column]
        return log_box - log_proposal + _noise_log_weight(self.world, self.centre, s)
