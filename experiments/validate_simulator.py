"""Compare the numba simulator with a tight-tolerance scipy reference (LSODA, rtol = atol = 1e-8).

For each model: draw balanced random Monte-Carlo conductance sets (``dicsbi.oracle.stratified_sets``),
integrate each with the reference once, simulate all of them with the kernel at several dt, and print per dt:
class agreement, spike-count agreement (within max(1, 2%)) and the mean-ISI relative error (median and p95), as a
table with the two accuracy tiers' steps marked (each model's exact and fast steps are always included).  Cells whose
reference is marginal (peaks within 5 mV of the +10 mV detection level, see ``dicsbi.oracle``) are counted
and reported separately; the headline figures exclude them.

    python experiments/validate_simulator.py                      # 200 sets per model, 2 workers
    python experiments/validate_simulator.py --n-sets 30 --dts 0.02
    python experiments/validate_simulator.py --write-test-sets tests/data/simulator_sets.json
    python tests/data/make_simulator_references.py               # then store their scipy trains for the tests

Ends with one line: class_agreement_stg=.. isi_relerr_median_stg=.. class_agreement_stg_fast=..
isi_relerr_median_stg_fast=.. (the same for da) dt_ms=<stg>,<da> fast_dt_ms=<stg>,<da> (the exact and fast
tiers' steps, at which the headline figures are taken).  ``--cache`` keeps every reference integration, so a
rerun after a kernel change costs seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dicsbi.models import get_model
from dicsbi.oracle import compare_trains, ill_conditioned, parameter_sensitive, run_references, stratified_sets
from dicsbi.simulate import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-sets", type=int, default=200)
    ap.add_argument("--models", default="stg,da")
    ap.add_argument("--duration-ms", type=float, default=2000.0)
    ap.add_argument("--transient-ms", type=float, default=1000.0)
    ap.add_argument("--dts", default="0.05,0.025,0.02,0.01")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cache", default=str(Path.home() / "dicsbi-data" / "reference-cache"),
                    help="folder keeping each reference integration, so reruns only integrate new cells "
                         "('' for none)")
    ap.add_argument("--write-test-sets", default=None,
                    help="also write 20 non-marginal balanced sets per model to this JSON for tests")
    args = ap.parse_args()
    dts = [float(x) for x in args.dts.split(",")]
    summary: dict[str, float] = {}
    test_sets: dict[str, list] = {}
    for name in args.models.split(","):
        model = get_model(name)
        t0 = time.time()
        g = stratified_sets(model, args.n_sets, args.seed, args.duration_ms, args.transient_ms)
        refs = run_references(model, g, args.duration_ms, args.transient_ms, workers=args.workers,
                              cache=args.cache or None)
        ref_s = time.time() - t0
        print(f"\n== {name}: {len(g)} sets, reference (LSODA 1e-8) {ref_s:.0f} s")
        tiers = {model.tier_dt_ms(t): t for t in ("fast", "exact")}
        print(f"{'tier':6} {'dt (ms)':>7} {'class':>7} {'(all)':>7} {'count ok':>9} {'ISI median':>11} "
              f"{'ISI p95':>9} {'marginal':>9} {'diverged':>9}")
        for dt in sorted(set(dts) | set(tiers), reverse=True):
            res = simulate(model, g, args.duration_ms, dt, args.transient_ms)
            cmp = compare_trains(res.trains, refs)
            keep = ~cmp["marginal"]
            agree = float(np.mean(cmp["class_kernel"][keep] == cmp["class_reference"][keep]))
            count_ok = float(np.mean(cmp["count_ok"][keep]))
            err = cmp["isi_relerr"][keep]
            err = err[np.isfinite(err)]
            med = float(np.median(err)) if err.size else float("nan")
            p95 = float(np.percentile(err, 95)) if err.size else float("nan")
            agree_all = float(np.mean(cmp["class_kernel"] == cmp["class_reference"]))
            print(f"{tiers.get(dt, ''):6} {dt:7g} {agree:7.4f} {agree_all:7.4f} {count_ok:9.4f} {med:11.2e} "
                  f"{p95:9.2e} {int((~keep).sum()):9d} {int(res.diverged.sum()):9d}")
            ref_cls = np.bincount(cmp["class_reference"], minlength=3)
            if dt in tiers:
                suffix = "" if tiers[dt] == "exact" else "_fast"
                summary[f"class_agreement_{name}{suffix}"] = agree
                summary[f"isi_relerr_median_{name}{suffix}"] = med
            if dt == model.default_dt_ms:
                print(f"   reference classes silent/spiking/bursting: {ref_cls.tolist()}")
                if args.write_test_sets:
                    test_sets[name] = _pick_test_sets(model, g, refs, cmp, args)
    if args.write_test_sets:
        doc = {"generated_by": "experiments/validate_simulator.py", "seed": args.seed, "n_sets": args.n_sets,
               "duration_ms": args.duration_ms, "transient_ms": args.transient_ms,
               "criteria": "non-marginal; LSODA 1e-8 and 1e-10 agree; stable under +-0.1% conductance changes",
               "sets": test_sets}
        with open(args.write_test_sets, "w") as fh:
            json.dump(doc, fh, indent=1)
    line = " ".join(f"{k}={v:.6g}" for k, v in summary.items())
    dts = ",".join(f"{get_model(m).default_dt_ms:g}" for m in args.models.split(","))
    fast = ",".join(f"{get_model(m).tier_dt_ms('fast'):g}" for m in args.models.split(","))
    print(f"{line} dt_ms={dts} fast_dt_ms={fast}")


def _pick_test_sets(model, g, refs, cmp, args, n=20, candidates=40):
    """20 well-conditioned sets, round-robin over reference classes, for the unit test.

    Candidates (non-marginal, round-robin over classes) are integrated again with LSODA at 1e-10 and with every
    conductance moved by +-0.1% (two random sign patterns); cells whose references disagree
    (:func:`dicsbi.oracle.ill_conditioned`, chaotic cells) or move beyond the test's tolerances
    (:func:`dicsbi.oracle.parameter_sensitive`) are left out.  The kernel plays no part in the choice.
    """
    ok = ~cmp["marginal"]
    by_class = [list(np.flatnonzero(ok & (cmp["class_reference"] == c))) for c in range(3)]
    order: list[int] = []
    while len(order) < candidates and any(by_class):
        for lst in by_class:
            if lst and len(order) < candidates:
                order.append(lst.pop(0))
    tight = run_references(model, g[order], args.duration_ms, args.transient_ms, args.workers, tol=1e-10)
    bad = ill_conditioned([refs[i] for i in order], tight)
    rest = np.flatnonzero(~bad)
    sens = parameter_sensitive(model, g[order][rest], [refs[order[i]] for i in rest], args.duration_ms,
                               args.transient_ms, args.workers, seed=args.seed)
    print(f"   test-set candidates: {len(order)}, ill-conditioned (LSODA 1e-8 vs 1e-10): {int(bad.sum())}, "
          f"sensitive to +-0.1% conductance changes: {int(sens.sum())}")
    bad[rest[sens]] = True
    kept = [i for i, b in zip(order, bad) if not b]
    cls = cmp["class_reference"]
    picked: list[int] = []
    by_class = [[i for i in kept if cls[i] == c] for c in range(3)]
    while len(picked) < n and any(by_class):
        for lst in by_class:
            if lst and len(picked) < n:
                picked.append(lst.pop(0))
    return [g[i].tolist() for i in picked]


if __name__ == "__main__":
    main()
