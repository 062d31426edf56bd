"""Figures folder and a self-contained ``report.html`` (images embedded as base64 PNG; opens offline)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from ..posterior.typicality import MEANING as TYPICALITY_MEANING
from ..spikes import CLASS_NAMES, SpikeTrains, firing_class
from . import figures as plots


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "recording"


RASTER_MS = 20_000.0


def write_figures_and_report(result, trains: SpikeTrains, out: str | Path, title: str = "dicsbi inference",
                             max_recordings: int = 50, n_total: int | None = None) -> Path:
    """Write ``out/figures/<recording>_{raster,isi,posterior,conductances}.png`` and ``out/report.html``.

    Figures are drawn for the first ``max_recordings`` recordings (the page says how many were left out; every
    recording is in ``summary.csv``).  Every file goes through a temporary name and a rename
    (:func:`dicsbi.io.atomic_write_bytes`).
    """
    from ..io.files import atomic_write_bytes, atomic_write_text

    out = Path(out)
    figdir = out / "figures"
    cls = firing_class(trains)
    index = {str(t): k for k, t in enumerate(trains.ids)}
    sections = []
    for rec in result.recordings[:max_recordings]:
        k = index[rec.id]
        t = trains[k]
        window = float(max(trains.t_stop_ms[k] - trains.t_start_ms[k], (t[-1] - t[0]) if t.size else 0, 100.0))
        window = min(window, RASTER_MS)  # a raster of a long recording shows its beginning
        t_shown = t[t - t[0] <= window] if t.size else t
        members = rec.check["trains"][:10] if rec.check else None
        figs = {
            "raster": plots.raster(t_shown, members, window, f"{rec.id}: recording and simulated models"),
            "isi": plots.isi_panels(t, f"{rec.id}: interspike intervals"),
            "posterior": plots.dic_posterior(rec.samples, result.posterior_config, title=f"{rec.id}: DIC posterior"),
            "conductances": plots.conductance_violins(result.model, rec.conductances, f"{rec.id}: population"),
        }
        imgs = []
        for name, fig in figs.items():
            data = _png(fig)
            atomic_write_bytes(figdir / f"{_safe(rec.id)}_{name}.png", data)
            imgs.append(f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">')
        q = np.quantile(rec.samples, [0.05, 0.5, 0.95], axis=0)
        rows = [("firing class", CLASS_NAMES[int(cls[k])]), ("spikes", int(trains.counts[k])),
                ("g_s median [90% interval]", f"{q[1, 0]:.2f} [{q[0, 0]:.2f}, {q[2, 0]:.2f}]"),
                ("g_u median [90% interval]", f"{q[1, 1]:.2f} [{q[0, 1]:.2f}, {q[2, 1]:.2f}]"),
                ("models", len(rec.conductances)), ("posterior samples replaced (unreachable)", rec.n_replaced)]
        if rec.noise is not None:
            zq = np.quantile(rec.noise, [0.05, 0.5, 0.95])
            rows.append(("noise level [uA/cm^2]: P(clean), median [90% interval]",
                         f"{(rec.noise == 0).mean():.0%}, {zq[1]:.2f} [{zq[0]:.2f}, {zq[2]:.2f}]"))
        if np.isfinite(rec.typicality):
            rows.append(("typicality (distance to the training world)",
                         f"{rec.typicality:.2f}" + (f": OUT OF WORLD, {TYPICALITY_MEANING}" if rec.out_of_world
                                                    else ": like the training trains")
                         + (f" (it looks like a recording of the {rec.like_model.upper()} model)"
                            if rec.like_model else "")))
        if rec.check:
            c = rec.check
            rows += [("predictive check: models simulated", f"{c['n']} (step {c.get('dt_ms', float('nan')):g} ms)"),
                     ("same firing class", f"{c['class_match']:.0%}"),
                     (f"main frequency within 10% ({c['frequency_key']})", f"{c['freq_match']:.0%}"),
                     ("rate within 20% and ISI CV within 30%", f"{c.get('rate_cv_match', float('nan')):.0%}"),
                     ("van Rossum distance / population spread (median)", f"{c['vr_ratio']:.2f}")]
        table = "".join(f"<tr><th>{html.escape(str(a))}</th><td>{html.escape(str(b))}</td></tr>" for a, b in rows)
        sections.append(f"<section><h2>{html.escape(rec.id)}</h2><table>{table}</table>{''.join(imgs)}</section>")
    silent = "".join(f"<li>{html.escape(s)}</li>" for s in result.silent)
    n_total = len(result.recordings) if n_total is None else n_total
    left_out = n_total - len(sections)
    if left_out > 0:
        sections.append(f"<section><p>{left_out} more recordings have no figures here (the first "
                        f"{max_recordings} are shown); all are in summary.csv and posterior.nc.</p></section>")
    body = "".join(sections) + (f"<section><h2>Silent recordings (no posterior)</h2><ul>{silent}</ul></section>"
                                if silent else "")
    unreachable = "".join(f"<li>{html.escape(u)}</li>" for u in getattr(result, "unreachable", []))
    if unreachable:
        body += ("<section><h2>No population (no posterior sample reachable by compensation)</h2>"
                 f"<ul>{unreachable}</ul></section>")
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}}
img{{max-width:100%;display:block;margin:0.8em 0}}table{{border-collapse:collapse;margin:0.5em 0}}
th,td{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:90%}}th{{background:#f4f4f4}}
section{{border-top:2px solid #ddd;margin-top:1.5em}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Model {html.escape(result.model)}, V<sub>th</sub> = {result.vth_mV} mV, seed {result.seed};
{n_total} recordings with a posterior, {len(result.silent)} silent.</p>
{body}
</body></html>
"""
    atomic_write_text(out / "report.html", doc)
    return out / "report.html"
