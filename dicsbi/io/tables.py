"""Tables out: Spike2Pop CSVs, population and summary CSVs."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..models import Model, get_model
from ..spikes import SpikeTrains, firing_class
from .files import atomic_write_text

if TYPE_CHECKING:
    from ..pipeline import InferenceResult


def format_spike2pop_csv(trains: SpikeTrains, decimals: int = 4) -> str:
    """Spike2Pop CSV text: ``ID,spiking_times`` with ``"[t1, t2, ...]"`` in ms."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ID", "spiking_times"])
    for ident, times in zip(trains.ids, trains):
        writer.writerow([ident, "[" + ", ".join(f"{t:.{decimals}f}" for t in times) + "]"])
    return out.getvalue()


def write_spike2pop_csv(path: str | os.PathLike, trains: SpikeTrains) -> Path:
    """Write spike trains in the Spike2Pop CSV shape, atomically."""
    return atomic_write_text(path, format_spike2pop_csv(trains))


def format_population_csv(model: str | Model, conductances: np.ndarray, dics: np.ndarray | None = None,
                          ids=None, vth_mV=None, extra: dict | None = None) -> str:
    """Return the CSV text of a conductance table.

    Columns: ``ID``, one column per conductance with units, then DICs if given, then the ``extra`` columns
    (name -> one value per row).
    """
    model = get_model(model)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["ID"] + [f"{n} [mS/cm^2]" for n in model.conductance_names]
    if dics is not None:
        header += ["g_f [g_leak]", "g_s [g_leak]", "g_u [g_leak]", "V_th [mV]"]
    extra = extra or {}
    header += list(extra)
    writer.writerow(header)
    ids = [str(i) for i in range(len(conductances))] if ids is None else ids
    for k, (ident, row) in enumerate(zip(ids, conductances)):
        cells = [ident] + [repr(float(v)) for v in row]
        if dics is not None:
            vth = model.vth_mV if vth_mV is None else np.broadcast_to(vth_mV, (len(conductances),))[k]
            cells += [repr(float(v)) for v in dics[k]] + [repr(float(vth))]
        cells += [_cell(col[k]) for col in extra.values()]
        writer.writerow(cells)
    return out.getvalue()


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def format_table_csv(columns: dict) -> str:
    """CSV text of named columns of equal length (floats written exactly, NaN as empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(columns))
    n = len(next(iter(columns.values()))) if columns else 0
    for k in range(n):
        row = []
        for col in columns.values():
            v = col[k]
            row.append("" if isinstance(v, (float, np.floating)) and not math.isfinite(v) else _cell(v))
        writer.writerow(row)
    return out.getvalue()






def _body(table: str, drop_header: bool) -> str:
    return table.split("\n", 1)[1] if drop_header else table


# ---------------------------------------------------------------------------- outputs
def populations_table(result: InferenceResult) -> str:
    """Return ``populations.csv``: one row per model.

    Columns: Spike2Pop-like conductance columns with units, DICs, V_th, the recording, the posterior sample it
    was solved for and the re-solved pair.
    """
    from .tables import format_population_csv

    m = get_model(result.model)
    if not result.recordings:
        return format_population_csv(m, np.empty((0, m.n_conductances)), np.empty((0, 3)))
    recs = result.recordings
    g = np.concatenate([r.conductances for r in recs])
    d = np.concatenate([r.dics for r in recs])
    ids = [f"{r.id}-{k}" for r in recs for k in range(len(r.conductances))]
    extra = {
        "recording": [r.id for r in recs for _ in range(len(r.conductances))],
        "posterior_sample": np.concatenate([r.sample_index for r in recs]),
        "target_g_s [g_leak]": np.concatenate([r.samples[:, 0] for r in recs]),
        "target_g_u [g_leak]": np.concatenate([r.samples[:, 1] for r in recs]),
        "pair": ["+".join(r.pairs[p]) for r in recs for p in r.pair],
    }
    return format_population_csv(m, g, d, ids=ids, vth_mV=result.vth_mV, extra=extra)


def summary_table(result: InferenceResult, trains: SpikeTrains) -> str:
    """Return ``summary.csv``: one row per recording.

    Columns: firing class (the published three), firing pattern (:func:`dicsbi.spikes.firing_pattern`: the
    three with noise-driven irregular trains told from bursting ones), posterior mean and 90% interval of g_s
    and g_u, the number of models and replaced samples, the predictive-check scores (empty when not run or
    silent), the noise posterior (probability of a clean recording, median and 90% interval in uA/cm^2; empty
    without one), and the typicality score with its
    out-of-world flag (:mod:`dicsbi.posterior.typicality`; 1 = unlike the training world) and ``like_model``,
    the other shipped model the recording looks like (empty when none).
    """
    from ..spikes import CLASS_NAMES, PATTERN_NAMES, firing_pattern
    from .tables import format_table_csv

    by_id = {r.id: r for r in result.recordings}
    cls = firing_class(trains)
    pattern = firing_pattern(trains, cls)
    cols: dict[str, list] = {k: [] for k in (
        "recording", "n_spikes", "firing_class", "firing_pattern", "g_s_mean", "g_s_q05", "g_s_q95", "g_u_mean",
        "g_u_q05", "g_u_q95", "n_models", "n_replaced", "n_reused", "check_n", "check_class_match",
        "check_freq_match", "check_reproduce", "check_pattern_match", "check_rate_cv_match", "check_vr_ratio",
        "check_dt_ms", "noise_p_zero", "noise_median", "noise_q05", "noise_q95", "typicality", "out_of_world",
        "like_model")}
    for i, ident in enumerate(trains.ids):
        r = by_id.get(str(ident))
        cols["recording"].append(str(ident))
        cols["n_spikes"].append(int(trains.counts[i]))
        cols["firing_class"].append(CLASS_NAMES[int(cls[i])])
        cols["firing_pattern"].append(PATTERN_NAMES[int(pattern[i])])
        for k, name in enumerate(("g_s", "g_u")):
            x = r.samples[:, k] if r is not None else None
            cols[f"{name}_mean"].append(float(x.mean()) if x is not None else np.nan)
            cols[f"{name}_q05"].append(float(np.quantile(x, 0.05)) if x is not None else np.nan)
            cols[f"{name}_q95"].append(float(np.quantile(x, 0.95)) if x is not None else np.nan)
        cols["n_models"].append(len(r.conductances) if r is not None else 0)
        cols["n_replaced"].append(r.n_replaced if r is not None else 0)
        cols["n_reused"].append(r.n_reused if r is not None else 0)
        c = r.check if r is not None and r.check else {}
        cols["check_n"].append(c.get("n", 0))
        for key in ("class_match", "freq_match", "reproduce", "pattern_match", "rate_cv_match", "vr_ratio", "dt_ms"):
            cols[f"check_{key}"].append(float(c.get(key, np.nan)))
        z = r.noise if r is not None and r.noise is not None else None
        cols["noise_p_zero"].append(float((z == 0).mean()) if z is not None else np.nan)
        for name, q in (("median", 0.5), ("q05", 0.05), ("q95", 0.95)):
            cols[f"noise_{name}"].append(float(np.quantile(z, q)) if z is not None else np.nan)
        cols["typicality"].append(r.typicality if r is not None else np.nan)
        cols["out_of_world"].append(int(r.out_of_world) if r is not None else 0)
        cols["like_model"].append(r.like_model if r is not None else "")
    if getattr(result, "refined", False):
        _refine_columns(cols, [by_id.get(str(i)) for i in trains.ids], get_model(result.model).conductance_names)
    return format_table_csv(cols)


REFINE_COLUMNS = ("acceptance", "tolerance", "ess", "distinct", "simulations", "seconds", "generations",
                  "distance_before", "distance_after", "noise_std", "wide_share", "flagged")


def _refine_columns(cols: dict[str, list], recs: list, names) -> None:
    """Add the refinement's columns (``refine_*``; :mod:`dicsbi.refine`) to a summary table's ``cols``.

    Per recording: the last generation's acceptance rate, the final tolerance, the effective sample size, the
    distinct members, simulations, seconds, generations, the median feature distance of the DIC population
    and of the refined one, the candidates' noise level, the share of members from the wide world
    (:mod:`dicsbi.refine.world`), the flag (1: degeneracy lost or not reproduced) with
    its reasons, and per conductance the refined population's spread relative to the DIC population's
    (``refine_spread_<g>``: interquartile range of log10 g after / before).
    """
    for key in REFINE_COLUMNS:
        cols[f"refine_{key}"] = []
    cols["refine_why"] = []
    for name in names:
        cols[f"refine_spread_{name}"] = []
    for r in recs:
        ref = r.refinement if r is not None else None
        values = {} if ref is None else {
            "acceptance": ref.acceptance, "tolerance": ref.tolerance, "ess": ref.ess, "distinct": ref.distinct,
            "simulations": ref.simulations, "seconds": ref.seconds, "generations": ref.generations,
            "distance_before": ref.distance_before, "distance_after": float(np.median(ref.distance)),
            "noise_std": ref.noise_std, "wide_share": ref.wide_share, "flagged": int(ref.flagged)}
        for key in REFINE_COLUMNS:
            cols[f"refine_{key}"].append(values.get(key, np.nan))
        cols["refine_why"].append("; ".join(ref.why) if ref is not None else "")
        ratio = np.full(len(names), np.nan)
        if ref is not None and ref.spread_before is not None and ref.spread_after is not None:
            with np.errstate(divide="ignore", invalid="ignore"):  # a fixed conductance has no spread
                ratio = ref.spread_after / ref.spread_before
        for k, name in enumerate(names):
            cols[f"refine_spread_{name}"].append(float(ratio[k]))
