"""The one progress bar of every long job."""

from dicsbi.progress import ProgressBar, progress_range


def test_bar_counts_steps_and_text():
    with ProgressBar(True, 5, "cells") as bar:
        bar.advance(2, info="3.0 cells/s")
        task = bar._bar.tasks[0]
        assert task.completed == 2 and task.fields["info"] == "3.0 cells/s"
        bar.update(5, info="done")
        assert task.completed == 5 and task.fields["info"] == "done"
    assert bar._bar is None  # stopped on exit


def test_disabled_bar_and_empty_total_do_nothing():
    for bar in (ProgressBar(False, 5, "x"), ProgressBar(True, 0, "x")):
        with bar:
            bar.advance(3, info="y")
            bar.update(4)
        assert bar._bar is None


def test_progress_range_is_the_range():
    assert list(progress_range(0, 10, 3, True, "n")) == [0, 3, 6, 9]
    assert list(progress_range(2, 4, 5, True, "n")) == [2]
