"""Simulate the training pairs of the spike-level modulation evidence (data stays out of git).

Blocks of before/after pairs from the modulation model's prior (:mod:`dicsbi.modulation.pairs`): each block has
``--cells`` before cells (one per DIC target uniform over the box, from the training generator) with
``--changes`` prior changes each, all simulated at the fast tier without noise.  About 18 % of STG prior changes
are visible (both recordings non-silent, class change or main frequency moved by > 25 %); only those train the
evidence, the others are kept for the record.  A block is one ``.npz`` file, written atomically; a rerun skips
the blocks already there, so an interrupted run resumes and the same seed always makes the same blocks.  Blocks
``[0, --blocks)`` are made in order, in ``--workers`` processes (each its own block, so no stream is shared).

    python experiments/make_modulation_pairs.py --model stg --blocks 200 --out ~/dicsbi-data/modpairs-stg

One STG block (256 cells x 8 changes, 2304 simulations) takes about 30 s on one core.
Ends with one line: model=.. blocks=.. pairs=.. visible=.. seconds=..
"""

from __future__ import annotations

import argparse
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from dicsbi.io.files import atomic_write_bytes

SEED = 20261205


def block_path(out: Path, b: int) -> Path:
    """Return the file of block ``b``."""
    return out / f"block-{b:05d}.npz"


def make_block(model: str, cells: int, changes: int, seed: int, b: int, out: str) -> tuple[int, int]:
    """Simulate block ``b`` and write it; returns (pairs, visible)."""
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from dicsbi.modulation.pairs import simulate_pairs

    blk = simulate_pairs(model, cells, changes, seed, b)
    buf = io.BytesIO()
    np.savez_compressed(buf, before_g=blk.before_g, cell=blk.cell, hypothesis=blk.hypothesis,
                        log_ratio=blk.log_ratio, firing_class=blk.firing_class, main_hz=blk.main_hz,
                        visible=blk.visible, before_times=blk.before.times_ms, before_offsets=blk.before.offsets,
                        after_times=blk.after.times_ms, after_offsets=blk.after.offsets,
                        window_ms=np.array([blk.before.t_start_ms[0], blk.before.t_stop_ms[0]]),
                        meta=np.array([seed, b, cells, changes]))
    atomic_write_bytes(block_path(Path(out), b), buf.getvalue())
    return len(blk.visible), int(blk.visible.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--cells", type=int, default=256)
    ap.add_argument("--changes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder of the blocks (default ~/dicsbi-data/modpairs-MODEL)")
    args = ap.parse_args()
    out = Path(os.path.expanduser(args.out or f"~/dicsbi-data/modpairs-{args.model}"))
    out.mkdir(parents=True, exist_ok=True)
    todo = [b for b in range(args.blocks) if not block_path(out, b).exists()]
    print(f"{args.model}: {args.blocks - len(todo)} of {args.blocks} blocks already in {out}", flush=True)
    t0 = time.time()
    pairs = visible = 0
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = [pool.submit(make_block, args.model, args.cells, args.changes, args.seed, b, str(out)) for b in todo]
        for k, job in enumerate(jobs):
            n, v = job.result()
            pairs, visible = pairs + n, visible + v
            print(f"[{k + 1}/{len(todo)}] block {todo[k]}: {n} pairs, {v} visible ({time.time() - t0:.0f} s)",
                  flush=True)
    print(f"model={args.model} blocks={args.blocks} pairs={pairs} visible={visible} seconds={time.time() - t0:.0f}")


if __name__ == "__main__":
    main()
