"""Evidence of each hypothesis by two-stage importance sampling with solution-centred, then fitted, proposals.

For hypothesis ``m`` and before-population member ``k`` the evidence is
``Z_mk = ∫ p(theta | m, g_k) L(d(g_k exp(theta))) dtheta`` and ``Z_m = mean_k Z_mk`` (the members plate).

1. **Solution-centred start**: per (hypothesis, member), damped Gauss-Newton (Levenberg-Marquardt) on
   ``|W (d(theta) - mu)|^2 / 2 + |theta|^2 / (4 b^2)``, with ``mu``, ``W^T W = Sigma^-1`` the after posterior's
   mean and precision and ``2 b^2`` the cost prior's variance: the change closest to reaching the after DICs.
   The Gaussian approximation there, ``C = (J^T Sigma^-1 J + I / (2 b^2))^-1``, gives the first proposal
   ``alpha * prior + (1 - alpha) * t_4(theta*, 1.5 C)`` (defensive mixture: weights stay bounded by
   ``L_max / alpha`` whatever the Gaussian approximation misses, e.g. a curved or bimodal after posterior).
2. **Fitted proposal**: the weighted mean and covariance of the first stage's draws (shrunk towards ``C`` by
   their effective sample size) give the second proposal, again defensive.  Only the second stage's draws
   enter the estimate, so it stays unbiased for ``Z_mk``.

Monte Carlo errors: ``se`` is the standard error of ``log Z_m`` given the population (importance sampling
only: what a brute-force integration over the same population would differ by); ``se_population`` adds the
spread between members, i.e. what a fresh before-population would change.  Both by the delta method.

Everything is vectorised over hypotheses of one size x members x particles (:func:`dicsbi.modulation.model.
log_weights`); the forward map ``theta -> (g_s, g_u)`` is :class:`ConductanceForward` (the model's DICs of the
scaled conductances, calcium dependence included) or, for checks with a closed form, :class:`LinearForward`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..compensation import plausible_upper_bounds
from ..dics import SensitivityOperator
from ..models import get_model
from .model import Context, DefensiveMixture, cost_prior, log_weights

THETA_CLIP = 6.0    # |log-ratio| searched by Gauss-Newton (a factor of 400)
CHUNK_CELLS = 100_000


class ConductanceForward:
    """(g_s, g_u) at V_th of members ``g[N, n_g]`` with the channels ``index[H, s]`` scaled by ``exp(theta)``."""

    def __init__(self, model, members: np.ndarray, index: np.ndarray, vth_mV: float | None = None):
        self.model = get_model(model)
        self.members = np.asarray(members, dtype=float)
        self.index = np.asarray(index, dtype=np.int64)
        self.op = SensitivityOperator(self.model, self.model.vth_mV if vth_mV is None else vth_mV)
        upper = plausible_upper_bounds(self.model)
        g = np.moveaxis(self.members[:, self.index], 1, 0)          # [N, H, s] -> [H, N, s]
        self.low = np.full(g.shape, -np.inf)
        self.high = np.log(upper[self.index][:, None, :] / g)

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Return the modulated members' (g_s, g_u) at V_th.

        Parameters
        ----------
        theta : array, shape (H, N, S, s)
            Log-ratios of hypothesis ``h``'s channels ``index[h]`` for every member and particle.

        Returns
        -------
        array, shape (H, N, S, 2)
            g_s and g_u in units of g_leak.
        """
        theta = np.asarray(theta, dtype=float)                       # [H, N, S, s]
        H, N, S, s = theta.shape
        out = np.empty((H, N, S, 2))
        per = max(1, CHUNK_CELLS // max(N * S, 1))
        for h0 in range(0, H, per):
            h1 = min(H, h0 + per)
            g = np.broadcast_to(self.members[None, :, None, :], (h1 - h0, N, S, self.members.shape[1])).copy()
            for j in range(s):
                cols = self.index[h0:h1, j]
                g[np.arange(h1 - h0), :, :, cols] *= np.exp(theta[h0:h1, :, :, j])
            flat = g.reshape(-1, g.shape[-1])
            S_mat = self.op(flat)[:, 1:, :]
            out[h0:h1] = np.einsum("nij,nj->ni", S_mat, flat).reshape(h1 - h0, N, S, 2)
        return out

    def conductances(self, h: int, members: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Modulated conductances of ``members`` (indices) under hypothesis ``h`` with log-ratios ``theta``."""
        g = self.members[members].copy()
        g[:, self.index[h]] *= np.exp(theta)
        return g

    def dics(self, h: int, members: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """(g_s, g_u) of :meth:`conductances`, shape ``[n, 2]``."""
        g = self.conductances(h, members, theta)
        return np.einsum("nij,nj->ni", self.op(g)[:, 1:, :], g)


class LinearForward:
    """``d = d0[k] + B[h] theta``: the linear stand-in with a closed-form evidence under a Gaussian cost prior."""

    def __init__(self, d0: np.ndarray, B: np.ndarray, low=None, high=None):
        self.d0, self.B = np.asarray(d0, dtype=float), np.asarray(B, dtype=float)   # [N, 2], [H, 2, s]
        shape = (self.B.shape[0], self.d0.shape[0], self.B.shape[2])
        self.low = np.full(shape, -np.inf) if low is None else np.broadcast_to(low, shape).astype(float)
        self.high = np.full(shape, np.inf) if high is None else np.broadcast_to(high, shape).astype(float)

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Return ``d0[n] + B[h] theta[h, n, s]``, shape ``[H, N, S, 2]``, for log-ratios ``theta[H, N, S, s]``."""
        return self.d0[None, :, None, :] + np.einsum("hij,hnsj->hnsi", self.B, np.asarray(theta, dtype=float))


@dataclass
class Evidence:
    """The evidence of the hypotheses of one size, as :func:`estimate_evidence` estimates it.

    Per hypothesis (of one size): ``log_z``, its errors, the effective sample size, and the second stage's
    draws ``theta[H, N, S, s]`` with their log weights ``log_w[H, N, S]`` (the posterior of the change).
    """

    log_z: np.ndarray
    se: np.ndarray
    se_population: np.ndarray
    ess: np.ndarray
    theta: np.ndarray
    log_w: np.ndarray


def _whitening(cov: np.ndarray) -> np.ndarray:
    cov = np.asarray(cov, dtype=float) + 1e-9 * np.eye(2)
    return np.linalg.inv(np.linalg.cholesky(cov))


def solution_centres(forward, mean, cov, scale: float, n_iter: int = 15, eps: float = 1e-5):
    """Levenberg-Marquardt per (hypothesis, member): returns ``theta*[H, N, s]`` and ``C[H, N, s, s]``."""
    W = _whitening(cov)
    mean = np.asarray(mean, dtype=float)
    low = np.maximum(forward.low, -THETA_CLIP) + 1e-9
    high = np.minimum(forward.high, THETA_CLIP) - 1e-9
    H, N, s = low.shape
    lam = 1.0 / (2.0 * scale**2)
    eye = np.eye(s)
    theta = np.clip(np.zeros((H, N, s)), low, high)
    nu = np.full((H, N), 1e-3)

    def objective(th):
        r = (forward(th[:, :, None, :])[:, :, 0] - mean) @ W.T
        return 0.5 * np.sum(r**2, -1) + 0.5 * lam * np.sum(th**2, -1), r

    f, r = objective(theta)
    for _ in range(n_iter):
        pts = np.repeat(theta[:, :, None, :], s + 1, axis=2)
        pts[:, :, 1:, :] += eps * eye
        d = forward(pts)
        J = ((d[:, :, 1:, :] - d[:, :, :1, :]) / eps) @ W.T      # [H, N, s(param), 2]
        A = J @ np.swapaxes(J, -1, -2) + lam * eye                 # [H, N, s, s]
        grad = np.einsum("hnpi,hni->hnp", J, r) + lam * theta
        step = -np.linalg.solve(A + nu[..., None, None] * eye, grad[..., None])[..., 0]
        step *= np.minimum(1.0, 1.0 / np.maximum(np.abs(step).max(-1, keepdims=True), 1e-12))
        cand = np.clip(theta + step, low, high)
        f_new, r_new = objective(cand)
        better = f_new < f
        theta = np.where(better[..., None], cand, theta)
        f, r = np.where(better, f_new, f), np.where(better[..., None], r_new, r)
        nu = np.where(better, nu / 3.0, nu * 4.0)
    C = np.linalg.inv(A)
    return theta, 0.5 * (C + np.swapaxes(C, -1, -2))


def _t_proposal(loc: np.ndarray, cov: np.ndarray, S: int, df: float = 4.0):
    import pyro.distributions as dist

    s = loc.shape[-1]
    L = np.linalg.cholesky(cov + 1e-10 * np.eye(s))
    loc_t = torch.as_tensor(loc, dtype=torch.float64)[:, :, None, :].expand(*loc.shape[:2], S, s)
    L_t = torch.as_tensor(L, dtype=torch.float64)[:, :, None].expand(*loc.shape[:2], S, s, s)
    return dist.MultivariateStudentT(torch.tensor(df, dtype=torch.float64), loc_t, L_t)


def _weighted_moments(theta: np.ndarray, lw: np.ndarray):
    """Per (hypothesis, member): weighted mean, covariance and effective sample size of the draws."""
    m = np.max(lw, axis=-1, keepdims=True)
    w = np.exp(lw - np.where(np.isfinite(m), m, 0.0))
    w = np.where(np.isfinite(lw), w, 0.0)
    tot = w.sum(-1, keepdims=True)
    p = w / np.where(tot > 0, tot, 1.0)
    mu = np.einsum("hns,hnsj->hnj", p, theta)
    dev = theta - mu[:, :, None, :]
    cov = np.einsum("hns,hnsi,hnsj->hnij", p, dev, dev)
    ess = 1.0 / np.maximum(np.sum(p**2, -1), 1e-300) * (tot[..., 0] > 0)
    return mu, cov, ess


def estimate_evidence(forward, log_likelihood, mean, cov, scale: float, kind: str = "laplace",
                      n_pilot: int = 64, n_particles: int = 256, alpha: float = 0.1, seed: int = 0) -> Evidence:
    """Two-stage importance sampling (module docstring) for the hypotheses of one size held by ``forward``.

    ``log_likelihood`` maps points ``d[..., 2]`` to log L; ``mean``/``cov`` describe the after posterior.
    """
    low_t = torch.as_tensor(forward.low, dtype=torch.float64)
    high_t = torch.as_tensor(forward.high, dtype=torch.float64)

    def loglik(theta_t):
        return torch.as_tensor(log_likelihood(forward(theta_t.detach().numpy())), dtype=torch.float64)

    def prior(S):
        H, N, s = forward.low.shape
        # bounds [H, N, 1, s]: the truncation mass is computed per member, then expanded over particles
        return cost_prior(kind, scale, low_t[:, :, None, :], high_t[:, :, None, :]).expand((H, N, S))

    centre, C = solution_centres(forward, mean, cov, scale)
    with torch.random.fork_rng(devices=[]), one_torch_thread():
        torch.manual_seed(int(seed))
        pilot = Context(prior(n_pilot), loglik, None)
        pilot.proposal = DefensiveMixture(pilot.prior, _t_proposal(centre, 1.5 * C, n_pilot), 2 * alpha)
        th1, lw1 = log_weights(pilot)
        mu, cov_w, ess1 = _weighted_moments(th1.numpy(), lw1.numpy())
        k = 5.0
        fitted = (ess1[..., None, None] * cov_w + k * C) / (ess1[..., None, None] + k)
        use_fit = ess1 >= 5.0
        loc = np.where(use_fit[..., None], mu, centre)
        scale_mat = np.where(use_fit[..., None, None], 1.5 * fitted, 1.5 * C)
        main = Context(prior(n_particles), loglik, None)
        main.proposal = DefensiveMixture(main.prior, _t_proposal(loc, scale_mat, n_particles), alpha)
        theta, lw = log_weights(main)
    theta_np, lw_np = theta.numpy(), lw.numpy()
    return Evidence(*_summarise(lw_np), theta=theta_np, log_w=lw_np)


@contextmanager
def one_torch_thread():
    """Run torch on one thread inside the ``with`` block.

    A torch op split over threads can round differently in the last bit (vectorised and scalar paths meet at
    other places), so results would depend on the thread count (1e-11 nats, but outputs must be byte-identical
    for any ``--threads``).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _summarise(lw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return log Z per hypothesis, its IS and population standard errors, and the ESS, from ``lw[H, N, S]``."""
    H, N, S = lw.shape
    top = np.max(lw.reshape(H, -1), axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.where(np.isfinite(lw), np.exp(lw - top[:, None, None]), 0.0)
    I_k = w.mean(-1)                                   # per-member estimates (scaled)
    Z = I_k.mean(-1)
    var_is = (w.var(-1, ddof=1) / S).sum(-1) / N**2
    var_pop = I_k.var(-1, ddof=1) / N if N > 1 else np.zeros(H)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_z = np.where(Z > 0, np.log(Z) + top, -np.inf)
        se = np.where(Z > 0, np.sqrt(var_is) / Z, np.inf)
        se_pop = np.where(Z > 0, np.sqrt(var_pop + var_is) / Z, np.inf)
        flat = w.reshape(H, -1)
        ess = np.where(Z > 0, flat.sum(1) ** 2 / np.sum(flat**2, 1), 0.0)
    return log_z, se, se_pop, ess
