"""Figures of a pipeline result (matplotlib, headless).  Each function returns a ``Figure``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..diagnostics.runner import DiagnosticFigures
    from ..posterior.config import PosteriorConfig

from ..models import get_model
from ..spikes import CLASS_NAMES

CLASS_COLOURS = ("#bbbbbb", "#1f77b4", "#d62728")  # silent, spiking, bursting


def pyplot():
    """Return matplotlib's pyplot, imported on first use.

    The user's backend is left as it is (a library that switched it would stop a notebook's inline figures); a
    machine without a display falls back to Agg by itself.  Every figure dicsbi draws is saved and closed by
    its caller.
    """
    import matplotlib.pyplot as plt

    return plt


def raster(recording: np.ndarray, members: list[np.ndarray] | None, window_ms: float, title: str = ""):
    """Plot the recording (top, black) above simulated population members (grey)."""
    plt = pyplot()
    members = members or []
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.25 * len(members)))
    t0 = recording[0] if recording.size else 0.0
    ax.eventplot([recording - t0] + list(members), colors=["k"] + ["0.45"] * len(members), linelengths=0.8)
    ax.set_yticks(range(1 + len(members)), ["recording"] + [f"model {k}" for k in range(len(members))])
    ax.invert_yaxis()
    ax.set_xlim(0, window_ms)
    ax.set_xlabel("time (ms)")
    ax.set_title(title or "recording and simulated population members")
    fig.tight_layout()
    return fig


def isi_panels(recording: np.ndarray, title: str = ""):
    """ISI histogram (log bins) and return map ISI_k+1 against ISI_k."""
    plt = pyplot()
    isi = np.diff(recording)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    if isi.size:
        bins = np.geomspace(max(isi.min(), 1e-2) * 0.8, isi.max() * 1.25, 30)
        a.hist(isi, bins=bins, color="0.3")
        a.set_xscale("log")
        step = max(1, isi.size // 20_000)  # a return map of a very long recording shows 20,000 pairs
        b.loglog(isi[:-1:step], isi[1::step], ".", color="0.2", ms=4 if step == 1 else 1)
        lim = (bins[0], bins[-1])
        b.plot(lim, lim, ":", color="0.6", lw=1)
    a.set_xlabel("ISI (ms)")
    a.set_ylabel("count")
    b.set_xlabel("ISI$_k$ (ms)")
    b.set_ylabel("ISI$_{k+1}$ (ms)")
    fig.suptitle(title or "interspike intervals")
    fig.tight_layout()
    return fig


def dic_posterior(samples: np.ndarray, config: PosteriorConfig, truth=None, title: str = ""):
    """Posterior samples in the (g_s, g_u) plane over the firing-regime map learned from the training set."""
    plt = pyplot()
    from matplotlib.colors import ListedColormap

    (a, b), (c, d) = config.box
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    freq = np.asarray((config.class_map or {}).get("frequencies", []), dtype=float)
    if freq.size:
        regime = freq.argmax(-1).T
        ax.imshow(regime, origin="lower", extent=(a, b, c, d), aspect="auto", alpha=0.25,
                  cmap=ListedColormap(CLASS_COLOURS), vmin=0, vmax=2, interpolation="nearest")
        for k, name in enumerate(CLASS_NAMES):
            ax.plot([], [], "s", color=CLASS_COLOURS[k], alpha=0.5, label=f"{name} region")
    ax.plot(samples[:, 0], samples[:, 1], ".", ms=2, color="k", alpha=0.35, label="posterior samples")
    if truth is not None:
        ax.plot(*truth, "*", ms=14, color="gold", mec="k", label="truth")
    ax.set_xlim(a, b)
    ax.set_ylim(c, d)
    ax.set_xlabel("$g_s$ at $V_{th}$ (units of $g_{leak}$)")
    ax.set_ylabel("$g_u$ at $V_{th}$ (units of $g_{leak}$)")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    ax.set_title(title or "DIC posterior")
    fig.tight_layout()
    return fig


def conductance_violins(model, conductances: np.ndarray, title: str = ""):
    """Distribution of every maximal conductance in the population (log scale: values span decades)."""
    plt = pyplot()
    m = get_model(model)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    data = [np.log10(np.maximum(conductances[:, k], 1e-9)) for k in range(m.n_conductances)]
    parts = ax.violinplot(data, showmedians=True)
    for body in parts["bodies"]:
        body.set_facecolor("#4c72b0")
        body.set_alpha(0.5)
    ax.set_xticks(range(1, m.n_conductances + 1), [n.replace("g_", "") for n in m.conductance_names])
    ax.set_ylabel("log$_{10}$ $\\bar g$ (mS/cm$^2$)")
    ax.set_title(title or f"population conductances ({len(conductances)} models)")
    fig.tight_layout()
    return fig


def coverage_curves(figures: DiagnosticFigures, n: int):
    """Plot expected coverage against credibility level: joint (HPD) and marginal (central).

    A 95% binomial band is drawn around the diagonal.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    levels = np.array(list(figures.coverage_joint))
    ax.fill_between(levels, levels - 1.96 * np.sqrt(levels * (1 - levels) / n),
                    levels + 1.96 * np.sqrt(levels * (1 - levels) / n), color="0.85", label="95% band (calibrated)")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.plot(levels, list(figures.coverage_joint.values()), "o-", ms=3, label="joint (HPD)")
    for name, cov in figures.coverage_marginal.items():
        ax.plot(list(cov), list(cov.values()), "s--", ms=2, label=f"{name} (central)")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage")
    ax.set_title("coverage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tarp_curve(curve: dict, atc: float):
    """Plot TARP's expected coverage against credibility level, with the ATC in the title."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.plot(curve["alpha"], curve["ecp"], "-", color="C3")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage (TARP)")
    ax.set_title(f"TARP, ATC = {atc:+.3f}")
    fig.tight_layout()
    return fig


def recovery(theta: np.ndarray, mean: np.ndarray, classes: np.ndarray, names):
    """Plot the posterior mean against the truth per parameter, coloured by the firing class of the train."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 4.2), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], names)):
        for c in (1, 2):
            sel = classes == c
            ax.scatter(theta[sel, k], mean[sel, k], s=4, alpha=0.5, color=CLASS_COLOURS[c], label=CLASS_NAMES[c])
        lo, hi = float(min(theta[:, k].min(), mean[:, k].min())), float(max(theta[:, k].max(), mean[:, k].max()))
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"posterior mean {name}")
        ax.legend(fontsize=8)
    fig.suptitle("parameter recovery")
    fig.tight_layout()
    return fig


def contraction(samples: np.ndarray, theta: np.ndarray, config: PosteriorConfig | None, names):
    """Posterior z-score against contraction (1 - posterior variance / prior variance) per test train."""
    plt = pyplot()
    box = np.asarray(config.box if config is not None else
                     [[theta[:, k].min(), theta[:, k].max()] for k in range(theta.shape[1])])
    prior_var = (box[:, 1] - box[:, 0]) ** 2 / 12
    mean, sd = samples.mean(1), samples.std(1)
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.8), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], names)):
        ax.scatter(1 - sd[:, k] ** 2 / prior_var[k], (mean[:, k] - theta[:, k]) / np.maximum(sd[:, k], 1e-12),
                   s=4, alpha=0.5)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"posterior contraction of {name}")
        ax.set_ylabel("posterior z-score")
    fig.tight_layout()
    return fig
