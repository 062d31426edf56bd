"""Tracking: the DIC posterior and the degenerate population of a long recording, window by window.

A neuromodulator acting slowly (or a preparation drifting) moves a neuron through the (g_s, g_u) plane.  To follow
it, each recording is cut into sliding windows ``[t0, t0 + window_ms)`` with ``t0 = t_start + k * step_ms``
(``k = 0, 1, ...`` while the window fits inside ``[t_start, t_stop]``; a tail shorter than a window is not used),
and every window is treated as a recording of its own by :func:`dicsbi.pipeline.infer`: posterior samples of
(g_s, g_u) at V_th, then one compensated model per sample.  Per window the result keeps the posterior median and
5 / 95% quantiles of g_s and g_u (of the samples the population was solved for, i.e. the posterior conditioned on
reachability, as :mod:`dicsbi.pipeline` says), the population's conductances and the firing class.

Re-referencing: spike times of a window are shifted by ``-t0``, so each window starts at 0 ms and its recording
window is ``[0, window_ms]``, the layout of a simulated training train (:class:`dicsbi.simulate.SimulationResult`)
and what :func:`dicsbi.posterior.inputs.as_trains` accepts (no negative times).  The posterior's inputs are
built from interspike intervals only (:mod:`dicsbi.posterior.summary`, :mod:`dicsbi.posterior.embedding`), so
the shift changes no posterior;
the interval across a window edge is not seen by either window.  Where each window lies in the recording is kept
in the window table (``t0_ms``, ``t1_ms``, in the recording's own clock) and in the window id
``"<recording id>@<t0 in ms>"``.

The default window is the one the posterior was trained on (``window_ms`` of its configuration: 3 s for the
shipped STG posterior, 9 s for DA), so every window is in distribution; the default step is half a window.
Windows with fewer than 3 spikes are silent (no posterior) and windows whose posterior no pair of conductances
can reach are unreachable: both stay in the table with NaN summaries and an empty population.

Seeds: window ``i`` (its row in the window table, over all recordings) is recording ``i`` of
:func:`~dicsbi.pipeline.infer`, with that function's seed contract.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DicsbiError
from ..models import get_model
from ..spikes import CLASS_NAMES, SpikeTrains, firing_class

DEFAULT_WINDOW_MS = 20_000.0  # when the posterior does not record its training window
QUANTILES = (0.05, 0.95)
MAX_BOXES = 60  # above this many windows a conductance panel shows a median line and a 5-95% band
MAX_FIGURES = 50  # per-recording conductance figures written by write_tracking


# ---------------------------------------------------------------------------- windows
def _window_id(ident: str, t0_ms: float) -> str:
    return f"{ident}@{np.format_float_positional(t0_ms, trim='-')}"


def sliding_windows(trains: SpikeTrains, window_ms: float, step_ms: float) -> tuple[SpikeTrains, dict]:
    """Cut every recording into windows ``[t0, t0 + window_ms)`` stepping by ``step_ms``.

    Parameters
    ----------
    trains : SpikeTrains
        The recordings; each is cut within its own ``[t_start_ms, t_stop_ms]``.
    window_ms, step_ms : float
        Window length and step (ms), both > 0; windows overlap when ``step_ms < window_ms``.

    Returns
    -------
    windows : SpikeTrains
        One train per window, recordings in order and windows in time order within each; spike times minus
        ``t0`` (so in ``[0, window_ms)``), recording window ``[0, window_ms]``, ids ``"<id>@<t0 ms>"``.
    table : dict of ndarray, each of shape (n_windows,)
        ``recording`` (the recording's id), ``window`` (index within the recording), ``t0_ms`` and ``t1_ms``
        (window bounds in the recording's clock).
    """
    window_ms, step_ms = float(window_ms), float(step_ms)
    for name, v in (("window_ms", window_ms), ("step_ms", step_ms)):
        if not (np.isfinite(v) and v > 0):
            raise DicsbiError(f"tracking: {name} must be a positive number of ms, got {v!r}")
    if len(trains) == 0:
        raise DicsbiError("tracking: no recording given")
    duration = trains.duration_ms
    short = np.flatnonzero(~(duration >= window_ms))
    if short.size:
        i = int(short[0])
        raise DicsbiError(f"tracking: the window ({window_ms:g} ms) is longer than recording {trains.ids[i]!r} "
                          f"({duration[i]:g} ms, from {trains.t_start_ms[i]:g} to {trains.t_stop_ms[i]:g} ms); "
                          "use a shorter window_ms")
    n_win = np.floor((duration - window_ms) / step_ms + 1e-9).astype(np.int64) + 1
    rec = np.repeat(np.arange(len(trains)), n_win)
    k = np.arange(rec.size) - np.repeat(np.cumsum(n_win) - n_win, n_win)
    t0 = trains.t_start_ms[rec] + k * step_ms
    t1 = t0 + window_ms
    lo, hi = np.empty(rec.size, np.int64), np.empty(rec.size, np.int64)
    for i in range(len(trains)):  # one vectorised search per recording
        sel = rec == i
        lo[sel] = trains.offsets[i] + np.searchsorted(trains[i], t0[sel], side="left")
        hi[sel] = trains.offsets[i] + np.searchsorted(trains[i], t1[sel], side="left")
    counts = hi - lo
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    idx = np.repeat(lo - offsets[:-1], counts) + np.arange(offsets[-1])
    times = trains.times_ms[idx] - np.repeat(t0, counts)
    ids = np.array([_window_id(str(trains.ids[r]), t) for r, t in zip(rec, t0)], dtype=object)
    windows = SpikeTrains(times, offsets, np.zeros(rec.size), np.full(rec.size, window_ms), ids)
    table = {"recording": np.array([str(trains.ids[r]) for r in rec], dtype=object), "window": k,
             "t0_ms": t0, "t1_ms": t1}
    return windows, table


# ---------------------------------------------------------------------------- tracking
@dataclass
class Tracking:
    """Posterior and population of every window of every recording (rows of :attr:`windows`).

    Attributes
    ----------
    model : str
    seed : int
    settings : dict
        ``window_ms``, ``step_ms``, ``n_models``, ``vth_mV`` and the posterior's training ``window_ms``.
    windows : dict of ndarray, shape (n_windows,)
        ``recording``, ``window``, ``t0_ms``, ``t1_ms`` (see :func:`sliding_windows`).
    ids : ndarray of str, shape (n_windows,)
        Window ids, ``"<recording id>@<t0 ms>"``.
    n_spikes, firing_class : ndarray, shape (n_windows,)
        Spikes in the window and its class (0 silent, 1 tonic spiking, 2 bursting).
    dic_median, dic_q05, dic_q95 : ndarray, shape (n_windows, 2)
        Posterior median and 5 / 95% quantiles of (g_s, g_u) at V_th (units of g_leak); NaN for silent and
        unreachable windows.
    conductances : list of ndarray, each of shape (n_models, n_g)
        The population of each window (mS/cm^2, ``conductance_names`` order); shape (0, n_g) when it has none.
    silent, unreachable : list of str
        Ids of windows with fewer than 3 spikes / with no reachable posterior sample.
    """

    model: str
    seed: int
    settings: dict
    windows: dict
    ids: np.ndarray
    n_spikes: np.ndarray
    firing_class: np.ndarray
    dic_median: np.ndarray
    dic_q05: np.ndarray
    dic_q95: np.ndarray
    conductances: list[np.ndarray]
    conductance_names: tuple[str, ...]
    silent: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)

    @property
    def n_windows(self) -> int:
        """Number of windows (over all recordings)."""
        return int(self.ids.size)

    @property
    def centre_ms(self) -> np.ndarray:
        """Window centres in the recording's clock (ms)."""
        return 0.5 * (self.windows["t0_ms"] + self.windows["t1_ms"])

    @property
    def recordings(self) -> list[str]:
        """Recording ids in input order."""
        return list(dict.fromkeys(self.windows["recording"]))

    def rows(self, recording_id: str | None = None) -> np.ndarray:
        """Window indices of one recording (all windows if ``None``)."""
        if recording_id is None:
            return np.arange(self.n_windows)
        rows = np.flatnonzero(self.windows["recording"] == str(recording_id))
        if rows.size == 0:
            raise DicsbiError(f"tracking: no recording {recording_id!r}; expected one of {self.recordings}")
        return rows


def track(trains: SpikeTrains, model: str = "stg", window_ms: float | None = None, step_ms: float | None = None,
          n_models: int = 100, posterior=None, seed: int = 0, progress: bool = False) -> Tracking:
    """DIC posterior and population of every sliding window of every recording (see the module docstring).

    Parameters
    ----------
    trains : SpikeTrains
        Long recordings (or anything :func:`dicsbi.posterior.inputs.as_trains` accepts).
    model : str
        Model name.
    window_ms, step_ms : float, optional
        Window length and step (ms).  Default: the posterior's training window (``config.window_ms``,
        else :data:`DEFAULT_WINDOW_MS`) and half a window.
    n_models : int
        Population size per window.
    posterior : DICPosterior or path, optional
        Default: the shipped posterior of ``model``.
    seed : int
        Seed of :func:`dicsbi.pipeline.infer`.
    progress : bool
        Show a progress bar over windows.
    """
    from ..pipeline import _resolve_posterior, infer

    m = get_model(model)
    if not isinstance(trains, SpikeTrains):
        from ..posterior.inputs import as_trains

        trains = as_trains(trains)
    post = _resolve_posterior(posterior, m)
    trained_ms = post.config.window_ms if hasattr(post, "config") else None
    window_ms = float(window_ms if window_ms is not None else trained_ms or DEFAULT_WINDOW_MS)
    step_ms = float(step_ms if step_ms is not None else window_ms / 2)
    windowed, table = sliding_windows(trains, window_ms, step_ms)
    res = infer(windowed, m.name, n_models, post, seed, progress=progress)
    by_id = {r.id: r for r in res.recordings}
    n = len(windowed)
    stats = np.full((3, n, 2), np.nan)
    pops = []
    for i, ident in enumerate(windowed.ids):
        r = by_id.get(str(ident))
        if r is None:
            pops.append(np.empty((0, m.n_conductances)))
            continue
        stats[0, i] = np.median(r.samples, axis=0)
        stats[1:, i] = np.quantile(r.samples, QUANTILES, axis=0)
        pops.append(r.conductances)
    settings = {"window_ms": window_ms, "step_ms": step_ms, "n_models": int(n_models), "vth_mV": float(res.vth_mV),
                "posterior_window_ms": trained_ms}
    return Tracking(m.name, int(seed), settings, table, windowed.ids, windowed.counts.copy(),
                    firing_class(windowed), stats[0], stats[1], stats[2], pops, tuple(m.conductance_names),
                    list(res.silent), list(res.unreachable))


# ---------------------------------------------------------------------------- table
def tracking_table(tracking: Tracking) -> str:
    """Return the CSV text of a tracking, one row per window.

    Columns: recording, window, t0_ms, t1_ms, n_spikes, firing_class, posterior median and 5 / 95% quantiles of
    g_s and g_u (g_leak), and the population median of every conductance (``<name>_median [mS/cm^2]``); empty
    cells for silent and unreachable windows.
    """
    from ..io.tables import format_table_csv

    t = tracking
    cols = {"recording": list(t.windows["recording"]), "window": t.windows["window"], "t0_ms": t.windows["t0_ms"],
            "t1_ms": t.windows["t1_ms"], "n_spikes": t.n_spikes,
            "firing_class": [CLASS_NAMES[int(c)] for c in t.firing_class]}
    for k, name in enumerate(("g_s", "g_u")):
        cols[f"{name}_median"] = t.dic_median[:, k]
        cols[f"{name}_q05"] = t.dic_q05[:, k]
        cols[f"{name}_q95"] = t.dic_q95[:, k]
    med = np.array([np.median(g, axis=0) if g.shape[0] else np.full(len(t.conductance_names), np.nan)
                    for g in t.conductances]).reshape(t.n_windows, len(t.conductance_names))
    for k, name in enumerate(t.conductance_names):
        cols[f"{name}_median [mS/cm^2]"] = med[:, k]
    return format_table_csv(cols)


# ---------------------------------------------------------------------------- figures
def plot_trajectory(tracking: Tracking, recording_id: str | None = None, ax=None):
    """Plot the per-window posterior medians in the (g_s, g_u) plane, joined in time order.

    Points are coloured by the window centre (s), with 5-95% error bars.  ``recording_id=None`` draws every
    recording; silent and unreachable windows break the line.  Returns the Figure.
    """
    from ..report.figures import pyplot

    plt = pyplot()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.6, 4.6))
    t = tracking
    rows = t.rows(recording_id)
    centre_s = t.centre_ms[rows] / 1000.0
    norm = plt.Normalize(centre_s.min(), max(centre_s.max(), centre_s.min() + 1e-9))
    for rec in dict.fromkeys(t.windows["recording"][rows]):
        r = t.rows(rec)
        x, y = t.dic_median[r, 0], t.dic_median[r, 1]
        ax.errorbar(x, y, xerr=[x - t.dic_q05[r, 0], t.dic_q95[r, 0] - x],
                    yerr=[y - t.dic_q05[r, 1], t.dic_q95[r, 1] - y], fmt="none", ecolor="0.75", lw=0.8, zorder=1)
        ax.plot(x, y, "-", color="0.4", lw=1, zorder=2)
        sc = ax.scatter(x, y, c=t.centre_ms[r] / 1000.0, cmap="viridis", norm=norm, s=28, edgecolors="k",
                        linewidths=0.4, zorder=3)
        first = np.flatnonzero(np.isfinite(x))
        if first.size:
            ax.annotate(rec if recording_id is None and len(t.recordings) > 1 else "start",
                        (x[first[0]], y[first[0]]), textcoords="offset points", xytext=(5, 5), fontsize=7)
    fig.colorbar(sc, ax=ax, label="window centre (s)")
    ax.set_xlabel("$g_s$ at $V_{th}$ (units of $g_{leak}$)")
    ax.set_ylabel("$g_u$ at $V_{th}$ (units of $g_{leak}$)")
    n_none = int(np.sum(~np.isfinite(t.dic_median[rows, 0])))
    what = recording_id if recording_id is not None else ", ".join(t.recordings[:3]) + (
        ", ..." if len(t.recordings) > 3 else "")
    ax.set_title(f"{what}: DIC trajectory ({t.settings['window_ms']:g} ms windows"
                 + (f", {n_none} silent/unreachable)" if n_none else ")"), fontsize=9)
    fig.tight_layout()
    return fig


def plot_conductances_over_time(tracking: Tracking, recording_id: str | None = None,
                                ax: Sequence | None = None):
    """Plot the population of each window against the window centre (s), one panel per conductance.

    Log y-axis (boxplots, 5-95% whiskers; above :data:`MAX_BOXES` windows a median line and a 5-95% band).

    ``recording_id`` may be omitted only when there is one recording; ``ax`` is a sequence of one Axes per
    conductance (a 2-D array of Axes is flattened).  Returns the Figure.
    """
    from ..report.figures import pyplot

    plt = pyplot()
    t = tracking
    if recording_id is None:
        if len(t.recordings) > 1:
            raise DicsbiError(f"tracking: {len(t.recordings)} recordings; name one with recording_id "
                              f"(one of {t.recordings[:5]}{' ...' if len(t.recordings) > 5 else ''})")
        recording_id = t.recordings[0]
    rows = t.rows(recording_id)
    names = t.conductance_names
    if ax is None:
        ncol = min(4, len(names))
        fig, axes = plt.subplots(-(-len(names) // ncol), ncol, figsize=(3.0 * ncol, 2.3 * -(-len(names) // ncol)),
                                 squeeze=False)
        axes = list(axes.ravel())
        for extra in axes[len(names):]:
            extra.set_visible(False)
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) < len(names):
            raise DicsbiError(f"tracking: {len(names)} conductances need {len(names)} axes, got {len(axes)}")
        fig = axes[0].figure
    have = [i for i in rows if t.conductances[i].shape[0]]
    centre_s = t.centre_ms[have] / 1000.0
    width = 0.8 * min(t.settings["step_ms"], t.settings["window_ms"]) / 1000.0
    for k, (a, name) in enumerate(zip(axes, names)):
        data = [np.maximum(t.conductances[i][:, k], 1e-9) for i in have]
        if 0 < len(have) <= MAX_BOXES:
            a.boxplot(data, positions=centre_s, widths=width, whis=(5, 95), showfliers=False, manage_ticks=False,
                      patch_artist=True, boxprops={"facecolor": "#4c72b0", "alpha": 0.5},
                      medianprops={"color": "k"})
        elif have:
            q = np.array([np.quantile(d, (0.05, 0.5, 0.95)) for d in data])
            a.fill_between(centre_s, q[:, 0], q[:, 2], color="#4c72b0", alpha=0.3, lw=0)
            a.plot(centre_s, q[:, 1], "-", color="k", lw=1)
        a.set_yscale("log")
        a.set_title(name, fontsize=9)
        a.tick_params(which="both", labelsize=7)
        a.set_xlabel("window centre (s)", fontsize=8)
    axes[0].set_ylabel("$\\bar g$ (mS/cm$^2$)", fontsize=8)
    fig.suptitle(f"{recording_id}: population per {t.settings['window_ms']:g} ms window "
                 f"({len(rows) - len(have)} of {len(rows)} without a population)", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- output
def write_tracking(tracking: Tracking, folder: str | os.PathLike) -> list[Path]:
    """Write ``tracking.csv``, ``trajectory.png`` and ``conductances.png`` into the existing ``folder``.

    With several recordings, ``conductances_<recording>.png`` is written for the first :data:`MAX_FIGURES` of
    them; each file goes through a temporary name and a rename.  Returns the paths written.
    """
    from ..io.files import atomic_write_bytes, atomic_write_text
    from ..report.page import png_bytes as _png
    from ..report.page import safe_filename as _safe

    folder = Path(folder)
    if not folder.is_dir():
        raise DicsbiError(f"tracking: output folder {str(folder)!r} does not exist")
    paths = [atomic_write_text(folder / "tracking.csv", tracking_table(tracking)),
             atomic_write_bytes(folder / "trajectory.png", _png(plot_trajectory(tracking)))]
    recs = tracking.recordings
    for rec in recs[:MAX_FIGURES]:
        name = "conductances.png" if len(recs) == 1 else f"conductances_{_safe(rec)}.png"
        paths.append(atomic_write_bytes(folder / name, _png(plot_conductances_over_time(tracking, rec))))
    return paths
