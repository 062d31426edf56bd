"""Speed of the main pipeline: posterior + population of 500 models per recording (no simulation check).

Recordings are freshly simulated STG cells (tonic and bursting) from a seeded set of DIC targets; the timing
excludes reading the file and the one-off loading of the posterior and numba kernels (a warm-up call).  Then a
1000-recording Spike2Pop CSV goes through ``dicsbi infer`` end to end (a subprocess: reading, inference,
populations, CSV / netCDF / report writing), without the check.

    python experiments/bench_infer.py [--posterior PATH] [--n-models 500]

Ends with one line: ms_per_recording=<x> s_1000_recordings=<x>
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dicsbi.compensation import generate_population
from dicsbi.io.tables import write_spike2pop_csv
from dicsbi.pipeline import infer
from dicsbi.posterior.artifact import load_posterior
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains


def recordings(n_targets: int, per_target: int, seed: int) -> SpikeTrains:
    rng = np.random.default_rng(seed)
    g = []
    while len(g) < n_targets:
        gs, gu = rng.uniform(-15, 15), rng.uniform(1, 15)
        try:
            g.append(generate_population("stg", gs, gu, per_target, seed=int(rng.integers(2**31))).conductances)
        except Exception:  # unreachable target: draw another
            continue
    res = simulate("stg", np.concatenate(g), seed=seed)
    keep = np.flatnonzero(res.trains.counts >= 3)
    t = res.trains.select(keep)
    return SpikeTrains.from_list(t.to_list(), 0.0, 3000.0, ids=[f"rec{k}" for k in range(len(t))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posterior", default=None)
    ap.add_argument("--n-models", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    post = load_posterior(args.posterior or "stg", model="stg")
    trains = recordings(25, 4, args.seed)
    infer(trains.select([0, 1]), "stg", args.n_models, posterior=post, seed=99)  # warm-up
    t0 = time.perf_counter()
    res = infer(trains, "stg", args.n_models, posterior=post, seed=args.seed)
    per = (time.perf_counter() - t0) / len(trains) * 1000
    replaced = np.mean([r.n_replaced for r in res.recordings])
    print(f"{len(trains)} recordings x {args.n_models} models: {per:.1f} ms per recording "
          f"(mean {replaced:.1f} posterior samples replaced per recording)")
    big = SpikeTrains.from_list([trains[k % len(trains)] for k in range(1000)], 0.0, 3000.0,
                                ids=[f"r{k}" for k in range(1000)])
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "rec1000.csv"
        write_spike2pop_csv(csv, big)
        cmd = [sys.executable, "-m", "dicsbi.cli", "infer", str(csv), "--out", str(Path(tmp) / "out"),
               "--n-models", str(args.n_models), "--no-progress"]
        if args.posterior:
            cmd += ["--posterior", args.posterior]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        s1000 = time.perf_counter() - t0
        if r.returncode:
            raise SystemExit(r.stderr)
    print(f"1000 recordings end to end (dicsbi infer, incl. start-up, CSV/netCDF/report): {s1000:.1f} s")
    print(f"ms_per_recording={per:.3f} s_1000_recordings={s1000:.2f}")


if __name__ == "__main__":
    main()
