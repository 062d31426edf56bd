"""The package's house rules (issue 17), checked on the source tree.

No module of ``dicsbi/`` over 450 lines except the simulator kernel; no function over 60 lines of code
(docstrings, comments and blank lines excluded) except numba kernels; at most 10 ``noqa`` / ``type: ignore``
comments, each with its reason on the line.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dicsbi"
KERNEL_MODULES = {"kernel.py"}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
MAX_SUPPRESSIONS = 10
NUMBA_DECORATORS = {"njit", "jit", "vectorize", "guvectorize", "stencil"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _code_lines(source: str) -> set[int]:
    """Line numbers holding code: not blank, not only a comment, not part of a docstring."""
    tree = ast.parse(source)
    docstring_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                first.value.value, str
            ):
                docstring_lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        if token.type == tokenize.ENDMARKER:
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
    return lines - docstring_lines


def _is_numba(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in NUMBA_DECORATORS:
            return True
    return False


def long_functions() -> list[str]:
    """Every non-numba function of the package with more than ``MAX_FUNCTION_LINES`` lines of code."""
    found = []
    for path in _modules():
        source = path.read_text()
        code = _code_lines(source)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_numba(node):
                span = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
                nested = set()
                for inner in ast.walk(node):
                    if inner is not node and isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                        nested.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
                n = len((span - nested) & code)
                if n > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({n} lines)")
    return found


CODES = r"[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*"
SUPPRESSION = re.compile(rf"#\s*(?:noqa(?::\s*{CODES})?|type:\s*ignore(?:\[[^\]]*\])?)(.*)$")


def suppressions() -> list[tuple[str, bool]]:
    """(location, has a reason) for every ``noqa`` / ``type: ignore`` comment in the package."""
    found = []
    for path in _modules():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = SUPPRESSION.search(line)
            if match:
                reason = match.group(1).strip(" -#:")
                found.append((f"{path.relative_to(PACKAGE.parent)}:{number}", len(reason) >= 8))
    return found


def test_no_module_over_450_lines():
    big = [
        f"{p.relative_to(PACKAGE.parent)} ({n})"
        for p in _modules()
        if p.name not in KERNEL_MODULES and (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert big == []


def test_no_function_over_60_lines_of_code():
    assert long_functions() == []


def test_suppressions_are_few_and_explained():
    found = suppressions()
    assert len(found) <= MAX_SUPPRESSIONS, found
    assert [where for where, explained in found if not explained] == []


def test_the_checker_counts_code_not_docstrings():
    body = "\n".join(f"    x{i} = {i}  # note" for i in range(61))
    source = f'def f():\n    """Doc.\n\n    More.\n    """\n    # a comment\n\n{body}\n'
    code = _code_lines(source)
    assert len(code) == 62  # the def line and 61 assignments
