"""Calibration diagnostics of a posterior from its samples: expected coverage, SBC ranks, TARP.

All functions take precomputed posterior samples ``[n_obs, n_samples, d]`` and the true parameters
``[n_obs, d]`` (plus log densities where needed), so one sampling pass serves every diagnostic and any
posterior (ours, or another sbi posterior) can be checked the same way.

* :func:`expected_coverage`: for credibility levels alpha, the fraction of observations whose true parameter
  lies inside the alpha highest-posterior-density region, estimated from samples: theta is inside when fewer
  than a fraction alpha of the samples have a higher density than theta.  Calibrated: coverage = alpha.
* :func:`coverage_interval`: a bootstrap interval of that coverage that resamples *clusters* of observations
  (the cells of one DIC target share their true parameters, so their coverage indicators are not independent:
  a test set of 250 targets x 16 cells holds nearer 250 than 4000 independent observations).
* :func:`sbc_ranks` / :func:`sbc_ks_pvalues`: simulation-based calibration (Talts et al. 2018), rank of each
  true parameter among the marginal samples, uniform when calibrated (Kolmogorov-Smirnov p-values; ties broken
  at random, seeded).
* :func:`tarp`: Tests of Accuracy with Random Points (Lemos et al. 2023) on a fixed credibility grid over
  [0, 1] (sbi's implementation bins between the smallest and largest observed value instead); parameters are
  scaled to the prior box first.  ``atc`` is sbi's area-to-curve statistic (sum over alpha >= 0.5 of
  (ECP - alpha) d alpha; 0 when calibrated, > 0 under-confident, < 0 over-confident).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kstest


def expected_coverage(log_prob_samples: np.ndarray, log_prob_true: np.ndarray,
                      levels=(0.5, 0.8, 0.95)) -> dict[float, float]:
    """HPD coverage per level; ``log_prob_samples`` is ``[n_obs, n_samples]``, ``log_prob_true`` ``[n_obs]``."""
    frac_above = (log_prob_samples > log_prob_true[:, None]).mean(axis=1)
    return {float(a): float(np.mean(frac_above < a)) for a in levels}


def coverage_interval(log_prob_samples: np.ndarray, log_prob_true: np.ndarray, clusters: np.ndarray | None = None,
                      levels=(0.5, 0.8, 0.95), n_boot: int = 2000, ci: float = 0.95,
                      seed: int = 0) -> dict[float, tuple[float, float]]:
    """Bootstrap interval of :func:`expected_coverage` per level, resampling whole clusters (seeded).

    ``clusters`` labels each observation (e.g. its DIC target); None resamples observations one by one.
    """
    inside = (log_prob_samples > log_prob_true[:, None]).mean(axis=1)[:, None] < np.asarray(levels)[None]
    labels = np.arange(len(inside)) if clusters is None else np.asarray(clusters)
    _, inv = np.unique(labels, return_inverse=True)
    sums = np.stack([np.bincount(inv, inside[:, k], minlength=inv.max() + 1) for k in range(len(levels))], 1)
    lo, hi = cluster_share_interval(sums, np.bincount(inv, minlength=inv.max() + 1), n_boot, ci, seed)
    return {float(a): (float(lo[k]), float(hi[k])) for k, a in enumerate(levels)}


def cluster_share_interval(sums: np.ndarray, sizes: np.ndarray, n_boot: int = 2000, ci: float = 0.95,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap interval of a share ``sum(sums) / sum(sizes)`` resampling whole clusters (seeded).

    ``sums`` holds each cluster's count of successes (``[n_clusters]`` or ``[n_clusters, k]`` for k shares at
    once), ``sizes`` its number of trials; returns the lower and upper bounds (scalars or ``[k]``).
    """
    sums, sizes = np.asarray(sums, dtype=float), np.asarray(sizes, dtype=float)
    draws = np.random.default_rng(seed).integers(len(sizes), size=(n_boot, len(sizes)))
    total = np.maximum(sizes[draws].sum(1), 1)
    share = sums[draws].sum(1) / (total if sums.ndim == 1 else total[:, None])
    lo, hi = np.quantile(share, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return lo, hi


def sbc_ranks(samples: np.ndarray, theta: np.ndarray, seed: int = 0) -> np.ndarray:
    """``[n_obs, d]`` normalised ranks in [0, 1] of each true value among its marginal samples."""
    rng = np.random.default_rng(seed)
    below = (samples < theta[:, None, :]).sum(axis=1)
    ties = (samples == theta[:, None, :]).sum(axis=1)
    ranks = below + rng.integers(0, ties + 1)
    return (ranks + rng.random(ranks.shape)) / (samples.shape[1] + 1)


def sbc_ks_pvalues(samples: np.ndarray, theta: np.ndarray, seed: int = 0) -> np.ndarray:
    """Kolmogorov-Smirnov p-value of uniform SBC ranks, per dimension."""
    r = sbc_ranks(samples, theta, seed)
    return np.array([kstest(r[:, k], "uniform").pvalue for k in range(r.shape[1])])


def tarp(samples: np.ndarray, theta: np.ndarray, box, n_bins: int = 50, seed: int = 0) -> dict:
    """TARP expected coverage curve and its ATC / KS summaries (references uniform over the box)."""
    box = np.asarray(box, dtype=float)
    lo, hi = box[:, 0], box[:, 1]
    rng = np.random.default_rng(seed)
    s = (samples - lo) / (hi - lo)
    t = (theta - lo) / (hi - lo)
    ref = rng.random(t.shape)
    d_samples = np.linalg.norm(s - ref[:, None, :], axis=-1)
    d_true = np.linalg.norm(t - ref, axis=-1)
    f = (d_samples < d_true[:, None]).mean(axis=1)
    alpha = np.linspace(0.0, 1.0, n_bins + 1)
    ecp = np.array([np.mean(f < a) for a in alpha])
    ecp[-1] = 1.0  # every reference ball of credibility 1 holds the truth
    mid = alpha.size // 2
    atc = float(((ecp[mid:] - alpha[mid:]) * (alpha[1] - alpha[0])).sum())
    return {"alpha": alpha, "ecp": ecp, "atc": atc, "ks_pvalue": float(kstest(f, "uniform").pvalue)}
