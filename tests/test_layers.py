"""Layer rules of the package tree, each checked in a fresh interpreter (what a layer's imports load).

The layers, bottom up: study/core (config, errors, vocabularies: no torch,
MLflow or Ray); the trial layer (data, training, trial, landscape, labelfree,
packing: torch, no Ray or MLflow); selection and spec; tracking (MLflow
writes); runner (every Ray import); serving; reports (MLflow reads and
Plotly: no torch, no Ray); the CLI on top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ("study/core",)
TRIAL_LAYER = (
    "study/data",
    "study/training",
    "study/trial",
    "study/landscape",
    "study/labelfree",
    "study/packing",
)
REPORTS = ("reports",)
RUNNER = "study/runner"
HEAVY = ("torch", "mlflow", "ray")


def _modules(*folders: str, exclude: str | None = None) -> list[str]:
    """Dotted names of every module under `folders` (package `__init__`s and `__main__` left out)."""
    out = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            if path.name == "__main__.py" or (exclude and rel.as_posix().startswith(exclude)):
                continue
            parts = rel.parts[:-1] if path.name == "__init__.py" else rel.parts
            out.append(".".join(parts))
    return out


def _loaded(modules: list[str]) -> set[str]:
    """Which of torch, MLflow and Ray a fresh interpreter has loaded after importing `modules`."""
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(' '.join(p for p in {HEAVY!r} if p in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


def test_the_layers_list_real_modules() -> None:
    assert "study.core.vocab" in _modules(*CORE)
    assert {"study.trial.run", "study.landscape.hessian", "study.training.train"} <= set(
        _modules(*TRIAL_LAYER)
    )
    assert {"reports.sections.effects", "reports.source.extract"} <= set(_modules(*REPORTS))


def test_core_imports_no_torch_mlflow_or_ray() -> None:
    assert _loaded(_modules(*CORE)) == set()


def test_trial_layer_imports_no_ray_or_mlflow() -> None:
    assert _loaded(_modules(*TRIAL_LAYER)) <= {"torch"}


def test_reports_import_no_torch_or_ray() -> None:
    assert _loaded(_modules(*REPORTS)) <= {"mlflow"}


def test_only_the_runner_loads_ray() -> None:
    """Every other module of study/ and reports/ imports without Ray (the CLI imports the runner in commands)."""
    assert "ray" not in _loaded(_modules("study", "reports", exclude=RUNNER))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement in a file, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _sources() -> list[Path]:
    return sorted(p for pkg in ("study", "reports") for p in (ROOT / pkg).rglob("*.py"))


def test_no_ray_import_outside_the_runner_source() -> None:
    """The static half of the rule: lazy imports inside functions count too."""
    offenders = [
        f"{p.relative_to(ROOT)}: {mod}"
        for p in _sources()
        if not p.relative_to(ROOT).as_posix().startswith(RUNNER)
        for mod, _ in _imports(p)
        if mod == "ray" or mod.startswith("ray.")
    ]
    assert offenders == []


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return ".".join(rel[:2]) if len(rel) > 2 else rel[0]


@pytest.mark.parametrize("kind", ["module", "name"])
def test_no_private_imports_across_packages(kind: str) -> None:
    """A package's private modules and names are its own: others use its `__init__`'s public face."""
    offenders = []
    for p in _sources():
        for mod, names in _imports(p):
            own = _package(p)
            if not mod.startswith(("study.", "reports.")) or mod == own or mod.startswith(own + "."):
                continue
            private_module = any(part.startswith("_") for part in mod.split("."))
            private_names = [n for n in names if n.startswith("_")]
            if (kind == "module" and private_module) or (kind == "name" and private_names):
                offenders.append(f"{p.relative_to(ROOT)}: from {mod} import {', '.join(names)}")
    assert offenders == []


def test_package_faces_export_no_private_names() -> None:
    offenders = []
    for init in sorted(p for pkg in ("study", "reports") for p in (ROOT / pkg).rglob("__init__.py")):
        for node in ast.parse(init.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                offenders += [
                    f"{init.relative_to(ROOT)}: {e.value}" for e in node.value.elts if e.value.startswith("_")
                ]
    assert offenders == []
