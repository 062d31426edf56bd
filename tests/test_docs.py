"""The Python code in the README and the docs runs as written (each page's blocks in order, one namespace)."""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/tutorial.md", "docs/training.md", "docs/inference.md", "docs/posterior.md",
         "docs/modulation.md"]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = FENCE.findall((ROOT / page).read_text())
    assert blocks, f"{page} has no python block"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for k, code in enumerate(blocks):
        exec(compile(code, f"{page}[block {k + 1}]", "exec"), namespace)
