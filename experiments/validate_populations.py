"""Do populations generated for a DIC target behave alike?  And how much does the automatic pair choice gain?

For each model, 40 targets on an 8 x 5 grid spread over the training box (STG g_s in [-20, 20], g_u in [0, 20];
DA g_s in [-10, 15], g_u in [0, 20]; the outermost 5% trimmed): generate a 50-cell population with the
automatic pair choice, simulate every cell (model defaults: 3 s transient, then 3 s STG / 9 s DA), and print per
target and overall the fraction of cells sharing the population's majority firing class and the coefficient of
variation of their main frequency (tonic: spiking frequency; bursting: inter-burst frequency).  Also prints the
yield (valid cells / seed cells tried) of the automatic choice next to the published fixed heuristic.
Unreachable targets are listed and left out of the agreement.

Ends with one line: class_agreement_stg=.. class_agreement_da=.. yield_auto_stg=.. yield_heuristic_stg=..
yield_auto_da=.. yield_heuristic_da=..
"""

from __future__ import annotations

import argparse

import numpy as np

from dicsbi.compensation import UnreachableTargetError, generate_population
from dicsbi.models import get_model
from dicsbi.simulate import simulate
from dicsbi.spikes import CLASS_NAMES, spike_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="stg,da")
    ap.add_argument("--cells", type=int, default=50)
    ap.add_argument("--grid", default="8x5")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n_s, n_u = (int(v) for v in args.grid.split("x"))
    out = {}
    for name in args.models.split(","):
        model = get_model(name)
        (s0, s1), (u0, u1) = model.dic_box
        ms, mu = 0.05 * (s1 - s0), 0.05 * (u1 - u0)
        targets = [(gs, gu) for gu in np.linspace(u0 + mu, u1 - mu, n_u) for gs in np.linspace(s0 + ms, s1 - ms, n_s)]
        pops, agree_cells, total_cells = [], 0, 0
        tried = {"auto": [0, 0], "published": [0, 0]}
        print(f"\n== {name}: {len(targets)} targets x {args.cells} cells")
        print("   g_s    g_u  pair            majority  agreement  freq CV   yield auto / published")
        for k, (gs, gu) in enumerate(targets):
            seed = args.seed + k
            yields = {}
            for mode in ("auto", "published"):
                try:
                    pop = generate_population(model, gs, gu, args.cells, seed=seed, pair=mode)
                    tried[mode][0] += pop.n_valid_found
                    tried[mode][1] += pop.n_tried
                    yields[mode] = pop.yield_fraction
                    if mode == "auto":
                        pops.append(pop)
                except UnreachableTargetError as exc:
                    yields[mode] = 0.0
                    if mode == "auto":
                        print(f"{gs:6.1f} {gu:6.1f}  unreachable: {exc}")
            if yields["auto"] == 0.0:
                continue
            pop = pops[-1]
            res = simulate(model, pop.conductances, seed=seed)
            feats = spike_features(res.trains)
            cls = feats["firing_class"]
            major = np.bincount(cls, minlength=3).argmax()
            agreement = float(np.mean(cls == major))
            freq = {1: feats["f_spiking_hz"], 2: feats["f_inter_hz"]}.get(int(major))
            cv = np.nan
            if freq is not None:
                f = freq[(cls == major) & np.isfinite(freq)]
                cv = float(f.std() / f.mean()) if f.size > 1 else np.nan
            agree_cells += int(np.sum(cls == major))
            total_cells += len(cls)
            print(f"{gs:6.1f} {gu:6.1f}  {pop.pair[0][2:]:>5},{pop.pair[1][2:]:<5}  {CLASS_NAMES[major]:>9}  "
                  f"{agreement:9.2f}  {cv:7.3f}   {yields['auto']:.2f} / {yields['published']:.2f}")
        overall = agree_cells / max(total_cells, 1)
        y_auto = tried["auto"][0] / max(tried["auto"][1], 1)
        y_pub = tried["published"][0] / max(tried["published"][1], 1)
        print(f"{name}: class agreement {overall:.4f} over {len(pops)} reachable targets; yield auto {y_auto:.3f}, "
              f"published heuristic {y_pub:.3f}")
        out[f"class_agreement_{name}"] = overall
        out[f"yield_auto_{name}"] = y_auto
        out[f"yield_heuristic_{name}"] = y_pub
    keys = [k for m in args.models.split(",") for k in (f"class_agreement_{m}",)]
    keys += [f"yield_{kind}_{m}" for m in args.models.split(",") for kind in ("auto", "heuristic")]
    print(" ".join(f"{k}={out[k]:.4g}" for k in keys))


if __name__ == "__main__":
    main()
