"""How the after recording enters the model: a likelihood over the modulated cell's (g_s, g_u).

The amortised posterior was trained on a prior uniform over its DIC box, so
``p(x | d) = q(d | x) p(x) / p(d) ∝ q(d | x) * area(box)`` for d inside the box and 0 outside: the posterior-to-
prior density ratio is a likelihood for the DICs (the constant p(x) is shared by every hypothesis and cancels in
Bayes factors).  :class:`GridLikelihood` tabulates ``log q(d | x_after)`` once per recording (a coarse 161 x 161
grid over the whole box and a fine 241 x 241 grid over the region holding the posterior mass, laid along the
posterior's principal axes, 0.05 % to 99.95 % quantiles plus a margin) and interpolates bilinearly: evaluating the
flow for the millions of points an evidence needs would dominate the run time.  The table's error, measured as
``log E_q[exp(log q_table - log q)]`` over posterior draws, is about -0.001 nats for STG and -0.015 for the
sharper DA posteriors (tests/test_modulation.py checks it); it is largely shared by all hypotheses.
:class:`GaussianLikelihood` is the closed-form stand-in used to check the evidence estimator.

Every likelihood also carries the mean and covariance of the after posterior, from which the evidence estimator
builds its solution-centred proposals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DicsbiError


@dataclass
class _Grid:
    """Log density on a regular grid in coordinates ``u = (d - centre) @ rotation``, interpolated bilinearly.

    The identity rotation gives the plain axes; ``valid`` marks nodes inside the box (cells touching another
    node are not used).
    """

    lo: np.ndarray      # [2] first node (u coordinates)
    step: np.ndarray    # [2]
    values: np.ndarray  # [nx, ny] log density at the nodes
    centre: np.ndarray = field(default_factory=lambda: np.zeros(2))
    rotation: np.ndarray = field(default_factory=lambda: np.eye(2))
    valid: np.ndarray | None = None

    def _cells(self, d: np.ndarray):
        u = (d - self.centre) @ self.rotation
        n = np.array(self.values.shape)
        f = (u - self.lo) / self.step
        inside = np.all((f >= 0) & (f <= n - 1), axis=-1)
        f = np.clip(f, 0.0, n - 1.000001)
        i = f.astype(np.int64)
        return i, f - i, inside

    def contains(self, d: np.ndarray) -> np.ndarray:
        i, _, inside = self._cells(d)
        if self.valid is None:
            return inside
        v = self.valid
        i0, i1 = i[..., 0], i[..., 1]
        return inside & v[i0, i1] & v[i0 + 1, i1] & v[i0, i1 + 1] & v[i0 + 1, i1 + 1]

    def __call__(self, d: np.ndarray) -> np.ndarray:
        i, t, _ = self._cells(d)
        v = self.values
        a = v[i[..., 0], i[..., 1]] * (1 - t[..., 1]) + v[i[..., 0], i[..., 1] + 1] * t[..., 1]
        b = v[i[..., 0] + 1, i[..., 1]] * (1 - t[..., 1]) + v[i[..., 0] + 1, i[..., 1] + 1] * t[..., 1]
        return a * (1 - t[..., 0]) + b * t[..., 0]


class GridLikelihood:
    """``log q(d | x) + log area(box)`` of one recording, tabulated (see the module docstring).

    Build with :meth:`from_posterior`; call with points ``d[..., 2]`` (g_s, g_u); -inf outside the box.
    """

    def __init__(self, box, coarse: _Grid, fine: _Grid, samples, n_spikes: int = 0):
        self.box = np.asarray(box, dtype=float)
        self.coarse, self.fine = coarse, fine
        self.samples = np.asarray(samples, dtype=float)   # after-posterior draws [n, 2]
        self.mean, self.cov = self.samples.mean(0), np.cov(self.samples.T)
        self.log_area = float(np.log(np.prod(self.box[:, 1] - self.box[:, 0])))
        self.n_spikes = n_spikes

    @classmethod
    def from_posterior(cls, posterior, train, n_coarse: int = 161, n_fine: int = 241, n_samples: int = 4000,
                       seed: int = 0) -> GridLikelihood:
        """Tabulate ``posterior``'s density for one spike ``train``.

        ``train`` is an array of spike times or a one-train :class:`~dicsbi.spikes.SpikeTrains`.
        """
        from .evidence import one_torch_thread

        with one_torch_thread():  # identical tables for any thread count (see one_torch_thread)
            return cls._tabulate(posterior, train, n_coarse, n_fine, n_samples, seed)

    @classmethod
    def _tabulate(cls, posterior, train, n_coarse, n_fine, n_samples, seed) -> GridLikelihood:
        from ..spikes import SpikeTrains

        one = train if isinstance(train, SpikeTrains) else SpikeTrains.from_list([train])
        if len(one) != 1:
            raise DicsbiError(f"GridLikelihood needs one spike train, got {len(one)}")
        box = np.array(posterior.config.box, dtype=float)  # [[gs_lo, gs_hi], [gu_lo, gu_hi]]
        samples = posterior.sample(one, n_samples, seed=seed)[0]
        inset = 1e-4 * (box[:, 1] - box[:, 0])  # the flow's density is finite only in the open box

        def evaluate(pts):
            lp = posterior.log_prob(pts.reshape(-1, 1, 2), one)[:, 0].reshape(pts.shape[:-1])
            return np.where(np.isfinite(lp), lp, np.nan)

        axes = [np.linspace(box[k, 0] + inset[k], box[k, 1] - inset[k], n_coarse) for k in range(2)]
        lp = evaluate(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1))
        floor = np.nanmin(lp) if np.isfinite(np.nanmin(lp)) else -1e3
        coarse = _Grid(np.array([a[0] for a in axes]), np.array([a[1] - a[0] for a in axes]),
                       np.nan_to_num(lp, nan=floor))
        # fine grid along the posterior's principal axes: a thin, tilted ridge is resolved like a round blob
        centre = samples.mean(0)
        _, rotation = np.linalg.eigh(np.cov(samples.T) + 1e-12 * np.eye(2))
        u = (samples - centre) @ rotation
        q_lo, q_hi = np.quantile(u, [0.0005, 0.9995], axis=0)
        margin = 0.15 * (q_hi - q_lo) + 1e-6
        lo, hi = q_lo - margin, q_hi + margin
        uax = [np.linspace(lo[k], hi[k], n_fine) for k in range(2)]
        U = np.stack(np.meshgrid(*uax, indexing="ij"), axis=-1)
        D = centre + U @ rotation.T
        valid = np.all((D > box[:, 0] + inset) & (D < box[:, 1] - inset), axis=-1)
        lp = evaluate(np.where(valid[..., None], D, centre))
        valid &= np.isfinite(lp)
        fine = _Grid(lo, (hi - lo) / (n_fine - 1), np.nan_to_num(lp, nan=floor), centre, rotation, valid)
        return cls(box, coarse, fine, samples, int(one.counts[0]))

    def __call__(self, d) -> np.ndarray:
        """Return ``log q(d | x) + log area(box)`` at points ``d[..., 2]`` (g_s, g_u); -inf outside the box."""
        d = np.asarray(d, dtype=float)
        inside = np.all((d >= self.box[:, 0]) & (d <= self.box[:, 1]), axis=-1)
        out = np.where(self.fine.contains(d), self.fine(d), self.coarse(d)) + self.log_area
        return np.where(inside, out, -np.inf)


class GaussianLikelihood:
    """``log N(d; mean, cov)``, a closed-form likelihood over (g_s, g_u).

    It is the stand-in for :class:`GridLikelihood` in tests of the estimator, and the benchmark's oracle that
    knows the after cell's DICs (a narrow Gaussian at them).
    """

    def __init__(self, mean, cov, n_samples: int = 4000, seed: int = 0):
        self.mean, self.cov = np.asarray(mean, dtype=float), np.asarray(cov, dtype=float)
        self._prec = np.linalg.inv(self.cov)
        self._norm = -0.5 * np.linalg.slogdet(2 * np.pi * self.cov)[1]
        # draws of the density itself, the stand-in for the after posterior's samples
        self.samples = np.random.default_rng(seed).multivariate_normal(self.mean, self.cov, n_samples)

    def __call__(self, d) -> np.ndarray:
        """Return ``log N(d; mean, cov)`` at points ``d[..., 2]`` (g_s, g_u)."""
        r = np.asarray(d, dtype=float) - self.mean
        return self._norm - 0.5 * np.einsum("...i,ij,...j->...", r, self._prec, r)
