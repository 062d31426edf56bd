"""Train the posteriors shipped in ``dicsbi/pretrained/<model>/`` and record how they were made.

Trains one posterior per representation (summary statistics and the learned ISI-sequence embedding) on the
training set from ``experiments/make_training_sets.py``, evaluates both on the test set with
``experiments/eval_posterior.py``'s protocol, ships the one with the lower mean-of-MAEs (g_s and g_u of the
posterior mean) and writes ``training_record.json`` beside it: data size, training time, epochs and the
evaluation figures of both candidates, so the choice is visible.

    python experiments/train_pretrained.py --model stg                # about 20-40 min per model on 2 cores
    python experiments/train_pretrained.py --model da --representations summary --max-minutes 20
    python experiments/train_pretrained.py --model stg --reuse summary   # keep the trained summary candidate

``--reuse`` re-evaluates an already trained candidate folder (its training figures come from its
posterior.json) instead of training it again, so a long run can be completed one representation at a time.
Candidates of the earlier record that are not trained again are kept in the new record (with their own
training set), so the comparison of representations stays visible.

``--noisy`` trains on the clean set and the noisy one (``make_training_sets.py --only train-noisy``) together,
so that the posterior serves recordings with current noise too; each candidate is also evaluated on the noisy
test set.

Ends with one line: model=.. shipped=<representation> train_trains=.. seconds=.. mae_gs=.. mae_gu=..
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_posterior import evaluate  # noqa: E402

from dicsbi.datasets.storage import combine_datasets, load_dataset, subset_trains  # noqa: E402
from dicsbi.posterior.artifact import PRETRAINED_DIR, load_posterior  # noqa: E402
from dicsbi.posterior.training import TrainConfig, train_posterior  # noqa: E402


def training_data(train: str, max_trains: int | None, seed: int):
    """Load and combine the training sets of ``--train`` (each ``PATH`` or ``PATH@N``), capped at ``max_trains``."""
    parts = []
    for item in train.split(","):
        path, _, cap = item.partition("@")
        ds = load_dataset(path)
        parts.append(subset_trains(ds, int(cap), 0.1, seed) if cap else ds)
    data, _ = combine_datasets(parts, 0.1)
    return subset_trains(data, max_trains, 0.1, seed) if max_trains else data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--train", default=None, help="training set(s), comma-separated (default "
                    "data/<model>-shipped-train, plus data/<model>-shipped-train-noisy with --noisy); "
                    "PATH@N keeps N training trains of that set (whole populations, seeded)")
    ap.add_argument("--max-trains", type=int, default=None,
                    help="train on the first N training trains of the combined sets (learning curves: with one "
                    "--seed a smaller subset lies inside a larger one)")
    ap.add_argument("--noisy", action="store_true", help="train on clean and noisy simulations together")
    ap.add_argument("--test", default=None, help="test set (default data/<model>-shipped-test)")
    ap.add_argument("--representations", default="summary,sequence")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="training time limit per candidate")
    ap.add_argument("--eval-trains", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-ship", action="store_true", help="train and evaluate the candidates in --work only; "
                    "leave dicsbi/pretrained untouched (experiments)")
    ap.add_argument("--length-min-ms", type=float, default=None,
                    help="cut half of the training trains (clean ones too) to a random length in [this, window]")
    ap.add_argument("--window-min-fraction", type=float, default=0.5,
                    help="shortest augmentation window as a fraction of a train's spikes (0.5: published)")
    ap.add_argument("--work", default="out/pretrained-candidates")
    ap.add_argument("--resume", default="", help="comma-separated representations whose candidate folder under "
                    "--work is trained further (for --max-minutes more)")
    ap.add_argument("--reuse", default="", help="comma-separated representations whose candidate folder under "
                    "--work is evaluated again rather than retrained")
    args = ap.parse_args()
    train = args.train or f"data/{args.model}-shipped-train" + (
        f",data/{args.model}-shipped-train-noisy" if args.noisy else "")
    test = args.test or f"data/{args.model}-shipped-test"
    noisy_test = f"{test}-noisy" if Path(f"{test}-noisy").exists() else None
    data = training_data(train, args.max_trains, args.seed)
    candidates = {}
    reuse = set(filter(None, args.reuse.split(",")))
    resume = set(filter(None, args.resume.split(",")))
    for rep in args.representations.split(","):
        folder = Path(args.work) / f"{args.model}-{rep}"
        if rep in reuse:
            post = load_posterior(folder, model=args.model)
            if post.config.representation != rep or post.config.fingerprint != \
                    data.manifest["fingerprint"]:
                raise SystemExit(f"{folder}: not a {rep} posterior trained on {train}; retrain it")
        else:
            cfg = TrainConfig(representation=rep, seed=args.seed, threads=args.threads,
                              learning_rate=1e-3 if rep.startswith("summary") else 5e-4,
                              window_min_fraction=args.window_min_fraction, length_min_ms=args.length_min_ms)
            earlier = load_posterior(folder, model=args.model) if rep in resume else None
            post, _ = train_posterior(data, cfg, max_seconds=60 * args.max_minutes, resume_from=earlier)
            post.save(folder)
        tr = post.config.training
        secs = tr["seconds"]
        ev = evaluate(post, test, 500, args.eval_trains, args.seed)
        score = float(np.mean(ev["mae_mean_all"]))
        candidates[rep] = {"folder": str(folder), "score": score, "seconds": secs, "epochs": tr["epochs"],
                           "best_val_loss": tr["best_val_loss"],
                           "train_trains": post.config.training_data["train_trains"],
                           "mae_mean": {k: ev[f"mae_mean_{k}"].tolist() for k in ("all", "tonic", "burst")},
                           "mae_median": {k: ev[f"mae_median_{k}"].tolist() for k in ("all", "tonic", "burst")},
                           "coverage": ev["coverage"], "sbc_ks_p": ev["sbc_p"].tolist(),
                           "tarp_atc": ev["tarp"]["atc"], "eval_trains": ev["n"], "training_set": train}
        if noisy_test:
            nz = evaluate(post, noisy_test, 500, args.eval_trains, args.seed)
            candidates[rep]["noisy"] = {"mae_mean": nz["mae_mean_all"].tolist(), "coverage": nz["coverage"],
                                        "eval_trains": nz["n"]}
        print(f"{rep}: {tr['epochs']} epochs in {secs:.0f} s, val loss {tr['best_val_loss']:.4f}, "
              f"MAE g_s/g_u {ev['mae_mean_all'][0]:.3f} / {ev['mae_mean_all'][1]:.3f}, "
              f"coverage {ev['coverage']}", flush=True)
    best = min(candidates, key=lambda r: candidates[r]["score"])
    if args.no_ship:
        c = candidates[best]
        print(f"not shipped (--no-ship): best candidate {best} in {c['folder']}")
        print(f"model={args.model} shipped=none best={best} train_trains={c['train_trains']} seconds={c['seconds']} "
              f"mae_gs={c['mae_mean']['all'][0]:.4f} mae_gu={c['mae_mean']['all'][1]:.4f}")
        return
    dest = PRETRAINED_DIR / args.model
    earlier = dest / "training_record.json"
    if earlier.exists():
        old = json.loads(earlier.read_text())
        for rep, c in old["candidates"].items():
            if rep not in candidates:
                candidates[rep] = {**c, "training_set": c.get("training_set", old["training_set"]), "earlier": True}
    dest.mkdir(parents=True, exist_ok=True)
    for f in dest.glob("*"):  # the posterior's files; its typicality (fitted on the data sets) stays
        if not f.name.startswith("typicality."):
            f.unlink()
    shutil.copytree(candidates[best]["folder"], dest, dirs_exist_ok=True)
    record = {"model": args.model, "shipped": best, "training_set": train, "test_set": test,
              "training_rows": int(len(data)), "manifest_fingerprint": data.manifest["fingerprint"],
              "candidates": candidates, "command": " ".join(sys.argv)}
    (dest / "training_record.json").write_text(json.dumps(record, indent=1) + "\n")
    size = sum(p.stat().st_size for p in dest.iterdir())
    c = candidates[best]
    print(f"shipped {best} -> {dest} ({size / 1e6:.2f} MB)")
    print(f"model={args.model} shipped={best} train_trains={c['train_trains']} seconds={c['seconds']} "
          f"mae_gs={c['mae_mean']['all'][0]:.4f} mae_gu={c['mae_mean']['all'][1]:.4f}")


if __name__ == "__main__":
    main()
