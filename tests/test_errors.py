"""Every row of docs/errors.md is a case that raises exactly the documented error and message."""

import importlib.util
from pathlib import Path

import pytest

from tests.error_cases import CASES

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_error_catalogue", ROOT / "experiments" / "make_error_catalogue.py")
catalogue = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(catalogue)


@pytest.mark.parametrize("area, situation, fn", CASES, ids=[f"{a}: {s}" for a, s, _ in CASES])
def test_case_raises_a_dicsbi_error_with_its_documented_message(area, situation, fn):
    name, message = catalogue.run_case(fn)
    assert message and "Traceback" not in message
    page = (ROOT / "docs" / "errors.md").read_text()
    row = next((ln for ln in page.splitlines() if ln.startswith(f"| {area} | {situation} |")), None)
    assert row is not None, f"docs/errors.md has no row for {area}: {situation} (run make_error_catalogue.py)"
    assert f"`{name}`" in row


def test_page_is_current():
    assert (ROOT / "docs" / "errors.md").read_text() == catalogue.catalogue(), \
        "docs/errors.md is stale: run python experiments/make_error_catalogue.py"
