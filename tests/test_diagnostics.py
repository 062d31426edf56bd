"""Calibration diagnostics on a conjugate Gaussian problem where the exact posterior is known."""

import numpy as np
from scipy.stats import multivariate_normal

from dicsbi.diagnostics.metrics import coverage_interval, expected_coverage, sbc_ks_pvalues, sbc_ranks, tarp


def gaussian_problem(rng, n_obs=2000, n_samples=400, scale=1.0):
    """theta ~ N(0, I) in 2-D, x = theta + N(0, 0.5^2 I); exact posterior N(0.8 x, 0.2 I).
    ``scale`` multiplies the posterior std (1: calibrated, < 1 over-confident, > 1 under-confident)."""
    theta = rng.standard_normal((n_obs, 2))
    x = theta + 0.5 * rng.standard_normal((n_obs, 2))
    mean, sd = 0.8 * x, np.sqrt(0.2) * scale
    samples = mean[:, None, :] + sd * rng.standard_normal((n_obs, n_samples, 2))
    cov = sd**2 * np.eye(2)
    lp_s = np.array([multivariate_normal(m, cov).logpdf(s) for m, s in zip(mean, samples)])
    lp_t = np.array([multivariate_normal(m, cov).logpdf(t) for m, t in zip(mean, theta)])
    return theta, samples, lp_s, lp_t


def test_calibrated_posterior_passes(rng):
    theta, samples, lp_s, lp_t = gaussian_problem(rng)
    cov = expected_coverage(lp_s, lp_t)
    for level, value in cov.items():
        assert abs(value - level) < 0.03, cov
    assert (sbc_ks_pvalues(samples, theta) > 0.01).all()
    r = sbc_ranks(samples, theta)
    assert r.min() > 0 and r.max() < 1
    t = tarp(samples, theta, [[-5, 5], [-5, 5]])
    assert abs(t["atc"]) < 0.02 and t["ks_pvalue"] > 0.01
    assert t["ecp"][0] == 0 and t["ecp"][-1] == 1


def test_over_and_under_confident_posteriors_are_flagged(rng):
    _, _, lp_s, lp_t = gaussian_problem(rng, scale=0.6)
    assert expected_coverage(lp_s, lp_t)[0.8] < 0.65  # too narrow: truth falls outside too often
    theta, samples, lp_s, lp_t = gaussian_problem(rng, scale=1.6)
    assert expected_coverage(lp_s, lp_t)[0.5] > 0.7
    assert (sbc_ks_pvalues(samples, theta) < 1e-3).all()


def clustered_problem(rng, n_targets=150, per=16, n_samples=200):
    """1-D conjugate problem whose cells come in clusters sharing theta (a DIC target and its cells):
    theta ~ N(0, 1), x = theta + N(0, 1), exact posterior N(x / 2, 1 / 2).  Given theta the coverage of the
    exact posterior is not the nominal level (shrinkage), so indicators within a cluster are correlated."""
    theta = np.repeat(rng.standard_normal(n_targets), per)
    x = theta + rng.standard_normal(theta.size)
    mean, sd = 0.5 * x, np.sqrt(0.5)
    samples = mean[:, None] + sd * rng.standard_normal((theta.size, n_samples))
    lp_s, lp_t = -0.5 * ((samples - mean[:, None]) / sd) ** 2, -0.5 * ((theta - mean) / sd) ** 2
    return lp_s, lp_t, np.repeat(np.arange(n_targets), per)


def test_cluster_bootstrap_interval_matches_the_spread_of_replicate_test_sets(rng):
    """The interval resampling targets is as wide as replicate test sets scatter; one resampling cells is too narrow."""
    replicate, half_cluster, half_iid = [], [], []
    for k in range(40):
        lp_s, lp_t, clusters = clustered_problem(rng)
        replicate.append(expected_coverage(lp_s, lp_t)[0.5])
        lo, hi = coverage_interval(lp_s, lp_t, clusters, n_boot=400, seed=k)[0.5]
        half_cluster.append((hi - lo) / 2)
        lo, hi = coverage_interval(lp_s, lp_t, None, n_boot=400, seed=k)[0.5]
        half_iid.append((hi - lo) / 2)
    spread = 1.96 * np.std(replicate)
    assert abs(np.mean(replicate) - 0.5) < 0.02  # the exact posterior is calibrated on average
    assert 0.6 < np.mean(half_cluster) / spread < 1.6, (np.mean(half_cluster), spread)
    assert np.mean(half_iid) < 0.8 * np.mean(half_cluster)
    lo, hi = coverage_interval(lp_s, lp_t, clusters, levels=(0.8,), seed=1)[0.8]
    assert lo < expected_coverage(lp_s, lp_t)[0.8] < hi
