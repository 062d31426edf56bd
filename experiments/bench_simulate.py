"""Speed of the numba simulator on one core, and its speed-up over scipy's BDF on the same neurons.

For each model at its default dt: 20 balanced random Monte-Carlo conductance sets
(``dicsbi.reference.stratified_sets``) are integrated for 500 ms of transient + 1500 ms of window by

* the numba kernel on one thread (after a warm-up call, so compilation is excluded), repeated on 16 copies
  of the same 20 neurons (320 neurons) to get a stable timing, and
* scipy ``solve_ivp(method="BDF")`` at the tolerances of the published Spike2Pop app (rtol 1e-3, atol 1e-6),
  once per neuron.

Prints ns per neuron-step, simulated neuron-seconds per wall-second, and the speed-up (BDF wall time per
neuron / kernel wall time per neuron).  Ends with one line:
ns_per_step_stg=.. ns_per_step_da=.. speedup_vs_bdf_stg=.. speedup_vs_bdf_da=..
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.integrate import solve_ivp

from dicsbi.models import get_model
from dicsbi.reference import stratified_sets
from dicsbi.simulate import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="stg,da")
    ap.add_argument("--n-neurons", type=int, default=20)
    ap.add_argument("--copies", type=int, default=16)
    ap.add_argument("--transient-ms", type=float, default=500.0)
    ap.add_argument("--duration-ms", type=float, default=1500.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    out = {}
    for name in args.models.split(","):
        model = get_model(name)
        dt = model.default_dt_ms
        g = stratified_sets(model, args.n_neurons, args.seed, args.duration_ms, args.transient_ms)
        simulate(model, g[:2], 10.0, dt, 0.0, n_threads=1)  # compile / load cache
        batch = np.tile(g, (args.copies, 1))
        t0 = time.perf_counter()
        simulate(model, batch, args.duration_ms, dt, args.transient_ms, n_threads=1)
        wall = time.perf_counter() - t0
        total_ms = args.duration_ms + args.transient_ms
        steps = batch.shape[0] * round(total_ms / dt)
        ns_step = wall / steps * 1e9
        neuron_s_per_s = batch.shape[0] * total_ms / 1000.0 / wall
        kernel_per_neuron = wall / batch.shape[0]
        t0 = time.perf_counter()
        for row in g:
            solve_ivp(model.rhs, (0.0, total_ms), model.initial_state(), method="BDF", args=(row,),
                      rtol=1e-3, atol=1e-6)
        bdf_per_neuron = (time.perf_counter() - t0) / g.shape[0]
        speedup = bdf_per_neuron / kernel_per_neuron
        print(f"{name}: dt={dt} ms, {batch.shape[0]} neurons x {total_ms:.0f} ms on 1 thread: {wall:.2f} s, "
              f"{ns_step:.1f} ns per neuron-step, {neuron_s_per_s:.1f} simulated neuron-s per wall-s; "
              f"scipy BDF (rtol 1e-3) {bdf_per_neuron:.2f} s per neuron -> speed-up {speedup:.0f}x")
        out[f"ns_per_step_{name}"] = ns_step
        out[f"speedup_vs_bdf_{name}"] = speedup
    keys = [f"ns_per_step_{m}" for m in args.models.split(",")] + [
        f"speedup_vs_bdf_{m}" for m in args.models.split(",")]
    print(" ".join(f"{k}={out[k]:.4g}" for k in keys))


if __name__ == "__main__":
    main()
