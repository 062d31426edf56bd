"""Evaluate a DIC posterior on fresh test sets (another seed than training), protocol as published.

Test sets come from ``experiments/make_training_sets.py`` (targets over the box, 16 cells each, noise-free;
silent trains removed), its noisy twin (noise std 5 uA/cm^2) and its noise-prior twin (each cell's noise level
uniform on (0, 8]; with the clean set, the noise prior of a posterior with a noise model).  Prints

* accuracy: MAE of the posterior mean and median against the target (g_s, g_u), overall and for tonic and
  bursting trains, next to the published figures;
* calibration: expected HPD coverage at 50 / 80 / 95%, SBC rank KS p-values per DIC, TARP ATC;
* the same on the noisy set, and SBC KS statistics D per DIC on both;
* with a noise posterior (:mod:`dicsbi.posterior.noise_level`), on the noise-prior world (clean test set plus the
  noise-prior set): the noise level's MAE (posterior median), its central-interval coverage and SBC D from the
  randomised PIT, the DICs' SBC D there, and on clean trains the posterior probability of a clean recording;
* the out-of-world flag (``experiments/fit_typicality.py``'s protocol, same seed, so the held-out half is the
  one the threshold never saw): in-world, other model, Poisson, shuffled bursters;
* accuracy and coverage by recording length: 1 s, 2 s, the training window, twice it
  (``experiments/eval_lengths.py``);
* speed on one core after warm-up: one train -> 1000 samples, 1000 trains -> 100 samples each;
* with the world test sets (``make_training_sets.py --only test-wide,test-allpairs,test-modulated,test-unseen``
  and their ``-noisy`` twins): ``eval_worlds.py``'s table per world, clean and noisy (MAE, coverage, flag rate),
  the training mixture's coverage, the unseen world's two-sample AUC; the published network (Spike2Pop, run from
  its own sources outside the package by ``s2p_baseline.py``) on the same unseen and generator trains; and with
  ``--curve`` the learning curve of posteriors trained on nested subsets of one training spec.

    python experiments/eval_posterior.py --model stg                         # the shipped posterior
    python experiments/eval_posterior.py --model stg --posterior out/post-stg --max-trains 2000
    python experiments/eval_posterior.py --model stg --posterior P --curve P50k,P150k,P   # with a learning curve

Ends with one line: model=M mae_gs=.. mae_gu=.. cov50=.. cov80=.. cov95=.. noisy_cov80=.. sbc_d_max=..
mae_noise=.. cov80_noise=.. flag_rate_in=.. flag_rate_other_model=.. flag_rate_poisson=.. flag_rate_shuffled=..
cov80_1s=.. ms_one=.. s_batch1000=.. unseen_cov50=.. unseen_cov80=.. unseen_cov95=.. modulated_cov95=..
unseen_mae_gs=.. unseen_mae_gu=.. s2p_unseen_mae_gs=.. s2p_unseen_mae_gu=.. unseen_auc=.. n_train=.. followed by
the detail keys (per world set, generator-world coverage, tonic / bursting MAE, TARP, noisy MAE, ...)
(MAE of the posterior mean.)  With the world test sets ``cov50/80/95`` are the training mixture's coverage (the
training-worlds issue's definition; the per-world coverages weighted by the posterior's training shares) and the
generator world's own are ``generator_cov50/80/95``; without them, and for a posterior trained on the generator
alone, the two agree.  ``mae_gs/gu`` are always the generator world's (``<model>-shipped-test``), clean.
``sbc_d_max`` is the largest KS statistic of the SBC ranks of g_s, g_u and the
noise level on the noise-prior world, where the truths are draws of the prior, as SBC requires; the clean and
the 5 uA/cm^2 sets are slices at one noise level, on which an exact posterior's DIC ranks need not be uniform
(it averages over the noise it cannot resolve), so their D is printed beside, not in the maximum.  Without a
noise posterior the maximum is over the clean and noisy sets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kstest

from dicsbi.datasets.config import DatasetError
from dicsbi.datasets.storage import combine_datasets, load_dataset
from dicsbi.diagnostics.metrics import coverage_interval, expected_coverage, sbc_ks_pvalues, sbc_ranks, tarp
from dicsbi.posterior.artifact import load_posterior
from dicsbi.posterior.noise_level import randomised_pit

sys.path.insert(0, str(Path(__file__).resolve().parent))
SHIPPED = {  # the posteriors shipped before the noise posterior (summary statistics, clean + 5 uA/cm^2 sets)
    "stg": {"mae": (2.5171, 1.7184), "cov": (0.480, 0.794, 0.9495), "noisy_cov80": 0.7985, "cov80_1s": 0.6315},
    "da": {"mae": (2.1102, 1.7045), "cov": (0.4805, 0.789, 0.957), "noisy_cov80": 0.770, "cov80_1s": 0.4741}}

PUBLISHED = {"stg": {"all": (2.85, 1.75), "tonic": (4.65, 2.30), "burst": (0.81, 1.14)},
             "da": {"all": (2.41, 1.10), "tonic": (2.62, 1.18), "burst": (1.27, 0.67)}}


def evaluate(post, folder: str, n_samples: int, max_trains: int | None, seed: int) -> dict:
    d = load_dataset(folder)
    ok = np.flatnonzero((d.status == 0) & (d.trains.counts >= 3))
    n_silent = int(((d.status == 0) & (d.trains.counts < 3)).sum())
    if max_trains and ok.size > max_trains:
        ok = np.sort(np.random.default_rng(seed).choice(ok, max_trains, replace=False))
    out = evaluate_trains(post, d.trains.select(ok), d.targets[ok], d.firing_class[ok], n_samples, seed,
                          clusters=d.target_index[ok])
    out["n_silent_removed"] = n_silent
    return out


def evaluate_trains(post, trains, theta, cls, n_samples: int, seed: int, clusters=None) -> dict:
    """Accuracy and calibration of ``post`` on given trains with true (g_s, g_u) ``theta`` and classes.

    ``clusters`` (each train's DIC target) gives the coverage's 95 % bootstrap interval over targets.
    """
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
    out["coverage_ci"] = coverage_interval(lp_s, lp_t, clusters, seed=seed)
    out["resampled"] = (f"the {n} trains" if clusters is None else
                        f"the {np.unique(clusters).size} DIC targets, whose cells share their truth")
    out["sbc_p"] = sbc_ks_pvalues(samples, theta, seed)
    ranks = sbc_ranks(samples, theta, seed)
    out["sbc_d"] = np.array([kstest(ranks[:, k], "uniform").statistic for k in range(2)])
    out["samples"] = samples
    out["tarp"] = tarp(samples, theta, post.config.box, seed=seed)
    return out


def report(title: str, r: dict, published: dict) -> None:
    print(f"\n== {title}: {r['n']} trains ({r['n_silent_removed']} silent removed), "
          f"{r['n_tonic']} tonic, {r['n_burst']} bursting; sampling + densities {r['seconds']:.0f} s")
    print(f"{'':8} {'MAE mean g_s / g_u':>22} {'MAE median g_s / g_u':>24} {'published g_s / g_u':>22}")
    for name in ("all", "tonic", "burst"):
        a, b, p = r[f"mae_mean_{name}"], r[f"mae_median_{name}"], published[name]
        print(f"{name:8} {a[0]:10.3f} / {a[1]:<9.3f} {b[0]:12.3f} / {b[1]:<9.3f} {p[0]:10.2f} / {p[1]:<9.2f}")
    cov, ci = r["coverage"], r["coverage_ci"]
    print("coverage (HPD) " + "  ".join(f"{int(k * 100)}%: {v:.3f} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]"
                                        for k, v in cov.items())
          + f"  (95% bootstrap intervals over {r['resampled']})")
    print(f"SBC rank KS g_s D {r['sbc_d'][0]:.4f} (p {r['sbc_p'][0]:.3g}), g_u D {r['sbc_d'][1]:.4f} "
          f"(p {r['sbc_p'][1]:.3g}); TARP ATC {r['tarp']['atc']:+.4f} (KS p {r['tarp']['ks_pvalue']:.3g})")


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


def noise_figures(post, clean_set: str, noise_set: str, n_samples: int, max_trains: int | None, seed: int) -> dict:
    """The noise posterior on the noise-prior world (clean + noise-prior test sets combined)."""
    ds, _ = combine_datasets([load_dataset(clean_set), load_dataset(noise_set)], 0.1)
    ok = np.flatnonzero((ds.status == 0) & (ds.trains.counts >= 3))
    if max_trains and ok.size > max_trains:
        ok = np.sort(np.random.default_rng(seed).choice(ok, max_trains, replace=False))
    trains, theta, sigma = ds.trains.select(ok), ds.targets[ok], ds.noise_std[ok]
    r = evaluate_trains(post, trains, theta, ds.firing_class[ok], n_samples, seed)
    noise = np.concatenate([post.sample_noise(trains.select(c), r["samples"][c], seed=seed + int(c[0]))
                            for c in np.array_split(np.arange(len(trains)), max(1, len(trains) // 500))])
    pit = randomised_pit(noise, sigma, seed)
    med = np.median(noise, 1)
    clean = sigma == 0
    p0 = (noise[clean] == 0).mean(1)
    out = {"world": r, "n": len(trains), "n_clean": int(clean.sum()),
           "mae_noise": float(np.abs(med - sigma).mean()), "mae_noise_noisy": float(np.abs(med - sigma)[~clean].mean()),
           "cov_noise": {q: float(((pit >= (1 - q) / 2) & (pit <= (1 + q) / 2)).mean()) for q in (0.5, 0.8, 0.95)},
           "sbc_d_noise": float(kstest(pit, "uniform").statistic),
           "p_clean_median": float(np.median(p0)), "share_clean_mostly_zero": float((p0 > 0.5).mean())}
    near5 = (~clean) & (np.abs(sigma - 5) < 1)
    out["mae_noise_near5"] = float(np.abs(med - sigma)[near5].mean()) if near5.any() else float("nan")
    return out


def world_section(post, sets: Path, args) -> tuple[dict | None, str]:
    """The training-worlds figures (``eval_worlds.py``), the published network on the unseen world, the curve.

    Returns the worlds' figures (None without the world test sets) and the closing line's keys for them.
    """
    from eval_worlds import curve_figures, get, headline_keys, load_trains, set_folder, world_figures, world_keys

    nan = float("nan")
    if not set_folder(sets, args.model, "unseen", False).exists():
        print("\n(no world test sets: experiments/make_training_sets.py --only test-unseen,... makes them)")
        return None, ""
    print(f"\n== training worlds, their mixture and the unseen world ({args.world_trains} trains per set)")
    fig = world_figures(post, sets, args.model, args.n_samples, args.world_trains, args.seed)
    s2p = {w: (nan, nan) for w in ("unseen", "generator")}
    s2p_dir = Path(os.path.expanduser(args.s2p))
    if s2p_dir.exists():
        from s2p_baseline import s2p_predictions

        for w in s2p:
            trains, theta, _, _ = load_trains(set_folder(sets, args.model, w, False), args.world_trains, args.seed)
            pred = s2p_predictions(args.model, trains, s2p_dir)
            s2p[w] = tuple(np.nanmean(np.abs(pred - theta), axis=0))
            print(f"published network (Spike2Pop) on the same {w} trains: MAE {s2p[w][0]:.3f} / {s2p[w][1]:.3f} "
                  f"(dicsbi {get(fig, w, 'mae', 0):.3f} / {get(fig, w, 'mae', 1):.3f})")
    else:
        print(f"(published network not scored: no sources at {s2p_dir}; experiments/s2p_baseline.py)")
    if args.curve:
        print("\n== learning curve (one training spec, nested subsets)")
        curve_figures(args.curve.split(","), sets, args.model, args.n_samples, args.world_trains, args.seed)
    s2p_keys = "".join(f" s2p_{w}_mae_gs={m[0]:.4f} s2p_{w}_mae_gu={m[1]:.4f}" for w, m in s2p.items())
    return fig, headline_keys(fig) + s2p_keys + world_keys(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--posterior", default=None, help="posterior folder (default: the shipped one)")
    ap.add_argument("--sets", default="~/dicsbi-data/sets", help="folder of make_training_sets.py's sets")
    ap.add_argument("--test", default=None, help="test set folder (default <sets>/<model>-shipped-test)")
    ap.add_argument("--noisy", default=None, help="noisy test set (default <test>-noisy)")
    ap.add_argument("--noise-prior", default=None, help="noise-prior test set (default <test>-noise)")
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--max-trains", type=int, default=None)
    ap.add_argument("--length-cells", type=int, default=2000, help="cells re-simulated for the length figures")
    ap.add_argument("--world-trains", type=int, default=1000, help="trains per world test set (eval_worlds.py)")
    ap.add_argument("--curve", default="", help="comma-separated posterior folders of a learning curve")
    ap.add_argument("--s2p", default="~/spike2pop/sources", help="the published network's sources "
                    "(experiments/s2p_baseline.py); scored on the unseen world's trains when present")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from eval_lengths import length_figures
    from fit_typicality import flag_rates, world

    post = load_posterior(args.posterior or args.model, model=args.model)
    print(f"posterior: {post!r}; trained on {post.config.training_data['train_trains']} trains "
          f"({post.config.training['seconds']:.0f} s, {post.config.training['epochs']} epochs)")
    sets = Path(os.path.expanduser(args.sets))
    test = args.test or str(sets / f"{args.model}-shipped-test")
    noisy = args.noisy or f"{test}-noisy"
    clean = evaluate(post, test, args.n_samples, args.max_trains, args.seed)
    report(f"{args.model} noise-free test set ({test})", clean, PUBLISHED[args.model])
    nz = evaluate(post, noisy, args.n_samples, args.max_trains, args.seed)
    report(f"{args.model} noisy test set, 5 uA/cm^2 ({noisy})", nz, PUBLISHED[args.model])
    sh = SHIPPED[args.model]
    d_all = list(clean["sbc_d"]) + list(nz["sbc_d"])
    nf = None
    if post.noise_level is not None:
        nf = noise_figures(post, test, args.noise_prior or f"{test}-noise", args.n_samples, args.max_trains,
                           args.seed)
        w = nf["world"]
        d_all = list(w["sbc_d"]) + [nf["sbc_d_noise"]]  # SBC's own setting: truths drawn from the prior
        print(f"\n== noise posterior on the noise-prior world: {nf['n']} trains ({nf['n_clean']} clean), prior point "
              f"mass {post.noise_level.config['p_zero']:.2f}, levels uniform on (0, {post.noise_level.max:g}]")
        print(f"DICs there: MAE {w['mae_mean_all'][0]:.3f} / {w['mae_mean_all'][1]:.3f}, coverage "
              + "  ".join(f"{int(k * 100)}%: {v:.3f}" for k, v in w["coverage"].items())
              + f", SBC D {w['sbc_d'][0]:.4f} / {w['sbc_d'][1]:.4f}")
        print(f"noise level: MAE of the posterior median {nf['mae_noise']:.3f} uA/cm^2 (noisy cells "
              f"{nf['mae_noise_noisy']:.3f}, cells at 4-6 uA/cm^2 {nf['mae_noise_near5']:.3f}); central-interval "
              "coverage " + "  ".join(f"{int(k * 100)}%: {v:.3f}" for k, v in nf["cov_noise"].items())
              + f"; randomised-PIT SBC D {nf['sbc_d_noise']:.4f}")
        print(f"clean trains: median posterior P(noise = 0) {nf['p_clean_median']:.3f}; "
              f"{nf['share_clean_mostly_zero']:.1%} of them with most mass at 0")
    else:
        print("\n(no noise posterior: trained on one noise level)")
    rates = {k: float("nan") for k in ("in", "other_model", "poisson", "shuffled")}
    if post.typicality is not None:
        info = post.typicality.info
        _, _, held, held_full, rng = world(args.model, sets, int(info.get("n_reference", 20000)), 6000,
                                           int(info.get("seed", 0)), info.get("reference_sets"),
                                           info.get("length_min_ms"))
        try:
            rates = flag_rates(post.typicality, args.model, sets, held, held_full, rng, 6000)
        except DatasetError as e:  # e.g. the other model's test sets are not on this machine
            print(f"\n(flag rates not measured: {e})")
    if rates.keys() >= {"in_full", "in_1s", "other_model_tonic"}:
        print("\n== out-of-world flag (share flagged): in-world held-out {in:.3f} (as recorded {in_full:.3f}, "
              "their first 1 s {in_1s:.3f}), other model {other_model:.3f} (tonic {other_model_tonic:.3f}, bursting "
              "{other_model_bursting:.3f}; called the other model {other_model_called_other:.3f}), Poisson with "
              "the test trains' rates {poisson:.3f} (with length-aware windows' rates {poisson_windowed:.3f}), "
              "shuffled bursters {shuffled:.3f}".format(**rates))
    print("\n== by recording length (noise-free test cells re-simulated for twice the window)")
    lengths = length_figures(post, args.model, test, args.length_cells, args.n_samples, args.seed)
    d = load_dataset(test)
    ms_one, s_batch = timing(post, d.trains.select(np.flatnonzero(d.trains.counts >= 3)))
    print(f"\nspeed (1 core): one train -> 1000 samples {ms_one:.2f} ms; 1000 trains -> 100 samples {s_batch:.3f} s")
    worlds, world_line = world_section(post, sets, args)
    m, c = clean["mae_mean_all"], clean["coverage"]
    print(f"\nshipped before (same script): MAE {sh['mae'][0]:.3f} / {sh['mae'][1]:.3f}, coverage "
          f"{sh['cov'][0]:.3f} / {sh['cov'][1]:.3f} / {sh['cov'][2]:.3f}, noisy cov80 {sh['noisy_cov80']:.3f}, "
          f"cov80 at 1 s {sh['cov80_1s']:.3f}")
    print(f"now:                           MAE {m[0]:.3f} / {m[1]:.3f}, coverage {c[0.5]:.3f} / {c[0.8]:.3f} / "
          f"{c[0.95]:.3f}, noisy cov80 {nz['coverage'][0.8]:.3f}, cov80 at 1 s {lengths['1s'][1][0.8]:.3f}")
    nan = float("nan")
    cm = worlds["mixture"] if worlds else c  # the training mixture's coverage; the generator world's without sets
    line = (f"model={args.model} mae_gs={m[0]:.4f} mae_gu={m[1]:.4f} cov50={cm[0.5]:.4f} cov80={cm[0.8]:.4f} "
            f"cov95={cm[0.95]:.4f} noisy_cov80={nz['coverage'][0.8]:.4f} sbc_d_max={max(d_all):.4f} "
            f"mae_noise={nf['mae_noise'] if nf else nan:.4f} cov80_noise={nf['cov_noise'][0.8] if nf else nan:.4f} "
            f"flag_rate_in={rates['in']:.4f} flag_rate_other_model={rates['other_model']:.4f} "
            f"flag_rate_poisson={rates['poisson']:.4f} flag_rate_shuffled={rates['shuffled']:.4f} "
            f"cov80_1s={lengths['1s'][1][0.8]:.4f} ms_one={ms_one:.3f} s_batch1000={s_batch:.4f}{world_line}")
    detail = (f" generator_cov50={c[0.5]:.4f} generator_cov80={c[0.8]:.4f} generator_cov95={c[0.95]:.4f}"
              f" mae_gs_tonic={clean['mae_mean_tonic'][0]:.4f} mae_gu_tonic={clean['mae_mean_tonic'][1]:.4f} "
              f"mae_gs_burst={clean['mae_mean_burst'][0]:.4f} mae_gu_burst={clean['mae_mean_burst'][1]:.4f} "
              f"tarp_atc={clean['tarp']['atc']:.4f} noisy_mae_gs={nz['mae_mean_all'][0]:.4f} "
              f"noisy_mae_gu={nz['mae_mean_all'][1]:.4f} noisy_cov50={nz['coverage'][0.5]:.4f} "
              f"noisy_cov95={nz['coverage'][0.95]:.4f}")
    if nf:
        detail += (f" p_clean_median={nf['p_clean_median']:.4f} cov50_noise={nf['cov_noise'][0.5]:.4f} "
                   f"cov95_noise={nf['cov_noise'][0.95]:.4f} sbc_d_noise={nf['sbc_d_noise']:.4f}")
    for name, (mm, cc, n) in lengths.items():
        detail += f" mae_gs_{name}={mm[0]:.4f} mae_gu_{name}={mm[1]:.4f} cov80_{name}={cc[0.8]:.4f} n_{name}={n}"
    print(line + detail)


if __name__ == "__main__":
    main()
