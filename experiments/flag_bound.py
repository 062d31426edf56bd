"""How many trains of the other model can any out-of-world flag catch?  A bound from a classifier that knows the
alternative.

The flag of ``dicsbi.posterior.typicality`` sees only the posterior's own training world.  A supervised classifier
trained on both worlds' typicality features (gradient-boosted trees, 5-fold cross-validated predictions) is an upper
bound on what any detector on those features can do; its flagged share of the other model's trains at a 1 %
in-world rate bounds the "other model" flag rate.  Reported on all trains and on the band where the two worlds
overlap: regular spiking (ISI CV < 0.02) at 10-25 Hz, where both models fire periodic trains.

    python experiments/flag_bound.py [--sets ~/dicsbi-data/sets] [--n 40000] [--seed 1]

Ends with one line: band_share_da=.. band_share_stg=.. auc_band=.. flagged_band=.. flagged_all_da_world=..
flagged_all_stg_world=..
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_typicality import TRAIN, _sample  # noqa: E402

from dicsbi.posterior.typicality import FEATURE_NAMES, typicality_features  # noqa: E402

RATE, CV = FEATURE_NAMES.index("log_rate"), FEATURE_NAMES.index("log_cv")


def band(f: np.ndarray) -> np.ndarray:
    rate, cv = np.exp(f[:, RATE]), np.exp(f[:, CV])
    return (rate > 10) & (rate < 25) & (cv < 0.02)


def flagged_at_one_percent(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[float, float]:
    """(AUC, share of ``b`` above the 99% quantile of ``a``'s scores), cross-validated."""
    x, y = np.vstack([a, b]), np.r_[np.zeros(len(a)), np.ones(len(b))]
    p = cross_val_predict(HistGradientBoostingClassifier(max_iter=200, random_state=seed), x, y, cv=5,
                          method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p)), float((p[y == 1] > np.quantile(p[y == 0], 0.99)).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="~/dicsbi-data/sets")
    ap.add_argument("--n", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    sets = Path(os.path.expanduser(args.sets))
    rng = np.random.default_rng(args.seed)
    f = {m: typicality_features(_sample(sets, [f"{m}-shipped-{s}" for s in TRAIN], args.n, rng)) for m in ("da", "stg")}
    share = {m: float(band(x).mean()) for m, x in f.items()}
    a, b = f["da"][band(f["da"])], f["stg"][band(f["stg"])]
    k = min(len(a), len(b))
    auc_band, flagged_band = flagged_at_one_percent(a[:k], b[:k], args.seed)
    _, all_da = flagged_at_one_percent(f["da"], f["stg"], args.seed)
    _, all_stg = flagged_at_one_percent(f["stg"], f["da"], args.seed)
    print(f"regular 10-25 Hz band: {share['da']:.1%} of the DA world, {share['stg']:.1%} of the STG world")
    print(f"a classifier that knows both worlds, in the band: AUC {auc_band:.3f}, flags {flagged_band:.1%} of STG "
          f"trains at 1% of DA's")
    print(f"on all trains: flags {all_da:.1%} of STG trains at 1% of DA's, {all_stg:.1%} of DA trains at 1% of STG's")
    print(f"band_share_da={share['da']:.4f} band_share_stg={share['stg']:.4f} auc_band={auc_band:.4f} "
          f"flagged_band={flagged_band:.4f} flagged_all_da_world={all_da:.4f} flagged_all_stg_world={all_stg:.4f}")


if __name__ == "__main__":
    main()
