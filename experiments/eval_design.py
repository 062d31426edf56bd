"""Does the protocol ``dicsbi modulate --design`` ranks first tell the truth apart better than no stimulus?

On the benchmark's ``prior`` scenarios (:mod:`dicsbi.modulation.scenarios`, the same seeds as
``eval_modulation.py``): ``modulate`` on the before/after recordings (64 members, 32 + 128 particles, the
shipped spike-level evidence), then :func:`dicsbi.modulation.design.design_protocols` on its three leading
hypotheses.  Where the truth is among them, the *true* after cell is simulated under every protocol and its
response matched to the leading hypotheses' predicted responses (:meth:`ProtocolDesign.match`, 5 nearest
neighbours): a hit when the truth gets the largest share (ties split).  Scored: the hit rate with no stimulus
(what the recording already shows, through the same matching), with the design's best protocol, per protocol,
and by chance (one of the leading hypotheses at random); the paired bootstrap interval of best minus none.
``hit_hindsight`` (each cell's best protocol, picked after seeing its outcome) is printed for the record but is
no ceiling: with one noisy trial per protocol it is the maximum of six draws, high even when every protocol
is at chance.

    python experiments/eval_design.py --model stg [--n 100] [--seed 0] [--out ~/dicsbi-data/eval-design-stg]

Rows go to ``--out/rows.jsonl`` as they finish; a rerun skips them.  Ends with one line:
model=M scenarios=n truth_in_lead=x hit_none=x hit_best=x hit_chance=x hit_hindsight=x best_minus_none=x lo=x
hi=x seconds_per_scenario=x
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from eval_modulation import read_rows


def run_one(model: str, i: int, seed: int) -> dict:
    from dicsbi.modulation import ComparisonOptions, modulate
    from dicsbi.modulation.design import design_protocols, protocol_stimulus
    from dicsbi.modulation.scenarios import draw_scenario
    from dicsbi.simulate import simulate

    t0 = time.perf_counter()
    sc = draw_scenario(model, "prior", i, seed)
    truth = "+".join(c[2:] for c in sc.truth)
    row: dict = {"set": "prior", "i": i, "truth": truth}
    try:
        res = modulate(sc.trains[0], sc.trains[1], model, n_members=64, seed=seed + i,
                       options=ComparisonOptions(n_pilot=32, n_particles=128))
        d = design_protocols(res, top=3, seed=seed + i)
    except Exception as exc:  # an unreachable before recording or fewer than two hypotheses with draws
        row.update(failed=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
        return row
    row.update(lead=d.hypotheses, left_out=d.left_out, amplitudes=d.amplitudes.tolist(),
               score=d.score.tolist(), best=int(d.order[0]))
    if truth in d.hypotheses:
        t = d.hypotheses.index(truth)
        hits = []
        for p, amp in enumerate(d.amplitudes):
            out = simulate(model, sc.after[None], seed=seed + i, tier="fast",
                           stimulus=protocol_stimulus(float(amp), d.window_ms))
            share = d.match(out.trains, p)[0]
            top = np.flatnonzero(share == share.max())
            hits.append(float(t in top) / len(top))
        row["hits"] = hits
    row["seconds"] = time.perf_counter() - t0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("stg", "da"), required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(os.path.expanduser(args.out or f"~/dicsbi-data/eval-design-{args.model}"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.jsonl"
    rows = {i: r for (_, i), r in read_rows(path).items()}  # the benchmark's reader: cut-short lines ignored
    with open(path, "a") as f:
        for i in range(args.n):
            if i in rows:
                continue
            rows[i] = run_one(args.model, i, args.seed)
            f.write(json.dumps(rows[i]) + "\n")
            f.flush()
            r = rows[i]
            print(f"[{i + 1}/{args.n}] truth={r['truth']:<11} lead={','.join(r.get('lead', []))} "
                  f"hits={r.get('hits', '-')} ({r['seconds']:.1f} s)", flush=True)
    done = [rows[i] for i in range(args.n)]
    scored = [r for r in done if "hits" in r]
    none = np.array([r["hits"][0] for r in scored])
    best = np.array([r["hits"][r["best"]] for r in scored])
    hind = np.array([max(r["hits"]) for r in scored])
    chance = np.array([1.0 / len(r["lead"]) for r in scored])
    boot = np.random.default_rng(0).integers(len(scored), size=(2000, len(scored)))
    diff = (best - none)[boot].mean(1) if scored else np.array([np.nan])
    lo, hi = np.quantile(diff, [0.025, 0.975])
    failed = sum("failed" in r for r in done)
    print(f"{len(done)} scenarios, {failed} without a design (unreachable before recording or too few leading "
          f"hypotheses with change draws), truth among the three leading hypotheses in {len(scored)}")
    amps = scored[0]["amplitudes"] if scored else []
    if scored:
        chosen = np.bincount([r["best"] for r in scored], minlength=len(amps))
        print("protocol chosen: " + ", ".join(f"{a:+g}: {c}" for a, c in zip(amps, chosen)))
        per = np.mean([r["hits"] for r in scored], axis=0)
        print("hit rate per protocol: " + ", ".join(f"{a:+g}: {h:.3f}" for a, h in zip(amps, per))
              + f" (chance {chance.mean():.3f})")
    print(f"model={args.model} scenarios={len(done)} truth_in_lead={len(scored) / len(done):.4f} "
          f"hit_none={none.mean():.4f} hit_best={best.mean():.4f} hit_chance={chance.mean():.4f} "
          f"hit_hindsight={hind.mean():.4f} "
          f"best_minus_none={(best - none).mean():.4f} lo={lo:.4f} hi={hi:.4f} "
          f"seconds_per_scenario={np.mean([r['seconds'] for r in done]):.1f}")


if __name__ == "__main__":
    main()
