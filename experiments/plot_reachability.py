"""Reachability maps of the DIC plane for a few conductance pairs (figures for docs/dics-and-compensation.md).

    python experiments/plot_reachability.py            # STG (A, H), (CaS, H), (CaS, A); DA (ERG, Kd), (CaN, ERG)

Prints, per map, the fraction of grid targets reachable by at least one seed cell and the median relative
change over them; writes docs/figures/reachability_<model>_<pair>.png.  Ends with one line of key=value pairs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from dicsbi.modulation.pair_maps import plot_reachability, reachability  # noqa: E402

MAPS = (("stg", ("A", "H")), ("stg", ("CaS", "H")), ("stg", ("CaS", "A")), ("da", ("ERG", "Kd")),
        ("da", ("CaN", "ERG")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-seeds", type=int, default=200)
    ap.add_argument("--out", default="docs/figures")
    args = ap.parse_args()
    out = {}
    for model, pair in MAPS:
        rmap = reachability(model, pair, n_seeds=args.n_seeds, seed=0)
        reach = rmap.fraction > 0
        key = f"{model}_{pair[0]}_{pair[1]}"
        print(f"{model} {pair}: {reach.mean():.2f} of {reach.size} targets reachable; median change "
              f"{np.nanmedian(rmap.change[reach]):.3f}")
        fig = plot_reachability(rmap)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(args.out) / f"reachability_{key}.png", dpi=90, bbox_inches="tight")
        out[f"reachable_{key}"] = float(reach.mean())
    print(" ".join(f"{k}={v:.3g}" for k, v in out.items()))


if __name__ == "__main__":
    main()
