"""The adaptive SMC-ABC sampler of the refinement (Del Moral, Doucet & Jasra 2012; see :mod:`dicsbi.refine`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import _seeds
from ..compensation import candidate_pairs
from ..errors import DicsbiError
from ..models import Model, get_model
from ..spikes import SILENT, SpikeTrains
from .distance import Simulator, recording_window, train_features
from .flow import ProposalFlow
from .proposal import FlowProposal, Proposal, first_generation, noise_prior
from .world import WIDE, World

INFLATION = 1.5  # the independent proposals' spread: this many times the members' (per direction)


@dataclass(frozen=True)
class RefineOptions:
    """Settings of the refinement (defaults: members and budget for about 10 s per STG recording).

    Attributes
    ----------
    n_members
        Members of the refined population (SMC particles).
    alpha
        Share of the effective sample size kept by each tolerance step.
    eps_min
        Tolerance at which the sampler stops (standardised feature distance).
    eps_flag
        A recording whose final tolerance is above this is flagged as not reproduced.
    min_acceptance
        The sampler stops when fewer moves than this are accepted.
    max_generations, max_simulations
        Budget per recording; ``max_simulations`` is for ``n_members`` members (``infer``, which sets
        ``n_members`` to its ``n_models``, scales it in proportion: 30 simulations per member by default).
    max_steps
        Most Metropolis-Hastings steps per generation (as many as needed for 90 % of the members to move).
    distinct_min, ess_min
        Degeneracy must survive: at least these shares of distinct members and effective sample size.
    noise_std
        Noise level of the candidates when the posterior has no noise posterior (uA/cm^2).
    noise_parameter
        With a noise posterior: make noise a parameter of the world (:mod:`dicsbi.refine.world`) instead of
        simulating at the noise posterior's median level (default off: see :mod:`dicsbi.refine`, Noise).
    final_moves
        After the final resampling, every member moves at the final tolerance until the members have accepted
        this many moves on average (at most ``6 * max_steps`` sweeps): a population that descends from few
        ancestors spreads over the tolerance region (0: only copies move, until ``distinct_min``).
    independent
        Share of the Metropolis-Hastings proposals that are independent draws from a Gaussian fitted to the
        members of the proposer's component (``INFLATION`` times their spread) instead of random-walk steps:
        a member jumps across the population's region in one move, so the population does not stay with the
        few ancestors that survive the tolerance steps (0: random walks only).
    differential
        Share of the proposals that are differential-evolution moves (ter Braak 2006): the member plus
        ``2.38 / sqrt(2 dim)`` (1 in a tenth of them) times the difference of two other members of its
        component, plus a jitter of 1e-3 of their spread: symmetric given the population, so they follow its
        shape, curved or split, where one covariance cannot (0: none).
    wide
        Prior weight of the wide world (:mod:`dicsbi.refine.world`; 0: the training world alone).
    defensive
        Share of the first generation's DIC targets drawn from the prior box instead of the DIC posterior (a
        defensive mixture proposal, Hesterberg 1995): the population can leave a posterior that misplaces the
        recording's cell; 0 proposes from the posterior alone.
    proposal
        The first generation's proposal: ``"posterior"`` (default) the DIC posterior for (g_s, g_u) and the
        prior for the rest; ``"flow"`` the refinement's proposal flows in the posterior's folder
        (:mod:`dicsbi.refine.flow`, written by ``experiments/train_refine_proposal.py``; none ships: they
        measured worse, see :mod:`dicsbi.refine`).
    flow_spread
        The proposal flows' base distribution this many times wider: a proposal narrower than the target gives
        the few members in its tails most of the weight.
    oversample
        The first generation proposes ``oversample * n_members`` candidates (importance-weighted), and the
        first resampling keeps ``n_members``: more of the prior's modes are seen before the tolerance falls.
    tier
        Accuracy tier of the simulations (``"fast"``: validated for class and ISI).
    device
        Where candidates are simulated (``"cpu"`` or ``"cuda"``: :func:`dicsbi.simulate.simulate`'s device).
    """

    n_members: int = 100
    alpha: float = 0.5
    eps_min: float = 0.3
    eps_flag: float = 1.0
    min_acceptance: float = 0.03
    max_generations: int = 12
    max_steps: int = 4
    max_simulations: int = 3000
    distinct_min: float = 0.9
    ess_min: float = 0.5
    noise_std: float = 0.0
    wide: float = 0.5
    defensive: float = 0.3
    oversample: int = 1
    proposal: str = "posterior"
    flow_spread: float = 1.0
    noise_parameter: bool = False
    final_moves: float = 0.0
    independent: float = 0.0
    differential: float = 0.0
    tier: str = "fast"
    device: str = "cpu"

    def __post_init__(self):
        if self.n_members < 10 or not 0 < self.alpha < 1 or self.max_generations < 1 or not 0 <= self.wide <= 1 \
                or not 0 <= self.defensive < 1 or self.oversample < 1 \
                or self.proposal not in ("flow", "posterior"):
            raise DicsbiError(f"invalid refine options {self}: at least 10 members, 0 < alpha < 1, a generation, "
                              "0 <= wide <= 1, 0 <= defensive < 1, oversample >= 1, proposal posterior|flow")


@dataclass
class Refinement:
    """What the refinement did for one recording (reported in summary.csv, posterior.nc and the report)."""

    conductances: np.ndarray     # [n_members, n_g] the refined population (equally weighted)
    theta: np.ndarray            # [n_members, p] their (seed parameters, z, g_s, g_u) (dicsbi.refine.world)
    pair: np.ndarray             # [n_members] index into ``pairs``
    component: np.ndarray        # [n_members] 0: the training world's seeded cells, 1: the wide world
    distance: np.ndarray         # [n_members] feature distance of each member's last simulation
    tolerance: float
    acceptance: float            # share of the last generation's moves accepted
    ess: float                   # effective sample size of the final weights, before the final resampling
    distinct: int                # distinct members of the final population
    simulations: int
    seconds: float
    generations: int
    distance_before: float       # median feature distance of the DIC population (the first generation)
    noise_std: float             # the members' median noise level
    flagged: bool = False        # degeneracy lost, or no member reproduces the recording
    why: list[str] = field(default_factory=list)
    spread_before: np.ndarray | None = None  # [n_g] spread of each conductance in the DIC population (spread())
    spread_after: np.ndarray | None = None   # [n_g] the same in the refined population
    pairs: list[tuple[str, str]] = field(default_factory=list)  # what ``pair`` indexes
    noise: np.ndarray | None = None          # [n_members] each member's noise level (uA/cm^2)

    @property
    def wide_share(self) -> float:
        """Share of the members from the wide world."""
        return float(np.mean(self.component == WIDE))


def _ess(logw: np.ndarray) -> float:
    if not np.isfinite(logw).any():
        return 0.0
    w = np.exp(logw - np.max(logw))
    return float(w.sum() ** 2 / (w**2).sum())


def _next_tolerance(logw: np.ndarray, d: np.ndarray, alpha: float, eps_min: float, current: float = np.inf,
                    floor_ess: float = 0.0) -> float:
    """Find the smallest tolerance that keeps ``alpha`` of the effective sample size (never below ``eps_min``).

    When that is not below ``current`` (a plateau of equal distances, e.g. candidates that lack every feature,
    would hold the tolerance for ever), step to the largest distance under it if that keeps an effective
    sample size of ``floor_ess``.
    """
    target = alpha * _ess(logw)
    cand = np.unique(d[np.isfinite(d) & np.isfinite(logw)])
    lo, hi = 0, cand.size - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _ess(np.where(d <= cand[mid], logw, -np.inf)) >= target:
            hi = mid
        else:
            lo = mid + 1
    if not cand.size:
        return float("inf")
    eps = float(max(cand[lo], eps_min))
    below = cand[cand < current]
    if eps >= current and below.size and _ess(np.where(d <= below[-1], logw, -np.inf)) >= floor_ess:
        eps = float(max(below[-1], eps_min))
    return eps


def _systematic(logw: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic resampling: ``n`` indices drawn in proportion to the weights."""
    w = np.exp(logw - np.max(logw))
    c = np.cumsum(w / w.sum())
    return np.minimum(np.searchsorted(c, (rng.random() + np.arange(n)) / n), len(w) - 1)


@dataclass
class _Particles:
    theta: np.ndarray
    pair: np.ndarray
    comp: np.ndarray
    g: np.ndarray
    d: np.ndarray
    logw: np.ndarray
    lp: np.ndarray
    scale: np.ndarray = field(default_factory=lambda: np.ones(2))  # random-walk scale per component

    def take(self, idx: np.ndarray) -> _Particles:
        return _Particles(self.theta[idx].copy(), self.pair[idx], self.comp[idx], self.g[idx], self.d[idx],
                          np.zeros(len(idx)), self.lp[idx], self.scale)


def _random_walk(theta: np.ndarray, w: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Gaussian random-walk proposals with the members' weighted covariance scaled by ``scale * 2.38^2 / dim``."""
    dim = theta.shape[1]
    cov = np.atleast_2d(np.cov(theta.T, aweights=w)) if len(theta) > 1 else None
    if cov is None or not np.all(np.isfinite(cov)):
        cov = np.diag((0.05 * np.abs(theta).mean(0)) ** 2)
    cov = _regularised(cov, scale * 2.38**2 / dim)
    return theta + rng.multivariate_normal(np.zeros(dim), cov, size=len(theta), method="cholesky")


def _regularised(cov: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """Scale a proposal covariance and add a tiny ridge (from the unscaled one) so that it keeps a factor."""
    return cov * factor + np.diag(1e-12 + 1e-8 * np.abs(np.diag(cov)))


def _fitted(theta: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted mean and Cholesky factor of ``INFLATION**2`` times the covariance (None: too few members)."""
    if len(theta) < theta.shape[1] + 2:
        return None
    cov = _regularised(np.atleast_2d(np.cov(theta.T, aweights=w)) * INFLATION**2)  # ridge of the inflated one
    try:
        return np.average(theta, axis=0, weights=w), np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None


def _log_normal(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Log density of ``N(mean, chol chol^T)`` at the rows of ``x`` (up to the shared constant)."""
    from scipy.linalg import solve_triangular

    z = solve_triangular(chol, (x - mean).T, lower=True)
    return -0.5 * np.sum(z**2, axis=0) - np.sum(np.log(np.diag(chol)))


def _propose(parts: _Particles, alive: np.ndarray, world: World, rng: np.random.Generator, share: float,
             de: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proposals of the living members, which of them are random walks, and each one's log proposal ratio.

    Each component moves its own block (and s, g_s, g_u) with its own members' weighted covariance: a random
    walk, or with probability ``share`` an independent draw from a Gaussian fitted to those members with
    ``INFLATION`` times their spread (log ratio ``log q(theta) - log q(theta')``; 0 for the symmetric walk).
    """
    w = np.exp(parts.logw[alive] - parts.logw[alive].max()) if alive.size else np.empty(0)
    prop = parts.theta[alive].copy()
    comp = parts.comp[alive]
    walk = np.ones(alive.size, bool)
    log_q = np.zeros(alive.size)
    for c in np.unique(comp):
        rows, cols = np.flatnonzero(comp == c), world.columns(int(c))
        block = np.ix_(rows, cols)
        prop[block] = _random_walk(prop[block], w[rows], rng, parts.scale[c])
        if de > 0 and rows.size >= 3:
            _differential(prop, parts.theta[alive], rows, cols, walk, rng, de)
        fit = _fitted(parts.theta[block], w[rows]) if share > 0 else None
        if fit is None:
            continue
        jump = rows[rng.random(rows.size) < share]
        mean, chol = fit
        new = mean + rng.standard_normal((jump.size, len(cols))) @ chol.T
        prop[np.ix_(jump, cols)], walk[jump] = new, False
        log_q[jump] = _log_normal(parts.theta[np.ix_(jump, cols)], mean, chol) - _log_normal(new, mean, chol)
    return prop, walk, log_q


def _differential(prop: np.ndarray, theta: np.ndarray, rows: np.ndarray, cols: np.ndarray, walk: np.ndarray,
                  rng: np.random.Generator, share: float) -> None:
    """Replace a ``share`` of ``rows``' proposals by differential-evolution moves (see ``RefineOptions``)."""
    mine = rows[rng.random(rows.size) < share]
    a = rng.integers(rows.size - 1, size=mine.size)
    b = rng.integers(rows.size - 2, size=mine.size)
    own = np.searchsorted(rows, mine)
    a += a >= own  # another member than the mover ...
    b += b >= np.minimum(a, own)
    b += b >= np.maximum(a, own)  # ... and than the first one
    gamma = np.where(rng.random(mine.size) < 0.1, 1.0, 2.38 / np.sqrt(2 * len(cols)))
    block = theta[np.ix_(rows, cols)]
    jitter = 1e-3 * block.std(0) * rng.standard_normal((mine.size, len(cols)))
    prop[np.ix_(mine, cols)] = theta[np.ix_(mine, cols)] + gamma[:, None] * (block[a] - block[b]) + jitter
    walk[mine] = False


def _move(parts: _Particles, eps: float, world: World, sim: Simulator, rng: np.random.Generator,
          seed: int, only: np.ndarray | None = None, share: float = 0.0, de: float = 0.0) -> tuple[float, int]:
    """One Metropolis-Hastings move at tolerance ``eps`` of every living member (or those ``only`` marks).

    Returns (acceptance, simulations).  The proposals are :func:`_propose`'s (``share``: independent ones),
    fitted to the living members (all of them); the walk's step adapts to the walks' acceptance.
    """
    alive = np.flatnonzero(np.isfinite(parts.logw))
    moving = np.ones(alive.size, bool) if only is None else only[alive]
    prop, walk, log_q = _propose(parts, alive, world, rng, share, de)
    comp = parts.comp[alive]
    alive, prop, comp, walk, log_q = alive[moving], prop[moving], comp[moving], walk[moving], log_q[moving]
    lp = world.log_prior(prop)
    g = np.full((alive.size, parts.g.shape[1]), np.nan)
    pair = np.full(alive.size, -1)
    ok = np.isfinite(lp)
    g[ok], pair[ok] = world.cells(prop[ok], comp[ok])
    ok &= pair >= 0
    d = np.full(alive.size, np.inf)
    d[ok] = sim.distance(g[ok], seed, world.sigma(prop[ok]))
    accept = ok & (d <= eps) & (np.log(rng.random(alive.size)) < lp - parts.lp[alive] + log_q)
    idx = alive[accept]
    parts.theta[idx], parts.g[idx], parts.d[idx], parts.lp[idx] = prop[accept], g[accept], d[accept], lp[accept]
    parts.pair[idx] = pair[accept]
    for c in np.unique(comp[walk]):  # adapt each component's step to its walks' acceptance (between sweeps)
        rate = accept[walk & (comp == c)].mean()
        parts.scale[c] = np.clip(parts.scale[c] * (0.5 if rate < 0.15 else 1.5 if rate > 0.5 else 1.0), 1e-3, 2.0)
    return float(accept.mean()) if alive.size else 0.0, int(ok.sum())


def refine(model: str | Model, train: SpikeTrains, post, pairs=None, options: RefineOptions = RefineOptions(),
           seed: int = 0, noise_std: float | None = None) -> Refinement:
    """Refine the population of one recording by SMC-ABC (see the module docstring).

    Parameters
    ----------
    model
        The registered model.
    train
        One recording (a :class:`SpikeTrains` of one train).
    post
        Its DIC posterior (:class:`~dicsbi.posterior.DICPosterior`): the first generation's proposal, mixed
        with the prior box (``options.defensive``).
    pairs
        The compensation pairs members may be solved with (default: every candidate pair of the model); each
        member uses the first that makes it a cell in the ranking of its own target's grid cell.
    options
        The sampler's settings and budget.
    seed
        Everything is reproducible by it (one stream per generation).
    noise_std
        The candidates' noise level (default ``options.noise_std``); with ``options.noise_parameter`` and a
        noise posterior, only the centre of the first generation's noise proposal.
    """
    t0 = time.perf_counter()
    m = get_model(model)
    opt = options
    shifted, window = recording_window(train)
    rec = train_features(shifted)[0]
    if rec[-1] == SILENT:
        raise DicsbiError(f"recording {train.ids[0]!r} is silent: nothing to refine")
    pairs = candidate_pairs(m) if pairs is None else [tuple(p) for p in pairs]
    level = float(opt.noise_std if noise_std is None else noise_std)
    world = World(m, float(post.vth_mV), np.asarray(post.config.box, dtype=float), pairs, opt.wide,
                  noise_prior(post) if opt.noise_parameter else None, level)
    sim = Simulator(m, window, opt.tier, rec, opt.device)
    flow = ProposalFlow.cached(getattr(post, "folder", None)) if opt.proposal == "flow" else None
    if opt.proposal == "flow" and flow is None:
        raise DicsbiError("RefineOptions(proposal='flow'): this posterior ships no refinement proposal flow")
    proposal = (FlowProposal(post, train, world, opt.defensive, level, flow, opt.flow_spread) if flow is not None
                else Proposal(post, train, world, opt.defensive, level))
    parts = _Particles(*first_generation(proposal, sim, opt.n_members * opt.oversample, seed))
    n_sims, eps, acceptance, gen = len(parts.d), float("inf"), 1.0, 0
    d_before = float(np.median(parts.d))
    previous = float(np.max(parts.d[np.isfinite(parts.d)])) if np.isfinite(parts.d).any() else float("inf")
    for gen in range(1, opt.max_generations + 1):
        previous, eps = eps if np.isfinite(eps) else previous, _next_tolerance(
            parts.logw, parts.d, opt.alpha, opt.eps_min, eps, 0.1 * opt.n_members)
        parts.logw = np.where(parts.d <= eps, parts.logw, -np.inf)
        rng = _seeds.rng(seed, _seeds.REFINE, gen)
        if _ess(parts.logw) < 0.5 * opt.n_members or len(parts.d) > opt.n_members:
            parts = parts.take(_systematic(parts.logw, opt.n_members, rng))
        acceptance, spent = _move(parts, eps, world, sim, rng, _seeds.int_seed(seed, _seeds.REFINE, gen, 1),
                                  share=opt.independent, de=opt.differential)
        n_sims += spent
        for r in range(2, _steps(acceptance, opt.max_steps) + 1):  # until most members have moved once
            if n_sims >= opt.max_simulations:
                break
            rate, spent = _move(parts, eps, world, sim, rng, _seeds.int_seed(seed, _seeds.REFINE, gen, r),
                                share=opt.independent, de=opt.differential)
            n_sims, acceptance = n_sims + spent, max(acceptance, rate)  # a stall: no step of smaller scale moves
        if acceptance < opt.min_acceptance:
            eps = previous  # the moves stalled: the members are rejuvenated at the last tolerance that moved
            parts.logw = np.where(parts.d <= eps, parts.logw, -np.inf)
            break
        if eps <= opt.eps_min or n_sims >= opt.max_simulations:
            break
    ess = _ess(parts.logw)
    parts, n_sims = _rejuvenate(parts, eps, world, sim, opt, seed, n_sims)
    distinct = int(np.unique(parts.theta, axis=0).shape[0])
    why = _flags(opt, eps, ess, distinct)
    noise = world.sigma(parts.theta)
    return Refinement(parts.g, parts.theta, parts.pair, parts.comp, parts.d, eps, acceptance, ess, distinct, n_sims,
                      time.perf_counter() - t0, gen, d_before, float(np.median(noise)), bool(why), why,
                      pairs=list(pairs), noise=noise)


def _rejuvenate(parts: _Particles, eps: float, world: World, sim: Simulator, opt: RefineOptions, seed: int,
                n_sims: int) -> tuple[_Particles, int]:
    """Resample to equal weights, then move copies at the final tolerance until the members are distinct enough.

    Only members that copy an earlier one move (each move is invariant for the target, so moving a subset is
    too): the distinct members are kept, and a step costs as many simulations as there are copies.  At most
    ``6 * max_steps`` steps (a budget of their own: the sampler's may be spent when it stops).
    """
    rng = _seeds.rng(seed, _seeds.REFINE, 0)
    parts = parts.take(_systematic(parts.logw, opt.n_members, rng))
    for r in range(1, 6 * opt.max_steps + 1):
        first = np.zeros(len(parts.theta), bool)
        first[np.unique(parts.theta, axis=0, return_index=True)[1]] = True
        if first.sum() >= opt.distinct_min * opt.n_members:
            break
        _, spent = _move(parts, eps, world, sim, rng, _seeds.int_seed(seed, _seeds.REFINE, 0, r), only=~first,
                          share=opt.independent, de=opt.differential)
        n_sims += spent
    moved, r = 0.0, 0
    while moved < opt.final_moves and r < 6 * opt.max_steps:  # every member, until enough moves were accepted
        r += 1
        rate, spent = _move(parts, eps, world, sim, rng, _seeds.int_seed(seed, _seeds.REFINE, 0, 1000 + r),
                            share=opt.independent, de=opt.differential)
        n_sims, moved = n_sims + spent, moved + rate
    return parts, n_sims


def _steps(acceptance: float, most: int, unmoved: float = 0.1) -> int:
    """Metropolis steps per generation so that about ``1 - unmoved`` of the members move (Del Moral et al.)."""
    if acceptance >= 1.0:
        return 1
    if acceptance <= 0.0:
        return most
    return int(min(most, max(1, np.ceil(np.log(unmoved) / np.log1p(-acceptance)))))


def _flags(opt: RefineOptions, eps: float, ess: float, distinct: int) -> list[str]:
    """Why a refined population is flagged: degeneracy lost, or no member reproduces the recording."""
    why = []
    if eps > opt.eps_flag:
        why.append(f"no member reproduces the recording (final tolerance {eps:.2f} > {opt.eps_flag:g})")
    if distinct < opt.distinct_min * opt.n_members:
        why.append(f"only {distinct} distinct members of {opt.n_members}")
    if ess < opt.ess_min * opt.n_members:
        why.append(f"effective sample size {ess:.0f} < {opt.ess_min * opt.n_members:.0f}")
    return why
