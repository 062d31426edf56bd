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

from .files import LOCK_NAME, FolderLock, OutputFolder, atomic_write_bytes, atomic_write_text, package_versions
from .readers import DERIVED_COLUMNS, ID_COLUMNS, TIME_UNITS_MS, from_neo, read_conductances_csv, read_spike_trains
from .tables import (
    format_population_csv,
    format_spike2pop_csv,
    format_table_csv,
    populations_table,
    summary_table,
    write_spike2pop_csv,
)

__all__ = [
    "DERIVED_COLUMNS", "FolderLock", "ID_COLUMNS", "LOCK_NAME", "OutputFolder", "TIME_UNITS_MS",
    "atomic_write_bytes", "atomic_write_text", "format_population_csv", "format_spike2pop_csv",
    "format_table_csv", "from_neo", "package_versions", "populations_table", "read_conductances_csv",
    "read_spike_trains", "summary_table", "write_spike2pop_csv",
]
