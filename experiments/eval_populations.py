"""Do inferred populations reproduce their recordings?  (Posterior predictive check at scale.)

Fresh recordings per model (tonic and bursting cells from seeded DIC targets, plus noisy-current cells at 5
uA/cm^2) go through the pipeline with ``check=20``: 20 population members per recording are simulated and
compared with the recording.  Printed: the fraction of members with the recording's firing class and with its
main frequency within 10% (spiking frequency for tonic, burst frequency for bursting), overall and per kind,
next to a baseline that draws the DIC targets from the prior box instead of the posterior, and (``--oracle``)
a ceiling that uses every recording's true DIC target: how well DIC matching alone can reproduce a cell.
Every method is scored on every recording: one it gives no population (none of its samples reachable by
compensation; it happens to the true-DIC ceiling) counts as a failure, class and frequency match 0, and is listed.

    python experiments/eval_populations.py --model stg [--n-recordings 200] [--posterior PATH] [--refine]

``--refine`` also runs the simulation-refined populations (:mod:`dicsbi.refine`) and prints their class and
frequency match, the truth coverage (the share of (recording, channel) pairs whose true conductance lies in the
refined population's 90% interval, and the same for the unrefined population), the smallest ESS, the share
of recordings flagged, distinct members, the spread per channel relative to the unrefined population, the
wide world's share of members and seconds per recording; then checks the refinement never saw: a current step
applied to members and true cell alike (same firing pattern, rate within 20%), the van Rossum ratio (members'
distance to the true cell over data the recording does not hold, relative to the cell's distance to itself:
see ``_vr_ratio``), and the noisy recordings' ceiling (their true cell with fresh noise).  ``--unseen N`` adds
the truth coverage on N cells of the unseen world (every conductance uniform in the model's box, no
compensation; never used by the refinement).

Ends with one line: model=M class_match=.. freq_match=.. class_match_prior=.. freq_match_prior=.. (and with
``--refine``: refined_class_match=.. refined_freq_match=.. truth_cov90=.. truth_cov90_unrefined=.. ess_min=..
s_per_recording=.. refine_flagged=.. step_class_match=.. step_rate_match=.. vr_ratio=..
[unseen_truth_cov90=..])
"""

from __future__ import annotations

import argparse

import numpy as np

from dicsbi.compensation import generate_population
from dicsbi.diagnostics.metrics import cluster_share_interval
from dicsbi.models import get_model
from dicsbi.pipeline import infer
from dicsbi.posterior.artifact import load_posterior
from dicsbi.refine import RefineOptions
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains, firing_class


class OraclePosterior:
    """Ceiling: every 'posterior sample' is the recording's true DIC target (what DIC matching alone can do)."""

    def __init__(self, post, targets):
        self.__dict__.update({k: getattr(post, k) for k in ("model", "vth_mV", "config")})
        self._targets = {str(i): t for i, t in targets.items()}

    def sample(self, trains, n, seed=0):
        return np.stack([np.repeat(self._targets[str(i)][None], n, 0) for i in trains.ids])


class PriorPosterior:
    """Baseline: the posterior replaced by the prior box (same interface as DICPosterior.sample)."""

    def __init__(self, post):
        self.__dict__.update({k: getattr(post, k) for k in ("model", "vth_mV", "config")})
        self._box = np.asarray(post.config.box, dtype=float)

    def sample(self, trains, n, seed=0):
        rng = np.random.default_rng(seed)
        lo, hi = self._box[:, 0], self._box[:, 1]
        return lo + (hi - lo) * rng.random((len(trains), n, 2))


def fresh_recordings(model: str, n: int, seed: int) -> tuple[SpikeTrains, np.ndarray, dict, dict]:
    """n non-silent recordings: a third noisy (5 uA/cm^2); returns trains, a kind label per recording, and per
    recording id the true DIC target and the true cell (its conductances)."""
    m = get_model(model)
    (a, b), (c, d) = m.dic_box
    rng = np.random.default_rng(seed)
    trains, kinds, targets, cells = [], [], {}, {}
    while len(trains) < n:
        gs, gu = rng.uniform(a, b), rng.uniform(c, d)
        try:
            pop = generate_population(m, gs, gu, 1, seed=int(rng.integers(2**31)))
        except Exception:
            continue
        noisy = len(trains) % 3 == 2
        res = simulate(m, pop.conductances, noise_std=5.0 if noisy else 0.0, seed=int(rng.integers(2**31)))
        if res.trains.counts[0] < 3:
            continue
        cls = int(firing_class(res.trains)[0])
        targets[f"rec{len(trains)}"] = np.array([gs, gu])
        cells[f"rec{len(trains)}"] = pop.conductances[0]
        trains.append(res.trains[0])
        kinds.append("noisy" if noisy else ("tonic" if cls == 1 else "bursting"))
    ids = [f"rec{k}" for k in range(n)]
    return SpikeTrains.from_list(trains, 0.0, m.default_duration_ms, ids=ids), np.array(kinds), targets, cells


def unseen_recordings(model: str, n: int, seed: int, box) -> tuple[SpikeTrains, dict]:
    """``n`` recordings of the unseen world: every conductance uniform in the model's Monte-Carlo box, no
    compensation, kept when the cell fires (>= 8 spikes) and its DICs lie in the posterior's box."""
    from dicsbi.dics import compute_dics

    m = get_model(model)
    lo, hi = np.array([m.bounds[c] for c in m.conductance_names]).T
    (a, b), (c, d) = box

    def draw(rng):
        g = rng.uniform(lo, hi, (64, len(lo)))
        dic = compute_dics(m, g)[:, 1:]
        return g[(dic[:, 0] >= a) & (dic[:, 0] <= b) & (dic[:, 1] >= c) & (dic[:, 1] <= d)]

    return _firing_cells(m, draw, n, np.random.default_rng(seed), "unseen")


def prior_recordings(model: str, n: int, seed: int, post, wide: float) -> tuple[SpikeTrains, dict]:
    """``n`` recordings of cells drawn from the refinement's own prior (:class:`dicsbi.refine.world.World`, DIC
    targets uniform in the posterior's box), kept when they fire (>= 8 spikes): the sampler's self-consistency
    check, where a correct ABC posterior covers the truth at its nominal level."""
    from dicsbi.compensation import candidate_pairs
    from dicsbi.refine.world import World

    m = get_model(model)
    world = World(m, float(post.vth_mV), np.asarray(post.config.box, dtype=float), candidate_pairs(m), wide)

    def draw(rng):
        theta, comp = world.draw(rng.uniform(world.box[:, 0], world.box[:, 1], (64, 2)), rng)
        g, pair = world.cells(theta, comp)
        return g[pair >= 0]

    return _firing_cells(m, draw, n, np.random.default_rng(seed), "prior")


def _firing_cells(m, draw, n: int, rng, prefix: str) -> tuple[SpikeTrains, dict]:
    """Simulate batches of ``draw(rng)`` cells until ``n`` fire (>= 8 spikes): their trains and cells by id."""
    trains, cells = [], {}
    while len(trains) < n:
        g = draw(rng)
        if not len(g):
            continue
        res = simulate(m, g, seed=int(rng.integers(2**31)), tier="fast")
        for k in np.flatnonzero((res.trains.counts >= 8) & (res.status == 0)):
            if len(trains) < n:
                cells[f"{prefix}{len(trains)}"] = g[k]
                trains.append(res.trains[k])
    ids = [f"{prefix}{k}" for k in range(n)]
    return SpikeTrains.from_list(trains, 0.0, m.default_duration_ms, ids=ids), cells


def refine_options(args) -> RefineOptions:
    """The refinement's options: ``--wide`` and ``--refine-options KEY=VALUE,...`` (any RefineOptions field)."""
    kw: dict = {"wide": args.wide}
    for item in filter(None, args.refine_options.split(",")):
        key, value = item.split("=")
        default = getattr(RefineOptions, key)
        kw[key] = value in ("1", "true", "True") if isinstance(default, bool) else type(default)(float(value))
    return RefineOptions(**kw)


def truth_hits(res, cells: dict, level: float = 0.9) -> list[np.ndarray]:
    """Per recording: does each channel's true conductance lie in the population's central interval?"""
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    out = []
    for r in res.recordings:
        g = cells[r.id]
        lo, hi = np.quantile(r.conductances, [lo_q, hi_q], axis=0)
        varying = hi > lo  # a conductance fixed in the model (e.g. DA's g_NMDA) says nothing
        out.append(((g >= lo) & (g <= hi))[varying])
    return out


def truth_coverage(res, cells: dict, level: float = 0.9) -> float:
    """Share of (recording, channel) pairs whose true conductance lies in the population's central interval."""
    hits = np.concatenate(truth_hits(res, cells, level) or [np.empty(0)])
    return float(np.mean(hits)) if hits.size else float("nan")


def coverage_interval(res, cells: dict, level: float = 0.9, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of :func:`truth_coverage` resampling whole recordings (a recording's channels
    share one population, so they are not independent pairs)."""
    per = truth_hits(res, cells, level)
    hit, n = np.array([h.sum() for h in per], float), np.array([h.size for h in per], float)
    if not n.sum():
        return float("nan"), float("nan")
    lo, hi = cluster_share_interval(hit, n, n_boot, seed=seed)
    return float(lo), float(hi)


STEP_UA_CM2 = 1.0  # the unseen check's depolarising current step over the whole window


def _match(model, cells: np.ndarray, reference: np.ndarray, window: float, noise: float, seed: int,
           stimulus=None) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: same firing pattern as the reference cell, and rate within 20 % of it (same protocol)."""
    from dicsbi.spikes import firing_pattern

    sim = simulate(model, np.vstack([reference[None], cells]), duration_ms=window, noise_std=noise, seed=seed,
                   tier="fast", stimulus=stimulus)
    pattern = firing_pattern(sim.trains)
    rate = sim.trains.counts / window * 1e3
    with np.errstate(divide="ignore", invalid="ignore"):
        close = np.abs(rate[1:] / rate[0] - 1.0) <= 0.2
    return pattern[1:] == pattern[0], close


def _vr_ratio(model, cells: np.ndarray, true: np.ndarray, window: float, noise: float, seed: int,
              copies: int = 5) -> float:
    """Van Rossum distance of members to the true cell over data the refinement never saw, relative to the true
    cell's distance to itself: the median over members of VR(member, true), divided by the median of
    VR(true', true) where true' is the true cell with fresh noise (noisy recordings; members at the same noise
    level) or, for clean cells, the true cell's own first window; clean cells and members are simulated over
    twice the window and compared over the second half, the one the recording does not contain.  Time scale:
    the published (max ISI + min ISI) / 2 of the true train.  1 means members are as close to the cell as the
    cell is to itself."""
    from dicsbi.spikes import reference_tau_ms, van_rossum_distance

    if noise:
        sim = simulate(model, np.vstack([np.repeat(true[None], copies + 1, 0), cells]), duration_ms=window,
                       noise_std=noise, seed=seed, tier="fast")
        trains = [np.asarray(t) for t in sim.trains]
        ref, own, members = trains[0], trains[1:copies + 1], trains[copies + 1:]
    else:
        sim = simulate(model, np.vstack([true[None], cells]), duration_ms=2 * window, seed=seed, tier="fast")
        trains = [np.asarray(t) for t in sim.trains]
        ref, own = trains[0][trains[0] >= window] - window, [trains[0][trains[0] < window]]
        members = [t[t >= window] - window for t in trains[1:]]
    if ref.size < 2:
        return float("nan")
    tau = reference_tau_ms(ref)
    d_own = float(np.median([van_rossum_distance(ref, t, tau) for t in own]))
    d = float(np.median([van_rossum_distance(ref, t, tau) for t in members]))
    return d / d_own if d_own > 0 else float("nan")


def unseen_checks(model: str, res, trains, kinds, ids, cells: dict, n: int = 20) -> dict:
    """Checks the refinement never saw (members and the true cell under a current step) and the noisy
    recordings' ceiling: the predictive check's class and frequency match of ``n`` copies of the recording's
    own true cell simulated with fresh noise (the issue's ``c``; the noisy target is ``min(0.97, c - 0.02)``)."""
    from types import SimpleNamespace

    from dicsbi.diagnostics.predictive import predictive_check
    from dicsbi.stimulus import Stimulus

    m = get_model(model)
    window = m.default_duration_ms
    kind_of, index = dict(zip(ids, kinds)), {str(i): k for k, i in enumerate(trains.ids)}
    step_class, step_rate, ceiling, vr = [], [], [], {}
    for k, r in enumerate(res.recordings):
        noise = 5.0 if kind_of[r.id] == "noisy" else 0.0
        true = cells[r.id]
        step = Stimulus.step(0.0, window, STEP_UA_CM2)
        c_ok, r_ok = _match(m, r.conductances[:n], true, window, noise, 1000 + k, step)
        step_class.append(c_ok.mean())
        step_rate.append((c_ok & r_ok).mean())
        vr.setdefault(kind_of[r.id], []).append(_vr_ratio(m, r.conductances[:n], true, window, noise, 3000 + k))
        if noise:
            copies = SimpleNamespace(conductances=np.repeat(true[None], n, 0), noise=np.full(n, noise))
            c = predictive_check(m, trains.select([index[r.id]]), copies, n, seed=2000 + k)
            ceiling.append((c["class_match"], c["freq_match"]))
    cl = np.array(ceiling) if ceiling else np.full((1, 2), np.nan)
    for kind, values in vr.items():
        print(f"van Rossum ratio ({kind}): median {np.nanmedian(values):.2f}, quartiles "
              f"{np.nanquantile(values, 0.25):.2f}-{np.nanquantile(values, 0.75):.2f} over {len(values)} recordings")
    return {"vr_ratio": float(np.nanmedian([v for values in vr.values() for v in values])),
            "step_class_match": float(np.mean(step_class)), "step_rate_match": float(np.mean(step_rate)),
            "noisy_ceiling_class": float(cl[:, 0].mean()), "noisy_ceiling_freq": float(cl[:, 1].mean())}


def refined_figures(trains, args, post, kinds, ids, cells: dict) -> tuple[dict, dict]:
    """Run the refined populations and return their scores and the refinement's summary figures."""
    import time

    t0 = time.perf_counter()
    res = infer(trains, args.model, args.n_models, posterior=post, seed=args.seed, check=args.check,
                refine=refine_options(args), progress=True)
    seconds = (time.perf_counter() - t0) / max(len(res.recordings), 1)
    refs = [r.refinement for r in res.recordings if r.refinement is not None]
    figures = {"truth_cov90": truth_coverage(res, cells), "truth_cov90_ci": coverage_interval(res, cells),
               "ess_min": min(r.ess for r in refs), "s_per_recording": seconds,
               "refine_flagged": float(np.mean([r.flagged for r in refs])),
               "distinct_min": min(r.distinct for r in refs),
               **unseen_checks(args.model, res, trains, kinds, ids, cells)}
    names = get_model(args.model).conductance_names
    with np.errstate(divide="ignore", invalid="ignore"):  # a fixed conductance has no spread
        ratio = np.nanmedian([r.spread_after / r.spread_before for r in refs], axis=0)
    print("spread after / before refinement (interquartile range of log10 g, median over recordings): "
          + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, ratio)))
    print(f"members from the wide world: median share {np.median([r.wide_share for r in refs]):.2f}")
    for k in ("tonic", "bursting", "noisy"):
        sel = [r.refinement for r, kind in zip(res.recordings, kinds) if kind == k and r.refinement is not None]
        if sel:
            print(f"refined {k}: median tolerance {np.median([r.tolerance for r in sel]):.2f}, median ESS "
                  f"{np.median([r.ess for r in sel]):.0f}, median distinct {np.median([r.distinct for r in sel]):.0f}, "
                  f"flagged {np.mean([r.flagged for r in sel]):.2f}, median simulations "
                  f"{np.median([r.simulations for r in sel]):.0f}, "
                  f"truth coverage {_kind_coverage(res, kinds, k, cells):.3f}")
    return scores(res, kinds, ids, "refined"), figures


def _kind_coverage(res, kinds, kind: str, cells: dict) -> float:
    """The truth coverage of the recordings of one kind."""
    from types import SimpleNamespace

    return truth_coverage(SimpleNamespace(recordings=[r for r, k in zip(res.recordings, kinds) if k == kind]), cells)


def scores(res, kinds, ids, method):
    """Class and frequency match per kind; a recording without a population (none of its samples reachable)
    counts as a failure (0 and 0), so every method is scored on every recording in ``ids``; ``method`` names the
    method in the line that lists them."""
    checks = {r.id: r.check for r in res.recordings}
    missing = [i for i in ids if i not in checks]
    if missing:
        print(f"{method}: {len(missing)} of {len(ids)} recordings without a population (counted as failures): "
              + ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else ""))
    cm = np.array([checks[i]["class_match"] if i in checks else 0.0 for i in ids])
    fm = np.array([checks[i]["freq_match"] if i in checks else 0.0 for i in ids])
    out = {"all": (cm.mean(), fm.mean())}
    for k in ("tonic", "bursting", "noisy"):
        sel = kinds == k
        if sel.any():
            out[k] = (cm[sel].mean(), fm[sel].mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--n-recordings", type=int, default=200)
    ap.add_argument("--n-models", type=int, default=100)
    ap.add_argument("--check", type=int, default=20)
    ap.add_argument("--posterior", default=None)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--refine", action="store_true", help="also run the simulation-refined populations")
    ap.add_argument("--unseen", type=int, default=0, help="with --refine: the truth coverage on this many "
                    "recordings of cells with every conductance uniform in the model's box (no compensation)")
    ap.add_argument("--prior-world", type=int, default=0, help="with --refine: the truth coverage on this many "
                    "recordings of cells drawn from the refinement's own prior (the sampler's self-consistency)")
    ap.add_argument("--wide", type=float, default=RefineOptions.wide, help="with --refine: the wide world's "
                    "prior weight (dicsbi.refine.world; 0: the training world alone)")
    ap.add_argument("--refine-options", default="", help="with --refine: other RefineOptions fields, e.g. "
                    "'differential=0.5,final_moves=3' (the measured alternatives in dicsbi.refine's docstring)")
    ap.add_argument("--oracle", action="store_true", help="also run with the true DIC targets as 'posterior' "
                    "(the ceiling of DIC matching: populations differ from the recorded cell outside the DICs)")
    args = ap.parse_args()
    post = load_posterior(args.posterior or args.model, model=args.model)
    trains, kinds, targets, cells = fresh_recordings(args.model, args.n_recordings, args.seed)
    print(f"{len(trains)} recordings: " + ", ".join(f"{k} {int((kinds == k).sum())}" for k in np.unique(kinds)))
    res = infer(trains, args.model, args.n_models, posterior=post, seed=args.seed, check=args.check, progress=True)
    base = infer(trains, args.model, args.n_models, posterior=PriorPosterior(post), seed=args.seed,
                 check=args.check, progress=True)
    ids = [str(i) for i in trains.ids]
    s, p = scores(res, kinds, ids, "posterior"), scores(base, kinds, ids, "prior")
    o = None
    if args.oracle:
        o = scores(infer(trains, args.model, args.n_models, posterior=OraclePosterior(post, targets),
                         seed=args.seed, check=args.check, progress=True), kinds, ids, "true DICs")
    print(f"{'':10} {'class match':>12} {'freq within 10%':>16} {'prior: class':>13} {'prior: freq':>12}"
          + (f" {'true DICs: class':>17} {'true DICs: freq':>16}" if o else ""))
    for k in s:
        print(f"{k:10} {s[k][0]:12.3f} {s[k][1]:16.3f} {p[k][0]:13.3f} {p[k][1]:12.3f}"
              + (f" {o[k][0]:17.3f} {o[k][1]:16.3f}" if o else ""))
    line = (f"model={args.model} class_match={s['all'][0]:.4f} freq_match={s['all'][1]:.4f} "
            f"class_match_prior={p['all'][0]:.4f} freq_match_prior={p['all'][1]:.4f}")
    if args.refine:
        rs, fig = refined_figures(trains, args, post, kinds, ids, cells)
        for k in rs:
            print(f"refined {k:10} class match {rs[k][0]:.3f}  freq within 10% {rs[k][1]:.3f}")
        cov_dic = truth_coverage(res, cells)
        (a, b), (c, d) = fig["truth_cov90_ci"], coverage_interval(res, cells)
        print(f"truth coverage (90% interval): refined {fig['truth_cov90']:.3f} [{a:.3f}, {b:.3f}], unrefined "
              f"{cov_dic:.3f} [{c:.3f}, {d:.3f}] (95% bootstrap over recordings); smallest "
              f"ESS {fig['ess_min']:.0f}, fewest distinct {fig['distinct_min']}, flagged {fig['refine_flagged']:.3f}, "
              f"{fig['s_per_recording']:.1f} s per recording")
        print(f"unseen: a {STEP_UA_CM2:g} uA/cm^2 step: members in the true cell's pattern "
              f"{fig['step_class_match']:.3f}, and within 20% of its rate {fig['step_rate_match']:.3f}; noisy "
              f"recordings' ceiling (their true cell with fresh noise): class {fig['noisy_ceiling_class']:.3f}, "
              f"freq {fig['noisy_ceiling_freq']:.3f} (targets min(0.97, c - 0.02))")
        if args.unseen:
            u_trains, u_cells = unseen_recordings(args.model, args.unseen, args.seed + 1, post.config.box)
            u_res = infer(u_trains, args.model, args.n_models, posterior=post, seed=args.seed,
                          refine=refine_options(args), progress=True)
            fig["unseen_truth_cov90"] = truth_coverage(u_res, u_cells)
            a, b = coverage_interval(u_res, u_cells)
            print(f"unseen world ({len(u_trains)} cells uniform in the box, no compensation): truth coverage "
                  f"{fig['unseen_truth_cov90']:.3f} [{a:.3f}, {b:.3f}]")
        if args.prior_world:
            p_trains, p_cells = prior_recordings(args.model, args.prior_world, args.seed + 2, post, args.wide)
            p_res = infer(p_trains, args.model, args.n_models, posterior=post, seed=args.seed,
                          refine=refine_options(args), progress=True)
            fig["prior_world_truth_cov90"] = truth_coverage(p_res, p_cells)
            print(f"the refinement's own prior ({len(p_trains)} cells): truth coverage "
                  f"{fig['prior_world_truth_cov90']:.3f} (a correct sampler: about 0.9)")
        line += (f" refined_class_match={rs['all'][0]:.4f} refined_freq_match={rs['all'][1]:.4f} "
                 f"truth_cov90={fig['truth_cov90']:.4f} truth_cov90_unrefined={cov_dic:.4f} "
                 f"ess_min={fig['ess_min']:.1f} s_per_recording={fig['s_per_recording']:.2f} "
                 f"refine_flagged={fig['refine_flagged']:.4f} step_class_match={fig['step_class_match']:.4f} "
                 f"step_rate_match={fig['step_rate_match']:.4f} vr_ratio={fig['vr_ratio']:.4f}"
                 + (f" unseen_truth_cov90={fig['unseen_truth_cov90']:.4f}" if args.unseen else "")
                 + (f" prior_world_truth_cov90={fig['prior_world_truth_cov90']:.4f}" if args.prior_world else ""))
    print(line)


if __name__ == "__main__":
    main()
