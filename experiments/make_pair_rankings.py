"""Precompute the pair rankings used by ``dicsbi.pair_ranking.pair_ranking`` over a model's whole DIC box.

For every 1 x 1 g_leak cell of the box, the candidate pairs ranked by their yield of valid cells on 64 seeded
pilot cells (``compute_pair_ranking``, exactly what the pipeline would compute on first use), at the V_th of
the shipped posterior.  Written to ``dicsbi/pretrained/pair_ranking_<model>.json`` (a few tens of kB), so the
main job does not spend ~0.1 s per new cell at run time.  Deterministic: rerunning gives the same file.

    python experiments/make_pair_rankings.py --model stg

Ends with one line: model=.. cells=.. seconds=.. vth_mV=..
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from rich.progress import track

from dicsbi.io.files import atomic_write_text
from dicsbi.models import get_model
from dicsbi.pair_ranking import PAIR_GRID, compute_pair_ranking, pair_table_path
from dicsbi.posterior.artifact import load_posterior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--vth", type=float, default=None, help="V_th in mV (default: the shipped posterior's)")
    args = ap.parse_args()
    m = get_model(args.model)
    vth = float(args.vth if args.vth is not None else load_posterior(m.name).vth_mV)
    (a, b), (c, d) = m.dic_box
    cells = [(i, j) for i in range(int(np.floor(a / PAIR_GRID)), int(np.ceil(b / PAIR_GRID)))
             for j in range(int(np.floor(c / PAIR_GRID)), int(np.ceil(d / PAIR_GRID)))]
    t0 = time.time()
    table = {f"{i},{j}": [list(p) for p in compute_pair_ranking(m.name, i, j, vth)]
             for i, j in track(cells, description=f"pair rankings ({m.name})")}
    out = {"model": m.name, "vth_mV": vth, "grid": PAIR_GRID, "box": [list(m.dic_box[0]), list(m.dic_box[1])],
           "command": f"python experiments/make_pair_rankings.py --model {m.name}", "cells": table}
    path = atomic_write_text(pair_table_path(m.name), json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    print(f"model={m.name} cells={len(cells)} seconds={time.time() - t0:.0f} vth_mV={vth}")


if __name__ == "__main__":
    main()
