"""Benchmarks that cannot rot: every script in bench/ runs its `--smoke-test` here, so one that breaks turns CI red.

A smoke test runs the benchmark's real code path at tiny sizes and must end by
printing its ratio (a line with a number). The numbers are not checked: on a
shared machine they are noise at these sizes; bench/RESULTS.md holds the real runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())
# the smoke tests that take about 10 CPU seconds or less (bench/RESULTS.md); the others are `slow`
FAST = {"label_free_cost.py", "measure_cost.py", "report_speed.py"}


def test_every_bench_script_has_a_smoke_test() -> None:
    assert SCRIPTS, "no benchmark scripts found"
    missing = [name for name in SCRIPTS if '"--smoke-test"' not in (BENCH / name).read_text()]
    assert not missing, f"benchmarks without --smoke-test: {missing}"
    assert set(FAST) <= set(SCRIPTS), set(FAST) - set(SCRIPTS)


def _run(name: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "LAMP_BENCH_CACHE": str(tmp_path / "cache"),  # trials really run: nothing from an earlier cache
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), "--smoke-test"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{name} --smoke-test exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines and re.search(r"\d", lines[-1]), f"{name} printed no result last:\n{proc.stdout[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in SCRIPTS]
)
def test_bench_smoke(name: str, tmp_path: Path) -> None:
    _run(name, tmp_path)
