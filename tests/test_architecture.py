"""The shape of the code (docs/architecture.md): imports point down, and imports inside functions
are rare and say why.

`make lint` runs the import contracts of pyproject.toml (`lint-imports`); the test below runs
them too, so that a developer who runs only the tests learns of an import that points up.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("scheduler", "agents", "tournaments", "config")

# The imports inside functions in product code (migrations aside), each with its reason. The
# number may go down; it goes up only with a reason that holds (an optional dependency, Django's
# app registry, a module that must not load in every process), never to dodge an import cycle.
FUNCTION_LEVEL_IMPORTS_AT_MOST = 10


def _function_level_imports() -> Iterator[tuple[str, int, bool]]:
    """(path, line, whether a comment says why) for each import inside a function."""
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = path.read_text().splitlines()
            seen: set[int] = set()
            for function in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno not in seen:
                        seen.add(node.lineno)
                        yield str(path.relative_to(ROOT)), node.lineno, _has_reason(lines, node)


def _has_reason(lines: list[str], node: ast.Import | ast.ImportFrom) -> bool:
    """A comment on the import's line, or above the block of imports it belongs to."""
    if "#" in lines[node.lineno - 1]:
        return True
    above = node.lineno - 2
    while above >= 0 and _continues_imports(lines[above]):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def _continues_imports(line: str) -> bool:
    text = line.strip()
    return text.startswith(("from ", "import ")) or text == ")" or text.endswith(",")


def test_every_import_inside_a_function_says_why():
    unexplained = [f"{path}:{line}" for path, line, why in _function_level_imports() if not why]

    assert unexplained == [], (
        "an import inside a function needs a comment saying why (an optional dependency, "
        "Django's app registry); to break an import cycle, move code down a layer instead "
        "(docs/architecture.md)"
    )


def test_imports_inside_functions_do_not_grow():
    count = sum(1 for _ in _function_level_imports())

    assert count <= FUNCTION_LEVEL_IMPORTS_AT_MOST, (
        f"{count} imports inside functions (at most {FUNCTION_LEVEL_IMPORTS_AT_MOST}): "
        "import at the top of the module"
    )


def test_the_import_contracts_hold():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.skip("import-linter is not installed (requirements/dev.txt has it)")

    done = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stdout[-4000:]
