"""Reading user files: conductance tables (CSV) and spike times (Spike2Pop CSV, long CSV, NWB, Neo).

Each problem is one :class:`~dicsbi.errors.InputError` naming the file, the row and the field (see
:mod:`dicsbi.io`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..models import Model, get_model
from ..spikes import SpikeTrains, train_problem

ID_COLUMNS = ("id", "ID", "Id")


DERIVED_COLUMNS = ("g_f", "g_s", "g_u", "v_th", "vth", "target_g_s", "target_g_u")  # ignored on input


def _csv_rows(path: Path, expected: str, what: str = "file") -> list[list[str]]:
    """Read the CSV's non-blank rows; refuse a file that cannot be read, is not UTF-8 text, not a CSV or empty.

    ``expected`` completes "empty file; expected ..."; ``what`` names the file in a read error.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text (UTF-8) file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    csv.field_size_limit(2**31 - 1)  # one Spike2Pop cell holds a whole train: a million spikes is ~10 MB
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV ({e})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path}: empty file; expected {expected}")
    return rows


def read_conductances_csv(path: str | os.PathLike, model: str | Model) -> tuple[np.ndarray, list[str]]:
    """Read a conductance table; returns ``(g[N, n_g] in model order, ids)``.

    Raises :class:`InputError` for a missing file, an empty table, missing or unknown columns, and cells
    that are not finite non-negative numbers (naming file, row and column).
    """
    model = get_model(model)
    path = Path(path)
    rows = _csv_rows(path, f"a header with {', '.join(model.conductance_names)}", "conductance table")
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


# ---------------------------------------------------------------------------- spike-train input
TIME_UNITS_MS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3}


_TIME_COLUMNS = ("spike_time", "spike_times", "time", "t")
_ReadTrains = tuple[list[str], list[np.ndarray | InputError], list[str]]  # ids, times or the problem, where


def _unit_factor(unit: str, path: Path, where: str) -> float:
    try:
        return TIME_UNITS_MS[unit.strip().lower()]
    except KeyError:
        raise InputError(f"{path}: {where}: unknown time unit {unit!r}; expected one of "
                         f"{', '.join(TIME_UNITS_MS)}") from None


def _split_unit(name: str) -> tuple[str, str | None]:
    """``'spike_time [s]'`` -> ``('spike_time', 's')``."""
    name = name.strip()
    if name.endswith("]") and "[" in name:
        base, unit = name[:-1].split("[", 1)
        return base.strip(), unit.strip()
    return name, None


def _check_train(times: np.ndarray, path: Path, where: str) -> None:
    """Refuse a train that is malformed or physically impossible (:func:`dicsbi.spikes.train_problem`)."""
    why = train_problem(times)
    if why:
        raise InputError(f"{path}: {where}: {why}")


def _check_window(times: np.ndarray, path: Path, where: str, ident: str, t_start_ms: float,
                  t_stop_ms: float | None) -> None:
    """Refuse a train with a spike before ``t_start_ms`` or after ``t_stop_ms`` (naming the file and the train)."""
    if not times.size:
        return
    if times[0] < t_start_ms:
        train = "" if repr(ident) in where else f" (train {ident!r})"
        raise InputError(f"{path}: {where}{train}: first spike at {float(times[0])} ms is before the start of the "
                         f"recording window, {float(t_start_ms)} ms (t_start_ms, --t-start-ms on the command line; "
                         "times are read on the file's own axis)")
    if t_stop_ms is not None and times[-1] > t_stop_ms:
        raise InputError(f"{path}: {where}: spikes outside the recording window [{t_start_ms}, {t_stop_ms}] ms")


def read_spike_trains(path: str | os.PathLike, unit: str | None = None, t_start_ms: float = 0.0,
                      t_stop_ms: float | None = None, skip_bad: bool = False) -> tuple[SpikeTrains, list[str]]:
    """Read recorded spike trains; returns ``(trains in ms, skipped)``.

    Formats, chosen by the file's content:

    * Spike2Pop CSV: columns ``ID`` and ``spiking_times`` (a bracketed list, ``"[12.5, 30.1]"``), one row per
      recording, times in ms unless ``unit`` (or a unit in the header, ``spiking_times [s]``) says otherwise;
    * long CSV: columns ``id`` and ``spike_time`` (or ``spike_times``, ``time``, ``t``), one row per spike, rows
      of a recording in time order;
    * NWB (``.nwb``): the Units table (spike times in seconds by the NWB standard; unit names are the ids);
    * any other file Neo reads (``.abf``, ``.smr``, ``.nix``, ...; optional extra ``pip install dicsbi[neo]``):
      every ``SpikeTrain`` of every segment, with its own units (see :func:`from_neo`).

    The recording window is ``[t_start_ms, t_stop_ms]`` (default: from 0 to each train's last spike), on the
    file's time axis: a file of absolute times (spikes from 3000 ms) gives its start as ``t_start_ms``.  A
    spike outside the window is an error naming the file and the train.  Every problem raises
    :class:`InputError` naming the file, the row and the field; with ``skip_bad`` the bad recordings are left
    out and described in ``skipped`` instead.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not math.isfinite(t_start_ms) or (t_stop_ms is not None and not t_stop_ms > t_start_ms):
        raise InputError(f"{path}: the recording window [{t_start_ms}, {t_stop_ms}] ms is not a window: "
                         "t_start_ms must be finite and t_stop_ms after it")
    if path.suffix.lower() == ".nwb":
        ids, arrays, wheres = _read_nwb(path)
    elif path.suffix.lower() not in (".csv", ".txt", ".tsv", ""):
        ids, arrays, wheres = _read_neo_file(path)
    else:
        ids, arrays, wheres = _read_spike_csv(path, unit)
    kept_ids, kept, skipped = [], [], []
    seen: dict[str, str] = {}
    for ident, times, where in zip(ids, arrays, wheres):
        try:
            if isinstance(times, InputError):
                raise times
            if ident in seen:
                raise InputError(f"{path}: {where}: ID {ident!r} repeats {seen[ident]}")
            seen[ident] = where
            _check_train(times, path, where)
            _check_window(times, path, where, ident, t_start_ms, t_stop_ms)
        except InputError as e:
            if not skip_bad:
                raise
            skipped.append(str(e))
            continue
        kept_ids.append(ident)
        kept.append(times)
    if not kept:
        raise InputError(f"{path}: no usable spike train" + (f" ({len(skipped)} skipped)" if skipped else ""))
    stops = None if t_stop_ms is None else float(t_stop_ms)  # None: each train's last spike
    return SpikeTrains.from_list(kept, float(t_start_ms), stops, ids=kept_ids), skipped


def _read_spike_csv(path: Path, unit: str | None) -> _ReadTrains:
    """Read a Spike2Pop CSV (one row per recording) or a long CSV (one row per spike)."""
    rows = _csv_rows(path, "a header (ID,spiking_times or id,spike_time) and rows")
    header = [_split_unit(h) for h in rows[0]]
    names = [h[0].lower() for h in header]
    try:
        id_col = names.index("id")
    except ValueError:
        raise InputError(f"{path}: row 1: no ID column (header: {', '.join(rows[0])})") from None
    if "spiking_times" in names:
        col = names.index("spiking_times")
        factor = _unit_factor(unit or header[col][1] or "ms", path, "spiking_times unit")
        return _read_spike2pop_rows(path, rows, id_col, col, factor)
    time_cols = [n for n in _TIME_COLUMNS if n in names]
    if not time_cols:
        raise InputError(f"{path}: row 1: no spike-time column; expected 'spiking_times' (Spike2Pop) or one of "
                         f"{', '.join(_TIME_COLUMNS)} (one row per spike)")
    col = names.index(time_cols[0])
    factor = _unit_factor(unit or header[col][1] or "ms", path, f"{time_cols[0]} unit")
    return _read_long_rows(path, rows, id_col, col, time_cols[0], factor)


def _read_spike2pop_rows(path: Path, rows: list[list[str]], id_col: int, col: int, factor: float) -> _ReadTrains:
    """Read the rows of a Spike2Pop CSV: an ID and a bracketed list of times per row."""
    ids: list[str] = []
    arrays: list[np.ndarray | InputError] = []
    wheres: list[str] = []
    for r, row in enumerate(rows[1:], start=2):
        where = f"row {r}, column spiking_times"
        ident = row[id_col].strip() if id_col < len(row) else ""
        ids.append(ident or f"row{r}")
        wheres.append(where if ident else f"row {r}")
        if not ident:
            arrays.append(InputError(f"{path}: row {r}: empty ID"))
            continue
        cell = row[col].strip() if col < len(row) else ""
        arrays.append(_parse_list(cell, path, where, factor))
    if not ids:
        raise InputError(f"{path}: no rows after the header")
    return ids, arrays, wheres


def _read_long_rows(path: Path, rows: list[list[str]], id_col: int, col: int, col_name: str,
                    factor: float) -> _ReadTrains:
    """Read the rows of a long CSV: an ID and one spike time per row, grouped by ID in order of appearance."""
    order: list[str] = []
    values: dict[str, list] = {}
    first_row: dict[str, int] = {}
    errors: dict[str, InputError] = {}
    for r, row in enumerate(rows[1:], start=2):
        ident = row[id_col].strip() if id_col < len(row) else ""
        if not ident:
            raise InputError(f"{path}: row {r}, column id: empty ID")
        if ident not in values:
            order.append(ident)
            values[ident] = []
            first_row[ident] = r
        cell = row[col].strip() if col < len(row) else ""
        try:
            values[ident].append(float(cell) * factor)
        except ValueError:
            errors.setdefault(ident, InputError(f"{path}: row {r}, column {col_name}: {cell!r} is not a "
                                                "number"))
    if not order:
        raise InputError(f"{path}: no rows after the header")
    arrays: list[np.ndarray | InputError] = [errors[i] if i in errors else np.array(values[i]) for i in order]
    return order, arrays, [f"ID {i!r} (rows from {first_row[i]})" for i in order]


def _parse_list(cell: str, path: Path, where: str, factor: float):
    if not (cell.startswith("[") and cell.endswith("]")):
        return InputError(f"{path}: {where}: expected a bracketed list of times like [12.5, 30.1], got "
                          f"{cell[:40]!r}")
    body = cell[1:-1].strip()
    if not body:
        return np.empty(0)
    try:
        return np.array([float(x) for x in body.replace(";", ",").split(",")]) * factor
    except ValueError:
        return InputError(f"{path}: {where}: cannot read the list {cell[:40]!r} as numbers")


def _read_nwb(path: Path):
    try:
        from pynwb import NWBHDF5IO
    except ImportError:  # pragma: no cover - declared dependency
        raise InputError("reading NWB files needs pynwb (pip install pynwb)") from None
    try:
        with NWBHDF5IO(str(path), "r") as nwb_io:
            nwb = nwb_io.read()
            units = nwb.units
            if units is None or len(units) == 0:
                raise InputError(f"{path}: the NWB file has no Units table (no sorted spikes)")
            df_ids = [str(i) for i in units.id[:]]
            names = units.colnames
            label = units["unit_name"][:] if "unit_name" in names else df_ids
            arrays = [np.asarray(units["spike_times"][k], dtype=float) * 1000.0 for k in range(len(units))]
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path}: cannot read as NWB ({type(e).__name__}: {e})") from None
    ids = [str(x) for x in label]
    return ids, arrays, [f"unit {i} (Units row {k + 1})" for k, i in enumerate(ids)]


# ---------------------------------------------------------------------------- Neo (optional)
def _import_neo(what: str):
    try:
        import neo
    except ImportError:
        raise InputError(f"{what} needs the optional package neo (pip install 'dicsbi[neo]')") from None
    return neo


def _neo_trains(obj) -> list:
    """Every ``neo.SpikeTrain`` in a SpikeTrain, a list of them, a Segment or a Block."""
    neo = _import_neo("reading Neo objects")
    if isinstance(obj, neo.SpikeTrain):
        return [obj]
    if isinstance(obj, neo.Block):
        return [st for seg in obj.segments for st in seg.spiketrains]
    if isinstance(obj, neo.Segment):
        return list(obj.spiketrains)
    if isinstance(obj, (list, tuple)):
        return [st for o in obj for st in _neo_trains(o)]
    raise InputError(f"expected neo SpikeTrain(s), a Segment or a Block, got {type(obj).__name__}")


def _neo_ident(st, k: int) -> str:
    ann = getattr(st, "annotations", {}) or {}
    return str(st.name or ann.get("id") or ann.get("channel_id") or f"spiketrain{k}")


def from_neo(obj, source: str = "neo input") -> SpikeTrains:
    """Spike trains from Neo (``SpikeTrain``, list, ``Segment`` or ``Block``), converted to ms.

    Each train keeps its own window (``t_start``, ``t_stop``) and its name (or annotation ``id``) as ID; the
    same checks as the file readers apply (finite, non-negative, strictly increasing, unique IDs).
    """
    trains = _neo_trains(obj)
    if not trains:
        raise InputError(f"{source}: no spike trains")
    arrays: list[np.ndarray] = []
    starts: list[float] = []
    stops: list[float] = []
    ids: list[str] = []
    for k, st in enumerate(trains):
        ident = _neo_ident(st, k)
        where = f"spike train {k + 1} ({ident!r})"
        if ident in ids:
            raise InputError(f"{source}: {where}: ID {ident!r} repeats spike train {ids.index(ident) + 1}")
        times = np.asarray(st.times.rescale("ms").magnitude, dtype=float)
        _check_train(times, Path(source), where)
        arrays.append(times)
        starts.append(float(st.t_start.rescale("ms").magnitude))
        stops.append(float(st.t_stop.rescale("ms").magnitude))
        ids.append(ident)
    return SpikeTrains.from_list(arrays, np.array(starts), np.array(stops), ids=ids)


def _read_neo_file(path: Path):
    neo = _import_neo(f"{path}: reading a {path.suffix} file")
    try:
        reader = neo.io.get_io(str(path))
        blocks = reader.read(lazy=False)
    except Exception as e:
        raise InputError(f"{path}: cannot read spike trains with Neo ({type(e).__name__}: {e}); expected a CSV "
                         "(Spike2Pop or long), an NWB file or a Neo-readable recording") from None
    trains = _neo_trains(list(blocks))
    if not trains:
        raise InputError(f"{path}: the recording holds no spike trains (Neo found no SpikeTrain)")
    ids = [_neo_ident(st, k) for k, st in enumerate(trains)]
    arrays = [np.asarray(st.times.rescale("ms").magnitude, dtype=float) for st in trains]
    return ids, arrays, [f"spike train {k + 1} ({i!r})" for k, i in enumerate(ids)]
