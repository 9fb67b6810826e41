"""Helpers of the fault tests: arm the trial gate, wait on its events, read MLflow and Tune snapshots.

Every wait polls an event the test controls (a file the gated trial writes, a
snapshot Tune writes after it); the deadline only turns a hang into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from study.runner._gate import GATE_ENV, GATE_FILE, READY, RELEASE

CLI = [sys.executable, "-m", "study.cli"]
HANG_S = 300  # a wait longer than this is a hang: fail with the driver's log


def arm_gate(root: Path, match: dict[str, str], epoch: int) -> Path:
    """A gate directory that pauses the trial whose params match, after `epoch`."""
    gate = root / "gate"
    gate.mkdir()
    (gate / GATE_FILE).write_text(json.dumps({"match": match, "epoch": epoch}))
    return gate


def release(gate: Path) -> None:
    (gate / RELEASE).touch()


def gate_env(gate: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, GATE_ENV: str(gate), **extra}


def wait_for(
    what: str, check: Callable[[], Any], proc: subprocess.Popen | None = None, log: Path | None = None
) -> Any:
    """Poll `check` until it returns something truthy; fail if `proc` exits first or it hangs."""
    deadline = time.monotonic() + HANG_S
    while True:
        value = check()
        if value:
            return value
        tail = log.read_text()[-3000:] if log and log.exists() else ""
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}:\n{tail}")
        if time.monotonic() > deadline:
            raise AssertionError(f"hung waiting for {what}:\n{tail}")
        time.sleep(0.1)


def wait_ready(gate: Path, proc: subprocess.Popen | None = None, log: Path | None = None) -> dict[str, Any]:
    """The gated trial's signal: its trial id, Ray node id and epoch."""
    path = gate / READY
    return wait_for(
        "the gated trial to signal ready", lambda: path.exists() and json.loads(path.read_text()), proc, log
    )


def snapshot_holds(exp_dir: Path, trial_id: str, epoch: int, after_ns: int) -> bool:
    """Whether a Tune experiment snapshot written after `after_ns` has the trial's result at `epoch`."""
    for path in exp_dir.glob("experiment_state-*.json"):
        if path.stat().st_mtime_ns <= after_ns:
            continue
        try:
            state = json.loads(path.read_text())
        except ValueError:  # being written: look again
            continue
        for trial_json, meta_json in state["trial_data"]:
            if json.loads(trial_json)["trial_id"] == trial_id:
                return json.loads(meta_json)["last_result"].get("epoch") == epoch
    return False


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A CLI process in its own session, so killing it takes its local Ray along."""
    out = log.open("w")
    return subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True, env=env)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def children(client: MlflowClient, study: str) -> tuple[Any, list[Any]]:
    """The study's parent run and all its child runs (deleted ones included)."""
    from mlflow.entities import ViewType

    exp = client.get_experiment_by_name(study)
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`lamp.role` = 'study'")[0]
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        run_view_type=ViewType.ALL,
        max_results=1000,
    )
    return parent, runs


def epochs_logged(client: MlflowClient, run_id: str) -> list[int]:
    """The steps of the per-epoch training loss, sorted (an epoch logged twice shows twice)."""
    return sorted(m.step for m in client.get_metric_history(run_id, "train_base_loss"))
