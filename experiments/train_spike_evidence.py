"""Train the spike-level modulation evidence (:mod:`dicsbi.modulation.spike_evidence`) and ship it.

Reads the blocks of ``make_modulation_pairs.py`` (the visible pairs only), holds out every block whose index is
9 mod 10 for validation (other before cells; early stopping and the temperature), trains the classifier and
writes ``spike_evidence.pt`` + ``spike_evidence.json`` into ``--out`` (default: the package's pretrained folder
of the model, so the shipped weights are reproducible by this command):

    python experiments/make_modulation_pairs.py --model stg --blocks 200
    python experiments/train_spike_evidence.py --model stg

Ends with one line: model=.. n_train=.. n_val=.. val_nll=.. val_nll_prior=.. val_top1=.. val_top3=..
temperature=.. epochs=.. seconds=..
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from dicsbi.modulation import enumerate_hypotheses
from dicsbi.modulation.spike_evidence import fit_spike_evidence, pair_features
from dicsbi.posterior.artifact import load_posterior
from dicsbi.spikes import SpikeTrains


def _trains(times, offsets, window) -> SpikeTrains:
    n = len(offsets) - 1
    return SpikeTrains(times, offsets.astype(np.int64), np.full(n, window[0]), np.full(n, window[1]),
                       np.array([str(i) for i in range(n)], dtype=object))


def load_blocks(folder: Path, max_blocks: int | None = None, posterior=None):
    """Return (features, hypothesis, block index) of every visible pair in the blocks of ``folder``."""
    paths = sorted(folder.glob("block-*.npz"))[:max_blocks]
    if not paths:
        raise SystemExit(f"{folder}: no blocks (run experiments/make_modulation_pairs.py first)")
    xs, ys, bs = [], [], []
    for p in paths:
        d = np.load(p)
        vis = d["visible"]
        before = _trains(d["before_times"], d["before_offsets"], d["window_ms"]).select(d["cell"][vis])
        after = _trains(d["after_times"], d["after_offsets"], d["window_ms"]).select(vis)
        xs.append(pair_features(before, after, posterior))
        ys.append(d["hypothesis"][vis])
        bs.append(np.full(int(vis.sum()), int(d["meta"][1])))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(bs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--data", default=None, help="blocks folder (default ~/dicsbi-data/modpairs-MODEL)")
    ap.add_argument("--max-blocks", type=int, default=None)
    ap.add_argument("--out", default=None, help="output folder (default: dicsbi/pretrained/MODEL)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--max-minutes", type=float, default=30.0)
    ap.add_argument("--members", type=int, default=5, help="networks in the deep ensemble")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-dic", action="store_true", help="spike statistics only, no DIC-posterior features")
    args = ap.parse_args()
    data = Path(os.path.expanduser(args.data or f"~/dicsbi-data/modpairs-{args.model}"))
    post = None if args.no_dic else load_posterior(args.model)
    x, y, block = load_blocks(data, args.max_blocks, post)
    labels = [h.label for h in enumerate_hypotheses(args.model)]
    print(f"{args.model}: {len(y)} visible pairs from {len(np.unique(block))} blocks of {data}", flush=True)
    ev = fit_spike_evidence(x, y, block % 10 == 9, labels, args.model,
                            dic_posterior_sha256=None if post is None else post.config.weights_sha256,
                            seed=args.seed, hidden=args.hidden,
                            depth=args.depth, max_seconds=60 * args.max_minutes, members=args.members)
    ev.config["training"].update(data=str(data), blocks=int(len(np.unique(block))))
    out = Path(args.out or Path(__file__).resolve().parent.parent / "dicsbi" / "pretrained" / args.model)
    path = ev.save(out)
    r = ev.config["training"]
    print(f"wrote {path}")
    print(f"model={args.model} n_train={r['n_train']} n_val={r['n_val']} val_nll={r['val_nll']:.4f} "
          f"val_nll_prior={r['val_nll_prior']:.4f} val_top1={r['val_top1']:.4f} val_top3={r['val_top3']:.4f} "
          f"temperature={ev.temperature:.4f} epochs={r['epochs']} seconds={r['seconds']:.0f}")


if __name__ == "__main__":
    main()
