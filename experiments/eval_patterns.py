"""How well firing_pattern separates bursting from noise-driven irregular trains (issue 21, item 4).

Labelled trains: the noise-prior test cells of a model (a data set made by ``dicsbi simulate-dataset`` with
``--noise-max``) whose published class is bursting (ISI CV > 0.15), labelled by their noise-free class: a cell
that bursts without noise is bursting, one that is tonic or silent without noise is irregular.

    python experiments/eval_patterns.py --data ~/dicsbi-data/sets/stg-shipped-test-noise --model stg

Ends with ``model=M bursting_kept=<x> irregular_found=<x> n_bursting=<n> n_irregular=<n>``.
"""

from __future__ import annotations

import argparse

import numpy as np

from dicsbi.datasets import load_dataset
from dicsbi.simulate import simulate
from dicsbi.spikes import BURSTING, IRREGULAR, firing_class, firing_pattern


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\\n")[0])
    ap.add_argument("--data", required=True, help="a noise-prior data set folder")
    ap.add_argument("--model", required=True)
    ap.add_argument("--max-cells", type=int, default=3000)
    args = ap.parse_args()
    ds = load_dataset(args.data)
    ok = np.flatnonzero((ds.status == 0) & (ds.trains.counts >= 8))[: args.max_cells]
    cfg = ds.manifest["config"]
    clean = simulate(args.model, ds.conductances[ok], duration_ms=cfg["duration_ms"],
                     transient_ms=cfg["transient_ms"], tier="fast")
    clean_class, noisy = firing_class(clean.trains), ds.trains.select(ok)
    published = firing_class(noisy)
    pattern = firing_pattern(noisy, published)
    bursting = (clean_class == BURSTING) & (published == BURSTING)
    irregular = (clean_class != BURSTING) & (published == BURSTING)
    kept = float(np.mean(pattern[bursting] == BURSTING))
    found = float(np.mean(pattern[irregular] == IRREGULAR))
    print(f"{ok.size} noisy cells; published class bursting: {int(bursting.sum())} that burst without noise, "
          f"{int(irregular.sum())} that do not (noise-driven irregular)")
    print(f"firing_pattern keeps {kept:.3f} of the bursters bursting and calls {found:.3f} of the others irregular")
    print(f"model={args.model} bursting_kept={kept:.4f} irregular_found={found:.4f} n_bursting={int(bursting.sum())} "
          f"n_irregular={int(irregular.sum())}")


if __name__ == "__main__":
    main()
