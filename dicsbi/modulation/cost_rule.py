"""The published rule as a baseline.

The baseline is the subset that moves the before-population onto the after recording's DICs at the smallest
conductance-change cost.

The published tool moves a population to a DIC target by re-solving a chosen subset (Fyon's rule; Brandoit's
reachability, reference sections 3.1-3.2) and picks subsets by where they reach.  As a comparison of
hypotheses that reads: for every subset ``J`` and every before-population member ``g_k``, the cheapest change

    c_k(J) = min sum_j |ln(g'_j / g_j)|   subject to   |d(g') - d*| <= tol,   0 < g' <= upper

(the Laplace cost prior's negative log density up to its scale: "the same cost as the Pyro prior";
``cost="gaussian"`` uses ``sum_j ln(g'_j / g_j)^2``), where ``d*`` is the after recording's (g_s, g_u) (the after
posterior's mean) and ``tol`` Brandoit's reachability radius (0.1, L2 in units of g_leak).  The subset's cost is
the median of ``c_k`` over the members (infinite when fewer than half reach), and subsets are ranked by that
cost, then by the share of members reaching, then by size (fewer channels first); a superset whose cheapest
change is one of its subsets' (the extra channel left alone) is the same modulation and goes after the distinct
ones (:func:`order_by_cost`).  No probabilities: the rule ranks, it does not weigh.

How each size is solved, per member:

* 2 channels: the 2 x 2 system (:func:`dicsbi.compensation.compensate`, Newton with the calcium dependence) has
  one solution, which hits ``d*`` exactly (the tolerance plays no part);
* 3 channels: a one-dimensional family of exact solutions; each channel in turn is scaled by
  ``exp(level)`` for ``level`` in ``[-sweep, sweep]`` (0 included) and the other two are re-solved, keeping the
  cheapest valid one.  ``level = 0`` is a sub-pair's solution: an L1 cost on a line is smallest where a
  coordinate is zero (exactly so for a linear map), so a triple usually ties with its best pair and the tie goes
  to the pair;
* 1 channel: the member moves along a curve; its log-ratio is swept finely and the target is reached where the
  curve comes within ``tol`` of ``d*``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from .. import _seeds
from ..compensation import compensate, plausible_upper_bounds
from ..dics import SensitivityOperator
from ..errors import DicsbiError
from ..models import get_model
from .hypotheses import Hypothesis, modulable_channels, resolve_hypotheses

TOLERANCE = 0.1     # Brandoit's reachability radius (L2 in (g_s, g_u), units of g_leak)
SWEEP = 3.0         # |log-ratio| swept for single channels and the free channel of a triple
N_LEVELS = 13       # sweep levels of a triple's free channel (0 added when missing)
N_SINGLE = 2401     # sweep points of a single channel
COSTS = ("laplace", "gaussian")


@dataclass
class CostRanking:
    """The cost rule's ranking of the hypotheses for one before-population and one target.

    Per hypothesis: the median cost over members (``inf``: fewer than half reach), the share of members that
    reach, and per member the cheapest change (``log_ratio[h][k]``, NaN where member ``k`` does not reach).
    """

    model: str
    hypotheses: list[Hypothesis]
    target: np.ndarray                # [2] (g_s, g_u) the members are moved onto
    cost: np.ndarray                  # [H]
    fraction: np.ndarray              # [H]
    member_cost: np.ndarray           # [H, N]
    log_ratio: list                   # [H] arrays [N, s]
    settings: dict = field(default_factory=dict)

    def order(self) -> np.ndarray:
        """Hypotheses best first (:func:`order_by_cost`)."""
        return order_by_cost(self.cost, self.fraction, [h.channels for h in self.hypotheses])

    def rank(self) -> np.ndarray:
        """1-based rank of every hypothesis."""
        r = np.empty(len(self.hypotheses), dtype=np.int64)
        r[self.order()] = np.arange(1, len(self.hypotheses) + 1)
        return r

    def channel_score(self) -> dict[str, float]:
        """Per modulable channel, ``-(best rank of a hypothesis naming it)``: higher means more implicated."""
        rank = self.rank()
        return {c: -float(min((rank[i] for i, h in enumerate(self.hypotheses) if c in h.channels),
                              default=len(rank) + 1)) for c in modulable_channels(self.model)}

    def median_change(self, h: int) -> dict[str, float]:
        """Median cheapest log-ratio of each channel of hypothesis ``h`` over the members that reach."""
        lr = self.log_ratio[h]
        ok = np.all(np.isfinite(lr), axis=1)
        return {c: float(np.median(lr[ok, j])) if ok.any() else float("nan")
                for j, c in enumerate(self.hypotheses[h].channels)}


def order_by_cost(cost, fraction, subsets) -> np.ndarray:
    """Return the hypotheses' indices best first.

    Distinct explanations come before redundant ones, then the cheapest median cost, the larger share of members
    reaching, fewer channels.

    A hypothesis is *redundant* when one of its proper subsets has the same median cost (to 1e-6): its cheapest
    change leaves the extra channel alone (a triple whose best change is a sub-pair's solution), so it is the
    subset's modulation written with one more name, not another explanation.  Without this rule every pair would
    drag its supersets into the top ranks with the same cost.
    """
    cost = np.asarray(cost, dtype=float)
    key = np.where(np.isfinite(cost), np.round(cost, 6), np.inf)
    sets = [frozenset(s) for s in subsets]
    where = {s: i for i, s in enumerate(sets)}
    redundant = np.zeros(len(sets), dtype=bool)
    for i, s in enumerate(sets):
        if np.isfinite(key[i]) and len(s) > 1:
            for sub in _proper_subsets(s):
                j = where.get(sub)
                if j is not None and key[j] == key[i]:
                    redundant[i] = True
                    break
    sizes = np.array([len(s) for s in sets])
    return np.lexsort((np.arange(len(sets)), sizes, -np.asarray(fraction, dtype=float), key, redundant))


def _proper_subsets(s: frozenset):
    items = sorted(s)
    for k in range(1, len(items)):
        for combo in combinations(items, k):
            yield frozenset(combo)


def _norm(theta: np.ndarray, cost: str) -> np.ndarray:
    return np.sum(np.abs(theta), -1) if cost == "laplace" else np.sum(theta**2, -1)


def _pair_solutions(m, members, target, pair_cols, scaled=None, vth=None):
    """Return the log-ratios ``[M, 2]`` of the pair solving ``members`` onto ``target``.

    ``scaled`` optionally gives the members with another channel pre-scaled (the pair is solved from them, the
    log-ratios are relative to ``members``).  NaN where invalid (negative, out of range, not converged).
    """
    cells = members if scaled is None else scaled
    comp = compensate(m, cells, {"g_s": np.full(len(cells), target[0]), "g_u": np.full(len(cells), target[1])},
                      [m.conductance_names[c] for c in pair_cols], vth)
    with np.errstate(divide="ignore", invalid="ignore"):
        th = np.log(comp.conductances[:, pair_cols] / members[:, pair_cols])
    return np.where(comp.valid[:, None], th, np.nan)


def _singles(m, members, target, cols, tol, cost, vth) -> dict[int, np.ndarray]:
    """Per channel column: the cheapest log-ratio ``[N, 1]`` putting each member within ``tol`` of ``target``."""
    theta = np.linspace(-SWEEP, SWEEP, N_SINGLE)
    op = SensitivityOperator(m, vth)
    upper = plausible_upper_bounds(m)
    N = members.shape[0]
    out = {}
    for c in cols:
        g = np.repeat(members[:, None, :], N_SINGLE, axis=1)
        g[:, :, c] *= np.exp(theta)[None, :]
        flat = g.reshape(-1, g.shape[-1])
        d = np.einsum("nij,nj->ni", op(flat)[:, 1:, :], flat).reshape(N, N_SINGLE, 2)
        hit = (np.linalg.norm(d - target, axis=-1) <= tol) & (g[:, :, c] <= upper[c])
        c_all = np.where(hit, _norm(theta[:, None], cost)[None, :], np.inf)
        k = np.argmin(c_all, axis=1)
        best = theta[k]
        out[c] = np.where(np.isfinite(c_all[np.arange(N), k]), best, np.nan)[:, None]
    return out


def rank_by_cost_population(members, target, model: str = "stg", hypotheses=None, max_size: int = 3,
                            tolerance: float = TOLERANCE, cost: str = "laplace",
                            vth_mV: float | None = None) -> CostRanking:
    """Apply the cost rule to one population ``members[N, n_g]`` and one target ``(g_s, g_u)`` (module docstring)."""
    m = get_model(model)
    if cost not in COSTS:
        raise DicsbiError(f"cost must be one of {COSTS}, got {cost!r}")
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise DicsbiError(f"tolerance must be a positive number, got {tolerance!r}")
    hyps = resolve_hypotheses(m, hypotheses, max_size)
    members = m.check_conductances(np.atleast_2d(members))
    target = np.asarray(target, dtype=float).reshape(2)
    vth = float(m.vth_mV if vth_mV is None else vth_mV)
    N = members.shape[0]
    upper = plausible_upper_bounds(m)
    index = [tuple(m.conductance_names.index(c) for c in h.channels) for h in hyps]
    singles = _singles(m, members, target, sorted({ix[0] for ix in index if len(ix) == 1}), tolerance, cost, vth)
    pair_cache: dict[tuple, np.ndarray] = {}

    def pair(cols):
        if cols not in pair_cache:
            pair_cache[cols] = _pair_solutions(m, members, target, list(cols), vth=vth)
        return pair_cache[cols]

    levels = np.linspace(-SWEEP, SWEEP, N_LEVELS)
    levels = levels[levels != 0]
    log_ratio, member_cost = [], np.full((len(hyps), N), np.inf)
    for h, ix in enumerate(index):
        if len(ix) == 1:
            th = singles[ix[0]]
        elif len(ix) == 2:
            th = pair(ix)
        else:
            th = np.full((N, 3), np.nan)
            best = np.full(N, np.inf)
            for free in range(3):
                rest = [ix[j] for j in range(3) if j != free]
                cand = np.full((N, 3), np.nan)
                cand[:, [j for j in range(3) if j != free]] = pair(tuple(rest))
                cand[:, free] = 0.0
                options = [cand]
                scaled = np.repeat(members[None], len(levels), axis=0)          # [L, N, n_g]
                scaled[:, :, ix[free]] *= np.exp(levels)[:, None]
                flat = scaled.reshape(-1, members.shape[1])
                sol = _pair_solutions(m, np.tile(members, (len(levels), 1)), target, rest, flat, vth)
                sol[flat[:, ix[free]] > upper[ix[free]]] = np.nan
                for li in range(len(levels)):
                    c = np.full((N, 3), np.nan)
                    c[:, [j for j in range(3) if j != free]] = sol[li * N:(li + 1) * N]
                    c[:, free] = levels[li]
                    options.append(c)
                for c in options:
                    cc = np.where(np.all(np.isfinite(c), 1), _norm(c, cost), np.inf)
                    better = cc < best
                    th[better], best[better] = c[better], cc[better]
        ok = np.all(np.isfinite(th), axis=1)
        member_cost[h] = np.where(ok, _norm(np.nan_to_num(th), cost), np.inf)
        log_ratio.append(th)
    fraction = np.isfinite(member_cost).mean(axis=1)
    med = np.median(member_cost, axis=1)        # inf when fewer than half of the members reach
    settings = {"method": "cost", "tolerance": float(tolerance), "cost": cost, "n_members": int(N),
                "vth_mV": vth, "sweep": SWEEP, "n_levels": N_LEVELS, "n_single": N_SINGLE}
    return CostRanking(m.name, hyps, target, med, fraction, member_cost, log_ratio, settings)


def rank_by_cost(before, after, model: str = "stg", hypotheses=None, max_size: int = 3,
                 tolerance: float = TOLERANCE, cost: str = "laplace", n_members: int = 200, posterior=None,
                 seed: int = 0, progress: bool = False) -> list[tuple[str, CostRanking]]:
    """Apply the cost rule to every neuron of a before/after pair of recordings (inputs as :func:`modulate`).

    The before-population is :func:`dicsbi.pipeline.infer`'s (same ``seed``, so the same members as
    :func:`modulate` uses); the target is the mean of the after recording's DIC posterior (4000 draws, seed
    from ``SeedSequence(seed, spawn_key=(2**30 + i,))`` as :func:`modulate`'s likelihood tables).  Returns
    ``[(neuron id, ranking)]`` in the before file's order.
    """
    from ..pipeline import _resolve_posterior
    from .inputs import prepare_inputs

    m = get_model(model)
    if n_members < 1:
        raise DicsbiError("n_members must be at least 1")
    post = _resolve_posterior(posterior, m)
    pre, _, after_trains = prepare_inputs(before, after, m, post, n_members, seed, progress)
    out = []
    for i, rec in enumerate(pre.recordings):
        ss = _seeds.stream(seed, _seeds.MODULATION + i)
        draws = post.sample(after_trains.select([i]), 4000, seed=int(ss.generate_state(1)[0]))[0]
        out.append((rec.id, rank_by_cost_population(rec.conductances, draws.mean(0), m.name, hypotheses, max_size,
                                                    tolerance, cost, post.vth_mV)))
    return out

