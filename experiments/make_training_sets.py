"""Generate the training, validation and test sets behind the shipped posteriors (data stays out of git).

Each set is a resumable dicsbi data set (``dicsbi.datasets``): re-running this script after an interruption
continues where it stopped, and the manifest in each folder records the configuration, versions and seeds.
Cells are simulated at the data sets' default step, the fast accuracy tier (0.05 ms; ``docs/simulator.md``):
the shipped preset's STG sets (80,000 cells) take about 5 minutes on 2 cores, DA's (60,000) about 7.

    python experiments/make_training_sets.py --model stg                    # preset "shipped", 2 workers
    python experiments/make_training_sets.py --model da --preset published  # 62,500 x 16 (hours on a cluster)
    python experiments/make_training_sets.py --model stg --dask-local 16    # same data, more cores

Presets (targets x cells per target; the test set uses another seed, as eval_posterior.py requires):

    shipped    train 12,000 x 4   test 250 x 16    what fits in a few hours on 2 cores
    published  train 62,500 x 16  test 12,000 x 16 the published protocol (1,000,000 training cells)

``--only train-noisy`` adds a noisy training set (noise std 5 uA/cm^2; shipped: 6,000 x 4, another seed) for
posteriors trained on clean and noisy simulations together (``train_pretrained.py --noisy``).
``--only train-noise,test-noise`` makes the sets of the noise prior's continuous part: each cell's noise level
uniform on (0, 8] uA/cm^2 (``DatasetConfig.noise_max``; shipped: 12,000 x 4 like the clean set, so the clean
set combined with it gives the prior's point mass at 0 half the weight; see ``dicsbi.posterior.noise_level``).
``--seed 779 --only test-noisy`` makes a replicate of a set from another seed (here the noise-prior test set's
cells and noise draws at 5 uA/cm^2), in a folder named after the seed.
``train-noise2`` is a second block of the same prior with another seed (shipped: 6,000 x 4), for a model whose
noisy cells were too few (DA: 21,016 cells from ``train-noise --n-targets 6000``).

For the shipped preset the budget goes to more targets with fewer cells each: for neural posterior estimation
every (target, train) pair is one sample of the joint, and distinct targets cover the (g_s, g_u) box better
than repeated cells of one target.  Noisy test sets (noise std 5 uA/cm^2) are written next to the clean ones.
Ends with one line: model=.. train_cells=.. test_cells=.. noisy_test_cells=.. seconds=..
"""

from __future__ import annotations

import argparse
import time

from dicsbi.datasets.config import DatasetConfig
from dicsbi.datasets.generate import simulate_dataset

PRESETS = {
    "shipped": {"train": (12_000, 4), "train-noisy": (6_000, 4), "train-noise": (12_000, 4),
                "train-noise2": (6_000, 4), "train-mix": (12_000, 4), "train-mix-noise": (12_000, 4),
                "test": (250, 16)},
    "published": {"train": (62_500, 16), "train-noisy": (62_500, 16), "train-noise": (62_500, 16),
                  "train-mix": (62_500, 16), "train-mix-noise": (62_500, 16), "test": (12_000, 16)},
}
SEEDS = {"train": 20261130, "train-noisy": 20261201, "train-noise": 20261202, "train-noise2": 20261203,
         "train-mix": 20261204, "train-mix-noise": 20261205,
         "test": 777, "test-noisy": 778, "test-noise": 779}
# the training worlds beside the generator (dicsbi.datasets.worlds): train-mix* hold them in equal shares, so
# training on train + train-noise + train-mix + train-mix-noise gives the generator half the weight
MIX = "wide:1,allpairs:1,modulated:1"
# test sets of one world each: test-<world> (clean) and test-<world>-noisy (5 uA/cm^2), seeds 780...
WORLD_TESTS = ("wide", "allpairs", "modulated", "unseen")
for _k, _w in enumerate(WORLD_TESTS):
    SEEDS[f"test-{_w}"], SEEDS[f"test-{_w}-noisy"] = 780 + 2 * _k, 781 + 2 * _k


def world_of(which: str) -> str | None:
    """Return the world specification of set ``which`` (None: the generator alone)."""
    if which.startswith("train-mix"):
        return MIX
    parts = which.split("-")
    return parts[1] if which.startswith("test-") and parts[1] in WORLD_TESTS else None


NOISE_MAX = 8.0  # uA/cm^2: the published noisy sets use 5 (and 3); the prior reaches past them


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--preset", default="shipped", choices=sorted(PRESETS))
    ap.add_argument("--root", default="data", help="parent folder of the data sets")
    ap.add_argument("--only", default="train,test,test-noisy", help="which sets to make")
    ap.add_argument("--n-targets", type=int, default=None, help="override the preset's number of targets")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dask-local", type=int, default=None)
    ap.add_argument("--max-shards", type=int, default=None, help="stop after this many shards per set")
    ap.add_argument("--seed", type=int, default=None,
                    help="override the set's seed (a replicate; the folder name gains -<seed>)")
    args = ap.parse_args()
    t0 = time.time()
    rows = {}
    for which in args.only.split(","):
        n_targets, cells = PRESETS[args.preset]["test" if which.startswith("test") else which]
        n_targets = args.n_targets or n_targets
        cfg = DatasetConfig(args.model, n_targets, cells, seed=SEEDS[which] if args.seed is None else args.seed,
                            noise_std=5.0 if which.endswith("noisy") else 0.0, targets_per_shard=64 // cells,
                            noise_max=NOISE_MAX if which.startswith(("train-noise", "test-noise", "train-mix-noise"))
                            and not which.endswith("noisy") else None, world=world_of(which))
        out = f"{args.root}/{args.model}-{args.preset}-{which}" + ("" if args.seed is None else f"-{args.seed}")
        print(f"{which}: {n_targets} targets x {cells} cells -> {out}", flush=True)
        backend = {"dask_local": args.dask_local} if args.dask_local else {"workers": args.workers}
        run = simulate_dataset(cfg, out, max_shards=args.max_shards, **backend)
        tot = run.manifest["totals"]
        rows[which] = tot["rows"]
        print(f"   {tot['rows']} cells ({'complete' if run.manifest['complete'] else 'partial'}), "
              f"{tot['unreachable_targets']} unreachable targets, {tot['diverged_cells']} diverged, "
              f"{tot['silent_cells']} silent", flush=True)
    print(f"model={args.model} train_cells={rows.get('train', 0)} test_cells={rows.get('test', 0)} "
          f"noisy_test_cells={rows.get('test-noisy', 0)} noisy_train_cells={rows.get('train-noisy', 0)} "
          f"noise_prior_train_cells={rows.get('train-noise', 0)} noise_prior_test_cells={rows.get('test-noise', 0)} "
          f"seconds={time.time() - t0:.0f}")


if __name__ == "__main__":
    main()
