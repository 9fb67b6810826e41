"""`lamp-study serve`: MLflow's real model server answers like `lamp-study score`, from a shell without the venv on PATH."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests._faults import wait_for
from tests.conftest import Study

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status


def _wait_ready(proc: subprocess.Popen, url: str) -> None:
    """Wait until the server answers /ping (fails if the process exits first or it never answers)."""

    def answers() -> bool:
        try:
            return _get(url) == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    wait_for("the model server to answer /ping", answers, proc)


@pytest.mark.slow
def test_served_model_scores_like_lamp_study_score(tiny_study: Study, tmp_path: Path) -> None:
    from study.data import load_images
    from study.serving.registry import register_best, score_model

    info = register_best(tiny_study.name, tracking_uri=tiny_study.tracking_uri, model_name="lamp-tiny-serve")
    uri = f"models:/{info['model_name']}@champion"
    port = _free_port()
    # A shell without the venv's bin on PATH: plain `mlflow models serve` fails there (uvicorn not found).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    cmd = [
        sys.executable,
        "-m",
        "study.cli",
        "serve",
        uri,
        "--port",
        str(port),
        "--tracking-uri",
        tiny_study.tracking_uri,
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/ping")
        images, ids = load_images("digits")
        batch = images[:16].numpy().astype(np.float32)
        body = json.dumps({"inputs": batch.tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            served = np.asarray(json.loads(resp.read())["predictions"], dtype=np.float64)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this test started: the server and its uvicorn workers
        proc.wait(timeout=60)
        stderr = proc.stderr.read()
    out = score_model(uri, "digits", out=tmp_path / "scores.csv", tracking_uri=tiny_study.tracking_uri)
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["sample"] for r in rows[:16]] == ids[:16]
    expected = np.array([float(r["score"]) for r in rows[:16]])
    assert served.shape == (16,)
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-9)  # the CSV keeps 8 significant digits
    assert len(set(np.round(served, 6))) > 1  # the model scores samples differently
    assert "Add type hints" not in stderr


def test_serve_an_unknown_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from study.cli import EXIT_USAGE, main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["serve", "models:/no-such-model@champion", "--tracking-uri", uri]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no model 'models:/no-such-model@champion'" in err and "Traceback" not in err


def test_serve_a_trial_run_exits_2_and_names_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial's run holds weights, not a servable model: the message points at `register` and `score`."""
    from study.cli import EXIT_USAGE, main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["serve", "runs:/" + "0" * 32, "--tracking-uri", uri]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "lamp-study register" in err and "lamp-study score" in err and "Traceback" not in err
