"""Fit the shipped posterior's typicality score (:mod:`dicsbi.typicality`) and measure its flag rates.

Reference trains: a uniform sample of the posterior's training sets (clean and noisy, in their training
proportions); calibration: half of a sample of its test sets (fresh cells of the same generator); the other half
measures the in-world flag rate.  Out-of-world checks: the other model's test trains, Poisson trains (2 ms dead
time) with the rate and window of in-world test trains, and bursters (clean test cells that burst) with their
intervals shuffled; noisy trains the three-class rule calls bursting are shuffled and reported apart (many are
noise-driven irregular spikers with nearly exchangeable intervals, whose shuffle is in-world by construction).

    python experiments/fit_typicality.py --model stg [--sets ~/dicsbi-data/sets] [--n-reference 8000]
        [--n-test 6000] [--seed 0] [--save]

The sets are those of ``experiments/make_training_sets.py`` (``<model>-shipped-{train,train-noisy,test,
test-noisy}``).  ``--save`` writes ``typicality.npz`` / ``typicality.json`` into ``dicsbi/pretrained/<model>``.
Ends with one line: model=M threshold=.. flag_rate_in=.. flag_rate_other_model=.. flag_rate_poisson=..
flag_rate_shuffled=.. n_reference=.. n_calibration=..
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from dicsbi.datasets import load_dataset
from dicsbi.spikes import BURSTING, SpikeTrains, firing_class
from dicsbi.typicality import Typicality

ROOT = Path(__file__).resolve().parents[1]


def _sample(sets: Path, names: list[str], n: int, rng) -> SpikeTrains:
    """``n`` non-silent, non-diverged trains drawn uniformly from the union of the named sets."""
    parts = []
    for name in names:
        ds = load_dataset(sets / name)
        parts.append(ds.trains.select(np.flatnonzero((ds.firing_class > 0) & (ds.status == 0))))
    pool = SpikeTrains.concat(parts)
    return pool.select(np.sort(rng.choice(len(pool), min(n, len(pool)), replace=False)))


def poisson_like(trains: SpikeTrains, rng, dead_ms: float = 2.0) -> SpikeTrains:
    """A Poisson train with a ``dead_ms`` refractory period, with each train's rate and window (at least 3
    spikes): intervals ``dead_ms + Exp``, so every train passes the input checks (no interval under 1 ms)."""
    out = []
    for k in range(len(trains)):
        T = float(trains.t_stop_ms[k] - trains.t_start_ms[k])
        mean_isi = T / max(int(trains.counts[k]), 3)
        isi = dead_ms + rng.exponential(max(mean_isi - dead_ms, 1e-3), 4 * max(int(trains.counts[k]), 3) + 20)
        t = rng.uniform(0.0, mean_isi) + np.concatenate([[0.0], np.cumsum(isi)])
        t = t[t <= T]
        out.append(t if t.size >= 3 else np.array([0.0, mean_isi, 2 * mean_isi]))
    return SpikeTrains.from_list(out, 0.0, [float(trains.t_stop_ms[k] - trains.t_start_ms[k])
                                            for k in range(len(trains))])


def shuffled(trains: SpikeTrains, rng) -> SpikeTrains:
    """Each train with its interspike intervals in random order (same first spike, same ISI distribution)."""
    out = []
    for t in trains:
        isi = np.diff(t)
        rng.shuffle(isi)
        out.append(np.concatenate([[t[0]], t[0] + np.cumsum(isi)]))
    return SpikeTrains.from_list(out, 0.0, [float(x) for x in trains.t_stop_ms])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("stg", "da"), required=True)
    ap.add_argument("--sets", default="~/dicsbi-data/sets")
    ap.add_argument("--n-reference", type=int, default=8000)
    ap.add_argument("--n-test", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args(argv)
    sets = Path(os.path.expanduser(args.sets))
    other = "da" if args.model == "stg" else "stg"
    rng = np.random.default_rng(args.seed)
    m = args.model
    ref = _sample(sets, [f"{m}-shipped-train", f"{m}-shipped-train-noisy"], args.n_reference, rng)
    test = _sample(sets, [f"{m}-shipped-test", f"{m}-shipped-test-noisy"], args.n_test, rng)
    perm = rng.permutation(len(test))
    cal, held = test.select(np.sort(perm[::2])), test.select(np.sort(perm[1::2]))
    typ = Typicality.fit(ref, cal, info={"model": m, "seed": args.seed, "reference_sets": [
        f"{m}-shipped-train", f"{m}-shipped-train-noisy"], "calibration_sets": [f"{m}-shipped-test",
                                                                                f"{m}-shipped-test-noisy"]})
    rates = {"in": typ.flag(held)[1].mean()}
    rates["other_model"] = typ.flag(_sample(sets, [f"{other}-shipped-test", f"{other}-shipped-test-noisy"], 2000,
                                            rng))[1].mean()
    rates["poisson"] = typ.flag(poisson_like(held, rng))[1].mean()
    # bursters: clean test cells that burst.  A noisy train the three-class rule calls bursting is often a
    # noise-driven irregular spiker whose intervals are nearly exchangeable, so its shuffle stays in-world by
    # construction; it is reported apart.
    clean = _sample(sets, [f"{m}-shipped-test"], args.n_test, rng)
    bursters = clean.select(np.flatnonzero(firing_class(clean) == BURSTING)[:2000])
    rates["shuffled"] = typ.flag(shuffled(bursters, rng))[1].mean()
    noisy = _sample(sets, [f"{m}-shipped-test-noisy"], 2000, rng)
    noisy_b = noisy.select(np.flatnonzero(firing_class(noisy) == BURSTING))
    rates["shuffled_noisy_class_bursting"] = typ.flag(shuffled(noisy_b, rng))[1].mean()
    print(f"{m}: {len(ref)} reference trains, {len(cal)} calibration, {len(held)} held-out in-world; "
          f"{len(bursters)} clean bursters and {len(noisy_b)} noisy 'bursting'-class trains shuffled; threshold "
          f"{typ.threshold:.4f} (quantile {typ.quantile})")
    for k, v in rates.items():
        print(f"  flagged {k:<30} {v:.3f}")
    if args.save:
        typ.save(ROOT / "dicsbi" / "pretrained" / m)
        print(f"saved to dicsbi/pretrained/{m}")
    print(f"model={m} threshold={typ.threshold:.4f} flag_rate_in={rates['in']:.4f} "
          f"flag_rate_other_model={rates['other_model']:.4f} flag_rate_poisson={rates['poisson']:.4f} "
          f"flag_rate_shuffled={rates['shuffled']:.4f} n_reference={len(ref)} n_calibration={len(cal)}")


if __name__ == "__main__":
    main()
