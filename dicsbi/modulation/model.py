"""The Bayesian model of a modulation, written in Pyro.

Under hypothesis ``m`` (a subset ``J`` of channels) the modulated cell is an unmodulated cell ``g`` drawn from the
before-population (uniformly: the population is a sample of the before recording's posterior over conductances)
with the channels of ``J`` scaled, ``g'_j = g_j exp(theta_j)``.  The log-ratios ``theta`` have a cost prior,
Laplace(0, b) per channel by default (a Gaussian is available), truncated to physiologically plausible
conductances ``0 < g'_j <= upper_j`` (the model's plausible bounds) and renormalised per cell.  The after
recording enters through ``pyro.factor``: the likelihood of the modulated cell's (g_s, g_u) at V_th
(:mod:`dicsbi.modulation.likelihood`).

Scale of the cost prior: ``b = |ln(typical_change)|``, where ``typical_change`` is the factor by which the user
expects a modulated conductance to move (default 1.5, i.e. ``b = 0.405``: half of the Laplace mass lies within a
factor ``exp(b ln 2) = 1.32`` and 95 % within ``exp(3 b) = 3.4``).  The expected absolute log-ratio equals ``b``.

The evidence integrates over the cell (the members plate: an average over the population) and over ``theta``;
hypotheses of one size, population members and importance-sampling particles are three nested plates, so one
Pyro trace evaluates them all at once (:func:`log_weights`).
"""

from __future__ import annotations

import math
from typing import cast

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

COST_PRIORS = ("laplace", "gaussian")


def cost_scale(typical_change: float) -> float:
    """Scale ``b`` of the cost prior for a typical change factor (``1.5`` or ``1/1.5`` give ``ln 1.5``)."""
    if not (math.isfinite(typical_change) and typical_change > 0 and typical_change != 1):
        raise ValueError(f"typical_change must be a positive factor other than 1, got {typical_change!r}")
    return abs(math.log(typical_change))


class Truncated(TorchDistribution):
    """A univariate torch distribution with ``cdf``/``icdf`` restricted to ``[low, high]`` and renormalised."""

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, base, low, high, validate_args=False, _cached=None):
        shape = torch.broadcast_shapes(base.batch_shape, low.shape, high.shape)
        self.base = base.expand(shape)
        self.low, self.high = low.expand(shape), high.expand(shape)
        if _cached is None:  # the CDF at the bounds, once per distinct bound (expand reuses it as a view)
            c_low, c_high = base.cdf(low), base.cdf(high)
            _cached = (c_low, c_high, torch.log(c_high - c_low))
        self._c_low, self._c_high, self._log_mass = (c.expand(shape) for c in _cached)
        super().__init__(batch_shape=shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """Return the truncated distribution expanded to ``batch_shape`` (the CDFs at the bounds are reused)."""
        batch_shape = torch.Size(batch_shape)
        return Truncated(self.base.expand(batch_shape), self.low.expand(batch_shape), self.high.expand(batch_shape),
                         _cached=(self._c_low, self._c_high, self._log_mass))

    def sample(self, sample_shape=()):
        """Draw by inverting the base CDF at uniform points between the CDFs at ``low`` and ``high``."""
        shape = self._extended_shape(torch.Size(sample_shape))
        u = torch.rand(shape, dtype=self._c_low.dtype, device=self._c_low.device)
        tiny = torch.finfo(u.dtype).tiny
        p = (self._c_low + u * (self._c_high - self._c_low)).clamp(tiny, 1 - 1e-16)
        return torch.minimum(torch.maximum(self.base.icdf(p), self.low), self.high)

    def log_prob(self, value):
        """Return the base log density minus the log mass inside ``[low, high]``; -inf outside."""
        inside = (value >= self.low) & (value <= self.high)
        lp = self.base.log_prob(value) - self._log_mass
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))


def cost_prior(kind: str, scale: float, low: torch.Tensor, high: torch.Tensor):
    """Return the truncated cost prior over log-ratios, event shape ``[s]`` (``low``/``high``: ``[..., s]``)."""
    zero = torch.zeros((), dtype=low.dtype)
    if kind == "laplace":
        base = dist.Laplace(zero, zero + scale)
    elif kind == "gaussian":
        base = dist.Normal(zero, zero + scale)
    else:
        raise ValueError(f"cost prior must be one of {COST_PRIORS}, got {kind!r}")
    return Truncated(base, low, high).to_event(1)


class DefensiveMixture(TorchDistribution):
    """``alpha * prior + (1 - alpha) * proposal``, both with event shape ``[s]``.

    The prior component bounds the importance weights by ``L_max / alpha`` whatever the proposal misses.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, prior, proposal, alpha: float, validate_args=False):
        shape = torch.broadcast_shapes(prior.batch_shape, proposal.batch_shape)
        self.prior, self.proposal = prior.expand(shape), proposal.expand(shape)
        self.alpha = float(alpha)
        super().__init__(batch_shape=shape, event_shape=prior.event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """Return the mixture with both components expanded to ``batch_shape``."""
        return DefensiveMixture(self.prior.expand(batch_shape), self.proposal.expand(batch_shape), self.alpha)

    def sample(self, sample_shape=()):
        """Draw from the prior with probability ``alpha``, else from the proposal (per draw)."""
        a, b = self.prior.sample(sample_shape), self.proposal.sample(sample_shape)
        pick = torch.rand(a.shape[:-1], dtype=a.dtype) < self.alpha
        return torch.where(pick[..., None], a, b)

    def log_prob(self, value):
        """Return ``log(alpha p_prior(value) + (1 - alpha) p_proposal(value))``."""
        return torch.logaddexp(math.log(self.alpha) + self.prior.log_prob(value),
                               math.log1p(-self.alpha) + self.proposal.log_prob(value))


class Context:
    """What the model and the guide of one hypothesis size need.

    These are the cost prior (batch ``[H, N, S]``), the log-likelihood of log-ratios (a callable on
    ``[H, N, S, s]`` tensors), and the proposal.
    """

    def __init__(self, prior, log_likelihood, proposal=None):
        self.prior, self.log_likelihood, self.proposal = prior, log_likelihood, proposal
        self.shape = tuple(prior.batch_shape)


def _plates(shape):
    H, N, S = shape
    return (pyro.plate("hypotheses", H, dim=-3), pyro.plate("members", N, dim=-2),
            pyro.plate("particles", S, dim=-1))


def modulation_model(ctx: Context):
    """Pyro model: theta ~ cost prior (per hypothesis, cell and particle); the after recording as a factor on d(g')."""
    h, n, s = _plates(ctx.shape)
    with h, n, s:
        theta = pyro.sample("log_ratio", ctx.prior)
        pyro.factor("after", ctx.log_likelihood(theta))


def proposal_guide(ctx: Context):
    """Pyro guide: draw the log-ratios from ``ctx.proposal`` (per hypothesis, cell and particle)."""
    h, n, s = _plates(ctx.shape)
    with h, n, s:
        pyro.sample("log_ratio", ctx.proposal)


def log_weights(ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """Return importance draws from the guide and their unnormalised log weights.

    The log weights are ``log p(theta | m, g) + log L(theta) - log r(theta)``, both unreduced over the plates:
    ``theta`` ``[H, N, S, s]``, weights ``[H, N, S]``.
    """
    guide_trace = poutine.trace(proposal_guide).get_trace(ctx)
    model_trace = poutine.trace(poutine.replay(modulation_model, trace=guide_trace)).get_trace(ctx)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    lw = (model_trace.nodes["log_ratio"]["log_prob"] + model_trace.nodes["after"]["log_prob"]
          - guide_trace.nodes["log_ratio"]["log_prob"])
    return cast(torch.Tensor, guide_trace.nodes["log_ratio"]["value"]), lw


def change_prior(log_prior, index, high, scale: float, kind: str = "laplace", seed: int = 0):
    """Draw once from the modulation model's prior for a before cell.

    The draw says which subset changed (the hypothesis prior ``log_prior``) and by how much (the truncated cost
    prior).  ``index[h]``: the conductance columns of hypothesis ``h``; ``high``: per conductance, the largest
    plausible log-ratio ``ln(upper / g)``.  Returns ``(h, theta)``; the same ``seed`` gives the same draw
    (torch's global stream is left untouched).
    """
    high_t = torch.as_tensor(high, dtype=torch.float64)

    def program():
        h = pyro.sample("hypothesis", dist.Categorical(logits=torch.as_tensor(log_prior, dtype=torch.float64)))
        hi = high_t[list(index[int(h)])]
        return h, pyro.sample("log_ratio", cost_prior(kind, scale, torch.full_like(hi, -math.inf), hi))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        returned = poutine.trace(program).get_trace().nodes["_RETURN"]["value"]
        h, theta = cast(tuple[torch.Tensor, torch.Tensor], returned)
    return int(h), theta.numpy().astype(float)
