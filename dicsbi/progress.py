"""The one progress bar of every long job (simulation, data sets, training, inference, modulation).

A rich bar on the terminal with a label, done / total, a free text field (loss, rate), elapsed time and ETA; a
no-op when disabled, so callers write one code path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class ProgressBar:
    """A rich progress bar counting ``total`` steps; every method is a no-op when ``enabled`` is false.

    Parameters
    ----------
    enabled
        Show the bar (callers pass their ``progress`` argument).
    total
        Steps to completion.
    label
        Text on the left of the bar.
    transient
        Remove the bar from the terminal when it ends.

    Examples
    --------
    >>> with ProgressBar(False, 10, "cells") as bar:
    ...     bar.advance(5, info="12.0 cells/s")
    """

    def __init__(self, enabled: bool, total: int, label: str, transient: bool = False):
        self.enabled = bool(enabled) and total > 0
        self.total, self.label, self.transient = int(total), label, transient
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich import progress as rp

            self._bar = bar = rp.Progress(rp.TextColumn(self.label), rp.BarColumn(), rp.MofNCompleteColumn(),
                                          rp.TextColumn("{task.fields[info]}"), rp.TimeElapsedColumn(),
                                          rp.TimeRemainingColumn(), transient=self.transient)
            bar.start()
            self._task = bar.add_task(self.label, total=self.total, info="")
        return self

    def advance(self, n: int = 1, info: str | None = None) -> None:
        """Count ``n`` more steps done; ``info`` replaces the free text field."""
        if self._bar is not None and self._task is not None and (n or info is not None):
            fields: dict[str, Any] = {} if info is None else {"info": info}
            self._bar.update(self._task, advance=n, **fields)

    def update(self, completed: int, info: str | None = None) -> None:
        """Set the steps done to ``completed``; ``info`` replaces the free text field."""
        if self._bar is not None and self._task is not None:
            fields: dict[str, Any] = {} if info is None else {"info": info}
            self._bar.update(self._task, completed=completed, **fields)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def progress_range(start: int, stop: int, step: int, show: bool, label: str) -> Iterator[int]:
    """``range(start, stop, step)`` with a transient bar counting items when ``show`` and there is more than a step."""
    with ProgressBar(show and stop - start > step, stop - start, label, transient=True) as bar:
        for s in range(start, stop, step):
            yield s
            bar.update(min(stop, s + step) - start)
