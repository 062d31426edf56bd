"""Evaluate a DIC posterior on fresh test sets (another seed than training), protocol as published.

Test sets come from ``experiments/make_training_sets.py`` (targets over the box, 16 cells each, noise-free;
silent trains removed) and its noisy twin (noise std 5 uA/cm^2).  Prints

* accuracy: MAE of the posterior mean and median against the target (g_s, g_u), overall and for tonic and
  bursting trains, next to the published figures;
* calibration: expected HPD coverage at 50 / 80 / 95%, SBC rank KS p-values per DIC, TARP ATC;
* the same on the noisy set;
* speed on one core after warm-up: one train -> 1000 samples, 1000 trains -> 100 samples each.

    python experiments/eval_posterior.py --model stg                         # the shipped posterior
    python experiments/eval_posterior.py --model stg --posterior out/post-stg --max-trains 2000

Ends with one line: model=M mae_gs=.. mae_gu=.. mae_gs_tonic=.. mae_gu_tonic=.. mae_gs_burst=.. mae_gu_burst=..
cov50=.. cov80=.. cov95=.. tarp_atc=.. noisy_mae_gs=.. noisy_mae_gu=.. ms_one=.. s_batch1000=..
(MAE of the posterior mean.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dicsbi.datasets import load_dataset
from dicsbi.diagnostics import expected_coverage, sbc_ks_pvalues, tarp
from dicsbi.inference import load_posterior

PUBLISHED = {"stg": {"all": (2.85, 1.75), "tonic": (4.65, 2.30), "burst": (0.81, 1.14)},
             "da": {"all": (2.41, 1.10), "tonic": (2.62, 1.18), "burst": (1.27, 0.67)}}


def evaluate(post, folder: str, n_samples: int, max_trains: int | None, seed: int) -> dict:
    d = load_dataset(folder)
    ok = np.flatnonzero((d.status == 0) & (d.trains.counts >= 3))
    n_silent = int(((d.status == 0) & (d.trains.counts < 3)).sum())
    if max_trains and ok.size > max_trains:
        ok = np.sort(np.random.default_rng(seed).choice(ok, max_trains, replace=False))
    out = evaluate_trains(post, d.trains.select(ok), d.targets[ok], d.firing_class[ok], n_samples, seed)
    out["n_silent_removed"] = n_silent
    return out


def evaluate_trains(post, trains, theta, cls, n_samples: int, seed: int) -> dict:
    """Accuracy and calibration of ``post`` on given trains with true (g_s, g_u) ``theta`` and classes."""
    n = len(trains)
    chunks = [np.arange(s, min(s + 500, n)) for s in range(0, n, 500)]
    t0 = time.perf_counter()
    samples = np.concatenate([post.sample(trains.select(c), n_samples, seed=int(c[0])) for c in chunks])
    lp_s = np.concatenate([post.log_prob(samples[c].transpose(1, 0, 2), trains.select(c)).T for c in chunks])
    lp_t = post.log_prob(theta, trains)
    seconds = time.perf_counter() - t0
    mean, median = samples.mean(1), np.median(samples, 1)
    out = {"n": n, "n_silent_removed": 0, "seconds": seconds}
    for name, sel in (("all", np.ones(n, bool)), ("tonic", cls == 1), ("burst", cls == 2)):
        out[f"mae_mean_{name}"] = np.abs(mean[sel] - theta[sel]).mean(0) if sel.any() else np.full(2, np.nan)
        out[f"mae_median_{name}"] = np.abs(median[sel] - theta[sel]).mean(0) if sel.any() else np.full(2, np.nan)
        out[f"n_{name}"] = int(sel.sum())
    out["coverage"] = expected_coverage(lp_s, lp_t)
    out["sbc_p"] = sbc_ks_pvalues(samples, theta, seed)
    out["tarp"] = tarp(samples, theta, post.config["box"], seed=seed)
    return out


def report(title: str, r: dict, published: dict) -> None:
    print(f"\n== {title}: {r['n']} trains ({r['n_silent_removed']} silent removed), "
          f"{r['n_tonic']} tonic, {r['n_burst']} bursting; sampling + densities {r['seconds']:.0f} s")
    print(f"{'':8} {'MAE mean g_s / g_u':>22} {'MAE median g_s / g_u':>24} {'published g_s / g_u':>22}")
    for name in ("all", "tonic", "burst"):
        a, b, p = r[f"mae_mean_{name}"], r[f"mae_median_{name}"], published[name]
        print(f"{name:8} {a[0]:10.3f} / {a[1]:<9.3f} {b[0]:12.3f} / {b[1]:<9.3f} {p[0]:10.2f} / {p[1]:<9.2f}")
    cov = r["coverage"]
    print("coverage (HPD) " + "  ".join(f"{int(k * 100)}%: {v:.3f}" for k, v in cov.items()))
    print(f"SBC rank KS p-values g_s {r['sbc_p'][0]:.3g}, g_u {r['sbc_p'][1]:.3g}; TARP ATC {r['tarp']['atc']:+.4f} "
          f"(KS p {r['tarp']['ks_pvalue']:.3g})")


def timing(post, trains) -> tuple[float, float]:
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)  # the fused flow's spline kernel: one core in all
    one = trains.select([0])
    batch = trains.select(np.arange(min(1000, len(trains))))
    post.sample(one, 1000)
    post.sample(batch, 100)  # warm-up
    t = []
    for _ in range(20):
        t0 = time.perf_counter()
        post.sample(one, 1000)
        t.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    post.sample(batch, 100)
    return 1000 * float(np.median(t)), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--posterior", default=None, help="posterior folder (default: the shipped one)")
    ap.add_argument("--test", default=None, help="test set folder (default data/<model>-shipped-test)")
    ap.add_argument("--noisy", default=None, help="noisy test set (default data/<model>-shipped-test-noisy)")
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--max-trains", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    post = load_posterior(args.posterior or args.model, model=args.model)
    print(f"posterior: {post!r}; trained on {post.config['training_data']['train_trains']} trains "
          f"({post.config['training']['seconds']:.0f} s, {post.config['training']['epochs']} epochs)")
    test = args.test or f"data/{args.model}-shipped-test"
    noisy = args.noisy or f"data/{args.model}-shipped-test-noisy"
    clean = evaluate(post, test, args.n_samples, args.max_trains, args.seed)
    report(f"{args.model} noise-free test set ({test})", clean, PUBLISHED[args.model])
    nz = evaluate(post, noisy, args.n_samples, args.max_trains, args.seed)
    report(f"{args.model} noisy test set, 5 uA/cm^2 ({noisy})", nz, PUBLISHED[args.model])
    d = load_dataset(test)
    ms_one, s_batch = timing(post, d.trains.select(np.flatnonzero(d.trains.counts >= 3)))
    print(f"\nspeed (1 core): one train -> 1000 samples {ms_one:.2f} ms; 1000 trains -> 100 samples {s_batch:.3f} s")
    m, c = clean["mae_mean_all"], clean["coverage"]
    print(f"model={args.model} mae_gs={m[0]:.4f} mae_gu={m[1]:.4f} mae_gs_tonic={clean['mae_mean_tonic'][0]:.4f} "
          f"mae_gu_tonic={clean['mae_mean_tonic'][1]:.4f} mae_gs_burst={clean['mae_mean_burst'][0]:.4f} "
          f"mae_gu_burst={clean['mae_mean_burst'][1]:.4f} cov50={c[0.5]:.4f} cov80={c[0.8]:.4f} "
          f"cov95={c[0.95]:.4f} tarp_atc={clean['tarp']['atc']:.4f} noisy_mae_gs={nz['mae_mean_all'][0]:.4f} "
          f"noisy_mae_gu={nz['mae_mean_all'][1]:.4f} ms_one={ms_one:.3f} s_batch1000={s_batch:.4f}")


if __name__ == "__main__":
    main()
