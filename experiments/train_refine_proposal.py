"""Train the refinement's proposal flows (:mod:`dicsbi.refine.flow`) for a shipped posterior.

Cells are drawn from the refinement's prior (:class:`dicsbi.refine.world.World` of the posterior, both
components) and simulated at the fast tier, in chunks saved under ``--data`` (default
``~/dicsbi-data/refine-proposal/<model>-<seed>``, outside the checkout) so that an interrupted run resumes
where it stopped and a rerun with the same seed makes the same cells; then one conditional flow per component
is fitted and, with ``--save``, written next to the shipped posterior (``refine_proposal.pt`` /
``refine_proposal.json``).

    python experiments/train_refine_proposal.py --model stg --n 100000 --save
    python experiments/train_refine_proposal.py --model da --n 60000 --save

Ends with one line: model=M n_cells=.. nll_seeded=.. nll_wide=.. seconds_simulate=.. seconds_fit=..
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from dicsbi.compensation import candidate_pairs
from dicsbi.models import get_model
from dicsbi.posterior.artifact import PRETRAINED_DIR, load_posterior
from dicsbi.progress import ProgressBar
from dicsbi.refine.flow import CONTEXTS, ProposalFlow, distance_view, simulate_prior
from dicsbi.refine.world import World

CHUNK = 5000  # cells per saved chunk


def prior_cells(world: World, n: int, seed: int, folder: Path, context: str) -> tuple[np.ndarray, ...]:
    """At least ``n`` simulated prior cells, chunk ``k`` made by seed ``(seed, k)`` and kept in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    parts, have, k = [], 0, 0
    with ProgressBar(True, n, "prior cells") as bar:
        while have < n:
            path = folder / f"chunk-{k:04d}.npz"
            if not path.exists():
                chunk_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
                theta, comp, ctx = simulate_prior(world, CHUNK, chunk_seed)
                tmp = folder / f".chunk-{k:04d}.{os.getpid()}.npz"
                np.savez(tmp, theta=theta, comp=comp, **ctx)
                os.replace(tmp, path)
            with np.load(path, allow_pickle=False) as a:
                x = a[context]
                parts.append((a["theta"], a["comp"], distance_view(x) if context == "features" else x))
            have += len(parts[-1][0])
            bar.update(min(have, n))
            k += 1
    theta, comp, x = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return theta, comp, x


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("stg", "da"), required=True)
    ap.add_argument("--n", type=int, default=100000, help="simulated firing cells (both components)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=None, help="folder of the simulated chunks")
    ap.add_argument("--context", choices=CONTEXTS, default="features",
                    help="condition on the refinement's own features or on the DIC posterior's summary statistics")
    ap.add_argument("--save", action="store_true", help="write the flows next to the shipped posterior")
    ap.add_argument("--save-to", default=None, help="write them into this folder instead")
    args = ap.parse_args(argv)
    post = load_posterior(args.model)
    m = get_model(args.model)
    world = World(m, float(post.vth_mV), np.asarray(post.config.box, dtype=float), candidate_pairs(m), 0.5)
    data = Path(os.path.expanduser(args.data or f"~/dicsbi-data/refine-proposal/{args.model}-{args.seed}"))
    t0 = time.perf_counter()
    theta, comp, x = prior_cells(world, args.n, args.seed, data, args.context)
    t_sim = time.perf_counter() - t0
    print(f"{len(theta)} firing prior cells ({(comp == 0).sum()} seeded, {(comp == 1).sum()} wide) in {data}")
    t0 = time.perf_counter()
    flow = ProposalFlow.fit(world, theta, comp, x, seed=args.seed, context=args.context,
                            info={"model": args.model, "seed": args.seed, "n_cells": int(len(theta)),
                                  "data": "experiments/train_refine_proposal.py (prior cells, fast tier)",
                                  "context": args.context})
    t_fit = time.perf_counter() - t0
    rec = flow.info["components"]
    print(f"held-out NLL: seeded {rec['0']['validation_nll']:.3f} (epoch {rec['0']['best_epoch']}), "
          f"wide {rec['1']['validation_nll']:.3f} (epoch {rec['1']['best_epoch']})")
    if args.save or args.save_to:
        dest = Path(args.save_to) if args.save_to else PRETRAINED_DIR / args.model
        flow.save(dest)
        print(f"saved to {dest}")
    print(f"model={args.model} n_cells={len(theta)} nll_seeded={rec['0']['validation_nll']:.4f} "
          f"nll_wide={rec['1']['validation_nll']:.4f} seconds_simulate={t_sim:.0f} seconds_fit={t_fit:.0f}")


if __name__ == "__main__":
    main()
