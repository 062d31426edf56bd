"""Does ``modulate`` name the channels a modulator changed?  Synthetic before/after pairs with known ground truth.

Each scenario takes one cell of a degenerate population at a tonic or bursting DIC target (the before cell),
changes a known subset of 1 to 3 modulable channels by known factors (the after cell), simulates both and asks
:func:`dicsbi.modulation.modulate` which subset changed.  Scenarios alternate between random subsets (log-ratios
of about +-[0.3, 0.9]) and the biology-driven ones of reference section 3.4: STG "DA on LP" (A down, H up),
"DA on PD" (A up, KCa up), Fyon's rule ((CaS, A) re-solved to a bursting g_s at fixed g_u), Brandoit's pairs
((CaS, H) and (A, H) re-solves), distractors (H only; Na+Kd+A); DA Fyon rule ((CaL, CaN) re-solved toward g_s
-1.5 or -4), NMDA up, (ERG, CaL) and (ERG, Kd) re-solves, distractors (ERG only; Na+Kd+CaN).  In DA, g_NMDA
x2.5-5 leaves (g_s, g_u) at V_th unchanged to 0.01 (a DIC blind spot by construction), and Kd moves only g_s and
ERG only g_u, so the (ERG, Kd) re-solve moves both targets (at fixed g_u it would leave ERG alone).

A draw whose before or after train is nearly silent (< 3 spikes) is redrawn; a draw that leaves the firing
unchanged (same firing class and mean rate within 25 %) is redrawn a few times, and kept if no changed draw comes:
such scenarios are expected to come out flat (not identified), and they are reported separately.

    python experiments/eval_modulation.py --model stg [--scenarios 30] [--seed 0] [--n-members 200]
        [--out out/eval-modulation-stg] [--resume]

Printed: a progress line per scenario, a per-scenario table, the rank of the true subset, top-1 / top-3 rates (all,
firing changed, firing unchanged), calls right only up to a near-collinear swap (STG CaT/CaS, Kd/A; DA Na/NMDA;
not counted in top-1), the mean marginal targeting probability of the changed and of the untouched channels, and
how often a confident call (P >= 0.8) is right.  ``scenarios.csv`` (one row per scenario, with the seed) goes to
``--out``; ``scenarios.partial.csv`` holds the rows done so far and lets ``--resume`` skip them.

Also printed: the top-1 rate once channels that cannot move (g_s, g_u) are dropped (DA NMDA), the channel-level
AUC (how often a changed channel gets a higher targeting probability than an untouched one of the same scenario),
and the log Bayes factor of the true subset against "nothing changed in (g_s, g_u)".

Ends with one line: model=M scenarios=n top1=.. top3=.. p_targeted=.. p_untouched=.. confident_right=..
confident_n=..
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np

from dicsbi.compensation import UnreachableTargetError, compensate, generate_population, plausible_upper_bounds
from dicsbi.dics import compute_dics
from dicsbi.errors import DicsbiError
from dicsbi.models import get_model
from dicsbi.modulation import modulable_channels, modulate
from dicsbi.simulate import simulate
from dicsbi.spikes import MIN_SPIKES, firing_class

TARGETS = {  # (g_s, g_u) of before cells: tonic first, then bursting
    "stg": {"tonic": [(4.0, 5.0), (6.0, 4.0), (5.0, 4.0), (10.0, 6.0)], "bursting": [(-3.0, 5.0), (-8.0, 5.0)]},
    "da": {"tonic": [(0.5, 5.0), (3.0, 6.0)], "bursting": [(-1.5, 5.0), (-3.0, 5.0)]},
}
BIO_KINDS = {
    "stg": ["da_lp", "da_pd", "fyon_cas_a", "brandoit_cas_h", "brandoit_a_h", "only_h", "na_kd_a"],
    "da": ["fyon_cal_can", "nmda_up", "erg_cal", "erg_kd", "only_erg", "na_kd_can"],
}
COLLINEAR = {"stg": [("g_CaT", "g_CaS"), ("g_Kd", "g_A")], "da": [("g_Na", "g_NMDA")]}
CHANGE_TRIES = 4     # draws per scenario until the firing changes; the last unchanged draw is kept otherwise
MAX_DRAWS = 60       # draws per scenario in all (invalid, out-of-bounds or silent draws included)
CONFIDENT = 0.8
RATE_CHANGE = 0.25
FIELDS = ["idx", "kind", "target_gs", "target_gu", "truth", "log_ratios", "dic_before", "dic_after", "class_before",
          "class_after", "rate_before_hz", "rate_after_hz", "changed", "draws", "posterior_shift", "rank", "p_true",
          "top", "p_top", "top1", "top3", "swap_right", "has_swap", "identified", "p_targeted", "p_untouched",
          "dlog_err", "n_warnings", "top1_visible", "lbf_true_vs_no_change", "channel_probs", "seconds", "seed"]


def _scaled(m, cell, factors: dict[str, float]) -> np.ndarray:
    after = cell.copy()
    for name, f in factors.items():
        after[m.conductance_names.index(name)] *= f
    return after


def _resolve(m, cell, g_s: float, g_u: float, pair) -> np.ndarray | None:
    comp = compensate(m, cell[None], {"g_s": g_s, "g_u": g_u}, pair)
    return comp.conductances[0] if comp.valid[0] else None


def _random_factors(rng, channels, lo: float = 0.3, hi: float = 0.9) -> dict[str, float]:
    return {c: float(np.exp(rng.choice([-1.0, 1.0]) * rng.uniform(lo, hi))) for c in channels}


def _target(model: str, kind: str, rng) -> tuple[float, float]:
    t = TARGETS[model]
    if kind in ("fyon_cas_a", "brandoit_cas_h", "brandoit_a_h", "fyon_cal_can", "erg_kd"):
        pool = t["tonic"]
    elif kind == "erg_cal":
        pool = [x for x in t["tonic"] if x[0] > 1.0]
    else:
        pool = t["tonic"] + t["bursting"]
    return pool[rng.integers(len(pool))]


def _after(m, model: str, kind: str, cell, target, rng) -> np.ndarray | None:
    """The modulated cell for a scenario kind (None when a re-solve has no valid solution)."""
    gs, gu = target
    u = rng.uniform
    if kind == "random":
        chans = list(modulable_channels(model))
        sub = rng.choice(len(chans), int(rng.integers(1, 4)), replace=False)
        return _scaled(m, cell, _random_factors(rng, [chans[k] for k in sub]))
    fixed = {"da_lp": {"g_A": u(0.6, 0.8), "g_H": u(1.2, 1.5)}, "da_pd": {"g_A": u(1.3, 1.5), "g_KCa": u(1.2, 1.4)},
             "nmda_up": {"g_NMDA": u(2.5, 5.0)}, "only_h": _random_factors(rng, ["g_H"], 0.4, 0.9),
             "only_erg": _random_factors(rng, ["g_ERG"], 0.4, 0.9),
             "na_kd_a": _random_factors(rng, ["g_Na", "g_Kd", "g_A"]),
             "na_kd_can": _random_factors(rng, ["g_Na", "g_Kd", "g_CaN"])}
    if kind in fixed:
        return _scaled(m, cell, fixed[kind])
    resolves = {"fyon_cas_a": (u(-9.0, -3.0), gu, ("g_CaS", "g_A")),
                "brandoit_cas_h": (u(-5.0, -3.0), gu, ("g_CaS", "g_H")),
                "brandoit_a_h": (gs + u(4.0, 8.0), gu, ("g_A", "g_H")),
                "fyon_cal_can": (float(rng.choice([-1.5, -4.0])), gu, ("g_CaL", "g_CaN")),
                "erg_cal": (gs - u(3.0, 4.5), gu, ("g_ERG", "g_CaL")),
                # in DA, Kd moves only g_s and ERG only g_u at V_th: at fixed g_u this re-solve would leave ERG alone
                "erg_kd": (gs + u(1.5, 3.0), gu - u(1.5, 3.0), ("g_ERG", "g_Kd"))}
    new_gs, new_gu, pair = resolves[kind]
    return _resolve(m, cell, new_gs, new_gu, pair)


def _changed(cls, rate) -> bool:
    return bool(cls[0] != cls[1] or (rate[0] > 0 and abs(rate[1] / rate[0] - 1) > RATE_CHANGE))


def draw_scenario(model: str, kind: str, rng) -> dict:
    """Before/after cells and trains of one scenario (see the module docstring for the redraw rules)."""
    m = get_model(model)
    upper = plausible_upper_bounds(m)
    kept, unchanged = None, 0
    for draw in range(1, MAX_DRAWS + 1):
        target = _target(model, kind, rng)
        try:
            cell = generate_population(m, *target, 1, seed=int(rng.integers(2**31))).conductances[0]
        except UnreachableTargetError:
            continue
        after = _after(m, model, kind, cell, target, rng)
        if after is None or np.any(after <= 0) or np.any(after > upper):
            continue
        res = simulate(m, np.stack([cell, after]), seed=int(rng.integers(2**31)), ids=["cell", "cell"])
        trains = res.trains
        if np.any(trains.counts < MIN_SPIKES) or np.any(res.status != 0):
            continue
        diff = ~np.isclose(after, cell, rtol=1e-9, atol=0)
        truth = tuple(c for c, d in zip(m.conductance_names, diff, strict=True) if d)
        sc = {"kind": kind, "target": target, "before": cell, "after": after, "truth": truth,
              "log_ratio": {c: float(np.log(after[i] / cell[i])) for i, c in enumerate(m.conductance_names) if diff[i]},
              "trains": (trains.select([0]), trains.select([1])), "class": firing_class(trains).tolist(),
              "rate": (trains.counts / trains.duration_ms * 1e3).tolist(), "draws": draw}
        sc["changed"] = _changed(sc["class"], sc["rate"])
        if sc["changed"]:
            return sc
        kept, unchanged = sc, unchanged + 1
        if unchanged >= CHANGE_TRIES:
            return kept
    if kept is None:
        raise DicsbiError(f"{model} {kind}: no valid non-silent scenario in {MAX_DRAWS} draws")
    return kept


def _swaps(model: str, truth: tuple[str, ...]) -> set[frozenset]:
    """Subsets that differ from ``truth`` only by swapping channels for their near-collinear partners."""
    out = {frozenset(truth)}
    for a, b in COLLINEAR[model]:
        for s in list(out):
            for x, y in ((a, b), (b, a)):
                if x in s and y not in s:
                    out.add((s - {x}) | {y})
    return out - {frozenset(truth)}


def _shift(before: np.ndarray, after: np.ndarray) -> float:
    """Distance between the before and after DIC posterior means in pooled posterior SDs (Mahalanobis)."""
    cov = 0.5 * (np.cov(before.T) + np.cov(after.T)) + 1e-9 * np.eye(2)
    d = after.mean(0) - before.mean(0)
    return float(np.sqrt(d @ np.linalg.solve(cov, d)))


def score(model: str, sc: dict, res) -> dict:
    """One CSV row: the scenario, where the true subset ranks and what the comparison called."""
    m = get_model(model)
    p = res.probability
    order = res.order()
    labels = [frozenset(h.channels) for h in res.hypotheses]
    t = labels.index(frozenset(sc["truth"]))
    top = int(order[0])
    rank = int(np.flatnonzero(order == t)[0]) + 1
    cp = res.channel_probability()
    untouched = [c for c in cp if c not in sc["truth"]]
    changes = res.changes(t)
    err = [abs(float(np.median(changes[c])) - sc["log_ratio"][c]) for c in sc["truth"]] if changes[
        sc["truth"][0]].size else [np.nan]
    n = res.neurons[0]
    dics = compute_dics(m, np.stack([sc["before"], sc["after"]]))[:, 1:]
    return {"kind": sc["kind"], "target_gs": sc["target"][0], "target_gu": sc["target"][1],
            "truth": "+".join(c[2:] for c in sc["truth"]),
            "log_ratios": " ".join(f"{c[2:]}:{v:+.3f}" for c, v in sc["log_ratio"].items()),
            "dic_before": f"{dics[0, 0]:.2f}/{dics[0, 1]:.2f}", "dic_after": f"{dics[1, 0]:.2f}/{dics[1, 1]:.2f}",
            "class_before": sc["class"][0], "class_after": sc["class"][1], "rate_before_hz": round(sc["rate"][0], 3),
            "rate_after_hz": round(sc["rate"][1], 3), "changed": int(sc["changed"]), "draws": sc["draws"],
            "posterior_shift": round(_shift(n.before_samples, n.after_samples), 3), "rank": rank,
            "p_true": float(p[t]), "top": res.hypotheses[top].label, "p_top": float(p[top]), "top1": int(top == t),
            "top3": int(rank <= 3), "swap_right": int(top != t and labels[top] in _swaps(model, sc["truth"])),
            "has_swap": int(bool(_swaps(model, sc["truth"]))), "identified": int(res.identified),
            "p_targeted": float(np.mean([cp[c] for c in sc["truth"]])),
            "p_untouched": float(np.mean([cp[c] for c in untouched])), "dlog_err": float(np.mean(err)),
            "n_warnings": len(res.warnings()),
            "top1_visible": int(_visible(res, labels[top]) == _visible(res, labels[t])),
            "lbf_true_vs_no_change": float(res.log_bayes_factor_vs_no_change[t]),
            "channel_probs": " ".join(f"{c[2:]}:{v:.4f}:{int(c in sc['truth'])}" for c, v in cp.items())}


def _visible(res, subset: frozenset) -> frozenset:
    """The subset without the channels that cannot move (g_s, g_u) (res.invisible_channels())."""
    return subset - set(res.invisible_channels())


def channel_auc(rows: list[dict]) -> float:
    """P(a targeted channel gets a higher marginal probability than an untouched one of the same scenario)."""
    wins = []
    for r in rows:
        items = [x.split(":") for x in r["channel_probs"].split()]
        hit = [float(p) for _, p, t in items if t == "1"]
        miss = [float(p) for _, p, t in items if t == "0"]
        wins += [1.0 if a > b else 0.5 if a == b else 0.0 for a in hit for b in miss]
    return float(np.mean(wins)) if wins else float("nan")


def _kinds(model: str, n: int) -> list[str]:
    """Even scenarios random, odd ones cycle through the biology-driven kinds."""
    bio = BIO_KINDS[model]
    return ["random" if i % 2 == 0 else bio[(i // 2) % len(bio)] for i in range(n)]


def _write(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: int(r["idx"])))
    os.replace(tmp, path)


def _read(path: Path, seed: int) -> dict[int, dict]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["seed"]) == seed]
    ints = ("idx", "class_before", "class_after", "changed", "draws", "rank", "top1", "top3", "swap_right",
            "has_swap", "identified", "n_warnings", "top1_visible")
    floats = ("target_gs", "target_gu", "rate_before_hz", "rate_after_hz", "posterior_shift", "p_true", "p_top",
              "p_targeted", "p_untouched", "dlog_err", "seconds", "lbf_true_vs_no_change")
    for r in rows:
        r.update({k: int(r[k]) for k in ints} | {k: float(r[k]) for k in floats})
    return {r["idx"]: r for r in rows}


def print_table(rows: list[dict]) -> None:
    head = (f"{'#':>3} {'kind':<15} {'DIC g_s/g_u before>after':>24} {'truth':<11} {'log-ratios':<30} {'cls':>4} "
            f"{'rate Hz':>13} "
            f"{'chg':>3} {'shift':>6} {'rank':>4} {'P(true)':>7} {'top':<11} {'P(top)':>6} {'P_tgt':>5} {'P_unt':>5}")
    print(head)
    for r in rows:
        mark = "*" if r["top1"] else ("~" if r["swap_right"] else " ")
        print(f"{r['idx']:>3} {r['kind']:<15} {r['dic_before'] + '>' + r['dic_after']:>24} {r['truth']:<11} "
              f"{r['log_ratios']:<30} {r['class_before']}>{r['class_after']:<2} "
              f"{r['rate_before_hz']:>6.2f}>{r['rate_after_hz']:<6.2f} {r['changed']:>3} {r['posterior_shift']:>6.2f} "
              f"{r['rank']:>4} {r['p_true']:>7.3f} {r['top']:<10}{mark} {r['p_top']:>6.3f} {r['p_targeted']:>5.2f} "
              f"{r['p_untouched']:>5.2f}")
    print("(* top call right, ~ right only up to a near-collinear swap; cls 0 silent 1 tonic 2 bursting; shift: "
          "after-minus-before DIC posterior mean in pooled posterior SDs)")


def _rates(rows: list[dict]) -> str:
    if not rows:
        return "n=0"
    return (f"n={len(rows)} top1={np.mean([r['top1'] for r in rows]):.3f} "
            f"top3={np.mean([r['top3'] for r in rows]):.3f} swap_right={sum(r['swap_right'] for r in rows)}")


def summarise(model: str, rows: list[dict]) -> str:
    ranks = [r["rank"] for r in rows]
    conf = [r for r in rows if r["p_top"] >= CONFIDENT]
    conf_right = np.mean([r["top1"] for r in conf]) if conf else np.nan
    print(f"rank of the true subset: median {np.median(ranks):.1f}; {ranks}")
    print(f"all:              {_rates(rows)}")
    print(f"firing changed:   {_rates([r for r in rows if r['changed']])}")
    print(f"firing unchanged: {_rates([r for r in rows if not r['changed']])}")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        print(f"  {kind:<15} {_rates([r for r in rows if r['kind'] == kind])}")
    print(f"scenarios whose truth has a near-collinear swap partner: {sum(r['has_swap'] for r in rows)}; top call "
          f"right only up to such a swap (not in top1): {sum(r['swap_right'] for r in rows)}")
    print(f"identified (P(top) >= 0.5): {sum(r['identified'] for r in rows)}; confident (P(top) >= {CONFIDENT}): "
          f"{len(conf)}, of which right {sum(r['top1'] for r in conf)}")
    print(f"median |log-ratio error| under the true subset: {np.nanmedian([r['dlog_err'] for r in rows]):.3f}")
    print(f"top call right once DIC-invisible channels are dropped from both (e.g. DA NMDA): "
          f"{np.mean([r['top1_visible'] for r in rows]):.3f}")
    print(f"channel-level AUC (a targeted channel above an untouched one of the same scenario): "
          f"{channel_auc(rows):.3f}")
    lbf = np.array([r["lbf_true_vs_no_change"] for r in rows])
    print(f"true subset against 'nothing changed in (g_s, g_u)': log BF median {np.median(lbf):.2f}, > log 3 in "
          f"{np.mean(lbf > np.log(3)):.0%} of scenarios")
    p_t, p_u = np.mean([r["p_targeted"] for r in rows]), np.mean([r["p_untouched"] for r in rows])
    return (f"model={model} scenarios={len(rows)} top1={np.mean([r['top1'] for r in rows]):.4f} "
            f"top3={np.mean([r['top3'] for r in rows]):.4f} p_targeted={p_t:.4f} p_untouched={p_u:.4f} "
            f"confident_right={conf_right:.4f} confident_n={len(conf)}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("stg", "da"), required=True)
    ap.add_argument("--scenarios", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-members", type=int, default=200)
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true", help="skip the scenarios already in scenarios.partial.csv")
    args = ap.parse_args(argv)
    out = Path(args.out or f"out/eval-modulation-{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "scenarios.partial.csv"
    done = _read(partial, args.seed) if args.resume else {}
    kinds = _kinds(args.model, args.scenarios)
    children = np.random.SeedSequence(args.seed).spawn(args.scenarios)
    t0 = time.perf_counter()
    for i, (kind, child) in enumerate(zip(kinds, children, strict=True)):
        if i in done:
            continue
        t1 = time.perf_counter()
        draw_ss, mod_ss = child.spawn(2)
        sc = draw_scenario(args.model, kind, np.random.default_rng(draw_ss))
        res = modulate(*sc["trains"], args.model, n_members=args.n_members, seed=int(mod_ss.generate_state(1)[0]))
        row = {"idx": i, **score(args.model, sc, res), "seconds": round(time.perf_counter() - t1, 1),
               "seed": args.seed}
        done[i] = row
        _write(list(done.values()), partial)
        print(f"[{i + 1}/{args.scenarios}] {time.perf_counter() - t0:7.1f}s {kind:<15} truth={row['truth']:<11} "
              f"changed={row['changed']} rank={row['rank']} P(true)={row['p_true']:.3f} top={row['top']} "
              f"P(top)={row['p_top']:.3f}", flush=True)
    rows = [done[i] for i in sorted(done)]
    _write(rows, out / "scenarios.csv")
    partial.unlink(missing_ok=True)
    print_table(rows)
    print(f"total {time.perf_counter() - t0:.0f} s this run; {sum(r['seconds'] for r in rows):.0f} s of scenarios")
    print(summarise(args.model, rows))


if __name__ == "__main__":
    main()
