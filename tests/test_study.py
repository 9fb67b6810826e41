"""Studies end to end through real Ray Tune and real MLflow (sqlite, and a real server over HTTP)."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from study.spec import load_spec
from tests._faults import wait_for
from tests.conftest import SPECS, Study, run_small_study

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "study.cli"]


def _children(client: MlflowClient, study: str) -> tuple[object, list]:
    exp = client.get_experiment_by_name(study)
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`lamp.role` = 'study'")[0]
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        max_results=1000,
    )
    return parent, runs


def test_every_trial_is_one_child_run_with_its_status(tiny_study: Study) -> None:
    client = MlflowClient(tiny_study.tracking_uri)
    parent, runs = _children(client, tiny_study.name)
    assert len(runs) == tiny_study.n_trials == len(load_spec(SPECS / "tiny.yaml").expand())
    assert len({r.data.tags["lamp.trial_id"] for r in runs}) == len(runs)
    statuses = [r.data.tags["lamp.status"] for r in runs]
    assert set(statuses) <= {"finished", "diverged", "degenerate"}
    # linear at lambda = 1e5 (and its twin at lr x 1e5) trains a model worse than the mean image and
    # below chance (test AUROC 0.45): degenerate, never a model (study/degenerate.py)
    for run in runs:
        if run.data.tags["lamp.status"] == "degenerate":
            assert run.data.params["factor"] == "100000.0" or run.data.params["twin_of"] == "100000.0"
            assert run.data.metrics["beats_baseline"] == 0.0 and run.data.metrics["degenerate"] == 1.0
    # exp at lambda = 1e5 overflows: recorded as diverged, and the study still finished
    diverged = [r for r in runs if r.data.tags["lamp.status"] == "diverged"]
    assert diverged and all(r.data.params["amplification"] == "exp" for r in diverged)
    assert all(r.data.metrics["diverged_epoch"] == 1 for r in diverged)
    assert parent.data.tags["lamp.status"] == "finished" and parent.info.status == "FINISHED"
    assert tiny_study.summary["trials"] == {s: statuses.count(s) for s in set(statuses)}
    for run in runs:
        assert run.info.status != "RUNNING"  # every run ended
        if run.data.tags["lamp.status"] == "finished":
            # the logged AUROC is the one of the logged test scores (an independent sklearn call)
            with np.load(client.download_artifacts(run.info.run_id, "scores.npz")) as f:
                part = f["test_part"]  # the reported part; the rest selects trials (val_auroc)
                assert len(np.unique(f["labels"][part])) == 2 and 0 < part.sum() < len(part)
                assert run.data.metrics["auroc"] == pytest.approx(
                    roc_auc_score(f["labels"][part], f["scores"][part])
                )
            assert {"sharpness", "hessian_trace", "synthetic_auroc", "alignment_loss"} <= set(
                run.data.metrics
            )
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"scores.npz", "landscape.npz", "model"} <= names
            # weights and what rebuilds the model, no pyfunc: `register` builds that
            model = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
            assert model == {"model/model.pt", "model/meta.json"}
    # the spec file travels with the parent run and its hash tags every run
    spec_text = (SPECS / "tiny.yaml").read_text()
    assert Path(client.download_artifacts(parent.info.run_id, "spec.yaml")).read_text() == spec_text
    assert all(r.data.tags["lamp.spec_hash"] == parent.data.tags["lamp.spec_hash"] for r in runs)
    assert parent.data.tags["lamp.spec_hash"] == load_spec(SPECS / "tiny.yaml").content_hash


def test_per_epoch_metrics_hold_base_and_amplified_loss(tiny_study: Study) -> None:
    client = MlflowClient(tiny_study.tracking_uri)
    _, runs = _children(client, tiny_study.name)
    run = next(
        r for r in runs if r.data.tags["lamp.status"] == "finished" and r.data.params["factor"] == "10.0"
    )
    base = client.get_metric_history(run.info.run_id, "train_base_loss")
    amp = client.get_metric_history(run.info.run_id, "train_amp_loss")
    assert [m.step for m in base] == [1, 2] == [m.step for m in amp]
    assert all(a.value > b.value for a, b in zip(amp, base, strict=True))  # lambda = 10 amplifies


def test_twins_match_their_amplified_trial(tiny_study: Study) -> None:
    _, runs = _children(MlflowClient(tiny_study.tracking_uri), tiny_study.name)
    twins = [r for r in runs if float(r.data.params["twin_of"]) > 0]
    assert {float(t.data.params["twin_of"]) for t in twins} == {10.0, 100000.0}
    for twin in twins:
        assert twin.data.params["amplification"] == "linear" and float(twin.data.params["factor"]) == 1.0
        assert float(twin.data.params["lr"]) == pytest.approx(0.05 * float(twin.data.params["twin_of"]))


def test_register_best_model_alias_resolves_and_scores_every_sample(
    tiny_study: Study, tmp_path: Path
) -> None:
    from study.serving.registry import register_best

    info = register_best(tiny_study.name, tracking_uri=tiny_study.tracking_uri)
    client = MlflowClient(tiny_study.tracking_uri, registry_uri=tiny_study.tracking_uri)
    _, runs = _children(client, tiny_study.name)
    finished = [r for r in runs if r.data.tags["lamp.status"] == "finished"]
    best = next(r for r in finished if r.info.run_id == info["run_id"])
    # selected on validation: one seed per setting here, so the best setting's trial has the top val_auroc
    assert best.data.metrics["val_auroc"] == max(r.data.metrics["val_auroc"] for r in finished)
    version = client.get_model_version_by_alias(info["model_name"], "champion")
    assert version.run_id == best.info.run_id
    assert version.source == f"models:/{info['model_id']}"  # a LoggedModel of the trial's run
    assert client.get_logged_model(info["model_id"]).source_run_id == best.info.run_id
    assert version.tags["lamp.study"] == tiny_study.name and version.tags["lamp.metric"] == "val_auroc"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tiny_study.tracking_uri}
    outs = {}
    for uri in (f"models:/{info['model_name']}@champion", f"runs:/{best.info.run_id}"):
        outs[uri] = tmp_path / f"scores{len(outs)}.csv"
        res = subprocess.run(
            [*CLI, "score", uri, "--data", "digits", "--out", str(outs[uri])],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert res.returncode == 0, res.stderr
    from study.data import load_images

    images, ids = load_images("digits")
    registered, by_run = (list(csv.DictReader(out.open())) for out in outs.values())
    assert len(registered) == len(images) == len(ids)
    assert all(float(r["score"]) >= 0 for r in registered)
    assert by_run == registered  # the trial's run, scored from its weights: the same numbers


def test_score_matches_the_trial_scores(tiny_study: Study) -> None:
    """The registered pyfunc scores the digits test split exactly as the trial did."""
    import mlflow
    import numpy as np

    from study.serving.registry import register_best

    info = register_best(tiny_study.name, tracking_uri=tiny_study.tracking_uri, model_name="lamp-tiny-check")
    mlflow.set_tracking_uri(tiny_study.tracking_uri)
    model = mlflow.pyfunc.load_model(info["uri"])
    client = MlflowClient(tiny_study.tracking_uri)
    with np.load(client.download_artifacts(info["run_id"], "scores.npz")) as f:
        logged = f["scores"]
    from study.core.config import DataConfig
    from study.data import load_dataset

    test = load_dataset(DataConfig(name="digits", normal_classes=(0,))).test
    np.testing.assert_allclose(model.predict(test.numpy()), logged, rtol=1e-5, atol=1e-7)


def test_multinode_cluster_runs_trials_on_worker_nodes(tmp_path: Path) -> None:
    """A zero-CPU head forces every trial onto the two added nodes (ray.cluster_utils)."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        study = run_small_study(SPECS / "two_trials.yaml", tmp_path, address=cluster.address)
        client = MlflowClient(study.tracking_uri)
        _, runs = _children(client, study.name)
        assert len(runs) == study.n_trials == 2
        assert all(r.data.tags["lamp.status"] == "finished" for r in runs)
        workers = {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0}
        assert len(workers) == 2 and cluster.head_node.node_id not in workers
        assert {r.data.tags["lamp.node_id"] for r in runs} <= workers  # every trial ran on a worker node
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_gpu_request_on_a_cpu_cluster_fails_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "gpu.yaml"
    spec.write_text((SPECS / "two_trials.yaml").read_text().replace("gpu: 0", "gpu: 1"))
    res = subprocess.run(
        [
            *CLI,
            "run",
            str(spec),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
            "--storage-path",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 2
    assert "no GPU" in res.stderr and "gpu: 0" in res.stderr and "Traceback" not in res.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracking_to_a_real_mlflow_server(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        from study.tracking.store import TrackingError, check_tracking_uri

        def up() -> bool:
            try:
                check_tracking_uri(uri, timeout_s=2)
            except TrackingError:
                return False
            return True

        wait_for("the mlflow server to answer /health", up, server)
        study = run_small_study(SPECS / "two_trials.yaml", tmp_path, tracking_uri=uri)
        client = MlflowClient(uri)
        _, runs = _children(client, study.name)
        assert len(runs) == 2 and all(r.data.tags["lamp.status"] == "finished" for r in runs)
        assert {a.path for a in client.list_artifacts(runs[0].info.run_id)} >= {"scores.npz", "model"}
        # register builds the LoggedModel through the server's artifact proxy; both ways score alike
        from study.serving.registry import register_best, score_model

        info = register_best(study.name, tracking_uri=uri)
        assert client.get_logged_model(info["model_id"]).source_run_id == info["run_id"]
        by_model, by_run = (
            score_model(u, "digits", out=tmp_path / f"{i}.csv", tracking_uri=uri).read_text()
            for i, u in enumerate((info["uri"], f"runs:/{info['run_id']}"))
        )
        assert by_model == by_run
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_unreachable_tracking_server_fails_fast_and_launches_nothing(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res = subprocess.run(
        [
            *CLI,
            "run",
            str(SPECS / "two_trials.yaml"),
            "--tracking-uri",
            f"http://127.0.0.1:{_free_port()}",
            "--storage-path",
            str(tmp_path / "storage"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - t0
    assert res.returncode == 2
    assert "unreachable" in res.stderr and "mlflow server" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "storage").exists()  # nothing launched
    assert elapsed < 60  # "within seconds": generous bound for a loaded CI machine, not a benchmark


def test_tpe_search_with_asha_logs_every_proposed_trial(tmp_path: Path) -> None:
    """OptunaSearch proposes within the spec's bounds; ASHA may prune, never on the amplified loss."""
    study = run_small_study(SPECS / "tpe_asha.yaml", tmp_path)
    client = MlflowClient(study.tracking_uri)
    parent, runs = _children(client, study.name)
    assert parent.data.tags["lamp.search"] == "tpe"
    assert len(runs) == study.n_trials == 6
    for run in runs:
        status, p = run.data.tags["lamp.status"], run.data.params
        assert status in {"finished", "collapsed", "diverged", "pruned"}  # SGD at a small lr may collapse
        assert 1 <= float(p["factor"]) <= 1000 and 0.001 <= float(p["lr"]) <= 0.1
        assert p["amplification"] in {"linear", "exp"}
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "val_auroc")]
        if status == "pruned":
            assert epochs and max(epochs) < 4 and "auroc" not in run.data.metrics
        if status in ("finished", "collapsed"):
            assert epochs == [1, 2, 3, 4] and "auroc" in run.data.metrics
    assert len({(r.data.params["factor"], r.data.params["lr"]) for r in runs}) == 6  # six distinct proposals


def test_a_trial_that_raises_is_recorded_failed_and_the_study_completes(tmp_path: Path) -> None:
    study = run_small_study(SPECS / "failing.yaml", tmp_path)
    client = MlflowClient(study.tracking_uri)
    parent, runs = _children(client, study.name)
    by_class = {r.data.params["data.normal_classes"]: r for r in runs}
    assert set(by_class) == {"0", "99"}
    failed = by_class["99"]
    assert failed.data.tags["lamp.status"] == "failed" and failed.info.status == "FAILED"
    assert "DatasetError" in failed.data.tags["lamp.error"] and "99" in failed.data.tags["lamp.error"]
    assert by_class["0"].data.tags["lamp.status"] == "finished"
    assert parent.data.tags["lamp.status"] == "finished" and study.summary["trials"] == {
        "finished": 1,
        "failed": 1,
    }


def test_failed_trials_retry_in_new_runs_and_a_study_extends_without_rerunning(tmp_path: Path) -> None:
    """`resume --retry-failed` and `run --extend`: each trial config has exactly one live run."""
    from study.runner import resume_study, run_study

    study = run_small_study(SPECS / "failing.yaml", tmp_path)
    client = MlflowClient(study.tracking_uri)
    _, before = _children(client, study.name)
    kept = {r.data.params["data.normal_classes"]: (r.info.run_id, r.info.end_time) for r in before}
    where = {"tracking_uri": study.tracking_uri, "storage_path": str(study.storage)}

    retried = resume_study(study.name, retry_failed=True, **where)
    _, runs = _children(client, study.name)
    assert sorted((r.data.params["data.normal_classes"], r.data.tags["lamp.status"]) for r in runs) == [
        ("0", "finished"),
        ("99", "failed"),  # the retry, in a new run: digits still has no class 99
        ("99", "retried"),  # the first attempt, kept as a record
    ]
    old = next(r for r in runs if r.data.tags["lamp.status"] == "retried")
    assert old.info.run_id == kept["99"][0]
    assert retried["status"] == "finished" and retried["trials"] == {"finished": 1, "failed": 1, "retried": 1}

    wider = tmp_path / "failing_wider.yaml"
    wider.write_text((SPECS / "failing.yaml").read_text().replace("[0, 99]", "[0, 1, 99]"))
    extended = run_study(load_spec(wider), extend=True, **where)
    parent, runs = _children(client, study.name)
    by = {}
    for r in runs:
        by.setdefault(r.data.params["data.normal_classes"], []).append(r)
    assert sorted(by) == ["0", "1", "99"] and len(by["0"]) == len(by["1"]) == 1  # only class 1 ran
    assert (by["0"][0].info.run_id, by["0"][0].info.end_time) == kept["0"]  # the finished trial left alone
    assert by["1"][0].data.tags["lamp.status"] == "finished"
    assert extended["status"] == "finished" and parent.data.tags["lamp.status"] == "finished"
    assert run_study(load_spec(wider), extend=True, **where)["trials"] == extended["trials"]  # nothing new


def test_a_study_whose_trials_all_fail_exits_non_zero(tmp_path: Path) -> None:
    """Every trial raises at run time (a model far too large to allocate; the data is fine, so the
    driver's checks pass)."""
    spec = tmp_path / "all_fail.yaml"
    text = (SPECS / "failing.yaml").read_text().replace("[0, 99]", "[0, 1]")
    spec.write_text(text.replace("latent_dim: 8", "latent_dim: 100000000000"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--tracking-uri", uri, "--storage-path", str(tmp_path / "storage")]
    res = subprocess.run([*CLI, "run", str(spec), *args], capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "every trial failed" in res.stderr
    parent, runs = _children(MlflowClient(uri), "failing")
    assert parent.data.tags["lamp.status"] == "failed" and parent.info.status == "FAILED"
    assert sorted(r.data.tags["lamp.status"] for r in runs) == ["failed", "failed"]


def test_register_by_a_label_free_score_picks_its_best_trial(tiny_study: Study) -> None:
    """Without labels, `register --metric alignment_loss_tuned` ranks lower as better."""
    from study.serving.registry import register_best

    info = register_best(
        tiny_study.name,
        tracking_uri=tiny_study.tracking_uri,
        metric="alignment_loss_tuned",
        model_name="lamp-tiny-labelfree",
    )
    _, runs = _children(MlflowClient(tiny_study.tracking_uri), tiny_study.name)
    finished = [r for r in runs if r.data.tags["lamp.status"] == "finished"]
    best = min(finished, key=lambda r: r.data.metrics["alignment_loss_tuned"])
    assert info["run_id"] == best.info.run_id and info["metric"] == "alignment_loss_tuned"


def test_asha_prunes_the_trial_that_ranks_worst_at_the_first_rung(tmp_path: Path) -> None:
    """A known pruning (tests/specs/asha_prune.yaml): the pruned trial's run stops at rung 1, once."""
    study = run_small_study(SPECS / "asha_prune.yaml", tmp_path)
    client = MlflowClient(study.tracking_uri)
    parent, runs = _children(client, study.name)
    by = {r.data.params["eval_every"]: r for r in runs}
    assert len(by) == len(runs) == 2
    kept, pruned = by["1"], by["3"]
    assert kept.data.tags["lamp.status"] == "finished" and "auroc" in kept.data.metrics
    assert pruned.data.tags["lamp.status"] == "pruned" and pruned.info.status == "KILLED"
    assert "auroc" not in pruned.data.metrics
    steps = {
        name: [m.step for m in client.get_metric_history(r.info.run_id, "train_base_loss")]
        for name, r in by.items()
    }
    assert steps == {"1": [1, 2, 3], "3": [1]}
    assert parent.data.tags["lamp.status"] == "finished" and study.summary["trials"] == {
        "finished": 1,
        "pruned": 1,
    }
