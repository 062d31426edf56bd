"""The ``dicsbi`` command line: thin wrappers over the Python API.

A user mistake (bad file, unknown model, impossible conductances) prints one line ``error: ...`` and exits
with status 2; nothing is written in that case.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import DicsbiError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Degenerate conductance-based neuron populations from spike times.")
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """dicsbi: Dynamic Input Conductances + simulation-based inference."""


@app.command()
def simulate(
    conductances: Annotated[Path, typer.Argument(help="CSV: one row per neuron, one column per conductance "
                                                      "(g_Na, ... or Na, ...), optional ID column")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output CSV (ID,spiking_times)")],
    model: Annotated[str, typer.Option(help="neuron model: stg or da")] = "stg",
    duration_ms: Annotated[float | None, typer.Option(help="recorded window [ms] (model default)")] = None,
    transient_ms: Annotated[float | None, typer.Option(help="discarded transient [ms] (model default)")] = None,
    dt_ms: Annotated[float | None, typer.Option(help="integration step [ms] (model default)")] = None,
    noise_std: Annotated[float, typer.Option(help="noise current std before 1 kHz low-pass [uA/cm^2]")] = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the noise")] = 0,
    threads: Annotated[int | None, typer.Option(help="numba threads (default: all cores)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Simulate neurons from a conductance table and write their spike trains (Spike2Pop CSV shape)."""
    from .io import read_conductances_csv, write_spike2pop_csv
    from .models import get_model
    from .simulate import STATUS_NAMES
    from .simulate import simulate as run

    m = get_model(model)
    g, ids = read_conductances_csv(conductances, m)
    res = run(m, g, duration_ms, dt_ms, transient_ms, noise_std=noise_std, seed=seed, n_threads=threads,
              progress=progress, ids=ids)
    write_spike2pop_csv(out, res.trains)
    bad = [(i, STATUS_NAMES[s]) for i, s in zip(ids, res.status) if s != 0]
    for ident, why in bad:
        err.print(f"[yellow]warning:[/] neuron {ident}: {why} (its train is empty or truncated)")
    err.print(f"wrote {len(ids)} spike trains ({m.name}, {res.settings['duration_ms']:.0f} ms after "
              f"{res.settings['transient_ms']:.0f} ms transient, dt {res.settings['dt_ms']} ms) to {out}",
              soft_wrap=True)


def main() -> None:
    """Console entry point: runs the app and turns :class:`DicsbiError` into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except DicsbiError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
