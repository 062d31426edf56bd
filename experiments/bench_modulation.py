"""Time the neuromodulation comparison: all 63 STG hypotheses for one before/after pair, 200-member population.

The before cell is a bursting STG model (g_s -4, g_u 6); the after cell has g_CaS x0.7 and g_H x1.5.  Both are
simulated once (not timed); the timed call is the whole ``modulate``: the before-population (posterior sampling
and compensation), the after likelihood grid, and the evidence of every hypothesis.  A first untimed call on a
tiny problem warms numba and torch.  Run alone: the figure is a wall-clock time on this machine's cores.

    python experiments/bench_modulation.py [--n-members 200] [--repeats 3]

Ends with ``seconds_63_hypotheses=<x>`` (the median of the repeats).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from dicsbi.compensation import generate_population
from dicsbi.modulation import ComparisonOptions, modulate
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-members", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    g0 = generate_population("stg", -4.0, 6.0, 4, seed=3).conductances[:1]
    g1 = g0.copy()
    g1[0, 3] *= 0.7
    g1[0, 6] *= 1.5
    tr = simulate("stg", np.vstack([g0, g1]), seed=0).trains
    before = SpikeTrains.from_list([tr[0]], 0.0, float(tr.t_stop_ms[0]), ids=["cell"])
    after = SpikeTrains.from_list([tr[1]], 0.0, float(tr.t_stop_ms[1]), ids=["cell"])
    modulate(before, after, "stg", hypotheses="CaS, CaS+H, Na+Kd+A", n_members=8,
             options=ComparisonOptions(n_pilot=8, n_particles=8))
    times = []
    for r in range(args.repeats):
        t = time.perf_counter()
        res = modulate(before, after, "stg", n_members=args.n_members, seed=r)
        times.append(time.perf_counter() - t)
        best = res.order()[0]
        print(f"repeat {r}: {times[-1]:.1f} s, {len(res.hypotheses)} hypotheses, best {res.hypotheses[best].label} "
              f"(P {res.probability[best]:.2f}), max MC error {np.max(res.se[np.isfinite(res.se)]):.3f} nats",
              flush=True)
    print(f"cores available: {os.cpu_count()}; population {args.n_members}; "
          f"{res.settings['n_pilot']} + {res.settings['n_particles']} importance samples per member and hypothesis")
    print(f"seconds_63_hypotheses={np.median(times):.2f}")


if __name__ == "__main__":
    main()
