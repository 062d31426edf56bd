"""Speed of the numba simulator on one core, against scipy at matched accuracy, and training-cell throughput.

Per model:

1. **Kernel speed**: the non-silent cells of ``--n-neurons`` balanced random Monte-Carlo sets
   (``dicsbi.oracle.stratified_sets``; silent cells are left out so that no cheap cell flatters the
   figure), tiled to about 300 neurons, ``--transient-ms`` + ``--duration-ms``, one thread, after a warm-up
   call (compilation excluded): ns per neuron-step at the exact and at the fast tier.
2. **Legacy speed-up**: scipy ``solve_ivp(BDF)`` at the published Spike2Pop tolerances (rtol 1e-3, atol 1e-6)
   per neuron over the kernel per neuron at the exact tier.
3. **Work-precision table** on ``--n-wp`` balanced sets (another seed), of which the well-posed ones are kept:
   not marginal, and LSODA at 1e-8 and at 1e-10 agree (``dicsbi.oracle.ill_conditioned``, the criterion of
   the unit test's sets; a chaotic cell has no train any solver can be held to).  scipy BDF at rtol 1e-3 ...
   1e-8 (atol = 1e-3 rtol) and the kernel's two tiers, each against LSODA at rtol = atol = 1e-8 (class
   agreement, spike count within max(1, 2%), mean-ISI relative error median and p95, processor seconds per
   neuron).  The loosest BDF tolerance whose class agreement and median ISI error are no worse than the fast
   tier's is the *matched* one; ``speedup_matched`` = its time per neuron / the fast tier's.  scipy runs on
   ``--workers`` processes and is timed by each integration's own processor time; results (and times) are kept
   in ``--cache`` so a rerun only integrates what is new.
4. **Training cells per core-second**: cells of the training generator (populations at ``--n-targets`` Latin
   hypercube DIC targets, ``--cells-per-target`` each; silent cells included, as in a data set) simulated with
   the data set's transient + window at the fast tier, one thread.
5. **Whole pipeline**: ``simulate_dataset`` (populations + simulation + features + Parquet) with 1 and 2
   worker processes on ``--pipeline-targets`` x 16 cells, cells per wall-second including worker start-up.

Ends with one line:
ns_per_step_stg=.. ns_per_step_da=.. speedup_vs_bdf_stg=.. speedup_vs_bdf_da=.. speedup_matched_stg=..
speedup_matched_da=.. cells_per_core_s_stg=.. cells_per_core_s_da=..
(ns_per_step: the slower of the two tiers; the table prints both.)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dicsbi.compensation import UnreachableTargetError, generate_population
from dicsbi.datasets.config import DatasetConfig, design_targets
from dicsbi.datasets.generate import simulate_dataset
from dicsbi.models import get_model
from dicsbi.oracle import compare_trains, ill_conditioned, run_references, stratified_sets
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains, firing_class

BDF_RTOLS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)


def kernel_ns_per_step(model, g, dt, transient_ms, duration_ms, copies):
    """(ns per neuron-step, s per neuron, trains of ``g``) of one-thread runs of ``g`` tiled ``copies`` times."""
    simulate(model, g[:2], 10.0, dt, 0.0, n_threads=1)  # compile or load the cache
    batch = np.tile(g, (copies, 1))
    t0 = time.perf_counter()
    res = simulate(model, batch, duration_ms, dt, transient_ms, n_threads=1)
    wall = time.perf_counter() - t0
    assert not res.diverged.any()
    steps = batch.shape[0] * round((duration_ms + transient_ms) / dt)
    return wall / steps * 1e9, wall / batch.shape[0], res.trains.select(np.arange(len(g)))


def accuracy_row(cmp) -> dict:
    keep = ~cmp["marginal"]
    err = cmp["isi_relerr"][keep]
    err = err[np.isfinite(err)]
    return {"class": float(np.mean(cmp["class_kernel"][keep] == cmp["class_reference"][keep])),
            "count": float(np.mean(cmp["count_ok"][keep])),
            "isi_med": float(np.median(err)) if err.size else float("nan"),
            "isi_p95": float(np.percentile(err, 95)) if err.size else float("nan")}


def work_precision(model, g, args) -> tuple[list[tuple[str, dict, float]], float]:
    """Rows (label, accuracy, s per neuron) and the matched speed-up (see the module docstring)."""
    d, tr = args.duration_ms, args.transient_ms
    ref = run_references(model, g, d, tr, workers=args.workers, tol=1e-8, cache=args.cache)
    tight = run_references(model, g, d, tr, workers=args.workers, tol=1e-10, cache=args.cache)
    keep = ~ill_conditioned(ref, tight)
    print(f"  work-precision cells: {keep.sum()} of {len(g)} well-posed (marginal or LSODA 1e-8 vs 1e-10 "
          f"disagreeing: {int((~keep).sum())})")
    g, ref = g[keep], [r for r, k in zip(ref, keep) if k]
    rows = []
    for tier in ("exact", "fast"):
        dt = model.tier_dt_ms(tier)
        _, per_neuron, trains = kernel_ns_per_step(model, g, dt, tr, d, max(1, 200 // len(g)))
        rows.append((f"dicsbi {tier} (dt {dt:g} ms)", accuracy_row(compare_trains(trains, ref)), per_neuron))
    fast_acc, fast_time = rows[-1][1], rows[-1][2]
    matched = None
    for rtol in BDF_RTOLS:
        out = run_references(model, g, d, tr, workers=args.workers, tol=rtol, atol=1e-3 * rtol, method="BDF",
                             cache=args.cache)
        trains = SpikeTrains.from_list([r.spike_times_ms for r in out], 0.0, d)
        acc = accuracy_row(compare_trains(trains, ref))
        per_neuron = float(np.mean([r.cpu_s for r in out]))
        rows.append((f"scipy BDF rtol {rtol:.0e}", acc, per_neuron))
        if matched is None and acc["class"] >= fast_acc["class"] and acc["isi_med"] <= fast_acc["isi_med"]:
            matched = (rtol, per_neuron)
    print(f"  work-precision on {len(g)} cells against LSODA 1e-8 ({d:.0f} ms after {tr:.0f} ms):")
    print(f"  {'method':28} {'class':>6} {'count':>6} {'ISI med':>9} {'ISI p95':>9} {'s/neuron':>10}")
    for label, acc, t in rows:
        print(f"  {label:28} {acc['class']:6.3f} {acc['count']:6.3f} {acc['isi_med']:9.2e} {acc['isi_p95']:9.2e} "
              f"{t:10.4f}")
    if matched is None:
        print("  no BDF tolerance down to 1e-8 matches the fast tier; speed-up against rtol 1e-8 (a lower bound)")
        matched = (BDF_RTOLS[-1], rows[-1][2])
    speedup = matched[1] / fast_time
    print(f"  matched: BDF rtol {matched[0]:.0e} ({matched[1]:.2f} s/neuron) vs fast tier ({fast_time * 1e3:.2f} "
          f"ms/neuron): {speedup:.0f}x")
    return rows, speedup


def training_cells_per_core_s(model, args) -> float:
    cfg = DatasetConfig(model.name, args.n_targets, args.cells_per_target, seed=args.seed).resolved()
    pops = []
    for k, (gs, gu) in enumerate(design_targets(cfg)):
        try:
            pops.append(generate_population(model, float(gs), float(gu), args.cells_per_target, seed=args.seed + k))
        except UnreachableTargetError:  # listed as unreachable in a data set too
            continue
    g = np.vstack([p.conductances for p in pops])
    simulate(model, g[:2], 10.0, cfg.dt_ms, 0.0, n_threads=1)
    t0 = time.perf_counter()
    res = simulate(model, g, cfg.duration_ms, cfg.dt_ms, cfg.transient_ms, n_threads=1)
    wall = time.perf_counter() - t0
    silent = float(np.mean(firing_class(res.trains) == 0))
    rate = len(g) / wall
    print(f"  training cells: {len(g)} cells ({silent:.0%} silent) x ({cfg.transient_ms:.0f} + {cfg.duration_ms:.0f}) "
          f"ms at dt {cfg.dt_ms:g} ms ({cfg.tier} tier), 1 thread: {wall:.2f} s = {rate:.1f} cells per core-second")
    return rate


def pipeline(model, args) -> dict[str, float]:
    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="dicsbi-bench-"))
    try:
        cfg = DatasetConfig(model.name, args.pipeline_targets, 16, seed=args.seed,
                            targets_per_shard=max(1, args.pipeline_targets // 16))
        for workers in (1, 2):
            folder = tmp / f"{workers}w"
            t0 = time.perf_counter()
            run = simulate_dataset(cfg, folder, workers=workers, progress=False)
            wall = time.perf_counter() - t0
            rows = run.manifest["totals"]["rows"]
            out[f"{workers}w"] = rows / wall
            print(f"  simulate-dataset, {workers} worker(s): {rows} cells in {wall:.1f} s = {rows / wall:.1f} "
                  f"cells/s (wall, incl. worker start-up, populations, features, Parquet)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="stg,da")
    ap.add_argument("--n-neurons", type=int, default=21)
    ap.add_argument("--n-wp", type=int, default=12, help="cells in the work-precision table")
    ap.add_argument("--transient-ms", type=float, default=500.0)
    ap.add_argument("--duration-ms", type=float, default=1500.0)
    ap.add_argument("--n-targets", type=int, default=32, help="DIC targets for the training-cell figures")
    ap.add_argument("--cells-per-target", type=int, default=8)
    ap.add_argument("--pipeline-targets", type=int, default=64, help="targets x 16 cells for the pipeline runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cache", default=str(Path.home() / "dicsbi-data" / "reference-cache"))
    args = ap.parse_args()
    out = {}
    names = args.models.split(",")
    for name in names:
        model = get_model(name)
        print(f"== {name}")
        g = stratified_sets(model, args.n_neurons, args.seed, args.duration_ms, args.transient_ms)
        cls = firing_class(simulate(model, g, args.duration_ms, None, args.transient_ms).trains)
        active = g[cls > 0]
        copies = max(1, 300 // len(active))
        ns = {}
        for tier in ("exact", "fast"):
            dt = model.tier_dt_ms(tier)
            ns[tier], per, _ = kernel_ns_per_step(model, active, dt, args.transient_ms, args.duration_ms, copies)
            if tier == "exact":
                exact_per_neuron = per
            print(f"  kernel, {tier} tier (dt {dt:g} ms): {ns[tier]:.1f} ns per neuron-step on 1 thread "
                  f"({len(active) * copies} non-silent neurons x {args.transient_ms + args.duration_ms:.0f} ms)")
        t0 = time.process_time()
        run_references(model, g, args.duration_ms, args.transient_ms, workers=1, tol=1e-3, atol=1e-6,
                       method="BDF")
        bdf = (time.process_time() - t0) / len(g)
        legacy = bdf / exact_per_neuron
        print(f"  scipy BDF (rtol 1e-3, atol 1e-6, the published app's) {bdf:.2f} s per neuron vs exact tier "
              f"{exact_per_neuron * 1e3:.2f} ms: {legacy:.0f}x")
        wp_sets = stratified_sets(model, args.n_wp, args.seed + 1, args.duration_ms, args.transient_ms)
        _, matched = work_precision(model, wp_sets, args)
        cells = training_cells_per_core_s(model, args)
        pipeline(model, args)
        out[name] = {"ns": max(ns.values()), "legacy": legacy, "matched": matched, "cells": cells}
    line = ([f"ns_per_step_{m}={out[m]['ns']:.4g}" for m in names]
            + [f"speedup_vs_bdf_{m}={out[m]['legacy']:.4g}" for m in names]
            + [f"speedup_matched_{m}={out[m]['matched']:.4g}" for m in names]
            + [f"cells_per_core_s_{m}={out[m]['cells']:.4g}" for m in names])
    print(" ".join(line))


if __name__ == "__main__":
    main()
