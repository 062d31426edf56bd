"""Does ``modulate`` name the channels a modulator changed?  A benchmark on scenarios with a known answer, with the
published rule as a baseline and oracles as ceilings.

Scenarios (:mod:`dicsbi.modulation.scenarios`): ``prior`` (drawn from the modulation model's own prior on before
cells of the training generator, conditioned on a change visible in the spikes), ``drift`` (the same, with every
untargeted channel drifting by exp(N(0, 0.1^2))) and ``bio`` (the biology-inspired scenarios of the reference,
section 3.4).  Methods, all on the same scenario and the same before-population:

* ``evidence``: today's DIC-level Bayesian comparison (:func:`dicsbi.modulation.modulate`'s evidence: the before
  recording's population, the after recording's tabulated DIC posterior);
* ``cost``: the published rule (:mod:`dicsbi.modulation.cost_rule`): the subset reaching the after posterior's
  mean DICs at the smallest median conductance-change cost;
* ``oracle_before``: the evidence given the true before cell (a one-member population: no before-population
  uncertainty); ``oracle_after``: the evidence given the true after DICs (a Gaussian likelihood of SD
  ``--oracle-sd`` = 0.2 g_leak at them, instead of the after posterior); ``oracle_both``: both;
* ``cost_oracle_before`` / ``cost_oracle_after``: the cost rule with the same oracle inputs.

Compute budget (2 cores, in the background): the comparison runs with ``--n-members 64`` members, 32 pilot and
128 main importance particles per member and hypothesis (``dicsbi modulate`` defaults: 200, 64, 256), chosen so
that 670 STG scenarios fit in about an hour per core; every figure below comes with its bootstrap interval.

Metrics per method, set and subset size of the truth: top-1, top-3, top-3 up to the near-collinear swaps (STG
CaT/CaS, Kd/A; DA Na/NMDA), median rank of the truth, channel-level AUC (a changed channel scores above an
untouched one of the same scenario; score: the channel's marginal probability, for the cost rule minus the best
rank of a subset naming it), and for the probabilistic methods the Brier score of the top call, the expected
calibration error of the top-1 confidence (10 equal-mass bins; 95 % bootstrap interval over scenarios), the share
of confident calls (P >= 0.5) and how many of them are right; a reliability diagram (``reliability.png``); paired
bootstrap intervals of the differences between methods.

    python experiments/eval_modulation.py --model stg [--prior 500] [--drift 100] [--bio 70] [--seed 0]
        [--out ~/dicsbi-data/eval-modulation-stg] [--report-only]

Rows go to ``--out/rows.jsonl`` as they finish (one JSON object per scenario with every method's probabilities
or ranks); a rerun with the same settings skips the rows already there, so an interrupted run resumes.
``spike``: the spike-level evidence (:mod:`dicsbi.modulation.spike_evidence`, ``--spike-evidence`` or the
shipped model): an amortised posterior over hypotheses from both whole spike trains, trained on pairs of the
model's prior made by ``make_modulation_pairs.py`` with other seeds (never on these scenarios).  Each row keeps
the pair's features, so a retrained model rescores every row without simulating (``--report-only``).

Ends with one line (unprefixed figures: the DIC-level evidence on the prior set; ``_new``: the spike-level one):
model=M scenarios=n top1 top3 top3_swaps median_rank channel_auc ece ece_lo ece_hi brier confident_share
confident_right top3_cost channel_auc_cost top3_oracle_before top3_oracle_after seconds top3_new channel_auc_new
ece_new ece_new_hi confident_share_new confident_right_new seconds_new
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from dicsbi.dics import compute_dics
from dicsbi.models import get_model
from dicsbi.modulation import ComparisonOptions
from dicsbi.modulation.compare import compare_population
from dicsbi.modulation.cost_rule import rank_by_cost_population
from dicsbi.modulation.likelihood import GaussianLikelihood, GridLikelihood
from dicsbi.modulation.scenarios import draw_scenario, scenario_seed
from dicsbi.modulation.scoring import bootstrap_index, ece, paired_difference, reliability, score_rows, summary
from dicsbi.modulation.spike_evidence import pair_features

PROBABILISTIC = ("spike", "evidence", "oracle_before", "oracle_after", "oracle_both")
RANKING = ("cost", "cost_oracle_before", "cost_oracle_after")
METHODS = PROBABILISTIC + RANKING


# ------------------------------------------------------------------------------------------- running
def run_scenario(model: str, set_name: str, i: int, args, post) -> dict:
    """Every method on scenario ``i`` of ``set_name``: one JSON-able row."""
    from dicsbi.pipeline import infer

    t0 = time.perf_counter()
    m = get_model(model)
    sc = draw_scenario(model, set_name, i, args.seed)
    ss = np.random.SeedSequence(scenario_seed(args.seed, set_name, i), spawn_key=(7,))
    s_pop, s_like, s_ev, s_ob, s_oa, s_both = (int(x) for x in ss.generate_state(6))
    pre = infer(sc.trains[0], model, args.n_members, post, s_pop)
    rec = None if pre.unreachable or not pre.recordings else pre.recordings[0]
    like = GridLikelihood.from_posterior(post, sc.trains[1], seed=s_like)
    true_after = compute_dics(m, sc.after[None])[0, 1:]
    oracle_like = GaussianLikelihood(true_after, args.oracle_sd**2 * np.eye(2), seed=s_oa)
    kw = {"model": model, "options": ComparisonOptions(n_pilot=args.n_pilot, n_particles=args.n_particles),
          "vth_mV": post.vth_mV}
    evid = {"oracle_before": compare_population(sc.before[None], like, seed=s_ob, **kw),
            "oracle_both": compare_population(sc.before[None], oracle_like, seed=s_both, **kw)}
    ranks = {"cost_oracle_before": rank_by_cost_population(sc.before[None], like.mean, model, vth_mV=post.vth_mV)}
    if rec is not None:  # else no posterior sample of the before recording is reachable: `modulate` refuses it
        evid["evidence"] = compare_population(rec.conductances, like, samples=rec.samples, seed=s_ev, **kw)
        evid["oracle_after"] = compare_population(rec.conductances, oracle_like, samples=rec.samples, seed=s_oa,
                                                  **kw)
        ranks["cost"] = rank_by_cost_population(rec.conductances, like.mean, model, vth_mV=post.vth_mV)
        ranks["cost_oracle_after"] = rank_by_cost_population(rec.conductances, true_after, model,
                                                             vth_mV=post.vth_mV)
    labels = [h.label for h in evid["oracle_before"].hypotheses]
    before_dics = compute_dics(m, sc.before[None])[0, 1:]
    row = {"set": set_name, "i": i, "kind": sc.kind, "seed": sc.seed, "truth": "+".join(c[2:] for c in sc.truth),
           "truth_index": labels.index("+".join(c[2:] for c in sc.truth)), "size": len(sc.truth),
           "log_ratio": {c[2:]: round(v, 4) for c, v in sc.log_ratio.items()},
           "drift": {c[2:]: round(v, 4) for c, v in sc.drift.items()}, "changed": int(sc.changed),
           "draws": sc.draws, "class": list(sc.firing_class), "main_hz": [round(f, 4) for f in sc.main_frequency],
           "dic_before": [round(float(x), 4) for x in before_dics],
           "dic_after": [round(float(x), 4) for x in true_after],
           "after_mean": [round(float(x), 4) for x in like.mean]}
    row["methods"] = {k: {"p": [float(f"{p:.6g}") for p in r.probability]} for k, r in evid.items()}
    row["methods"].update({k: {"cost": [float(f"{c:.8g}") if np.isfinite(c) else None for c in r.cost],
                               "fraction": [float(f"{f:.4g}") for f in r.fraction]} for k, r in ranks.items()})
    row["methods"].update({k: {"failed": "no before-population: no posterior sample reachable by compensation"}
                           for k in METHODS if k not in row["methods"] and k != "spike"})  # spike: scored later
    row["seconds"] = round(time.perf_counter() - t0, 2)
    _store_features(row, sc, post)
    return row


def _store_features(row: dict, sc, post) -> None:
    """Keep the pair's classifier input (with the DIC features of ``post``, the shipped posterior) in ``row``."""
    t0 = time.perf_counter()
    row["pair_features"] = [float(f"{v:.7g}") for v in pair_features(*sc.trains, post)[0]]
    row["pair_features_seconds"] = time.perf_counter() - t0
    row["pair_features_posterior"] = post.config.weights_sha256


def add_spike_evidence(rows: dict, path: Path, args) -> None:
    """Score every row with the spike-level evidence (``--spike-evidence``), in place; rewrite ``path``.

    A row made without the pair's features (an older run) gets them from its scenario, drawn again (a pure
    function of model, set, index and seed); the features stay in the row, so a retrained model rescores at once.
    """
    from dicsbi.modulation.spike_evidence import SpikeEvidence, pretrained_spike_evidence

    ev = SpikeEvidence.load(os.path.expanduser(args.spike_evidence)) if args.spike_evidence else \
        pretrained_spike_evidence(args.model)
    from dicsbi.posterior.artifact import load_posterior

    post = load_posterior(args.model)
    missing = [k for k, r in rows.items() if r.get("pair_features_posterior") != post.config.weights_sha256]
    for n, k in enumerate(missing):
        _store_features(rows[k], draw_scenario(args.model, k[0], k[1], args.seed), post)
        if (n + 1) % 50 == 0:
            print(f"  pair features of {n + 1}/{len(missing)} older rows", flush=True)
    import torch

    keys = list(rows)
    sha = ev.config.get("dic_posterior_sha256")
    if sha not in (None, post.config.weights_sha256):
        raise SystemExit(f"the spike-level evidence reads DIC posterior {sha[:12]}, not the installed one")
    width = len(ev.config["x_mean"])  # 66 spike statistics, then 12 DIC features: a prefix without them
    x = torch.as_tensor(np.array([rows[k]["pair_features"][:width] for k in keys]), dtype=torch.float32)
    t0 = time.perf_counter()
    with torch.no_grad():
        logp = torch.log_softmax(ev.logits(x) / ev.temperature, -1).numpy()
    per_pair = (time.perf_counter() - t0) / len(keys)
    for k, lp in zip(keys, logp, strict=True):
        rows[k]["methods"]["spike"] = {"p": [float(f"{p:.6g}") for p in ev.combine(lp[None])],
                                       "seconds": per_pair + rows[k]["pair_features_seconds"],
                                       "weights_sha256": ev.config["weights_sha256"][:12]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(rows[k]) + "\n" for k in keys))
    tmp.replace(path)


def _settings(args) -> dict:
    return {"model": args.model, "seed": args.seed, "n_members": args.n_members, "n_pilot": args.n_pilot,
            "n_particles": args.n_particles, "oracle_sd": args.oracle_sd}


def read_rows(path: Path) -> dict[tuple[str, int], dict]:
    """Rows finished so far (a line cut short by an interruption is ignored)."""
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[(r["set"], int(r["i"]))] = r
    return rows


def run(args) -> dict[tuple[str, int], dict]:
    from dicsbi.posterior.artifact import load_posterior

    out = Path(os.path.expanduser(args.out))
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "settings.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != _settings(args):
        raise SystemExit(f"{out} holds rows made with other settings ({cfg_path.read_text().strip()}); "
                         "give another --out")
    cfg_path.write_text(json.dumps(_settings(args)))
    rows_path = out / "rows.jsonl"
    rows = read_rows(rows_path)
    todo = [(s, i) for s, n in (("prior", args.prior), ("drift", args.drift), ("bio", args.bio)) for i in range(n)
            if (s, i) not in rows]
    if args.report_only or not todo:
        if not args.no_spike:
            add_spike_evidence(rows, rows_path, args)
        return rows
    post = load_posterior(args.model)
    t0 = time.perf_counter()
    with open(rows_path, "a") as f:
        for k, (s, i) in enumerate(todo):
            row = run_scenario(args.model, s, i, args, post)
            f.write(json.dumps(row) + "\n")
            f.flush()
            rows[(s, i)] = row
            ev = row["methods"]["evidence"].get("p")
            t = row["truth_index"]
            what = ("no before-population" if ev is None else
                    f"rank={1 + int(np.sum(np.array(ev) > ev[t]))} P(true)={ev[t]:.3f}")
            print(f"[{k + 1}/{len(todo)}] {time.perf_counter() - t0:7.0f}s {s:<5} {i:>3} truth={row['truth']:<11} "
                  f"{what} ({row['seconds']:.1f} s)", flush=True)
    if not args.no_spike:
        add_spike_evidence(rows, rows_path, args)
    return rows


def _fmt(v, w=6):
    return f"{v:>{w}.3f}" if isinstance(v, float) and np.isfinite(v) else f"{'-':>{w}}" if isinstance(
        v, float) else f"{v:>{w}}"


def present(rows: list[dict]) -> list[str]:
    """The methods every row holds (the spike-level evidence is absent from runs made with ``--no-spike``)."""
    return [m for m in METHODS if all(m in r["methods"] for r in rows)]


def print_table(model: str, rows: list[dict], labels: list[str]) -> dict:
    """The table of every method by set and subset size; returns the per-method scores of the prior set."""
    head = (f"{'set':<6} {'size':<4} {'method':<19} {'n':>4} {'top1':>6} {'top3':>6} {'t3swp':>6} {'medrk':>6} "
            f"{'chAUC':>6} {'brier':>6} {'ECE':>6} {'ECE 95%':>13} {'ECE0':>6} {'conf':>6} {'confOK':>6}")
    print(head)
    print("(t3swp: top-3 up to near-collinear swaps; medrk: median rank of the truth; chAUC: channel-level AUC; "
          "ECE: equal-mass bins, 95% basic bootstrap; ECE0: the mean ECE of a perfectly calibrated method with the "
          "same confidences; conf: share of top calls with P >= 0.5; confOK: share of those right)")
    prior_scores = {}
    for set_name in ("prior", "drift", "bio"):
        sub = [r for r in rows if r["set"] == set_name]
        if not sub:
            continue
        meths = present(sub)
        scores = {meth: score_rows(model, sub, labels, meth) for meth in meths}
        if set_name == "prior":
            prior_scores = scores
        sizes = np.array([r["size"] for r in sub])
        for size in ("all", 1, 2, 3):
            mask = np.ones(len(sub), bool) if size == "all" else sizes == size
            if not mask.any():
                continue
            boot = bootstrap_index(int(mask.sum()))
            for meth in meths:
                s = summary({k: v[mask] for k, v in scores[meth].items()}, boot if size == "all" else None)
                ci = f"[{s['ece_lo']:.3f},{s['ece_hi']:.3f}]" if "ece_lo" in s else "-"
                print(f"{set_name:<6} {str(size):<4} {meth:<19} {s['n']:>4} {_fmt(s['top1'])} {_fmt(s['top3'])} "
                      f"{_fmt(s['top3_swaps'])} {_fmt(s['median_rank'])} {_fmt(s['channel_auc'])} "
                      f"{_fmt(s.get('brier', float('nan')))} {_fmt(s.get('ece', float('nan')))} {ci:>13} "
                      f"{_fmt(s.get('ece_calibrated', float('nan')))} "
                      f"{_fmt(s.get('confident_share', float('nan')))} {_fmt(s.get('confident_right', float('nan')))}")
        boot = bootstrap_index(len(sub), 1)
        for a, b in (("spike", "evidence"), ("spike", "cost"), ("evidence", "cost"), ("oracle_before", "evidence"),
                     ("oracle_after", "evidence"), ("oracle_both", "evidence"), ("evidence", "cost_oracle_after")):
            if a not in scores or b not in scores:
                continue
            for key in ("top3", "auc"):
                d, lo, hi = paired_difference(scores[a][key], scores[b][key], boot)
                print(f"  {set_name}: {a} - {b}: {key} {d:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired bootstrap)")
    return prior_scores


def plot_reliability(model: str, rows: list[dict], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script: no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
    for ax, set_name in zip(axes, ("prior", "drift", "bio"), strict=True):
        sub = [r for r in rows if r["set"] == set_name]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for meth in [m for m in present(sub) if m in PROBABILISTIC]:
            if not sub:
                break
            s = score_rows(model, sub, labels, meth)
            x, y = reliability(s["p_top"], s["top1"])
            ax.plot(x, y, marker="o", ms=3, label=f"{meth} (ECE {ece(s['p_top'], s['top1']):.3f})")
        ax.set_title(f"{model.upper()} {set_name} (n={len(sub)})")
        ax.set_xlabel("top-1 confidence (equal-mass bins)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        if sub:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("share of top calls right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_runs(model: str, rows: list[dict], other: dict, labels: list[str], name: str) -> None:
    """Paired differences (this run minus ``other``) on the scenarios both runs hold."""
    both = [r for r in rows if (r["set"], int(r["i"])) in other]
    if not both:
        print(f"no scenario in common with {name}")
        return
    theirs = [other[(r["set"], int(r["i"]))] for r in both]
    if any(a["seed"] != b["seed"] or a["truth"] != b["truth"] for a, b in zip(both, theirs, strict=True)):
        raise SystemExit(f"{name} holds other scenarios under the same indices (another --seed?)")
    boot = bootstrap_index(len(both), 2)
    print(f"\nthis run minus {name} on {len(both)} common scenarios (paired bootstrap 95%):")
    for meth in [m for m in present(both) if m in present(theirs)]:
        a, b = score_rows(model, both, labels, meth), score_rows(model, theirs, labels, meth)
        parts = []
        for key in ("top1", "top3", "auc", "rank"):
            d, lo, hi = paired_difference(a[key], b[key], boot)
            parts.append(f"{key} {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        print(f"  {meth:<19} " + "; ".join(parts))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("stg", "da"), required=True)
    ap.add_argument("--prior", type=int, default=500)
    ap.add_argument("--drift", type=int, default=100)
    ap.add_argument("--bio", type=int, default=70)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-members", type=int, default=64)
    ap.add_argument("--n-pilot", type=int, default=32)
    ap.add_argument("--n-particles", type=int, default=128)
    ap.add_argument("--oracle-sd", type=float, default=0.2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--spike-evidence", default=None, help="folder of a spike-level evidence model "
                    "(default: the shipped one)")
    ap.add_argument("--no-spike", action="store_true", help="leave the spike-level evidence out")
    ap.add_argument("--report-only", action="store_true", help="score the rows already computed, run nothing")
    ap.add_argument("--compare-with", default=None, help="another run's --out (same scenarios, e.g. another "
                    "budget): paired differences of every method on the scenarios both hold")
    args = ap.parse_args(argv)
    args.out = args.out or f"~/dicsbi-data/eval-modulation-{args.model}"
    t0 = time.perf_counter()
    rows = run(args)
    rows = [rows[k] for k in sorted(rows, key=lambda k: (("prior", "drift", "bio").index(k[0]), k[1]))
            if k[1] < {"prior": args.prior, "drift": args.drift, "bio": args.bio}[k[0]]]
    if not rows:
        raise SystemExit("no scenarios to score")
    from dicsbi.modulation import enumerate_hypotheses

    labels = [h.label for h in enumerate_hypotheses(args.model)]
    counts = ", ".join(f"{s} {sum(r['set'] == s for r in rows)}" for s in ("prior", "drift", "bio"))
    print(f"{len(rows)} scenarios ({counts}); {sum(r['seconds'] for r in rows):.0f} s of scenario time, "
          f"{time.perf_counter() - t0:.0f} s this run")
    failed = {k: sum("failed" in r["methods"][k] for r in rows) for k in present(rows)}
    print("scenarios a method refused (scored as misses, top-1 confidence 1/H): "
          + ", ".join(f"{k} {v}" for k, v in failed.items() if v) if any(failed.values()) else
          "no scenario refused by any method")
    sc = print_table(args.model, rows, labels)
    out = Path(os.path.expanduser(args.out))
    plot_reliability(args.model, rows, labels, out / "reliability.png")
    print(f"reliability diagram: {out / 'reliability.png'}")
    if args.compare_with:
        compare_runs(args.model, rows, read_rows(Path(os.path.expanduser(args.compare_with)) / "rows.jsonl"),
                     labels, args.compare_with)
    prior = [r for r in rows if r["set"] == "prior"]
    ev = summary(sc["evidence"], bootstrap_index(len(prior)))
    new = summary(sc["spike"], bootstrap_index(len(prior))) if "spike" in sc else {}
    sec_new = float(np.median([r["methods"]["spike"]["seconds"] for r in prior])) if new else float("nan")
    cost = summary(sc["cost"])
    ob, oa = summary(sc["oracle_before"]), summary(sc["oracle_after"])
    secs = sum(r["seconds"] for r in rows)
    print(f"model={args.model} scenarios={len(prior)} top1={ev['top1']:.4f} top3={ev['top3']:.4f} "
          f"top3_swaps={ev['top3_swaps']:.4f} median_rank={ev['median_rank']:.1f} "
          f"channel_auc={ev['channel_auc']:.4f} ece={ev['ece']:.4f} ece_lo={ev['ece_lo']:.4f} "
          f"ece_hi={ev['ece_hi']:.4f} brier={ev['brier']:.4f} confident_share={ev['confident_share']:.4f} "
          f"confident_right={ev['confident_right']:.4f} top3_cost={cost['top3']:.4f} "
          f"channel_auc_cost={cost['channel_auc']:.4f} top3_oracle_before={ob['top3']:.4f} "
          f"top3_oracle_after={oa['top3']:.4f} seconds={secs:.0f} top3_new={new.get('top3', np.nan):.4f} "
          f"channel_auc_new={new.get('channel_auc', np.nan):.4f} ece_new={new.get('ece', np.nan):.4f} "
          f"ece_new_hi={new.get('ece_hi', np.nan):.4f} confident_share_new={new.get('confident_share', np.nan):.4f} "
          f"confident_right_new={new.get('confident_right', np.nan):.4f} seconds_new={sec_new:.4f}")


if __name__ == "__main__":
    main()
