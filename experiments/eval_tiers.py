"""Does the accuracy tier move the posterior?  One posterior, the same test cells simulated at both tiers.

For each model a test set (the test seed of ``make_training_sets.py``, targets over the box, 16 cells each,
noise-free) is simulated twice from the same configuration except the step: at the exact tier and at the fast
tier.  Populations and targets depend only on the seed, so row ``i`` of both sets is the same cell.  The cells
usable at both tiers (status ok, >= 3 spikes in both) are kept, the first ``--n-cells`` of them, and the
shipped posterior (or ``--posterior``) is evaluated on each version: MAE of the posterior mean per DIC and
expected HPD coverage at 50 / 80 / 95%.  Also printed: firing-class agreement of the two versions.

    python experiments/eval_tiers.py                 # both models, 2000 cells each, data under ~/dicsbi-data
    python experiments/eval_tiers.py --models stg --n-cells 500

Ends with one line: per model delta_mae_gs_<m>=.. delta_mae_gu_<m>=.. delta_cov50_<m>=.. delta_cov80_<m>=..
delta_cov95_<m>=.. (fast minus exact; coverage in percentage points) and max_abs_delta_mae=..
max_abs_delta_cov_points=..
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from eval_posterior import evaluate_trains  # same folder: run as a script

from dicsbi.datasets.config import DatasetConfig
from dicsbi.datasets.generate import simulate_dataset
from dicsbi.datasets.storage import load_dataset
from dicsbi.posterior.artifact import load_posterior

TEST_SEED = 777  # make_training_sets.py's test seed: never seen in training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="stg,da")
    ap.add_argument("--n-cells", type=int, default=2000)
    ap.add_argument("--n-targets", type=int, default=200, help="targets x 16 cells to simulate (DA: about 70%% "
                    "of its cells are usable, the rest silent or at unreachable targets)")
    ap.add_argument("--posterior", default=None, help="posterior folder (default: the shipped one per model)")
    ap.add_argument("--root", default=str(Path.home() / "dicsbi-data"))
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    line, worst_mae, worst_cov = [], 0.0, 0.0
    for name in args.models.split(","):
        sets = {}
        for tier in ("exact", "fast"):
            cfg = DatasetConfig(name, args.n_targets, 16, seed=TEST_SEED, tier=tier, targets_per_shard=4)
            folder = Path(args.root) / f"tier-test-{name}-{tier}-{args.n_targets}"
            simulate_dataset(cfg, folder, workers=args.workers)
            sets[tier] = load_dataset(folder)
        a, b = sets["exact"], sets["fast"]
        if not (np.array_equal(a.conductances, b.conductances) and np.array_equal(a.targets, b.targets)):
            raise SystemExit("the two tiers' sets hold different cells: this is a bug")
        usable = (a.status == 0) & (b.status == 0) & (a.trains.counts >= 3) & (b.trains.counts >= 3)
        ok = np.flatnonzero(usable)[: args.n_cells]
        agree = float(np.mean(a.firing_class == b.firing_class))
        print(f"\n== {name}: {len(a)} cells, class agreement exact vs fast {agree:.4f}; "
              f"{usable.sum()} usable at both tiers, evaluating {ok.size}")
        post = load_posterior(args.posterior or name, model=name)
        res = {t: evaluate_trains(post, s.trains.select(ok), s.targets[ok], s.firing_class[ok], args.n_samples,
                                  args.seed) for t, s in sets.items()}
        print(f"{'tier':6} {'dt':>6} {'MAE g_s':>8} {'MAE g_u':>8} {'cov50':>6} {'cov80':>6} {'cov95':>6}")
        for t, s in sets.items():
            r = res[t]
            m, c = r["mae_mean_all"], r["coverage"]
            print(f"{t:6} {s.manifest['config']['dt_ms']:6g} {m[0]:8.3f} {m[1]:8.3f} {c[0.5]:6.3f} {c[0.8]:6.3f} "
                  f"{c[0.95]:6.3f}")
        dm = res["fast"]["mae_mean_all"] - res["exact"]["mae_mean_all"]
        dc = {k: 100 * (res["fast"]["coverage"][k] - res["exact"]["coverage"][k]) for k in (0.5, 0.8, 0.95)}
        print(f"fast - exact: MAE g_s {dm[0]:+.4f}, g_u {dm[1]:+.4f}; coverage "
              + ", ".join(f"{int(k * 100)}% {v:+.2f} points" for k, v in dc.items()))
        line += [f"delta_mae_gs_{name}={dm[0]:.4f}", f"delta_mae_gu_{name}={dm[1]:.4f}"]
        line += [f"delta_cov{int(k * 100)}_{name}={v:.3f}" for k, v in dc.items()]
        worst_mae = max(worst_mae, float(np.abs(dm).max()))
        worst_cov = max(worst_cov, max(abs(v) for v in dc.values()))
    print(" ".join(line + [f"max_abs_delta_mae={worst_mae:.4f}", f"max_abs_delta_cov_points={worst_cov:.3f}"]))


if __name__ == "__main__":
    main()
