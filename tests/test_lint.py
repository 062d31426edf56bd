"""The package's gates: ruff (with numpydoc's pydocstyle rules) and mypy report nothing on ``dicsbi/``."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_with_numpydoc_rules_is_clean():
    r = _run("ruff", "check", "dicsbi", "tests", "experiments", "examples")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_is_clean_on_the_package():
    r = _run("mypy", "dicsbi", "--no-error-summary")
    assert r.returncode == 0, r.stdout + r.stderr
