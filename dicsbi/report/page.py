"""The one HTML page template and figure helper of every report (``infer``, ``diagnose``, ``modulate``).

Pages are self-contained (images embedded as base64 PNG; they open offline) and share one stylesheet.  Every
figure is written to ``figures/`` through a temporary name and a rename, then embedded in its page.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..posterior.typicality import MEANING as TYPICALITY_MEANING
from ..spikes import CLASS_NAMES, PATTERN_NAMES, SpikeTrains, firing_class, firing_pattern
from . import figures as plots

CSS = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
img{max-width:100%;display:block;margin:0.8em 0}table{border-collapse:collapse;margin:0.5em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:90%}th{background:#f4f4f4}
section{border-top:2px solid #ddd;margin-top:1.5em}.warn{background:#fff3cd;padding:0.5em 1em}
.pass{background:#d8f0d8}.fail{background:#f8d0d0}"""

esc = html.escape


def png_bytes(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def safe_filename(name: str) -> str:
    """Return a recording id made safe as part of a file name (80 characters at most)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "recording"


def save_figures(figs: Mapping[str, object], folder: str | Path, prefix: str = "", headings: bool = True) -> str:
    """Write each figure to ``folder/<prefix><name>.png`` and return the HTML that embeds them in a page.

    Parameters
    ----------
    figs
        Name -> matplotlib figure (closed once written).
    folder
        The figures folder (created when missing).
    prefix
        Put in front of every file name (e.g. a recording's id).
    headings
        Put an ``<h3>`` with the figure's name above each image.

    Returns
    -------
    str
        The ``<img>`` elements (and headings), in the order of ``figs``.
    """
    from ..io.files import atomic_write_bytes

    parts = []
    for name, fig in figs.items():
        data = png_bytes(fig)
        atomic_write_bytes(Path(folder) / f"{prefix}{name}.png", data)
        if headings:
            parts.append(f"<h3>{esc(name.replace('_', ' '))}</h3>")
        parts.append(f'<img alt="{esc(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">')
    return "".join(parts)


def table(rows: Iterable[Iterable[object]], header: Iterable[str] | None = None, row_header: bool = False) -> str:
    """Return an HTML table of ``rows`` (cells escaped); ``row_header`` makes each row's first cell a ``<th>``."""
    head = "<tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for row in rows:
        cells = [esc(str(c)) for c in row]
        first = f"<th>{cells[0]}</th>" if row_header and cells else (f"<td>{cells[0]}</td>" if cells else "")
        body.append("<tr>" + first + "".join(f"<td>{c}</td>" for c in cells[1:]) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def bullet_list(items: Iterable[str]) -> str:
    """Return an HTML list of ``items`` (escaped); empty when there are none."""
    li = "".join(f"<li>{esc(str(i))}</li>" for i in items)
    return f"<ul>{li}</ul>" if li else ""


def html_page(title: str, body: str, heading: str | None = None) -> str:
    """Fill the one page template: ``title`` in the tab, ``heading`` (default: the title) on top, then ``body``.

    ``body`` is HTML (escape user text with :func:`esc`, build tables with :func:`table`).
    """
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{CSS}</style></head>
<body><h1>{esc(heading if heading is not None else title)}</h1>
{body}
</body></html>
"""


RASTER_MS = 20_000.0


def write_figures_and_report(result, trains: SpikeTrains, out: str | Path, title: str = "dicsbi inference",
                             max_recordings: int = 50, n_total: int | None = None) -> Path:
    """Write ``out/figures/<recording>_{raster,isi,posterior,conductances}.png`` and ``out/report.html``.

    Figures are drawn for the first ``max_recordings`` recordings (the page says how many were left out; every
    recording is in ``summary.csv``).  Every file goes through a temporary name and a rename
    (:func:`dicsbi.io.atomic_write_bytes`).
    """
    from ..io.files import atomic_write_text

    out = Path(out)
    cls = firing_class(trains)
    pattern = firing_pattern(trains, cls)
    index = {str(t): k for k, t in enumerate(trains.ids)}
    sections = []
    for rec in result.recordings[:max_recordings]:
        k = index[rec.id]
        sections.append(_recording_section(result, rec, trains, k, (int(cls[k]), int(pattern[k])), out / "figures"))
    n_total = len(result.recordings) if n_total is None else n_total
    left_out = n_total - len(sections)
    if left_out > 0:
        sections.append(f"<section><p>{left_out} more recordings have no figures here (the first "
                        f"{max_recordings} are shown); all are in summary.csv and posterior.nc.</p></section>")
    if result.silent:
        sections.append(f"<section><h2>Silent recordings (no posterior)</h2>{bullet_list(result.silent)}</section>")
    unreachable = getattr(result, "unreachable", [])
    if unreachable:
        sections.append("<section><h2>No population (no posterior sample reachable by compensation)</h2>"
                        f"{bullet_list(unreachable)}</section>")
    intro = (f"<p>Model {esc(result.model)}, V<sub>th</sub> = {result.vth_mV} mV, seed {result.seed}; "
             f"{n_total} recordings with a posterior, {len(result.silent)} silent.</p>")
    atomic_write_text(out / "report.html", html_page(title, intro + "".join(sections)))
    return out / "report.html"


def _recording_section(result, rec, trains: SpikeTrains, k: int, firing: tuple[int, int], figdir: Path) -> str:
    """One recording's section: its table and its four figures (written to ``figdir``)."""
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
    imgs = save_figures(figs, figdir, prefix=f"{safe_filename(rec.id)}_", headings=False)
    rows = _recording_rows(rec, *firing, int(trains.counts[k]))
    return f"<section><h2>{esc(rec.id)}</h2>{table(rows, row_header=True)}{imgs}</section>"


def _recording_rows(rec, firing: int, pattern: int, n_spikes: int) -> list[tuple[str, object]]:
    """Return the rows of a recording's table: class, posterior intervals, noise, typicality, predictive check."""
    q = np.quantile(rec.samples, [0.05, 0.5, 0.95], axis=0)
    rows: list[tuple[str, object]] = [
        ("firing class (pattern)", f"{CLASS_NAMES[firing]} ({PATTERN_NAMES[pattern]})"), ("spikes", n_spikes),
        ("g_s median [90% interval]", f"{q[1, 0]:.2f} [{q[0, 0]:.2f}, {q[2, 0]:.2f}]"),
        ("g_u median [90% interval]", f"{q[1, 1]:.2f} [{q[0, 1]:.2f}, {q[2, 1]:.2f}]"),
        ("models", len(rec.conductances)), ("posterior samples replaced (unreachable)", rec.n_replaced)]
    if rec.noise is not None:
        zq = np.quantile(rec.noise, [0.05, 0.5, 0.95])
        rows.append(("noise level [uA/cm^2]: P(clean), median [90% interval]",
                     f"{(rec.noise == 0).mean():.0%}, {zq[1]:.2f} [{zq[0]:.2f}, {zq[2]:.2f}]"))
    if np.isfinite(rec.typicality):
        verdict = f": OUT OF WORLD, {TYPICALITY_MEANING}" if rec.out_of_world else ": like the training trains"
        like = f" (it looks like a recording of the {rec.like_model.upper()} model)" if rec.like_model else ""
        rows.append(("typicality (distance to the training world)", f"{rec.typicality:.2f}{verdict}{like}"))
    if getattr(rec, "refinement", None) is not None:
        rows += _refinement_rows(rec.refinement)
    if rec.check:
        c = rec.check
        rows += [("predictive check: models simulated", f"{c['n']} (step {c.get('dt_ms', float('nan')):g} ms)"),
                 ("same firing class", f"{c['class_match']:.0%}"),
                 ("same firing pattern (irregular told from bursting)", f"{c.get('pattern_match', float('nan')):.0%}"),
                 (f"main frequency within 10% ({c['frequency_key']})", f"{c['freq_match']:.0%}"),
                 ("rate within 20% and ISI CV within 30%", f"{c.get('rate_cv_match', float('nan')):.0%}"),
                 ("van Rossum distance / population spread (median)", f"{c['vr_ratio']:.2f}")]
    return rows


def _refinement_rows(ref) -> list[tuple[str, object]]:
    """Build the table rows that say what the simulation refinement did (:mod:`dicsbi.refine`)."""
    verdict = "; ".join(ref.why) if ref.flagged else "members reproduce the recording, degeneracy kept"
    return [("refinement (SMC-ABC): members distinct / ESS", f"{ref.distinct} / {ref.ess:.0f}"),
            ("feature distance: DIC population median -> refined median (final tolerance)",
             f"{ref.distance_before:.2f} -> {float(np.median(ref.distance)):.2f} ({ref.tolerance:.2f})"),
            ("simulations, generations, seconds, last acceptance",
             f"{ref.simulations}, {ref.generations}, {ref.seconds:.1f} s, {ref.acceptance:.0%}"),
            ("members from the wide world (log-uniform over the plausible box) / training world",
             f"{ref.wide_share:.0%} / {1 - ref.wide_share:.0%}"),
            ("refinement verdict", ("FLAGGED: " if ref.flagged else "") + verdict)]
