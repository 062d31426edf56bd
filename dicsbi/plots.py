"""Figures of a pipeline result (matplotlib, headless).  Each function returns a ``Figure``."""

from __future__ import annotations

import numpy as np

from .models import get_model
from .spikes import CLASS_NAMES

CLASS_COLOURS = ("#bbbbbb", "#1f77b4", "#d62728")  # silent, spiking, bursting


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def raster(recording: np.ndarray, members: list[np.ndarray] | None, window_ms: float, title: str = ""):
    """The recording (top, black) above simulated population members (grey)."""
    plt = _plt()
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
    plt = _plt()
    isi = np.diff(recording)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    if isi.size:
        bins = np.geomspace(max(isi.min(), 1e-2) * 0.8, isi.max() * 1.25, 30)
        a.hist(isi, bins=bins, color="0.3")
        a.set_xscale("log")
        b.loglog(isi[:-1], isi[1:], ".", color="0.2", ms=4)
        lim = (bins[0], bins[-1])
        b.plot(lim, lim, ":", color="0.6", lw=1)
    a.set_xlabel("ISI (ms)")
    a.set_ylabel("count")
    b.set_xlabel("ISI$_k$ (ms)")
    b.set_ylabel("ISI$_{k+1}$ (ms)")
    fig.suptitle(title or "interspike intervals")
    fig.tight_layout()
    return fig


def dic_posterior(samples: np.ndarray, config: dict, truth=None, title: str = ""):
    """Posterior samples in the (g_s, g_u) plane over the firing-regime map learned from the training set."""
    plt = _plt()
    from matplotlib.colors import ListedColormap

    (a, b), (c, d) = config["box"]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    freq = np.asarray(config.get("class_map", {}).get("frequencies", []), dtype=float)
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
    plt = _plt()
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
