"""Faults struck at a known point of a study (the trial gate, study/runner/_gate.py), checked against MLflow itself.

tests/specs/gated.yaml runs four trials one at a time in grid order (factor 1,
3, 10, 30); the gate pauses the factor-10 trial after its checkpointed report
at epoch 3, so when a fault strikes, exactly two trials have finished, one is
cut at epoch 3 and one has not started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from mlflow import MlflowClient

from study.runner._gate import GATE_ENV, READY
from study.spec import StudySpec, load_spec
from tests._faults import (
    CLI,
    arm_gate,
    children,
    epochs_logged,
    gate_env,
    kill_group,
    release,
    snapshot_holds,
    start,
    wait_for,
    wait_ready,
)
from tests.conftest import SPECS

pytestmark = pytest.mark.slow
SPEC = SPECS / "gated.yaml"
GATE_EPOCH = 3


def _by_factor(runs: list) -> dict[str, object]:
    by = {r.data.params["factor"]: r for r in runs}
    assert len(by) == len(runs), "two runs for one trial"
    return by


class _Gated(NamedTuple):
    """A driver running tests/specs/gated.yaml whose factor-10 trial pauses after GATE_EPOCH."""

    spec: StudySpec
    uri: str
    args: list[str]  # tracking URI and Tune storage, for `run` and `resume`
    gate: Path
    env: dict[str, str]
    driver: subprocess.Popen
    log: Path


def _start_gated(tmp_path: Path) -> _Gated:
    spec = load_spec(SPEC)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--tracking-uri", uri, "--storage-path", str(tmp_path / "storage")]
    gate = arm_gate(tmp_path, {"factor": "10.0"}, GATE_EPOCH)
    # snapshots every second (TUNE_GLOBAL_CHECKPOINT_S follows the report interval), so one follows `ready` soon
    env = gate_env(gate, LAMP_REPORT_INTERVAL_S="1")
    log = tmp_path / "run.log"
    return _Gated(spec, uri, args, gate, env, start([*CLI, "run", str(SPEC), *args], log, env), log)


def test_killed_driver_resumes_the_cut_trial_from_its_checkpoint(tmp_path: Path) -> None:
    spec, uri, args, gate, env, driver, log = _start_gated(tmp_path)
    epochs = int(spec.base_config()["epochs"])
    storage = tmp_path / "storage"
    try:
        ready = wait_ready(gate, driver, log)
        after = (gate / READY).stat().st_mtime_ns
        wait_for(
            "a Tune snapshot that holds the gated trial at its gate epoch",
            lambda: snapshot_holds(storage / spec.name, ready["trial_id"], GATE_EPOCH, after),
            driver,
            log,
        )
    finally:
        kill_group(driver)

    client = MlflowClient(uri)
    _, before = children(client, spec.name)
    by = _by_factor(before)
    assert {f: r.data.tags["lamp.status"] for f, r in by.items()} == {
        "1.0": "finished",
        "3.0": "finished",
        "10.0": "running",  # the driver died without a word: the run is still open
    }  # factor 30 never started
    cut = by["10.0"]
    assert cut.data.tags["lamp.trial_id"] == ready["trial_id"]
    assert epochs_logged(client, cut.info.run_id) == list(range(1, GATE_EPOCH + 1))
    kept = {f: (by[f].info.run_id, by[f].info.end_time) for f in ("1.0", "3.0")}

    # A resumed trial that restarted from scratch would pass epoch 3 again and signal `ready` again.
    (gate / READY).unlink()
    log = tmp_path / "resume.log"
    resumed = start([*CLI, "resume", spec.name, *args], log, env)
    try:
        outcome = wait_for(
            "resume to exit",
            lambda: "regated" if (gate / READY).exists() else resumed.poll() is not None and "exited",
        )
    finally:
        kill_group(resumed)
    assert outcome == "exited", "the cut trial re-ran its gate epoch: it restarted instead of resuming"
    assert resumed.returncode == 0, log.read_text()[-3000:]

    parent, after_runs = children(client, spec.name)
    by = _by_factor(after_runs)
    assert sorted(by) == ["1.0", "10.0", "3.0", "30.0"]  # nothing lost, nothing duplicated
    assert all(r.data.tags["lamp.status"] == "finished" and r.info.status == "FINISHED" for r in after_runs)
    assert {f: (by[f].info.run_id, by[f].info.end_time) for f in kept} == kept  # finished runs left alone
    assert by["10.0"].info.run_id == cut.info.run_id  # the cut trial went on in its own run
    for run in after_runs:  # every epoch once, the cut trial's included
        assert epochs_logged(client, run.info.run_id) == list(range(1, epochs + 1)), run.data.params["factor"]
    assert parent.data.tags["lamp.status"] == "finished"


def test_lost_worker_node_retries_its_trial_in_the_same_run(tmp_path: Path) -> None:
    """A zero-CPU head and two 1-CPU workers; the node running the gated trial is removed while it waits."""
    import threading

    import ray
    from ray.cluster_utils import Cluster

    from tests.conftest import run_small_study

    gate = arm_gate(tmp_path, {"factor": "10.0"}, GATE_EPOCH)
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    outcome: dict[str, object] = {}
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        os.environ[GATE_ENV] = str(gate)  # read by the driver, which runs in this process

        def drive() -> None:
            try:
                outcome["study"] = run_small_study(SPEC, tmp_path, address=cluster.address)
            except BaseException as err:  # reported by the main thread
                outcome["error"] = err

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        ready = wait_for(
            "the gated trial to signal ready",
            lambda: (
                "error" in outcome or ((gate / READY).exists() and json.loads((gate / READY).read_text()))
            ),
        )
        assert "error" not in outcome, outcome["error"]
        lost = next(n for n in workers if n.node_id == ready["node_id"])
        survivor = next(n for n in workers if n is not lost)
        cluster.remove_node(lost, allow_graceful=False)
        # the trial's worker process outlives its raylet for a moment: release only once it is gone
        wait_for(
            "the gated trial's worker to die with its node",
            lambda: not Path(f"/proc/{ready['pid']}").exists(),
        )
        release(gate)
        driver.join(timeout=300)
        assert not driver.is_alive(), "the study hung after losing a node"
        assert "error" not in outcome, outcome["error"]
    finally:
        os.environ.pop(GATE_ENV, None)
        ray.shutdown()
        cluster.shutdown()

    study = outcome["study"]
    assert study.summary["status"] == "finished"
    client = MlflowClient(study.tracking_uri)
    parent, runs = children(client, study.name)
    by = _by_factor(runs)
    assert sorted(by) == ["1.0", "10.0", "3.0", "30.0"]  # one run per trial: the retry did not add one
    assert all(r.data.tags["lamp.status"] == "finished" and r.info.status == "FINISHED" for r in runs)
    retried = by["10.0"]
    assert retried.data.tags["lamp.trial_id"] == ready["trial_id"]
    assert retried.data.tags["lamp.attempts"] == "2"
    assert retried.data.tags["lamp.node_id"] == survivor.node_id  # it finished on the node that was left
    assert {by[f].data.tags["lamp.attempts"] for f in ("1.0", "3.0", "30.0")} == {"1"}
    for run in runs:  # every epoch once: the retry went on from the checkpoint at the gate epoch
        assert epochs_logged(client, run.info.run_id) == list(range(1, 7)), run.data.params["factor"]
    assert parent.data.tags["lamp.status"] == "finished"


def test_ctrl_c_interrupts_the_study_and_resume_reattaches_the_cut_run(tmp_path: Path) -> None:
    """SIGINT to the driver, as Ctrl-C sends it, while the gated trial waits after epoch 3.

    Tune stops gracefully: exit 1, the study `interrupted`, the cut trial's run KILLED with
    lamp.status `interrupted`; `resume` re-attaches that run and finishes every trial once.
    """
    spec, uri, args, gate, env, driver, log = _start_gated(tmp_path)
    epochs = int(spec.base_config()["epochs"])
    try:
        ready = wait_ready(gate, driver, log)
        client = MlflowClient(uri)
        wait_for(  # the cut trial's epochs are in MLflow before the interrupt
            "the gated trial's epochs in MLflow",
            lambda: (
                (cut := [r for r in children(client, spec.name)[1] if r.data.params.get("factor") == "10.0"])
                and epochs_logged(client, cut[0].info.run_id) == list(range(1, GATE_EPOCH + 1))
            ),
            driver,
            log,
        )
        os.kill(driver.pid, signal.SIGINT)
        wait_for("the driver to exit after Ctrl-C", lambda: driver.poll() is not None, None, log)
    finally:
        kill_group(driver)
    assert driver.returncode == 1, log.read_text()[-3000:]
    assert f"lamp-study resume {spec.name}" in log.read_text()

    parent, before = children(client, spec.name)
    by = _by_factor(before)
    assert parent.data.tags["lamp.status"] == "interrupted"
    assert {f: r.data.tags["lamp.status"] for f, r in by.items() if f != "30.0"} == {
        "1.0": "finished",
        "3.0": "finished",
        "10.0": "interrupted",
    }
    cut = by["10.0"]
    assert cut.info.status == "KILLED" and cut.data.tags["lamp.trial_id"] == ready["trial_id"]

    release(gate)  # the resumed trial passes its gate epoch without waiting
    log = tmp_path / "resume.log"
    resumed = start([*CLI, "resume", spec.name, *args], log, env)
    try:
        wait_for("resume to exit", lambda: resumed.poll() is not None, None, log)
    finally:
        kill_group(resumed)
    assert resumed.returncode == 0, log.read_text()[-3000:]
    parent, after = children(client, spec.name)
    by = _by_factor(after)
    assert sorted(by) == ["1.0", "10.0", "3.0", "30.0"] and by["10.0"].info.run_id == cut.info.run_id
    assert all(r.data.tags["lamp.status"] == "finished" and r.info.status == "FINISHED" for r in after)
    for run in after:  # every epoch once, the interrupted trial's included
        assert epochs_logged(client, run.info.run_id) == list(range(1, epochs + 1)), run.data.params["factor"]
    assert parent.data.tags["lamp.status"] == "finished"
