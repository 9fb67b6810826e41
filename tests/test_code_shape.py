"""Size limits that keep the code changeable: no module above ~400 lines, no class above ~150, no function above ~60.

A function may be longer when a comment on its `def` line gives the reason
(e.g. one flat branch per case); modules owned by work in progress are listed
below with why they are allowed for now.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("study", "reports")
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 400, 150, 60
# module -> why it may exceed MAX_MODULE for now. Each names code another branch owns this round; remove
# the entry when that branch lands its split (the coordinator merges them).
_OTHERS = "owned by another branch this round (issue 13 item 4 asks for its split); listed, not edited here"
KNOWN_LONG_MODULES: dict[str, str] = {}
# "module:name" -> why that class or function may exceed its limit for now
KNOWN_LONG_DEFS = {
    "study/trial.py:run_trial": _OTHERS,
    "study/train.py:train": _OTHERS,
    "study/labelfree.py:label_free_scores": _OTHERS,
}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _long_defs(path: Path) -> list[str]:
    """`name: n lines > limit` for every class or function over its limit without a reason on its def line."""
    source = path.read_text()
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        size = node.end_lineno - start + 1
        def_line = lines[node.lineno - 1]
        if (
            size > limit
            and "#" not in def_line
            and f"{path.relative_to(ROOT)}:{node.name}" not in KNOWN_LONG_DEFS
        ):
            out.append(f"{node.name}: {size} lines > {limit}")
    return out


def test_the_limits_see_every_module() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _modules()}
    assert {"study/cli.py", "study/spec/_schema.py", "study/data/npz.py", "reports/build.py"} <= names
    assert set(KNOWN_LONG_MODULES) <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_size(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    n = len(path.read_text().splitlines())
    assert n <= MAX_MODULE or rel in KNOWN_LONG_MODULES, (
        f"{rel}: {n} lines > {MAX_MODULE}; split it by concept"
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_class_and_function_size(path: Path) -> None:
    assert _long_defs(path) == [], (
        f"{path.relative_to(ROOT)}: split these, or give the reason on the def line"
    )


def test_import_study_spec_does_not_import_torch() -> None:
    """`validate` and `--help` stay fast: the spec package loads registries (and torch) only when it checks names."""
    import subprocess
    import sys

    code = "import sys, study.spec, study.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
