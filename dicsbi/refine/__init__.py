"""Simulation-refined populations: members that fire like the recording, by sequential Monte Carlo ABC.

A DIC population matches a recording in (g_s, g_u) only, and two numbers do not pin down a rhythm.  The
refinement simulates candidates and keeps those whose spike-train features match the recording's.

What the refined population is a sample of
    The ABC posterior ``pi_eps(theta | x) ~ p_world(theta) 1[d(x_theta, x) <= eps]`` whose prior is a mixture
    of two worlds (:mod:`dicsbi.refine.world`; weight ``RefineOptions.wide`` on the second, default 0.5):
    the DIC posterior's training world and a wide world over the model's plausible box.  A member is
    parametrised by ``theta = (seed parameters, z, s, g_s, g_u)``, a component label and the compensation pair
    it was solved with (``s``: its noise, below).  In the training world the seed parameters are the free draws
    of the model's seed population (:func:`dicsbi.compensation.draw_seed_parameters`: uniform values and a gamma
    g_leak) and the conductances follow by compensation (:func:`dicsbi.compensation.seed_cells`, then the pair
    re-solved for the target); in the wide world ``z`` is log10 of every conductance, uniform over two decades below
    each maximum of the plausible box, and the pair is re-solved from it.  (g_s, g_u) is the DIC target, uniform
    over the posterior's box in both.  The prior density is therefore known (:func:`seed_log_prior`, the
    log-uniform block and the box), restricted to valid cells as the training world is.  The issue asked for
    the training world as prior; the mixture is the documented departure: the training world alone spans a
    fraction of the plausible box, so a cell made another way (the unseen test world) lies outside every
    population drawn from it (see :mod:`dicsbi.refine.world`).  The component is a label each member keeps; the
    pair is a function of ``theta``: the first in the ranking of the target's own grid cell
    (:func:`dicsbi.pair_ranking.pair_ranking`, the training world's best-yield rule) that makes a valid cell,
    so the prior does not depend on the recording (ranking every member by the posterior median, as the
    unrefined populations do, would let x into the prior).
Data used once
    The DIC posterior q(g_s, g_u | x) is only part of the *proposal* of the first generation, a defensive
    mixture ``beta U(box) + (1 - beta) q`` (``RefineOptions.defensive``, default 0.3; Hesterberg 1995) so that a
    posterior that misplaces the cell (one made unlike its training world) cannot confine the population: the
    members' weights are prior over proposal, so x enters the target through the ABC indicator alone.
The sampler (Del Moral, Doucet & Jasra 2012, adaptive SMC-ABC)
    Each generation lowers the tolerance to keep ``alpha`` (default 0.5) of the effective sample size, resamples
    (systematic) when the ESS falls under half the members, and moves every living member by Metropolis-Hastings
    steps targeting ``pi_eps``: a Gaussian random walk on the member's component block and (g_s, g_u) with that
    component's weighted covariance scaled by ``2.38^2 / dim`` and by a step factor adapted between sweeps (halved
    after a sweep accepting under 15 %, grown 1.5-fold over 50 %), accepted when the candidate is a valid cell
    inside the prior's support, within the tolerance and passes the prior ratio; as many steps per generation as
    move about 90 % of the members (at most ``max_steps``).  It stops when the tolerance reaches ``eps_min``, the
    simulation budget is spent, or the move acceptance (the generation's best sweep) falls under
    ``min_acceptance`` (the tolerance then goes back to the previous generation's, at which the members still
    moved).  The final members are resampled and the copies among them moved at the final tolerance until at
    least ``distinct_min`` of them are distinct (at most ``6 * max_steps`` moves; the distinct ones stay).
    ``RefineOptions.independent`` replaces that share of the random-walk proposals by independent draws from a
    Gaussian fitted to the component's members (1.5 times their spread; accepted with the Metropolis-Hastings
    ratio of prior and proposal densities; default 0).
    ``RefineOptions.oversample`` enlarges the first generation (default 1: on 24 STG cells of the refinement's
    own prior, 3 gave the same truth coverage, 0.72, for 17 % more time).
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
    every simulation draws fresh noise, and clean members are simulated without any.  That plugs an estimate
    from x into the simulator; ``RefineOptions(noise_parameter=True)`` instead makes noise a parameter of the
    world (the training world's noise prior, a point mass at 0 and a uniform part up to its top;
    :class:`~dicsbi.refine.world.World`), proposed first half from the prior, half near that median (weights
    prior over proposal), and moved with the rest, so each member has its own level and x enters once.  It is
    not the default because it measured worse: on 24 STG cells of the refinement's own prior the truth coverage
    fell from 0.72 to 0.64 (one more dimension to explore under the same budget; a recording's noise is often
    not identified: a fast tonic cell fires alike at 0 and 3 uA/cm^2).
Measured alternatives (24 STG cells of the refinement's own prior, truth coverage of the 90 % intervals, one
core; the default 0.71-0.72, 9.2 s per recording)
    ``oversample=3`` 0.72 (11.4 s); ``final_moves=3`` 0.73 (13.2 s); ``alpha=0.8`` 0.84 (9.6 s) but only by
    stopping at larger tolerances (median 1.3 instead of 0.3: members that no longer fire like the recording);
    ``alpha=0.7`` with a budget of 5000 simulations 0.79 (median tolerance 0.44); resampling within each world
    (keeping its weight) 0.71; a defensive share of 0.5 or 0.8 0.71 / 0.69; the first generation's proposal as
    a global independence move for 30 % or 50 % of the moves 0.69 / 0.66 (it is accepted too rarely: the
    target's region is a small part of that proposal); Gaussian kernels of 1, 3 or 6 posterior deviations
    around the DIC posterior's samples instead of the posterior itself 0.63 / 0.64 / 0.66;
    ``independent=0.5`` or ``0.8`` (independent proposals from a Gaussian fitted to the members) 0.69 / 0.69
    with 18-24 % fewer simulations (0.80 / 0.81 against 0.79 on the cells below that the reference resolves);
    on 8 DA recordings ``independent=0.8`` spent about as many simulations on the 6 clean ones and stopped one
    of the 2 noisy ones at tolerance 0.5 instead of 0.3, so it stays opt-in.
    On the first 60 own-world recordings of ``experiments/eval_populations.py`` (seed 31; 95 % bootstrap over
    recordings; 2026-12-07, ``--refine-options``): the default 0.810 [0.750, 0.867] at a median of ~1300
    simulations; ``differential=0.5`` (differential-evolution moves, ter Braak 2006, for half the proposals:
    they follow a curved or split population where one covariance cannot) 0.785 [0.723, 0.844];
    ``final_moves=3`` 0.827 [0.762, 0.883] for 2058 simulations (1.5 times the time).  Neither is a gain beyond
    the recordings' scatter, so both stay opt-in.
    Proposal flows (:mod:`dicsbi.refine.flow`, ``proposal="flow"``; 2026-12-08, 40 recordings of seed 31,
    the default 0.841 [0.766, 0.903]): a conditional flow per component trained on 103,779 simulated prior
    cells put 3 times as many first-generation candidates within 0.3, but with more uneven weights (ESS 4-6
    against 7), and covered 0.750-0.800 depending on its context and spread; not shipped.
    A final importance sample around the SMC's members (Gaussian kernels of twice their covariance mixed with
    10 % of the first generation's proposal, weights prior over proposal, 1000 candidates) reached effective
    sample sizes of 12 and 1.5 on two of these cells: the members miss parts of the target that the proposal's
    defensive draws find, so it was not kept.
An exact reference (``experiments/refine_reference.py``)
    The same target sampled by importance sampling with 16,000 simulations per recording from the first
    generation's proposal.  On 24 clean cells of the DIC posterior's own world it covers the truth 0.880 at
    tolerance 0.3 (0.911 on the 21 cells where its ESS is at least 30, against 0.804 for the SMC on the same
    cells), 0.932 at 0.5 and 0.953 at 1.0: the target is calibrated there and the SMC loses about 0.1 to its
    sampling (members that descend from few ancestors).  On the 24 cells of the refinement's own prior above it
    covers 0.755 at 0.3, 0.802 at 0.5, 0.823 at 1.0; 0.866 on the 14 cells it resolves (the SMC 0.786), and on
    the other 10 the proposal almost never lands within 0.3 (the SMC covers 0.612): the target's (g_s, g_u)
    marginal is wider than the DIC posterior (median ratio of deviations 2.0 and 2.6 for g_s and g_u, against
    1.3 and 1.5 on the own world's cells) and, for wide-world cells, elsewhere, so a posterior trained on the
    seeded world alone is a poor proposal for them.
"""

from .distance import FEATURES, feature_distance, recording_window, spread, train_features
from .sampler import Refinement, RefineOptions, refine
from .world import seed_log_prior

__all__ = ["FEATURES", "RefineOptions", "Refinement", "feature_distance", "recording_window", "refine",
           "seed_log_prior", "spread", "train_features"]
