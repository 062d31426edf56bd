"""``diagnose``: whether a DIC posterior is calibrated, recovers known DICs and makes predictions that reproduce data.

One sampling pass over a test set of (true (g_s, g_u), spike train) pairs feeds every check:

* **test set**: by default fresh simulations from the posterior's own prior and simulator settings (targets
  uniform over its box, one compensated cell each, the training window, transient and noise, at the fast
  accuracy tier unless ``tier="exact"``; silent trains and unreachable targets left out, exactly as in
  training), or a held-out data set folder, or arrays;
* **SBC** (Talts et al. 2018): ranks of the truths among the marginal samples, Kolmogorov-Smirnov p-values per
  DIC, and sbi's C2ST of the data-averaged posterior against the prior (``check_prior_vs_dap``);
* **expected coverage**: joint (highest-density regions, from the posterior's log density: a fast unnormalised
  path, one density call per sample) and marginal (central intervals, from the ranks) over credibility levels;
* **TARP** (Lemos et al. 2023) with sbi's ``check_tarp`` for the ATC;
* **recovery**: posterior mean against truth, R^2 and MAE per DIC, overall and per firing class;
* **contraction**: 1 - posterior variance / prior variance per DIC, and posterior z-scores;
* **predictive check** on a subset: populations solved from posterior draws are simulated and compared with the
  observed train (firing class, main frequency within 10%), as in :func:`dicsbi.pipeline.infer`.

Verdicts (pass / warn / fail), thresholds in :data:`THRESHOLDS`; a coverage tolerance never tighter than 2.5
binomial standard errors, so a small test set does not fail a calibrated posterior by chance.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from ..posterior.config import PosteriorConfig

from ..errors import DicsbiError
from ..models import get_model
from ..spikes import MIN_SPIKES, SpikeTrains, firing_class
from .metrics import expected_coverage, sbc_ranks, tarp

LEVELS = np.round(np.arange(0.05, 1.0, 0.05), 2)
THRESHOLDS = {
    "sbc": "min KS p-value over the DICs: pass >= 0.05, warn >= 0.001, else fail",
    "coverage": "max |coverage - level| at 50/80/95%: pass <= max(0.03, 2.5 SE), warn <= max(0.08, 4 SE), else fail",
    "tarp": "|ATC|: pass <= 0.03, warn <= 0.06, else fail",
    "recovery": "min R^2 of the posterior mean over the DICs: pass >= 0.5, warn >= 0.2, else fail",
    "contraction": "mean posterior contraction: pass >= 0.5, warn >= 0.1, else fail",
    "predictive": "fraction of simulated members with the observed firing class: pass >= 0.9, warn >= 0.7, else fail",
}
NAMES = ("g_s", "g_u")


Verdict = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Recovery:
    """Posterior-mean recovery on a group of test trains: its size, R^2 and MAE per DIC."""

    n: int
    r2: tuple[float, ...]
    mae: tuple[float, ...]


@dataclass(frozen=True)
class PredictiveSummary:
    """The predictive check of :func:`diagnose`: recordings checked, models each, class and frequency match."""

    n_recordings: int
    models_each: int
    class_match: float
    freq_match: float


@dataclass(frozen=True)
class DiagnosticFigures:
    """The figures of :func:`diagnose`, typed; coverage keyed by the credibility level as a number.

    :meth:`to_json` writes them as ``diagnostics.json`` holds them (levels as strings, absent checks left out).
    """

    sbc_ks_p: tuple[float, ...]
    coverage_joint: dict[float, float]
    coverage_marginal: dict[str, dict[float, float]]
    tarp_atc: float
    tarp_ks_p: float
    tarp_curve: dict[str, list[float]]
    recovery: dict[str, Recovery]
    contraction: tuple[float, ...]
    zscore_abs_median: tuple[float, ...]
    sbc_c2st_dap: tuple[float, ...] | None = None
    predictive: PredictiveSummary | None = None

    def to_json(self) -> dict:
        """Return the figures as JSON data (levels as strings such as ``"0.8"``)."""
        out: dict[str, Any] = {"sbc_ks_p": list(self.sbc_ks_p)}
        if self.sbc_c2st_dap is not None:
            out["sbc_c2st_dap"] = list(self.sbc_c2st_dap)
        out["coverage_joint"] = {str(k): v for k, v in self.coverage_joint.items()}
        out["coverage_marginal"] = {nm: {str(a): v for a, v in c.items()} for nm, c in self.coverage_marginal.items()}
        out.update(tarp_atc=self.tarp_atc, tarp_ks_p=self.tarp_ks_p, tarp_curve=self.tarp_curve,
                   recovery={k: {"n": r.n, "r2": list(r.r2), "mae": list(r.mae)} for k, r in self.recovery.items()},
                   contraction=list(self.contraction), zscore_abs_median=list(self.zscore_abs_median))
        if self.predictive is not None:
            out["predictive"] = dataclasses.asdict(self.predictive)
        return out


@dataclass
class Diagnostics:
    """Everything :func:`diagnose` computed (in JSON form: :meth:`to_json`)."""

    model: str
    seed: int
    n_test: int
    source: str
    theta: np.ndarray            # [n, 2] truths
    samples: np.ndarray          # [n, n_samples, 2]
    classes: np.ndarray          # [n] firing class of the observed trains
    ranks: np.ndarray            # [n, 2] normalised SBC ranks
    figures: DiagnosticFigures
    verdicts: dict[str, tuple[Verdict, float]] = field(default_factory=dict)  # check -> (verdict, value)

    @property
    def verdict(self) -> Verdict:
        """The worst verdict over the checks."""
        order = ("pass", "warn", "fail")
        return max((v[0] for v in self.verdicts.values()), key=order.index, default="pass")

    def key_line(self) -> str:
        """Return the one ``key=value`` line of the checks' headline figures."""
        f = self.figures
        cov = f.coverage_joint
        return (f"sbc_ks_min={min(f.sbc_ks_p):.4g} cov50={cov[0.5]:.4f} cov80={cov[0.8]:.4f} "
                f"cov95={cov[0.95]:.4f} tarp_atc={f.tarp_atc:.4f} r2_gs={f.recovery['all'].r2[0]:.4f} "
                f"r2_gu={f.recovery['all'].r2[1]:.4f} verdict={self.verdict}")

    def to_json(self) -> dict:
        """``diagnostics.json``: settings, verdicts and figures."""
        return {"model": self.model, "seed": self.seed, "n_test": self.n_test, "source": self.source,
                "verdict": self.verdict, "thresholds": THRESHOLDS,
                "verdicts": {k: {"verdict": v[0], "value": v[1]} for k, v in self.verdicts.items()},
                **self.figures.to_json()}


def _grade(value: float, pass_if, warn_if) -> Verdict:
    return "pass" if pass_if(value) else ("warn" if warn_if(value) else "fail")


def test_set(posterior, n_sims: int, seed: int, data=None, progress: bool = True, tier: str = "fast"):
    """(trains, theta, source) for the diagnostics; see the module docstring."""
    from ..datasets.config import DatasetConfig
    from ..datasets.generate import simulate_dataset
    from ..datasets.storage import load_dataset

    if isinstance(data, tuple):
        trains, theta = data
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (len(trains), 2):
            raise DicsbiError(f"test parameters must have shape ({len(trains)}, 2), got {theta.shape}")
        return trains, theta, "given arrays"
    if data is not None:
        d = load_dataset(data)
        if d.model != posterior.model:
            raise DicsbiError(f"{data} holds {d.model!r} simulations; the posterior is for {posterior.model!r}")
        ok = np.flatnonzero((d.status == 0) & (d.trains.counts >= MIN_SPIKES))
        rng = np.random.default_rng(seed)
        if ok.size > n_sims:
            ok = np.sort(rng.choice(ok, n_sims, replace=False))
        return d.trains.select(ok), d.targets[ok], str(data)
    cfg = posterior.config
    sim = cfg.simulator or {"duration_ms": cfg.window_ms, "noise_std": list(cfg.noise_std)}
    parts = sim.get("noise_parts")
    if parts:  # the training world's mixture of data sets: fixed levels or levels uniform on (0, noise_max]
        levels = [float(p["noise_std"]) for p in parts]
        tops, shares = [p["noise_max"] for p in parts], [float(p["share"]) for p in parts]
        noise = "" if levels == [0.0] and tops == [None] else "; noise as in training: " + ", ".join(
            (f"uniform on (0, {t:g}]" if t else f"std {v:g}") + f" ({w:.0%})" for v, t, w in zip(levels, tops, shares))
    else:  # an artifact without the record (older): its levels in equal parts
        levels = [float(v) for v in np.atleast_1d(sim.get("noise_std") or 0.0)]
        tops, shares = [None] * len(levels), [1.0 / len(levels)] * len(levels)
        noise = "" if levels == [0.0] else f"; noise std {', '.join(f'{v:g}' for v in levels)} uA/cm^2 in equal parts"
    counts = np.diff((np.concatenate([[0.0], np.cumsum(shares)]) * int(n_sims)).round().astype(int))
    box = cfg.box
    trains, theta = [], []
    for k, (level, top, n_k) in enumerate(zip(levels, tops, counts)):
        if n_k == 0:
            continue
        dcfg = DatasetConfig(posterior.model, n_targets=int(n_k), cells_per_target=1, seed=int(seed) + k,
                             design="uniform", g_s_range=tuple(box[0]), g_u_range=tuple(box[1]),
                             duration_ms=sim.get("duration_ms"), transient_ms=sim.get("transient_ms"),
                             noise_std=level, noise_max=top, tier=tier,
                             targets_per_shard=max(1, min(64, int(n_k) // 8 or 1)))
        with tempfile.TemporaryDirectory(prefix="dicsbi-diagnose-") as tmp:
            simulate_dataset(dcfg, tmp, progress=progress)
            d = load_dataset(tmp)
            ok = np.flatnonzero((d.status == 0) & (d.trains.counts >= MIN_SPIKES))
            trains.append(d.trains.select(ok))
            theta.append(d.targets[ok].copy())
    n_ok = sum(len(t) for t in trains)
    return SpikeTrains.concat(trains), np.concatenate(theta), (
        f"{n_sims} fresh simulations (uniform over the box, seed {seed}{noise}; {tier} tier, dt "
        f"{get_model(posterior.model).tier_dt_ms(tier):g} ms; "
        f"{n_sims - n_ok} silent or unreachable left out)")


def diagnose(posterior, n_sims: int = 1000, data=None, n_samples: int = 1000, check: int = 50,
             check_models: int = 10, seed: int = 0, c2st: bool = True, progress: bool = True,
             tier: str = "fast") -> Diagnostics:
    """Run every check of the module docstring on ``posterior``.

    ``posterior`` is a :class:`~dicsbi.posterior.DICPosterior`, a folder or a shipped model name.  ``data``: a
    data set folder or ``(trains, theta)``; default fresh simulations.  ``check``: recordings in the predictive
    check (0 skips it); ``c2st``: run sbi's classifier test of the data-averaged posterior against the prior
    (seconds per 1000 test trains).  ``tier``: accuracy tier of the fresh simulations and of the predictive
    check.
    """
    from ..posterior.artifact import DICPosterior, load_posterior

    post = posterior if isinstance(posterior, DICPosterior) or hasattr(posterior, "sample") \
        else load_posterior(posterior)
    trains, theta, source = test_set(post, n_sims, seed, data, progress, tier)
    n = len(trains)
    if n < 20:
        raise DicsbiError(f"only {n} usable test trains; diagnostics need at least 20 (raise n_sims)")
    chunks = [np.arange(s, min(s + 250, n)) for s in range(0, n, 250)]
    samples = np.concatenate([post.sample(trains.select(c), n_samples, seed=seed + k) for k, c in enumerate(chunks)])
    lp_s = np.concatenate([post.log_prob(samples[c].transpose(1, 0, 2), trains.select(c)).T for c in chunks])
    lp_t = post.log_prob(theta, trains)
    classes = firing_class(trains)
    ranks = sbc_ranks(samples, theta, seed)
    box = np.asarray(post.config.box, dtype=float)
    parts = {**_sbc(ranks, theta, samples, seed, c2st), **_coverage(lp_s, lp_t, ranks),
             **_tarp(samples, theta, box, seed), **_recovery(samples, theta, classes, box)}
    predictive = _predictive(post, trains, seed, check, check_models, progress) if check else None
    figures = DiagnosticFigures(**parts, predictive=predictive)
    out = Diagnostics(post.model, int(seed), n, source, theta, samples, classes, ranks, figures)
    _verdicts(out, n)
    return out


def _sbc(ranks: np.ndarray, theta: np.ndarray, samples: np.ndarray, seed: int, c2st: bool) -> dict:
    """Compute the SBC figures: KS p-values of the ranks, sbi's C2ST of the data-averaged posterior vs the prior.

    The C2ST is 0.5 when they match.  sbi's C2ST of ranks against uniform is not used: it compares integer
    ranks with continuous uniform draws and reports about 0.8 for exactly uniform ranks (seen with sbi 0.27).
    """
    from scipy.stats import kstest

    out: dict = {"sbc_ks_p": tuple(float(kstest(ranks[:, k], "uniform").pvalue) for k in range(2))}
    if c2st:
        import torch
        from sbi.diagnostics.sbc import check_prior_vs_dap

        n, n_samples = samples.shape[:2]
        dap = samples[np.arange(n), np.random.default_rng(seed).integers(0, n_samples, n)]
        torch.manual_seed(seed)
        out["sbc_c2st_dap"] = tuple(float(x) for x in check_prior_vs_dap(torch.as_tensor(theta, dtype=torch.float32),
                                                                         torch.as_tensor(dap, dtype=torch.float32)))
    return out


def _coverage(lp_s: np.ndarray, lp_t: np.ndarray, ranks: np.ndarray) -> dict:
    """Compute the expected coverage: joint HPD from the densities, marginal central intervals from the ranks."""
    joint = expected_coverage(lp_s, lp_t, levels=tuple(LEVELS))
    for a in (0.5, 0.8, 0.95):
        joint.setdefault(a, expected_coverage(lp_s, lp_t, levels=(a,))[a])
    marginal = {nm: {float(a): float(np.mean(np.abs(ranks[:, k] - 0.5) < a / 2)) for a in LEVELS}
                for k, nm in enumerate(NAMES)}
    return {"coverage_joint": {float(k): v for k, v in sorted(joint.items())}, "coverage_marginal": marginal}


def _tarp(samples: np.ndarray, theta: np.ndarray, box: np.ndarray, seed: int) -> dict:
    """TARP's expected coverage curve and sbi's ATC and KS p-value."""
    import torch
    from sbi.diagnostics import check_tarp

    t = tarp(samples, theta, box, seed=seed)
    atc, ks = check_tarp(torch.as_tensor(t["ecp"]), torch.as_tensor(t["alpha"]))
    return {"tarp_atc": float(atc), "tarp_ks_p": float(ks),
            "tarp_curve": {"alpha": t["alpha"].round(4).tolist(), "ecp": t["ecp"].round(4).tolist()}}


def _recovery(samples: np.ndarray, theta: np.ndarray, classes: np.ndarray, box: np.ndarray) -> dict:
    """Recovery overall and per firing class, contraction and posterior z-scores."""
    mean, sd = samples.mean(1), samples.std(1)
    recovery = {}
    for name, sel in (("all", np.ones(len(theta), bool)), ("tonic", classes == 1), ("bursting", classes == 2)):
        if sel.sum() < 2:
            continue
        err = mean[sel] - theta[sel]
        sst = ((theta[sel] - theta[sel].mean(0)) ** 2).sum(0)
        recovery[name] = Recovery(int(sel.sum()), tuple((1 - (err ** 2).sum(0) / sst).tolist()),
                                  tuple(np.abs(err).mean(0).tolist()))
    prior_var = (box[:, 1] - box[:, 0]) ** 2 / 12
    z = (mean - theta) / np.maximum(sd, 1e-12)
    return {"recovery": recovery, "contraction": tuple((1 - (sd ** 2).mean(0) / prior_var).tolist()),
            "zscore_abs_median": tuple(np.median(np.abs(z), 0).tolist())}


def _predictive(post, trains: SpikeTrains, seed: int, check: int, check_models: int,
                progress: bool) -> PredictiveSummary:
    """Simulate populations of ``check`` test trains; compare them with the trains (:func:`dicsbi.pipeline.infer`)."""
    from ..pipeline import infer

    n = len(trains)
    pick = np.sort(np.random.default_rng(seed + 1).choice(n, min(check, n), replace=False))
    res = infer(trains.select(pick), post.model, check_models, posterior=post, seed=seed, check=check_models,
                progress=progress)
    checks: list[dict] = []
    for r in res.recordings:
        assert r.check is not None, "infer with check > 0 checks every recording"
        checks.append(r.check)
    return PredictiveSummary(len(res.recordings), check_models,
                             float(np.mean([c["class_match"] for c in checks])),
                             float(np.mean([c["freq_match"] for c in checks])))


def _verdicts(out: Diagnostics, n: int) -> None:
    f, v = out.figures, out.verdicts
    p = min(f.sbc_ks_p)
    v["sbc"] = (_grade(p, lambda x: x >= 0.05, lambda x: x >= 0.001), p)
    dev = max(abs(f.coverage_joint[a] - a) for a in (0.5, 0.8, 0.95))
    se = max(math.sqrt(a * (1 - a) / n) for a in (0.5, 0.8, 0.95))
    v["coverage"] = (_grade(dev, lambda x: x <= max(0.03, 2.5 * se), lambda x: x <= max(0.08, 4 * se)), dev)
    v["tarp"] = (_grade(abs(f.tarp_atc), lambda x: x <= 0.03, lambda x: x <= 0.06), f.tarp_atc)
    r2 = min(f.recovery["all"].r2)
    v["recovery"] = (_grade(r2, lambda x: x >= 0.5, lambda x: x >= 0.2), r2)
    c = float(np.mean(f.contraction))
    v["contraction"] = (_grade(c, lambda x: x >= 0.5, lambda x: x >= 0.1), c)
    if f.predictive is not None:
        cm = f.predictive.class_match
        v["predictive"] = (_grade(cm, lambda x: x >= 0.9, lambda x: x >= 0.7), cm)


def write_diagnostics(diag: Diagnostics, out, posterior_config: PosteriorConfig | None = None) -> None:
    """Write ``diagnostics.json``, ``diagnostics.nc``, ``figures/*.png`` and ``report.html`` into ``out`` (staged)."""
    import json
    from pathlib import Path

    from ..io.files import OutputFolder, atomic_write_text
    from ..io.netcdf import diagnostics_data, plot_rank_ecdf, to_netcdf
    from ..report import figures as plots
    from ..report.page import esc, html_page, save_figures

    with OutputFolder(out) as stage:
        stage = Path(stage)
        atomic_write_text(stage / "diagnostics.json", json.dumps(diag.to_json(), indent=1) + "\n")
        to_netcdf(diagnostics_data(diag), stage / "diagnostics.nc")
        figs = {"sbc_rank_ecdf": plot_rank_ecdf(diag.ranks, NAMES),
                "coverage": plots.coverage_curves(diag.figures, diag.n_test),
                "tarp": plots.tarp_curve(diag.figures.tarp_curve, diag.figures.tarp_atc),
                "recovery": plots.recovery(diag.theta, diag.samples.mean(1), diag.classes, NAMES),
                "contraction": plots.contraction(diag.samples, diag.theta, posterior_config, NAMES)}
        imgs = save_figures(figs, stage / "figures")
        rows = "".join(
            f"<tr><th>{k}</th><td class='{v[0]}'>{v[0].upper()}</td><td>{v[1]:.4g}</td>"
            f"<td>{esc(THRESHOLDS[k])}</td></tr>" for k, v in diag.verdicts.items())
        body = (f'<p>Verdict: <b class="{diag.verdict}">{diag.verdict.upper()}</b>. Test set: {esc(diag.source)}; '
                f"{diag.n_test} trains, seed {diag.seed}.</p>"
                f"<table><tr><th>check</th><th>verdict</th><th>value</th><th>threshold</th></tr>{rows}</table>"
                f"<p><code>{esc(diag.key_line())}</code></p>{imgs}")
        title = f"dicsbi diagnose: {diag.model}"
        atomic_write_text(stage / "report.html", html_page(title, body, f"{title} posterior"))


__all__ = ["Diagnostics", "THRESHOLDS", "diagnose", "test_set", "write_diagnostics"]
