"""A DIC posterior on every training world, their mixture and the unseen world (the training-worlds issue).

Test sets come from ``experiments/make_training_sets.py --only test-wide,test-allpairs,test-modulated,
test-unseen`` and their ``-noisy`` twins (5 uA/cm^2), beside the generator world's ``test`` / ``test-noisy``
(worlds in :mod:`dicsbi.datasets.worlds`; 250 targets x 16 cells each, other seeds than training, silent trains
removed).  Per set: MAE of the posterior mean, HPD coverage at 50 / 80 / 95 % and the out-of-world flag rate.

* **The mixture**: the training mixture is a mixture of worlds, so its coverage is the per-world coverages
  weighted by the posterior's own training shares (``training_data.worlds`` in ``posterior.json``; a posterior
  trained on the generator alone has weight 1 there, and its "mixture" is the generator world).
* **Is the unseen world really another world?**  A classifier two-sample test: gradient-boosted trees on the
  typicality features (:func:`dicsbi.posterior.typicality.typicality_features`) tell the unseen world's trains
  from the training mixture's (drawn from the training worlds' test sets in the training shares), 5-fold
  cross-validated; AUC 0.5 means the same world.

    python experiments/eval_worlds.py --model stg [--posterior P] [--max-trains 1000]

Ends with one line: model=M cov50=.. cov80=.. cov95=.. unseen_cov50=.. unseen_cov80=.. unseen_cov95=..
modulated_cov95=.. mae_gs=.. mae_gu=.. unseen_mae_gs=.. unseen_mae_gu=.. unseen_auc=.. n_train=.. followed by
per-set keys (<world>[_noisy]_cov50/80/95, _mae_gs/gu, _flag).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_posterior import evaluate_trains  # noqa: E402

from dicsbi.datasets.storage import load_dataset  # noqa: E402
from dicsbi.posterior.artifact import load_posterior  # noqa: E402

WORLDS = ("generator", "wide", "allpairs", "modulated", "unseen")
LEVELS = (0.5, 0.8, 0.95)


def set_folder(sets: Path, model: str, world: str, noisy: bool) -> Path:
    """Return the folder of a world's test set (the generator world's is ``<model>-shipped-test``)."""
    name = "test" if world == "generator" else f"test-{world}"
    return sets / f"{model}-shipped-{name}{'-noisy' if noisy else ''}"


def load_trains(folder: Path, max_trains: int | None, seed: int):
    """Non-silent trains (>= 3 spikes, simulator ok) of a test set, at most ``max_trains`` (seeded choice)."""
    d = load_dataset(folder)
    ok = np.flatnonzero((d.status == 0) & (d.trains.counts >= 3))
    if max_trains and ok.size > max_trains:
        ok = np.sort(np.random.default_rng(seed).choice(ok, max_trains, replace=False))
    return d.trains.select(ok), d.targets[ok], d.firing_class[ok], int(d.status.size - ok.size)


def score_set(post, folder: Path, n_samples: int, max_trains: int | None, seed: int) -> dict:
    """MAE, coverage and flag rate of ``post`` on one test set."""
    trains, theta, cls, dropped = load_trains(folder, max_trains, seed)
    r = evaluate_trains(post, trains, theta, cls, n_samples, seed)
    flag = float(post.typicality.flag(trains)[1].mean()) if post.typicality is not None else float("nan")
    return {"n": r["n"], "dropped": dropped, "mae": r["mae_mean_all"], "cov": r["coverage"], "flag": flag}


def two_sample_auc(sets: Path, model: str, shares: dict[str, float], n: int, seed: int) -> float:
    """Cross-validated AUC of a classifier telling the unseen world's trains from the training mixture's."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    from dicsbi.posterior.typicality import typicality_features

    unseen = load_trains(set_folder(sets, model, "unseen", False), n, seed)[0]
    parts = []
    for k, (world, share) in enumerate(shares.items()):
        m = max(1, int(round(share * len(unseen))))
        parts.append(typicality_features(load_trains(set_folder(sets, model, world, False), m, seed + k)[0]))
    x = np.concatenate([typicality_features(unseen), *parts])
    y = np.r_[np.ones(len(unseen)), np.zeros(len(x) - len(unseen))]
    p = cross_val_predict(HistGradientBoostingClassifier(random_state=seed), x, y, cv=5, method="predict_proba")
    return float(roc_auc_score(y, p[:, 1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--posterior", default=None, help="posterior folder (default: the shipped one)")
    ap.add_argument("--sets", default="~/dicsbi-data/sets", help="folder of make_training_sets.py's sets")
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--max-trains", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    post = load_posterior(args.posterior or args.model, model=args.model)
    sets = Path(os.path.expanduser(args.sets))
    shares = dict(post.config.training_data.get("worlds") or {"generator": 1.0})
    n_train = int(post.config.training_data["train_trains"])
    print(f"posterior: {post!r}; {n_train} training trains; world shares {shares}")
    res = {}
    print(f"\n{'set':22} {'n':>5} {'MAE g_s / g_u':>16} {'cov 50 / 80 / 95%':>22} {'flagged':>8}")
    for world in WORLDS:
        for noisy in (False, True):
            folder = set_folder(sets, args.model, world, noisy)
            if not folder.exists():
                print(f"{world + (' noisy' if noisy else ''):22} (no set at {folder})")
                continue
            r = res[(world, noisy)] = score_set(post, folder, args.n_samples, args.max_trains, args.seed)
            c = r["cov"]
            print(f"{world + (' noisy' if noisy else ''):22} {r['n']:5d} {r['mae'][0]:7.3f} / {r['mae'][1]:<6.3f} "
                  f"{c[0.5]:6.3f} / {c[0.8]:.3f} / {c[0.95]:.3f} {r['flag']:8.3f}")
    nan = float("nan")
    have = {w: s for w, s in shares.items() if (w, False) in res}
    total = sum(have.values()) or 1.0
    mix = {q: sum(s * res[(w, False)]["cov"][q] for w, s in have.items()) / total for q in LEVELS}
    print("\nmixture (training shares " + ", ".join(f"{w} {s:.2f}" for w, s in have.items()) + "): coverage "
          + " / ".join(f"{mix[q]:.3f}" for q in LEVELS))
    auc = nan
    if ("unseen", False) in res:
        auc = two_sample_auc(sets, args.model, have or {"generator": 1.0}, 2000, args.seed)
        print(f"unseen world vs the training mixture: classifier two-sample AUC {auc:.3f} (0.5: the same world)")

    def get(world, key, i=None, noisy=False):
        r = res.get((world, noisy))
        return nan if r is None else (r[key][i] if i is not None else r[key])

    line = (f"model={args.model} cov50={mix[0.5]:.4f} cov80={mix[0.8]:.4f} cov95={mix[0.95]:.4f} "
            f"unseen_cov50={get('unseen', 'cov', 0.5):.4f} unseen_cov80={get('unseen', 'cov', 0.8):.4f} "
            f"unseen_cov95={get('unseen', 'cov', 0.95):.4f} modulated_cov95={get('modulated', 'cov', 0.95):.4f} "
            f"mae_gs={get('generator', 'mae', 0):.4f} mae_gu={get('generator', 'mae', 1):.4f} "
            f"unseen_mae_gs={get('unseen', 'mae', 0):.4f} unseen_mae_gu={get('unseen', 'mae', 1):.4f} "
            f"unseen_auc={auc:.4f} n_train={n_train}")
    for (world, noisy), r in res.items():
        tag = world + ("_noisy" if noisy else "")
        line += "".join(f" {tag}_cov{int(q * 100)}={r['cov'][q]:.4f}" for q in LEVELS)
        line += f" {tag}_mae_gs={r['mae'][0]:.4f} {tag}_mae_gu={r['mae'][1]:.4f} {tag}_flag={r['flag']:.4f}"
    print(line)


if __name__ == "__main__":
    main()
