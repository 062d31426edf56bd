"""Throughput of training-set generation (populations + simulation + features + Parquet) per backend.

Runs the same data set (STG: ``--n-targets`` targets x 16 cells, the model's default 3000 ms transient +
3000 ms window at the data sets' default step, the fast tier's 0.05 ms; noise-free) into fresh folders with
  * 1 worker process and 2 worker processes (``workers=1|2``; each worker runs numba on one thread),
  * the in-process backend (numba threads over both cores) and a Dask LocalCluster of 2 single-threaded workers,
and DA with 2 worker processes.  Wall times include starting the workers (and the cluster), which a long run
amortises; every run's shards are checked to be byte-identical to the first run's.

    python experiments/bench_dataset.py                 # 96 targets (1536 cells) per run
    python experiments/bench_dataset.py --n-targets 24

Ends with one line: cells_per_s_stg_1w=.. cells_per_s_stg_2w=.. scaling_2w=.. dask_overhead=..
cells_per_s_da_2w=..  (dask_overhead = wall time Dask / wall time in-process - 1)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from dicsbi.datasets.config import DatasetConfig
from dicsbi.datasets.generate import simulate_dataset


def timed(cfg: DatasetConfig, folder: Path, **backend) -> tuple[float, int, dict[str, bytes]]:
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    run = simulate_dataset(cfg, folder, progress=False, **backend)
    wall = time.perf_counter() - t0
    rows = run.manifest["totals"]["rows"]
    shards = {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.parquet"))}
    return wall, rows, shards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-targets", type=int, default=96)
    ap.add_argument("--cells-per-target", type=int, default=16)
    ap.add_argument("--targets-per-shard", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores")
    tmp = Path(tempfile.mkdtemp(prefix="dicsbi-bench-"))
    rates: dict[str, float] = {}
    walls: dict[str, float] = {}
    try:
        for model, runs in (("stg", ("1w", "2w", "inproc", "dask")), ("da", ("2w",))):
            cfg = DatasetConfig(model, args.n_targets, args.cells_per_target, args.seed,
                                targets_per_shard=args.targets_per_shard).resolved()
            first = None
            for name in runs:
                backend = {"1w": {"workers": 1}, "2w": {"workers": 2}, "inproc": {"workers": 0},
                           "dask": {"dask_local": 2}}[name]
                wall, rows, shards = timed(cfg, tmp / f"{model}-{name}", **backend)
                first = shards if first is None else first
                same = shards == first
                rates[f"{model}_{name}"] = rows / wall
                walls[f"{model}_{name}"] = wall
                print(f"{model} {name:>6}: {rows} cells in {wall:6.1f} s = {rows / wall:6.2f} cells/s "
                      f"({cfg.n_shards} shards; identical to the first run: {same})", flush=True)
                if not same:
                    raise SystemExit("backends disagree: this is a bug")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    scaling = rates["stg_2w"] / rates["stg_1w"]
    overhead = walls["stg_dask"] / walls["stg_inproc"] - 1.0
    full = 62_500 * 16 / rates["stg_2w"]
    print(f"2 workers vs 1: {scaling:.2f}x; Dask LocalCluster vs in-process: {overhead:+.1%} wall time")
    print(f"the full STG set (62,500 targets x 16 cells = 1,000,000 cells) at the 2-worker rate: "
          f"{full / 3600:.1f} h on this machine")
    print(f"cells_per_s_stg_1w={rates['stg_1w']:.3f} cells_per_s_stg_2w={rates['stg_2w']:.3f} "
          f"scaling_2w={scaling:.3f} dask_overhead={overhead:.4f} cells_per_s_da_2w={rates['da_2w']:.3f}")


if __name__ == "__main__":
    main()
