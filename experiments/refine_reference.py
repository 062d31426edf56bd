"""Is the refinement's truth coverage limited by its sampler or by its target?  An exact reference.

The refinement (:mod:`dicsbi.refine`) samples the ABC posterior ``pi_eps(theta | x) ~ p_world(theta)
1[d(x_theta, x) <= eps]`` by SMC.  Here the same target is sampled by plain importance sampling with a large
budget: ``--budget`` draws from the refinement's own first-generation proposal (the defensive mixture of the
prior box and the DIC posterior, every other parameter from the prior), each simulated once and weighted prior
over proposal; the members within ``eps`` of the recording, with their weights, are an exact (if costly) sample of
``pi_eps``.  For cells of a test world (``prior``: the refinement's own prior, where an exact posterior covers the
truth at its nominal level; ``own``: the DIC posterior's training world; ``unseen``: every conductance uniform in
the box) it prints, per cell and overall, the truth coverage of the 90 % intervals (weighted quantiles) of the
exact reference at three tolerances, its effective sample size, and the truth coverage of the SMC refinement
with its default options on the same recording.  If the reference covers no better than the SMC, the gap to the
nominal level lies in the target (distance, tolerance, prior), not in the sampler.

    python experiments/refine_reference.py --model stg [--world prior|own|unseen] [--n 24] [--budget 16000]

Ends with one line: model=M world=W n=N budget=B is_cov90_e03=.. is_cov90_e05=.. is_cov90_e10=..
is_ess_e03=.. resolved=.. is_cov90_resolved=.. smc_cov90_resolved=.. width_gs=.. width_gu=.. smc_cov90=..
smc_eps_median=..
(``is_ess_e03``: median ESS of the reference at eps 0.3; ``resolved``: cells where it is at least 30, on which
``*_resolved`` compare the reference and the SMC; ``width_*``: the median over cells of the target's deviation
of g_s and g_u at eps 0.3 over the DIC posterior's; a cell the reference does not resolve counts as uncovered in
``is_cov90_*``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_populations import fresh_recordings, prior_recordings, unseen_recordings  # noqa: E402

from dicsbi.compensation import candidate_pairs  # noqa: E402
from dicsbi.models import get_model  # noqa: E402
from dicsbi.posterior.artifact import load_posterior  # noqa: E402
from dicsbi.refine import RefineOptions, recording_window, refine, train_features  # noqa: E402
from dicsbi.refine.distance import Simulator  # noqa: E402
from dicsbi.refine.proposal import Proposal, first_generation  # noqa: E402
from dicsbi.refine.sampler import _ess, _Particles  # noqa: E402
from dicsbi.refine.world import World  # noqa: E402

TOLERANCES = (0.3, 0.5, 1.0)
RESOLVED_ESS = 30  # a cell the reference resolves at eps 0.3: at least this effective sample size


def weighted_hits(g: np.ndarray, w: np.ndarray, truth: np.ndarray, level: float = 0.9) -> list[bool]:
    """Per channel that varies: does the truth lie in the central ``level`` interval of the weighted sample?"""
    if w.sum() <= 0 or np.count_nonzero(w) < 2:
        return [False] * g.shape[1]
    hits = []
    for j in range(g.shape[1]):
        order = np.argsort(g[:, j])
        c = np.cumsum(w[order])
        lo, hi = np.interp([(1 - level) / 2, (1 + level) / 2], c / c[-1], g[order, j])
        if hi > lo:
            hits.append(bool(lo <= truth[j] <= hi))
    return hits


def reference(post, one, world: World, budget: int, seed: int) -> tuple[dict, dict, tuple | None]:
    """Weighted exact sample of pi_eps at each tolerance and its ESS; the (g_s, g_u) marginal at 0.3.

    The marginal is (mean, deviations) of the target's and of the DIC posterior's (None: nothing within 0.3).
    """
    shifted, window = recording_window(one)
    sim = Simulator(world.model, window, "fast", train_features(shifted)[0])
    parts = _Particles(*first_generation(Proposal(post, one, world, RefineOptions.defensive), sim, budget, seed))
    out, ess, marginal = {}, {}, None
    logw = np.where(parts.d <= 0.3, parts.logw, -np.inf)
    if np.isfinite(logw).any():  # the target's (g_s, g_u) marginal at 0.3 against the DIC posterior's
        w = np.exp(logw - logw.max())
        w /= w.sum()
        mean = w @ parts.theta[:, -2:]
        sd = np.sqrt(w @ (parts.theta[:, -2:] - mean) ** 2)
        dic = np.asarray(post.sample(one, 2000, seed=seed), dtype=float).reshape(-1, 2)
        marginal = (mean, sd, dic.mean(axis=0), dic.std(axis=0))
    for eps in TOLERANCES:
        logw = np.where(parts.d <= eps, parts.logw, -np.inf)
        ess[eps] = _ess(logw)
        out[eps] = (parts.g, np.exp(logw - logw.max()) if np.isfinite(logw).any() else np.zeros(len(logw)))
    return out, ess, marginal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--world", default="prior", choices=["prior", "own", "unseen"])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--budget", type=int, default=16000)
    ap.add_argument("--seed", type=int, default=31)
    args = ap.parse_args()
    post = load_posterior(args.model, model=args.model)
    m = get_model(args.model)
    if args.world == "prior":
        trains, cells = prior_recordings(args.model, args.n, args.seed + 2, post, RefineOptions.wide)
    elif args.world == "unseen":
        trains, cells = unseen_recordings(args.model, args.n, args.seed + 1, post.config.box)
    else:  # the DIC posterior's own world, clean cells only (the noisy third would need its noise level)
        trains, kinds, _, cells = fresh_recordings(args.model, int(np.ceil(args.n * 1.5)), args.seed)
        trains = trains.select(np.flatnonzero(kinds != "noisy")[:args.n])
    world = World(m, float(post.vth_mV), np.asarray(post.config.box, dtype=float), candidate_pairs(m),
                  RefineOptions.wide)
    hits: dict = {eps: [] for eps in TOLERANCES}
    ess03, smc_hits, smc_eps, widths = [], [], [], []
    resolved = []  # (reference hits, SMC hits) where the ESS at 0.3 is at least RESOLVED_ESS
    for k in range(len(trains)):
        one = trains.select([k])
        rid = str(one.ids[0])
        t0 = time.perf_counter()
        ref, ess, marginal = reference(post, one, world, args.budget, 1000 + k)
        row = []
        for eps in TOLERANCES:
            h = weighted_hits(*ref[eps], cells[rid])
            hits[eps].extend(h)
            row.append(f"eps {eps}: ESS {ess[eps]:.0f} cov {np.mean(h):.2f}")
        ess03.append(ess[0.3])
        if marginal is not None:
            mean, sd, p_mean, p_sd = marginal
            widths.append(sd / p_sd)
            row.append(f"target (g_s, g_u) at 0.3 {np.round(mean, 1)} sd {np.round(sd, 1)}, DIC posterior "
                       f"{np.round(p_mean, 1)} sd {np.round(p_sd, 1)}")
        ref03 = weighted_hits(*ref[0.3], cells[rid])
        t1 = time.perf_counter()
        smc = refine(m, one, post, None, RefineOptions(), seed=1000 + k)
        h = weighted_hits(smc.conductances, np.ones(len(smc.conductances)), cells[rid])
        smc_hits.extend(h)
        smc_eps.append(smc.tolerance)
        if ess[0.3] >= RESOLVED_ESS:
            resolved.append((ref03, h))
        print(f"{rid}: reference ({t1 - t0:.0f} s) " + ", ".join(row) + f" | SMC eps {smc.tolerance:.2f} "
              f"cov {np.mean(h):.2f} ({time.perf_counter() - t1:.1f} s)", flush=True)
    cov = {eps: float(np.mean(v)) for eps, v in hits.items()}
    res_ref = float(np.mean([x for r, _ in resolved for x in r])) if resolved else float("nan")
    res_smc = float(np.mean([x for _, s in resolved for x in s])) if resolved else float("nan")
    print(f"on the {len(resolved)} cells the reference resolves at eps 0.3 (ESS >= {RESOLVED_ESS}): reference "
          f"{res_ref:.3f}, SMC {res_smc:.3f} (a cell it does not resolve counts as uncovered above)")
    wid = np.median(widths, axis=0) if widths else np.full(2, np.nan)
    if widths:
        print("the target's (g_s, g_u) deviations over the DIC posterior's at eps 0.3, median over cells: "
              + ", ".join(f"{n} {v:.2f}" for n, v in zip(("g_s", "g_u"), np.median(widths, axis=0))))
    print("truth coverage of the 90% intervals: exact reference " + ", ".join(
        f"eps {e}: {c:.3f}" for e, c in cov.items()) + f" (median ESS at 0.3: {np.median(ess03):.0f}); SMC refinement "
          f"{np.mean(smc_hits):.3f} (median final tolerance {np.median(smc_eps):.2f})")
    print(f"model={args.model} world={args.world} n={len(trains)} budget={args.budget} "
          f"is_cov90_e03={cov[0.3]:.4f} is_cov90_e05={cov[0.5]:.4f} is_cov90_e10={cov[1.0]:.4f} "
          f"is_ess_e03={np.median(ess03):.1f} resolved={len(resolved)} is_cov90_resolved={res_ref:.4f} "
          f"smc_cov90_resolved={res_smc:.4f} width_gs={wid[0]:.3f} width_gu={wid[1]:.3f} "
          f"smc_cov90={np.mean(smc_hits):.4f} smc_eps_median={np.median(smc_eps):.3f}")


if __name__ == "__main__":
    main()
