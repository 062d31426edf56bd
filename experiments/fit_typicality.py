"""Fit the shipped posterior's typicality score (:mod:`dicsbi.posterior.typicality`) and measure its flag rates.

Reference trains: a uniform sample of the posterior's training sets (clean and noise-prior, in their training
proportions); calibration: half of a sample of its test sets (fresh cells of the same generator); the other half
measures the in-world flag rate.  Out-of-world checks: the other model's test trains, Poisson trains (2 ms dead
time) with the rate and window of in-world test trains, and bursters (clean test cells that burst) with their
intervals shuffled; noisy trains the three-class rule calls bursting are shuffled and reported apart (many are
noise-driven irregular spikers with nearly exchangeable intervals, whose shuffle is in-world by construction).
The rival-world classifier learns the other shipped model's training world (by default the sets its shipped
typicality was fitted to; ``--rival-sets`` to choose, ``--no-rivals`` for the density alone), windowed alike.

    python experiments/fit_typicality.py --model stg [--sets ~/dicsbi-data/sets] [--n-reference 20000]
        [--n-test 6000] [--seed 0] [--save]
    python experiments/fit_typicality.py --model stg --n-reference 40000 --save            # as shipped
    python experiments/fit_typicality.py --model da --n-reference 40000 \
        --reference-sets train,train-noise,train-noise2 --save

The sets are those of ``experiments/make_training_sets.py`` (``<model>-shipped-{train,train-noise,test,
test-noise}``).  ``--save`` writes ``typicality.npz`` / ``typicality.json`` into ``dicsbi/pretrained/<model>``.
Ends with one line: model=M threshold=.. flag_rate_in=.. flag_rate_other_model=.. flag_rate_poisson=..
flag_rate_shuffled=.. n_reference=.. n_calibration=..
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from dicsbi.datasets.storage import load_dataset
from dicsbi.posterior.embedding import random_windows
from dicsbi.posterior.typicality import Typicality
from dicsbi.spikes import BURSTING, SpikeTrains, firing_class

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_lengths import cut  # noqa: E402  (the experiments folder is not a package)

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ("train", "train-noise")  # the posterior's training world: clean cells and the noise prior's part
TEST = ("test", "test-noise")
LENGTH_MIN_MS = 1000.0  # as the shipped posteriors' training (TrainConfig.length_min_ms)


def _pool(sets: Path, names: list[str]) -> SpikeTrains:
    """The non-silent, non-diverged trains of the named sets, in order."""
    parts = []
    for name in names:
        ds = load_dataset(sets / name)
        parts.append(ds.trains.select(np.flatnonzero((ds.firing_class > 0) & (ds.status == 0))))
    return SpikeTrains.concat(parts)


def _sample(sets: Path, names: list[str], n: int, rng) -> SpikeTrains:
    """``n`` non-silent, non-diverged trains drawn uniformly from the union of the named sets."""
    pool = _pool(sets, names)
    return pool.select(np.sort(rng.choice(len(pool), min(n, len(pool)), replace=False)))


def validation_world(model: str, sets: Path, rival_names: dict[str, list[str]], n_rival_used: int, seed: int,
                     n: int = 3000) -> dict[str, SpikeTrains]:
    """Out-of-world validation trains that choose the flag's operating point, from training data only.

    Each rival model's training trains that :func:`rival_world` did not draw for the classifier; Poisson-like
    trains (:func:`poisson_like`) with the rates and windows of the model's own training trains; the model's
    clean training bursters with their intervals shuffled.  All whole trains, as recordings come; never the
    test sets, which measure the result.
    """
    rng = np.random.default_rng([seed, 11])
    out = {}
    others = [m for m in ("stg", "da") if m != model]  # rival_world's order, so its draws are found again
    for other, names in sorted(rival_names.items(), key=lambda kv: others.index(kv[0])):
        k = others.index(other)
        pool = _pool(sets, names)
        used = np.random.default_rng([seed, 7, k]).choice(len(pool), min(n_rival_used, len(pool)), replace=False)
        free = np.setdiff1d(np.arange(len(pool)), used)
        out[other] = pool.select(np.sort(rng.choice(free, min(n, free.size), replace=False)))
    own = [f"{model}-shipped-{s}" for s in TRAIN]
    out["poisson"] = poisson_like(_sample(sets, own, n, rng), rng)
    clean = _sample(sets, [f"{model}-shipped-train"], 4 * n, rng)
    out["shuffled"] = shuffled(clean.select(np.flatnonzero(firing_class(clean) == BURSTING)[:n]), rng)
    return out


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


def rival_world(model: str, sets: Path, n: int, seed: int, length_min_ms: float | None = LENGTH_MIN_MS,
                rival_sets: list[str] | None = None) -> tuple[dict[str, SpikeTrains], dict[str, list[str]]]:
    """The other shipped models' training worlds: ``n`` trains of each, windowed as :func:`world`.  Each rival's
    sets are ``rival_sets`` (names after ``<model>-shipped-``) or, by default, those its shipped typicality was
    fitted to (``reference_sets`` in its typicality.json).  Returns (trains, set names) by model."""
    out, used = {}, {}
    for k, other in enumerate(m for m in ("stg", "da") if m != model):
        if rival_sets:
            names = [f"{other}-shipped-{s}" for s in rival_sets]
        else:
            doc = json.loads((ROOT / "dicsbi" / "pretrained" / other / "typicality.json").read_text())
            names = doc["info"]["reference_sets"]
        trains = _sample(sets, names, n, np.random.default_rng([seed, 7, k]))
        if length_min_ms:
            trains = random_windows(trains, np.random.SeedSequence(seed, spawn_key=(3, k)), length_min_ms)
        out[other], used[other] = trains, names
    return out, used


def world(model: str, sets: Path, n_reference: int, n_test: int, seed: int, reference_sets=None,
          length_min_ms: float | None = LENGTH_MIN_MS):
    """(reference, calibration, held-out, held-out uncut) trains of the model's training world and the rng: the
    reference from the training sets (``reference_sets``, folder names; default clean and noise prior),
    calibration and held-out halves of a sample of the test sets.  Half of the reference, calibration and
    held-out trains are cut to a random window of ``length_min_ms`` to the full length, as the length-aware
    posterior was trained (``random_windows``); the uncut held-out half is the test trains as recorded."""
    rng = np.random.default_rng(seed)
    names = list(reference_sets or [f"{model}-shipped-{s}" for s in TRAIN])
    ref = _sample(sets, names, n_reference, rng)
    test = _sample(sets, [f"{model}-shipped-{s}" for s in TEST], n_test, rng)
    perm = rng.permutation(len(test))
    cal, held_full = test.select(np.sort(perm[::2])), test.select(np.sort(perm[1::2]))
    held = held_full
    if length_min_ms:  # the posterior's world holds every length from length_min_ms to the window
        ref = random_windows(ref, np.random.SeedSequence(seed, spawn_key=(1,)), length_min_ms)
        cal = random_windows(cal, np.random.SeedSequence(seed, spawn_key=(2,)), length_min_ms)
        held = random_windows(held_full, np.random.SeedSequence(seed, spawn_key=(2, 1)), length_min_ms)
    return ref, cal, held, held_full, rng


def flag_rates(typ: Typicality, model: str, sets: Path, held: SpikeTrains, held_full: SpikeTrains, rng,
               n_test: int) -> dict:
    """Flag rates of the held-out in-world trains (length-aware and as recorded) and of the three out-of-world
    kinds (module docstring)."""
    other = "da" if model == "stg" else "stg"
    score, flagged, _ = typ.assess(held)
    rates = {"in": flagged.mean(), "in_by_density": (score > typ.threshold).mean(),
             "in_full": typ.flag(held_full)[1].mean()}
    foreign = _sample(sets, [f"{other}-shipped-{s}" for s in TEST], 2000, rng)
    (score, flagged, like), cls = typ.assess(foreign), firing_class(foreign)
    rates["other_model"] = flagged.mean()
    rates["other_model_called_other"] = (like == other).mean()
    rates["other_model_by_density"] = (score > typ.threshold).mean()
    rates["other_model_tonic"] = flagged[cls == 1].mean() if (cls == 1).any() else float("nan")
    rates["other_model_bursting"] = flagged[cls == 2].mean() if (cls == 2).any() else float("nan")
    rates["poisson"] = typ.flag(poisson_like(held_full, rng))[1].mean()   # the test trains' rates and windows
    rates["poisson_windowed"] = typ.flag(poisson_like(held, rng))[1].mean()  # ... and of length-aware windows
    # bursters: clean test cells that burst.  A noisy train the three-class rule calls bursting is often a
    # noise-driven irregular spiker whose intervals are nearly exchangeable, so its shuffle stays in-world by
    # construction; it is reported apart.
    clean = _sample(sets, [f"{model}-shipped-test"], n_test, rng)
    bursters = clean.select(np.flatnonzero(firing_class(clean) == BURSTING)[:2000])
    rates["shuffled"] = typ.flag(shuffled(bursters, rng))[1].mean()
    noisy = _sample(sets, [f"{model}-shipped-{TEST[-1]}"], 2000, rng)
    noisy_b = noisy.select(np.flatnonzero(firing_class(noisy) == BURSTING))
    rates["shuffled_noisy_class_bursting"] = typ.flag(shuffled(noisy_b, rng))[1].mean()
    short = cut(held_full, 1000.0)
    rates["in_1s"] = typ.flag(short.select(np.flatnonzero(short.counts >= 3)))[1].mean()
    rates["n_bursters"], rates["n_noisy_bursting"] = len(bursters), len(noisy_b)
    return rates


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("stg", "da"), required=True)
    ap.add_argument("--sets", default="~/dicsbi-data/sets")
    ap.add_argument("--n-reference", type=int, default=20000)
    ap.add_argument("--n-test", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-sets", default=",".join(TRAIN),
                    help="training sets of the posterior's world, as <model>-shipped-<name> (comma-separated)")
    ap.add_argument("--length-min-ms", type=float, default=LENGTH_MIN_MS,
                    help="shortest random window of the world's trains (0: whole trains only)")
    ap.add_argument("--rival-sets", default=None,
                    help="training sets of the other models' worlds (default: those of their shipped typicality)")
    ap.add_argument("--no-rivals", action="store_true", help="density only (no rival-world classifier)")
    ap.add_argument("--recalibrate", action="store_true",
                    help="keep the shipped flow and classifier; only choose the thresholds again")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--save-to", default=None, help="save into this folder instead (comparisons)")
    args = ap.parse_args(argv)
    sets = Path(os.path.expanduser(args.sets))
    m = args.model
    names = [f"{m}-shipped-{s}" for s in args.reference_sets.split(",")]
    ref, cal, held, held_full, rng = world(m, sets, args.n_reference, args.n_test, args.seed, names,
                                           args.length_min_ms)
    if args.recalibrate:  # the shipped networks, thresholds set again (the same calibration trains)
        typ = Typicality.load(ROOT / "dicsbi" / "pretrained" / m)
        if typ is None or not typ.rivals:
            raise SystemExit(f"no shipped typicality with a rival classifier for {m}")
        validation = validation_world(m, sets, typ.info["rival_sets"], min(typ.info["n_rival"].values()),
                                      args.seed)
        typ = typ.calibrate(cal, validation)
    else:
        rivals, rival_names = (None, {}) if args.no_rivals else rival_world(
            m, sets, args.n_reference, args.seed, args.length_min_ms,
            args.rival_sets.split(",") if args.rival_sets else None)
        validation = validation_world(m, sets, rival_names, args.n_reference, args.seed) if rivals else None
        typ = Typicality.fit(ref, cal, rivals=rivals, validation=validation,
                             info={"model": m, "seed": args.seed, "reference_sets": names,
                                   "length_min_ms": args.length_min_ms,
                                   "calibration_sets": [f"{m}-shipped-{s}" for s in TEST],
                                   "rival_sets": rival_names})
    op = typ.info.get("operating_point")
    if op:
        print(f"operating point (chosen on validation trains from training data): in-world rate {op['rate']}, "
              f"density's share {op['density_share']:.2f}; validation flagged "
              + ", ".join(f"{k} {v:.3f}" for k, v in op["validation_flagged"].items()))
    rates = flag_rates(typ, m, sets, held, held_full, rng, args.n_test)
    print(f"{m}: {len(ref)} reference trains, {len(cal)} calibration, {len(held)} held-out in-world; "
          f"{rates.pop('n_bursters')} clean bursters and {rates.pop('n_noisy_bursting')} noisy 'bursting'-class "
          f"trains shuffled; threshold {typ.threshold:.4f} (quantile {typ.quantile})")
    for k, v in rates.items():
        print(f"  flagged {k:<30} {v:.3f}")
    if args.save or args.save_to:
        dest = Path(args.save_to) if args.save_to else ROOT / "dicsbi" / "pretrained" / m
        dest.mkdir(parents=True, exist_ok=True)
        typ.save(dest)
        print(f"saved to {dest}; validation NLL of the flow {typ.info['validation_nll']:.4f}")
    print(f"model={m} threshold={typ.threshold:.4f} flag_rate_in={rates['in']:.4f} "
          f"flag_rate_other_model={rates['other_model']:.4f} flag_rate_poisson={rates['poisson']:.4f} "
          f"flag_rate_shuffled={rates['shuffled']:.4f} n_reference={len(ref)} n_calibration={len(cal)}")


if __name__ == "__main__":
    main()
