"""Reading user files and writing results atomically.

* Conductance tables: a CSV with a header, one row per neuron, one column per maximal conductance named as in
  the model (``g_Na`` or ``Na``, case-insensitive, optionally followed by units in brackets) in any order,
  plus an optional ``ID`` column; DIC columns (``g_f``, ``g_s``, ``g_u``, ``V_th``) are ignored, so a
  population written by dicsbi reads back as a conductance table.
* Spike trains out: the Spike2Pop CSV shape, ``ID,spiking_times`` with a bracketed list of times in ms.

Every problem in a user file raises :class:`~dicsbi.errors.InputError` naming the file, the row (1-based, the
header is row 1) and the field.  Every output is written to a temporary name in the same folder and renamed
when complete, so an interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .models import Model, get_model
from .spikes import SpikeTrains

ID_COLUMNS = ("id", "ID", "Id")
DERIVED_COLUMNS = ("g_f", "g_s", "g_u", "v_th", "vth", "target_g_s", "target_g_u")  # ignored on input


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_conductances_csv(path: str | os.PathLike, model: str | Model) -> tuple[np.ndarray, list[str]]:
    """Read a conductance table; returns ``(g[N, n_g] in model order, ids)``.

    Raises :class:`InputError` for a missing file, an empty table, missing or unknown columns, and cells
    that are not finite non-negative numbers (naming file, row and column).
    """
    model = get_model(model)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read conductance table ({exc.strerror or exc})") from exc
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(f"{path}: empty file; expected a header with {', '.join(model.conductance_names)}")
    header = [h.split("[")[0].strip() for h in rows[0]]  # "g_Na [mS/cm^2]" -> "g_Na"
    wanted = {n.lower(): i for i, n in enumerate(model.conductance_names)}
    wanted.update({n[2:].lower(): i for i, n in enumerate(model.conductance_names)})
    col_of = {}
    id_col = None
    for j, name in enumerate(header):
        if name in ID_COLUMNS:
            id_col = j
        elif name.lower() in wanted:
            col_of[wanted[name.lower()]] = j
        elif name.lower() in DERIVED_COLUMNS:
            continue
        else:
            raise InputError(f"{path}: row 1: unknown column {name!r}; model {model.name!r} expects "
                             f"{', '.join(model.conductance_names)} (and optionally ID)")
    missing = [model.conductance_names[i] for i in range(model.n_conductances) if i not in col_of]
    if missing:
        raise InputError(f"{path}: row 1: missing column(s) {', '.join(missing)} for model {model.name!r}")
    if len(rows) == 1:
        raise InputError(f"{path}: no data rows after the header")
    g = np.empty((len(rows) - 1, model.n_conductances))
    ids = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{path}: row {r}: {len(row)} fields, the header has {len(header)}")
        for i, j in col_of.items():
            g[r - 2, i] = _parse_conductance(row[j], path, r, model.conductance_names[i])
        ids.append(row[id_col].strip() if id_col is not None else str(r - 2))
    seen = set()
    for r, ident in enumerate(ids, start=2):
        if ident in seen:
            raise InputError(f"{path}: row {r}: duplicated ID {ident!r}")
        seen.add(ident)
    return g, ids


def _parse_conductance(cell: str, path: Path, row: int, name: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise InputError(f"{path}: row {row}, column {name}: {cell!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{path}: row {row}, column {name}: {cell!r} is not a finite value >= 0 mS/cm^2")
    return value


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
                          ids=None, vth_mV=None) -> str:
    """CSV text of a conductance table: ``ID``, one column per conductance with units, then DICs if given."""
    model = get_model(model)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["ID"] + [f"{n} [mS/cm^2]" for n in model.conductance_names]
    if dics is not None:
        header += ["g_f [g_leak]", "g_s [g_leak]", "g_u [g_leak]", "V_th [mV]"]
    writer.writerow(header)
    ids = [str(i) for i in range(len(conductances))] if ids is None else ids
    for k, (ident, row) in enumerate(zip(ids, conductances)):
        cells = [ident] + [repr(float(v)) for v in row]
        if dics is not None:
            vth = model.vth_mV if vth_mV is None else np.broadcast_to(vth_mV, (len(conductances),))[k]
            cells += [repr(float(v)) for v in dics[k]] + [repr(float(vth))]
        writer.writerow(cells)
    return out.getvalue()
