"""Shared fixtures: a real small study through real Ray Tune and a real sqlite MLflow."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# CI replays the same generated examples every run (a red CI must be reproducible); local runs explore new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

SPECS = Path(__file__).parent / "specs"


@dataclass
class Study:
    """A finished study: its name, where MLflow and Tune keep it, and the runner's summary."""

    name: str
    tracking_uri: str
    storage: Path
    summary: dict[str, Any]
    n_trials: int


def run_small_study(spec_file: Path, root: Path, **kwargs: Any) -> Study:
    """Run a spec through `study.runner.run_study` with its own sqlite store and storage."""
    from study.runner import run_study
    from study.spec import load_spec

    spec = load_spec(spec_file)
    uri = kwargs.pop("tracking_uri", f"sqlite:///{root / 'mlflow.db'}")
    summary = run_study(spec, tracking_uri=uri, storage_path=str(root / "storage"), **kwargs)
    return Study(summary["study"], uri, root / "storage", summary, spec.n_trials)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """tests/specs/tiny.yaml run once per session on a local in-process Ray."""
    return run_small_study(SPECS / "tiny.yaml", tmp_path_factory.mktemp("tiny_study"))
