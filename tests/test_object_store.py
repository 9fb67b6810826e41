"""Studies whose only storage is an S3 bucket: a real S3 API server on loopback (tests/_s3.py), no mocks.

Every test asserts the bucket's objects and that no local storage folder
appears, so a silent fall-back to a local folder fails them. The kill test
SIGKILLs the driver of a TPE study while a trial waits at the gate
(study/gate.py) and resumes it from the bucket: every trial once in MLflow
and once in the study's Optuna storage, every epoch once.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests._faults import (
    CLI,
    arm_gate,
    children,
    epochs_logged,
    kill_group,
    release,
    start,
    wait_for,
    wait_ready,
)
from tests._s3 import SECRET, S3Server
from tests.conftest import SPECS
from tests.test_tracking_server import Server

pytestmark = pytest.mark.slow
BUCKET = "lamp-bucket"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.bucket(BUCKET)
    yield server
    server.stop()


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def assert_secret_nowhere(
    s3: S3Server, client: MlflowClient, study: str, logs: str, bucket: str = BUCKET
) -> None:
    """The AWS secret is in no MLflow param or tag of the study, no log, no object of the bucket."""
    parent, runs = children(client, study)
    for run in [parent, *runs]:
        assert SECRET not in json.dumps([run.data.params, run.data.tags]), run.info.run_id
    assert SECRET not in logs
    for key in s3.keys(bucket):
        assert SECRET.encode() not in s3.read(bucket, key), key


@pytest.mark.parametrize("fault", ["unreachable endpoint", "missing bucket", "refused credentials"])
def test_an_unusable_object_store_exits_2_before_mlflow_or_ray(
    tmp_path: Path, s3: S3Server, fault: str
) -> None:
    env, uri = s3.env(), f"s3://{BUCKET}/studies"
    if fault == "unreachable endpoint":
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1"
    elif fault == "missing bucket":
        uri = "s3://no-such-bucket/studies"
    else:
        strict = S3Server(tmp_path, auth=True)  # checks credentials, and knows none
        env["AWS_ENDPOINT_URL"] = strict.endpoint
    try:
        res = _cli(
            ["run", str(SPECS / "two_trials.yaml"), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
             "--storage-path", uri],
            tmp_path, env,
        )  # fmt: skip
    finally:
        if fault == "refused credentials":
            strict.stop()
    expected = {"unreachable endpoint": "AWS_ENDPOINT_URL", "missing bucket": "bucket does not exist"}
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and f"storage path {uri} is not usable" in res.stderr
    assert expected.get(fault, "credentials were refused") in res.stderr
    assert SECRET not in res.stderr + res.stdout
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "lamp_storage").exists()


def test_a_study_keeps_all_its_state_in_the_bucket_and_artifacts_go_through_the_server(
    tmp_path: Path, s3: S3Server
) -> None:
    """The object-store recipe on one machine: Tune state in s3://, MLflow artifacts proxied to s3://.

    The study is one pack of two members: its checkpoint (each member's result
    files) is read back from the bucket and removed from it once logged.
    """
    server = Server(tmp_path, artifacts=f"s3://{BUCKET}/mlflow-artifacts", env=s3.env())
    server.start()
    try:
        res = _cli(
            ["run", str(SPECS / "two_packed.yaml"), "--tracking-uri", server.uri,
             "--storage-path", f"s3://{BUCKET}/e2e"],
            tmp_path, s3.env(),
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        summary = json.loads(res.stdout[res.stdout.index('{\n "status"') :])  # MLflow prints run links first
        assert summary["storage"] == f"s3://{BUCKET}/e2e/two_packed"
        client = MlflowClient(server.uri)
        parent, runs = children(client, "two_packed")
        assert sorted(r.data.params["factor"] for r in runs) == ["1.0", "10.0"]
        assert all(r.data.tags["lamp.status"] == "finished" for r in runs)
        assert len({r.data.tags["lamp.pack_id"] for r in runs}) == 1 and "auroc" in runs[0].data.metrics
        for run in runs:  # proxied: the run's artifacts are objects of the bucket
            assert run.info.artifact_uri.startswith("mlflow-artifacts:")
            assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"scores.npz", "model"}
        keys = s3.keys(BUCKET)
        for run in runs:
            assert any(k.startswith("mlflow-artifacts/") and run.info.run_id in k for k in keys)
        study = [k for k in keys if k.startswith("e2e/two_packed/")]
        assert {"e2e/two_packed/lamp_study.json", "e2e/two_packed/spec.yaml"} <= set(study)
        assert any(k.startswith("e2e/two_packed/experiment_state-") for k in study)
        assert not [k for k in study if "/checkpoint_" in k]  # logged to MLflow, then removed from the bucket
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["server.db", "reports_out", *(p.name for p in tmp_path.glob("moto-*.log"))]
        )  # no local storage folder, no local MLflow store or artifacts: only the CLI's copy of the report
        assert [p.name for p in (tmp_path / "reports_out").iterdir()] == ["two_packed.html"]
        assert_secret_nowhere(s3, client, "two_packed", res.stdout + res.stderr)
    finally:
        server.stop()


def _snapshot_in_bucket(s3: S3Server, prefix: str, trial_id: str, epoch: int) -> bool:
    """Whether a Tune experiment snapshot in the bucket holds the trial's result at `epoch`."""
    for key in s3.keys(BUCKET, prefix):
        if "/experiment_state-" not in key:
            continue
        try:
            state = json.loads(s3.read(BUCKET, key))
        except ValueError:
            continue
        for trial_json, meta_json in state["trial_data"]:
            if json.loads(trial_json)["trial_id"] == trial_id:
                return json.loads(meta_json)["last_result"].get("epoch") == epoch
    return False


def test_a_killed_tpe_driver_resumes_from_the_bucket_into_the_same_optuna_study(
    tmp_path: Path, s3: S3Server
) -> None:
    import optuna

    spec, name = SPECS / "gated_tpe.yaml", "gated_tpe"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--tracking-uri", uri, "--storage-path", f"s3://{BUCKET}/killed"]
    gate = arm_gate(tmp_path, {}, 3)  # the first trial pauses after epoch 3
    env = s3.env(LAMP_REPORT_INTERVAL_S="1", LAMP_TEST_GATE=str(gate))
    log = tmp_path / "run.log"
    driver = start([*CLI, "run", str(spec), *args], log, env)
    try:
        ready = wait_ready(gate, driver, log)
        wait_for(
            "a snapshot in the bucket that holds the gated trial at epoch 3",
            lambda: _snapshot_in_bucket(s3, f"killed/{name}/", ready["trial_id"], 3),
            driver,
            log,
        )
    finally:
        kill_group(driver)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")  # beside mlflow.db
    assert [t.state.name for t in optuna.load_study(study_name=name, storage=storage).trials] == ["RUNNING"]

    release(gate)
    log2 = tmp_path / "resume.log"
    resumed = start([*CLI, "resume", name, *args], log2, env)
    try:
        wait_for("resume to exit", lambda: resumed.poll() is not None, None, log2)
    finally:
        kill_group(resumed)
    assert resumed.returncode == 0, log2.read_text()[-3000:]

    client = MlflowClient(uri)
    parent, runs = children(client, name)
    assert parent.data.tags["lamp.status"] == "finished" and len(runs) == 3
    assert all(r.data.tags["lamp.status"] == "finished" and r.info.status == "FINISHED" for r in runs)
    cut = [r for r in runs if r.data.tags["lamp.trial_id"] == ready["trial_id"]]
    assert len(cut) == 1  # the cut trial went on in its own run
    for run in runs:  # every epoch once: the cut trial resumed from its checkpoint, nothing logged twice
        assert epochs_logged(client, run.info.run_id) == list(range(1, 7)), run.data.params
    trials = optuna.load_study(study_name=name, storage=storage).trials  # what optuna-dashboard opens
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3  # one Optuna study, every trial once
    optuna_factors = sorted(round(t.params["factor"], 6) for t in trials)
    assert optuna_factors == sorted(round(float(r.data.params["factor"]), 6) for r in runs)
    assert not (tmp_path / "lamp_storage").exists()
    keys = s3.keys(BUCKET, f"killed/{name}/")
    assert any("searcher-state" in k for k in keys) and f"killed/{name}/lamp_study.json" in keys
    assert_secret_nowhere(s3, client, name, log.read_text() + log2.read_text())
