"""How accuracy and calibration of a shipped posterior depend on the recording's length.

The cells of the posterior's noise-free test set (``experiments/make_training_sets.py``, fresh cells of the
training generator) are simulated again for twice the training window (fast tier, same transient), and each
train is cut to its first 1 s, 2 s, the training window and the whole twice-the-window recording.  Every length
is scored as ``experiments/eval_posterior.py`` scores the test set: MAE of the posterior mean and expected HPD
coverage at 50 / 80 / 95 %.  Trains with fewer than 3 spikes in a window are silent there (no posterior) and are
counted, not scored.

    python experiments/eval_lengths.py --model stg [--posterior DIR] [--max-cells 2000] [--n-samples 500] [--seed 0]

Ends with one line: model=M window_ms=.. then per length L in (1s, 2s, window, 2window): mae_gs_L mae_gu_L
cov50_L cov80_L cov95_L n_L
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from dicsbi.datasets.storage import load_dataset
from dicsbi.posterior.artifact import load_posterior
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_posterior import evaluate_trains  # noqa: E402  (the experiments folder is not a package)


def cut(trains: SpikeTrains, length_ms: float) -> SpikeTrains:
    """Each train's first ``length_ms`` (window [0, length_ms])."""
    return SpikeTrains.from_list([t[t <= length_ms] for t in trains], 0.0, length_ms, ids=list(trains.ids))


def length_figures(post, model: str, test, max_cells: int = 2000, n_samples: int = 500, seed: int = 0,
                   verbose: bool = True) -> dict:
    """``{length name: (MAE [2], coverage, n scored)}`` for 1 s, 2 s, the training window and twice it."""
    window = float(post.config.window_ms)
    d = load_dataset(test)
    ok = np.flatnonzero((d.status == 0) & (d.trains.counts >= 3))
    rng = np.random.default_rng(seed)
    ok = np.sort(rng.choice(ok, min(max_cells, ok.size), replace=False))
    sim_cfg = post.config.simulator
    t0 = time.perf_counter()
    res = simulate(model, d.conductances[ok], duration_ms=2 * window, dt_ms=sim_cfg["dt_ms"],
                   transient_ms=sim_cfg["transient_ms"], seed=seed, tier="fast")
    if verbose:
        print(f"{model}: {ok.size} test cells simulated for {2 * window:.0f} ms in {time.perf_counter() - t0:.0f} s "
              f"(training window {window:.0f} ms)")
    lengths = {"1s": 1000.0, "2s": 2000.0, "window": window, "2window": 2 * window}
    figures = {}
    if verbose:
        print(f"{'length':>8} {'ms':>7} {'n':>5} {'silent':>6} {'MAE g_s':>8} {'MAE g_u':>8} {'cov50':>6} "
              f"{'cov80':>6} {'cov95':>6}")
    for name, L in lengths.items():
        trains = cut(res.trains, L)
        keep = np.flatnonzero((trains.counts >= 3) & (res.status == 0))
        r = evaluate_trains(post, trains.select(keep), d.targets[ok][keep], d.firing_class[ok][keep],
                            n_samples, seed)
        m, c = r["mae_mean_all"], r["coverage"]
        figures[name] = (m, c, keep.size)
        if verbose:
            print(f"{name:>8} {L:7.0f} {keep.size:5d} {ok.size - keep.size:6d} {m[0]:8.3f} {m[1]:8.3f} "
                  f"{c[0.5]:6.3f} {c[0.8]:6.3f} {c[0.95]:6.3f}", flush=True)
    return figures


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("stg", "da"), required=True)
    ap.add_argument("--posterior", default=None, help="posterior folder (default: the shipped one)")
    ap.add_argument("--test", default=None, help="test set (default ~/dicsbi-data/sets/<model>-shipped-test)")
    ap.add_argument("--max-cells", type=int, default=2000)
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    post = load_posterior(args.posterior or args.model, model=args.model)
    test = Path(os.path.expanduser(args.test or f"~/dicsbi-data/sets/{args.model}-shipped-test"))
    figures = length_figures(post, args.model, test, args.max_cells, args.n_samples, args.seed)
    parts = [f"model={args.model} window_ms={float(post.config.window_ms):.0f}"]
    for name, (m, c, n) in figures.items():
        parts.append(f"mae_gs_{name}={m[0]:.4f} mae_gu_{name}={m[1]:.4f} cov50_{name}={c[0.5]:.4f} "
                     f"cov80_{name}={c[0.8]:.4f} cov95_{name}={c[0.95]:.4f} n_{name}={n}")
    print(" ".join(parts))


if __name__ == "__main__":
    main()
