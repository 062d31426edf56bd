"""Simulation-refined populations: members that fire like the recording, by sequential Monte Carlo ABC.

A DIC population matches a recording in (g_s, g_u) only, and two numbers do not pin down a rhythm.  The
refinement simulates candidates and keeps those whose spike-train features match the recording's.

What the refined population is a sample of
    The ABC posterior ``pi_eps(theta | x) ~ p_world(theta) 1[d(x_theta, x) <= eps]`` with the training world as
    the prior.  A member is parametrised by ``theta = (seed parameters, g_s, g_u)`` and the compensation pair it
    was solved with: the seed parameters are the free draws of the model's seed population
    (:func:`dicsbi.compensation.draw_seed_parameters`: uniform values and a gamma g_leak), (g_s, g_u) is the DIC
    target, uniform over the posterior's box in the training world, and the conductances follow by
    compensation (:func:`dicsbi.compensation.seed_cells`, then the pair re-solved for the target).  The prior
    density is therefore known (:func:`seed_log_prior` times the box), restricted to valid cells as the
    training world is.  The pair is a label each member keeps (the training world picks the best-yield pair
    per target; here the posterior median's ranking, as :func:`dicsbi.pipeline.infer` does), and moves change
    the continuous parameters only.
Data used once
    The DIC posterior q(g_s, g_u | x) is only the *proposal* of the first generation: its members' weights are
    corrected by prior over proposal (1 / q, the box prior being flat), so x enters the target through the
    ABC indicator alone.
The sampler (Del Moral, Doucet & Jasra 2012, adaptive SMC-ABC)
    Each generation lowers the tolerance to keep ``alpha`` of the effective sample size, resamples
    (systematic) when the ESS falls under half the members, and moves every living member by Metropolis-
    Hastings steps targeting ``pi_eps``: a Gaussian random walk with the members' weighted covariance scaled
    by ``2.38^2 / dim``, accepted when the candidate is a valid cell inside the prior's support, within the
    tolerance, and passes the prior ratio; as many steps per generation as move about 90 % of the members
    (at most ``max_steps``).  It stops when the tolerance reaches ``eps_min``, the simulation budget is spent,
    or the move acceptance falls under ``min_acceptance`` (the tolerance then goes back to the previous
    generation's, at which the members still moved).  The final members are resampled and moved at the final
    tolerance until at least ``distinct_min`` of them are distinct (at most ``6 * max_steps`` moves), so
    that duplicates are rejuvenated.
Distance (:func:`train_features`, :func:`feature_distance`)
    Root-mean-square of standardised differences of: log rate (scale log 1.1), log main frequency (spiking
    frequency of a tonic train, burst frequency of a bursting one; scale log 1.1), ISI CV (scale
    max(0.05, 0.2 CV)), lag-1 ISI correlation (the return map's slope; scale 0.2; only for a recording with
    an ISI CV of at least 0.15, since a regular train's correlation is timing jitter) and, for a bursting
    recording, spikes per burst (scale max(1, 0.2 n)) and duty cycle (burst duration x burst frequency;
    scale 0.05); a feature the candidate lacks counts 3 scales; a different firing pattern
    (:func:`dicsbi.spikes.firing_pattern`: silent, tonic, bursting or irregular) adds 2.
Noise
    Candidates are simulated at the recording's noise level: the noise posterior's median over the DIC
    population where the posterior has one (0 when most of its mass is at 0), else ``RefineOptions.noise_std``;
    every simulation draws fresh noise.
"""

from .distance import FEATURES, feature_distance, recording_window, spread, train_features
from .sampler import Refinement, RefineOptions, refine
from .world import seed_log_prior

__all__ = ["FEATURES", "RefineOptions", "Refinement", "feature_distance", "recording_window", "refine",
           "seed_log_prior", "spread", "train_features"]
