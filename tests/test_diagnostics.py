"""Calibration diagnostics on a conjugate Gaussian problem where the exact posterior is known."""

import numpy as np
from scipy.stats import multivariate_normal

from dicsbi.diagnostics.metrics import expected_coverage, sbc_ks_pvalues, sbc_ranks, tarp


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
