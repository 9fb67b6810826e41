"""The MLflow tracking server goes away mid-study: a real `mlflow server` process, stopped and started again.

The gate (study/runner/_gate.py) holds the factor-10 trial of tests/specs/gated.yaml
while the server is stopped; once released, the driver's next write meets no
server. It retries with backoff and goes on when the server is back; past
$LAMP_TRACKING_RETRY_S it stops as `interrupted`, and `resume` logs the rest.
Either way MLflow ends with every trial once and every epoch once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.spec import load_spec
from study.tracking.store import TrackingError, check_tracking_uri
from tests._faults import (
    CLI,
    arm_gate,
    children,
    epochs_logged,
    gate_env,
    kill_group,
    release,
    start,
    wait_for,
    wait_ready,
)
from tests.conftest import SPECS

pytestmark = pytest.mark.slow
SPEC = SPECS / "gated.yaml"


class Server:
    """`mlflow server` on 127.0.0.1 with a sqlite store that outlives the process."""

    def __init__(self, root: Path, artifacts: str | None = None, env: dict[str, str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root = root
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.artifacts = artifacts or str(root / "artifacts")  # an s3:// destination: proxied to the bucket
        self.env = env

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--backend-store-uri", f"sqlite:///{self.root / 'server.db'}"),
                *("--artifacts-destination", self.artifacts, "--workers", "1"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=self.env,
        )

        def up() -> bool:
            try:
                check_tracking_uri(self.uri, timeout_s=2)
            except TrackingError:
                return False
            return True

        wait_for("the mlflow server to answer /health", up, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def _assert_every_trial_once(uri: str) -> None:
    spec = load_spec(SPEC)
    client = MlflowClient(uri)
    parent, runs = children(client, spec.name)
    factors = sorted(r.data.params["factor"] for r in runs)
    assert factors == ["1.0", "10.0", "3.0", "30.0"]  # nothing lost, nothing duplicated
    for run in runs:
        assert run.data.tags["lamp.status"] == "finished" and run.info.status == "FINISHED"
        assert epochs_logged(client, run.info.run_id) == list(range(1, 7)), run.data.params["factor"]
        assert "auroc" in run.data.metrics
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"scores.npz", "model"}
    assert parent.data.tags["lamp.status"] == "finished"


def _run_until_outage(
    tmp_path: Path, server: Server, retry_s: str
) -> tuple[subprocess.Popen, Path, list[str]]:
    """Start the study, stop the server while the gated trial waits, release it, and see the driver retry."""
    gate = arm_gate(tmp_path, {"factor": "10.0"}, 3)
    args = ["--tracking-uri", server.uri, "--storage-path", str(tmp_path / "storage")]
    log = tmp_path / "run.log"
    driver = start([*CLI, "run", str(SPEC), *args], log, gate_env(gate, LAMP_TRACKING_RETRY_S=retry_s))
    wait_ready(gate, driver, log)
    server.stop()
    release(gate)
    wait_for("the driver to meet the stopped server", lambda: "unreachable" in log.read_text(), driver, log)
    return driver, log, args


def test_a_short_outage_is_retried_and_nothing_is_lost(tmp_path: Path, server: Server) -> None:
    driver, log, _ = _run_until_outage(tmp_path, server, retry_s="600")
    try:
        assert driver.poll() is None  # it waits for the server instead of failing
        server.start()
        wait_for("the study to end", lambda: driver.poll() is not None)
    finally:
        kill_group(driver)
    assert driver.returncode == 0, log.read_text()[-3000:]
    _assert_every_trial_once(server.uri)


def test_a_long_outage_stops_the_study_as_interrupted_and_resume_completes_it(
    tmp_path: Path, server: Server
) -> None:
    driver, log, args = _run_until_outage(tmp_path, server, retry_s="2")
    try:
        wait_for("the driver to give up", lambda: driver.poll() is not None)
    finally:
        kill_group(driver)
    text = log.read_text()
    assert driver.returncode == 1, text[-3000:]
    assert "LAMP_TRACKING_RETRY_S" in text and "lamp-study resume gated" in text and "Traceback" not in text

    server.start()
    log = tmp_path / "resume.log"
    resumed = start([*CLI, "resume", "gated", *args], log, dict(os.environ))
    try:
        wait_for("resume to end", lambda: resumed.poll() is not None)
    finally:
        kill_group(resumed)
    assert resumed.returncode == 0, log.read_text()[-3000:]
    _assert_every_trial_once(server.uri)
