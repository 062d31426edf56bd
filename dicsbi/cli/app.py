"""The Typer application, the error console and the entry point shared by every command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import DicsbiError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Degenerate conductance-based neuron populations from spike times.")


err = Console(stderr=True)

# options several commands share, declared once
ModelOption = Annotated[str, typer.Option(help="neuron model: stg, da or a registered one")]
SeedOption = Annotated[int, typer.Option(help="random seed")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="output folder")]
ProgressOption = Annotated[bool, typer.Option(help="show progress bars")]
PosteriorOption = Annotated[Path | None, typer.Option(help="posterior folder (default: the shipped one)")]
UnitOption = Annotated[str | None, typer.Option(help="time unit of the input: ms, s or us (default ms)")]


@app.callback()
def _root() -> None:
    """dicsbi: Dynamic Input Conductances + simulation-based inference."""


def _check_tier(tier: str) -> None:
    from ..models.base import TIERS

    if tier not in TIERS:
        raise DicsbiError(f"--tier must be one of {', '.join(TIERS)}, got {tier!r}")


def _set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in numba kernels and torch (None: their defaults)."""
    if threads:
        import numba
        import torch

        top = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # numba.config sets it at import
        numba.set_num_threads(max(1, min(int(threads), top)))
        torch.set_num_threads(int(threads))


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

