"""README's object-store cluster recipe: nodes that share nothing but an S3 bucket and the MLflow server.

A head (zero CPUs, so trials run on the worker) and one worker started with
`ray start`, each with its own HOME, TMPDIR and Ray directory; an `mlflow
server` whose artifacts are proxied to the bucket; drivers run `lamp-study run
--address` from their own HOME and working directory. No process is handed a
path another one writes: if the study fell back to a local folder, the
bucket's objects would be missing and a local folder would appear. The test
ends only the processes it started (never `ray stop`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from mlflow import MlflowClient

from tests._faults import CLI, children
from tests._s3 import S3Server
from tests.test_cluster import BIN, REPO, _free_port, _ours
from tests.test_object_store import assert_secret_nowhere
from tests.test_tracking_server import Server

pytestmark = pytest.mark.slow
BUCKET = "lamp-cluster"
SPEC = REPO / "tests" / "specs" / "two_trials.yaml"


class Cluster(NamedTuple):
    s3: S3Server
    mlflow: Server
    gcs: str
    root: Path


def _node_env(root: Path, name: str, s3: S3Server) -> dict[str, str]:
    """A machine of its own: HOME and TMPDIR nobody else uses, the AWS variables, this checkout importable."""
    home = root / name
    (home / "tmp").mkdir(parents=True)
    env = s3.env(HOME=str(home), TMPDIR=str(home / "tmp"), RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO))
    env["PATH"] = f"{BIN}:{env['PATH']}"
    for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    return env


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    res = subprocess.run(
        [str(BIN / "ray"), "start", *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("osc")
    ray_dir = tempfile.mkdtemp(prefix="lo", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    s3 = S3Server(root)
    s3.bucket(BUCKET)
    # the server alone holds artifact credentials: clients upload through it (mlflow-artifacts:)
    mlflow = Server(root / "mlflow", artifacts=f"s3://{BUCKET}/mlflow-artifacts", env=s3.env())
    (root / "mlflow").mkdir()
    mlflow.start()
    gcs = _free_port()
    try:
        _ray_start(
            ["--head", "--num-cpus", "0", "--port", str(gcs), "--include-dashboard", "false",
             "--temp-dir", f"{ray_dir}/h", "--disable-usage-stats"],
            _node_env(root, "head", s3),
        )  # fmt: skip
        _ray_start(
            ["--address", f"127.0.0.1:{gcs}", "--num-cpus", "2", "--temp-dir", f"{ray_dir}/w",
             "--disable-usage-stats"],
            _node_env(root, "worker", s3),
        )  # fmt: skip
        yield Cluster(s3, mlflow, f"127.0.0.1:{gcs}", root)
    finally:
        for pid in _ours(ray_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_dir, ignore_errors=True)
        mlflow.stop()
        s3.stop()


def _driver(c: Cluster, name: str) -> tuple[subprocess.Popen, Path]:
    """`lamp-study run` from a machine of its own, the study named `name`, storage only in the bucket."""
    env = _node_env(c.root, f"driver-{name}", c.s3)
    cwd = c.root / f"driver-{name}"
    cmd = [
        *(*CLI, "run", str(SPEC), "--name", name, "--address", c.gcs),
        *("--storage-path", f"s3://{BUCKET}/studies", "--tracking-uri", c.mlflow.uri),
    ]
    log = cwd / "driver.log"
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=out, start_new_session=True), log


def _wait(proc: subprocess.Popen, log: Path) -> str:
    try:
        proc.wait(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def _assert_study_in_bucket(c: Cluster, name: str, log: str) -> set[str]:
    """The study finished, each trial once, on the worker, its files in the bucket; its runs' trial ids."""
    client = MlflowClient(c.mlflow.uri)
    parent, runs = children(client, name)
    assert parent.data.tags["lamp.status"] == "finished"
    assert sorted(r.data.params["factor"] for r in runs) == ["1.0", "10.0"], name
    assert all(r.data.tags["lamp.status"] == "finished" and r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params["study.name"] == name for r in [parent])
    keys = set(c.s3.keys(BUCKET))
    assert {f"studies/{name}/lamp_study.json", f"studies/{name}/spec.yaml"} <= keys
    assert any(k.startswith(f"studies/{name}/experiment_state-") for k in keys)
    for run in runs:
        assert any(k.startswith("mlflow-artifacts/") and run.info.run_id in k for k in keys)
    driver_dir = c.root / f"driver-{name}"
    # no local storage or store: only the CLI's copy of the report
    assert sorted(p.name for p in driver_dir.iterdir()) == ["driver.log", "reports_out", "tmp"]
    assert (
        json.JSONDecoder().raw_decode(log, log.index('{\n "status"'))[0]["storage"]
        == f"s3://{BUCKET}/studies/{name}"
    )
    assert_secret_nowhere(c.s3, client, name, log, BUCKET)
    return {r.data.tags["lamp.trial_id"] for r in runs}


def _worker_nodes(c: Cluster) -> set[str]:
    code = (
        f"import ray; ray.init(address='{c.gcs}'); "
        "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive'] and n['Resources'].get('CPU', 0) > 0))"
    )
    env = _node_env(c.root, f"probe-{len(list(c.root.glob('probe-*')))}", c.s3)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return set(res.stdout.split())


def test_a_study_on_a_two_node_cluster_keeps_its_state_only_in_the_bucket(cluster: Cluster) -> None:
    proc, log = _driver(cluster, "solo")
    _assert_study_in_bucket(cluster, "solo", _wait(proc, log))
    client = MlflowClient(cluster.mlflow.uri)
    _, runs = children(client, "solo")
    workers = _worker_nodes(cluster)
    assert (
        len(workers) == 1 and {r.data.tags["lamp.node_id"] for r in runs} == workers
    )  # trials ran on the worker


def test_two_studies_at_once_share_cluster_bucket_and_server_without_crossing(cluster: Cluster) -> None:
    started = [(name, *_driver(cluster, name)) for name in ("left", "right")]  # both before either ends
    ids = {name: _assert_study_in_bucket(cluster, name, _wait(proc, log)) for name, proc, log in started}
    assert not ids["left"] & ids["right"]  # no trial logged to both
    client = MlflowClient(cluster.mlflow.uri)
    for name in ("left", "right"):
        exp = client.get_experiment_by_name(name)
        runs = client.search_runs([exp.experiment_id], max_results=100)
        assert len(runs) == 3  # the parent and its two trials: nothing of the other study
        state = json.loads(cluster.s3.read(BUCKET, f"studies/{name}/lamp_study.json"))
        assert state["parent_run_id"] in {r.info.run_id for r in runs}
