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


def mixture_coverage(shares: dict[str, float], scores: dict[str, dict]) -> dict[float, float]:
    """Coverage of the training mixture: the worlds' clean-set coverages weighted by the training shares."""
    total = sum(shares.values()) or 1.0
    return {q: sum(s * scores[w]["cov"][q] for w, s in shares.items()) / total for q in LEVELS}


def world_figures(post, sets: Path, model: str, n_samples: int, max_trains: int | None, seed: int) -> dict:
    """Score ``post`` on every world's test set (clean and noisy), the mixture and the two-sample AUC; print a table.

    Returns ``{"sets": {(world, noisy): score_set(...)}, "mixture": {level: coverage}, "auc": float,
    "shares": the training world shares, "n_train": int}``.
    """
    shares = dict(post.config.training_data.get("worlds") or {"generator": 1.0})
    res = {}
    print(f"\n{'set':22} {'n':>5} {'MAE g_s / g_u':>16} {'cov 50 / 80 / 95%':>22} {'flagged':>8}")
    for world in WORLDS:
        for noisy in (False, True):
            folder = set_folder(sets, model, world, noisy)
            if not folder.exists():
                print(f"{world + (' noisy' if noisy else ''):22} (no set at {folder})")
                continue
            r = res[(world, noisy)] = score_set(post, folder, n_samples, max_trains, seed)
            c = r["cov"]
            print(f"{world + (' noisy' if noisy else ''):22} {r['n']:5d} {r['mae'][0]:7.3f} / {r['mae'][1]:<6.3f} "
                  f"{c[0.5]:6.3f} / {c[0.8]:.3f} / {c[0.95]:.3f} {r['flag']:8.3f}")
    have = {w: s for w, s in shares.items() if (w, False) in res}
    mix = mixture_coverage(have, {w: res[(w, False)] for w in have})
    print("\nmixture (training shares " + ", ".join(f"{w} {s:.2f}" for w, s in have.items()) + "): coverage "
          + " / ".join(f"{mix[q]:.3f}" for q in LEVELS))
    auc = float("nan")
    if ("unseen", False) in res:
        auc = two_sample_auc(sets, model, have or {"generator": 1.0}, 2000, seed)
        print(f"unseen world vs the training mixture: classifier two-sample AUC {auc:.3f} (0.5: the same world)")
    return {"sets": res, "mixture": mix, "auc": auc, "shares": shares,
            "n_train": int(post.config.training_data["train_trains"])}


def get(fig: dict, world: str, key: str, i=None, noisy: bool = False) -> float:
    """One figure of :func:`world_figures`' result (NaN where the set is missing)."""
    r = fig["sets"].get((world, noisy))
    return float("nan") if r is None else (r[key][i] if i is not None else r[key])


def headline_keys(fig: dict) -> str:
    """The training-worlds issue's unseen / modulated / AUC / size ``key=value`` pairs of a result."""
    return (f" unseen_cov50={get(fig, 'unseen', 'cov', 0.5):.4f} unseen_cov80={get(fig, 'unseen', 'cov', 0.8):.4f} "
            f"unseen_cov95={get(fig, 'unseen', 'cov', 0.95):.4f} "
            f"modulated_cov95={get(fig, 'modulated', 'cov', 0.95):.4f} "
            f"unseen_mae_gs={get(fig, 'unseen', 'mae', 0):.4f} unseen_mae_gu={get(fig, 'unseen', 'mae', 1):.4f} "
            f"unseen_auc={fig['auc']:.4f} n_train={fig['n_train']}")


def world_keys(fig: dict) -> str:
    """The per-set ``key=value`` pairs of :func:`world_figures`' result (``<world>[_noisy]_cov50`` ...)."""
    line = ""
    for (world, noisy), r in fig["sets"].items():
        tag = world + ("_noisy" if noisy else "")
        line += "".join(f" {tag}_cov{int(q * 100)}={r['cov'][q]:.4f}" for q in LEVELS)
        line += f" {tag}_mae_gs={r['mae'][0]:.4f} {tag}_mae_gu={r['mae'][1]:.4f} {tag}_flag={r['flag']:.4f}"
    return line


def curve_figures(folders: list[str], sets: Path, model: str, n_samples: int, max_trains: int | None,
                  seed: int) -> list[dict]:
    """The learning curve: per posterior (one training spec, nested subsets), its size and clean-set figures.

    Each row: training trains, epochs, seconds, generator-world MAE, mixture coverage (training shares, clean sets
    of the training worlds) and unseen-world MAE and coverage.  Printed as a table, smallest set first.
    """
    rows = []
    for folder in folders:
        post = load_posterior(folder, model=model)
        shares = dict(post.config.training_data.get("worlds") or {"generator": 1.0})
        res = {w: score_set(post, set_folder(sets, model, w, False), n_samples, max_trains, seed)
               for w in (*shares, "unseen") if set_folder(sets, model, w, False).exists()}
        mix = mixture_coverage({w: sh for w, sh in shares.items() if w in res}, res)
        nan2 = (float("nan"),) * 2
        tr = post.config.training
        rows.append({"folder": folder, "n_train": int(post.config.training_data["train_trains"]),
                     "epochs": int(tr["epochs"]), "seconds": float(tr["seconds"]), "mix_cov": mix,
                     "mae": tuple(res["generator"]["mae"]) if "generator" in res else nan2,
                     "unseen_mae": tuple(res["unseen"]["mae"]) if "unseen" in res else nan2,
                     "unseen_cov": res["unseen"]["cov"] if "unseen" in res else dict.fromkeys(LEVELS, np.nan)})
    rows.sort(key=lambda r: r["n_train"])
    print(f"\n{'training trains':>15} {'epochs':>6} {'minutes':>7} {'generator MAE':>15} {'mixture cov 50/80/95':>22} "
          f"{'unseen MAE':>15} {'unseen cov 50/80/95':>22}")
    for r in rows:
        m, u = r["mix_cov"], r["unseen_cov"]
        print(f"{r['n_train']:15d} {r['epochs']:6d} {r['seconds'] / 60:7.1f} {r['mae'][0]:7.3f} / {r['mae'][1]:<5.3f} "
              f"{m[0.5]:6.3f} / {m[0.8]:.3f} / {m[0.95]:.3f} {r['unseen_mae'][0]:7.3f} / {r['unseen_mae'][1]:<5.3f} "
              f"{u[0.5]:6.3f} / {u[0.8]:.3f} / {u[0.95]:.3f}")
    return rows


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
    print(f"posterior: {post!r}; {post.config.training_data['train_trains']} training trains; world shares "
          f"{post.config.training_data.get('worlds')}")
    fig = world_figures(post, sets, args.model, args.n_samples, args.max_trains, args.seed)
    mix = fig["mixture"]
    print(f"model={args.model} cov50={mix[0.5]:.4f} cov80={mix[0.8]:.4f} cov95={mix[0.95]:.4f} "
          f"mae_gs={get(fig, 'generator', 'mae', 0):.4f} mae_gu={get(fig, 'generator', 'mae', 1):.4f}"
          + headline_keys(fig) + world_keys(fig))


if __name__ == "__main__":
    main()
