"""Tracking-store checks that must fail fast and never leak credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.tracking import finite_metrics
from study.tracking.store import TrackingError, artifact_root, check_tracking_uri, redact


def test_redact_removes_credentials_and_keeps_the_rest() -> None:
    assert redact("https://alice:s3cret@mlflow.example:8443/path") == "https://***@mlflow.example:8443/path"
    assert "s3cret" not in redact("http://bob:s3cret@10.0.0.1:5000")
    assert redact("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_file_store_is_refused_with_the_replacement(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="sqlite:///mlflow.db"):
        check_tracking_uri(str(tmp_path / "mlruns"))
    with pytest.raises(TrackingError, match="file store"):
        check_tracking_uri(f"file://{tmp_path}/mlruns")


def test_sqlite_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="does not exist"):
        check_tracking_uri(f"sqlite:///{tmp_path}/nope/mlflow.db")
    check_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # an existing directory is fine


def test_unreachable_server_error_names_the_fix_without_the_password() -> None:
    with pytest.raises(TrackingError) as info:
        check_tracking_uri("http://user:pw@127.0.0.1:9", timeout_s=2)
    assert (
        "unreachable" in str(info.value)
        and "mlflow server" in str(info.value)
        and "pw@" not in str(info.value)
    )


def test_only_finite_numbers_reach_mlflow() -> None:
    assert finite_metrics({"a": 1, "b": float("nan"), "c": float("inf"), "d": "x", "e": True, "f": 0.5}) == {
        "a": 1.0,
        "f": 0.5,
    }


class _FakeTrial:
    """What MlflowCallback reads of a Tune trial (the callback is under test, not Tune)."""

    def __init__(self, trial_id: str, config: dict) -> None:
        self.trial_id = trial_id
        self.config = config
        self.last_result: dict = {}
        self.checkpoint = None
        self.num_failures = 0
        self.error_file = None


def _epochs(*epochs: int) -> dict:
    import json

    from study.runner import EPOCHS_KEY

    return {EPOCHS_KEY: json.dumps([{"epoch": e, "train_base_loss": 1.0 / e} for e in epochs])}


def test_mlflow_callback_never_logs_an_epoch_or_an_end_twice(tmp_path: Path) -> None:
    """A restored trial re-sends epochs after its checkpoint and Tune may signal its end twice."""
    from mlflow import MlflowClient

    from study.runner import STATUS_KEY, MlflowCallback
    from study.runner._callbacks import _ACTIVE
    from study.spec import load_spec
    from study.tracking import StudyTracker
    from tests.conftest import SPECS

    spec = load_spec(SPECS / "two_trials.yaml")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trial = _FakeTrial("t1", {"trial": spec.expand()[0].to_dict()})
    tracker = StudyTracker(uri, spec.name)
    tracker.start_study(spec.source_text, spec.content_hash, {}, {})
    _ACTIVE[spec.name] = (tracker, spec)
    cb = MlflowCallback(spec.name)
    cb.on_trial_start(0, [trial], trial)
    cb.on_trial_result(0, [trial], trial, _epochs(1, 2, 3))
    tracker.flush()  # what it queued reached the store

    # the driver dies; a new driver re-attaches and the trial, restored at epoch 2, re-sends epoch 3
    tracker = StudyTracker(uri, spec.name)
    tracker.start_study(spec.source_text, spec.content_hash, {}, {})
    _ACTIVE[spec.name] = (tracker, spec)
    cb = MlflowCallback(spec.name)
    cb.on_trial_start(0, [trial], trial)  # re-attaches, no second run
    cb.on_trial_result(0, [trial], trial, _epochs(3, 4))
    trial.last_result = {STATUS_KEY: "failed", "epoch": 4}
    cb.on_trial_complete(0, [trial], trial)
    cb.on_trial_complete(0, [trial], trial)
    cb.on_trial_error(0, [trial], trial)
    _ACTIVE.pop(spec.name)

    client = MlflowClient(uri)
    runs = [r for r in tracker.children()]
    assert [r.data.tags["lamp.trial_id"] for r in runs] == ["t1"]
    history = client.get_metric_history(runs[0].info.run_id, "train_base_loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert {m.step: m.value for m in history}[3] == pytest.approx(1 / 3)
    assert runs[0].data.tags["lamp.status"] == "failed" and runs[0].info.status == "FAILED"
    assert runs[0].data.tags["lamp.attempts"] == "1"


def test_a_finished_trial_logs_its_weights_and_meta_not_a_pyfunc(tmp_path: Path) -> None:
    """Per trial the driver logs weights and what rebuilds the model; the pyfunc waits for `register`."""
    import json

    import torch
    from mlflow import MlflowClient

    from study.serving.scorer import load_scorer
    from tests._logged_trials import log_trials

    logged = log_trials(tmp_path, "weights_only")
    client = MlflowClient(logged.tracking_uri)
    run_id, result = logged.run_ids[0], logged.results[0]

    def files(path: str = "") -> set[str]:
        out = set()
        for a in client.list_artifacts(run_id, path):
            out |= files(a.path) if a.is_dir else {a.path}
        return out

    assert files() == {"scores.npz", "landscape.npz", "model/model.pt", "model/meta.json"}  # no MLmodel
    meta = json.loads(Path(client.download_artifacts(run_id, "model/meta.json", str(tmp_path))).read_text())
    assert meta == {"model_meta": result.model_meta, "metric": result.config.metric}
    scorer = load_scorer(Path(client.download_artifacts(run_id, "model", str(tmp_path / "dl"))))
    for name, tensor in result.model_state.items():
        torch.testing.assert_close(scorer.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert not client.search_logged_models(experiment_ids=[client.get_run(run_id).info.experiment_id])


def test_a_sqlite_study_keeps_its_artifacts_beside_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in ./mlruns of whatever directory the process runs in (MLflow's default)."""
    from study.tracking import StudyTracker

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = tmp_path / "store"
    store.mkdir()
    tracker = StudyTracker(f"sqlite:///{store / 'mlflow.db'}", "beside")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location == (store / "mlruns").as_uri()
    assert StudyTracker(f"sqlite:///{store / 'mlflow.db'}", "beside").experiment_id == tracker.experiment_id
    assert artifact_root("sqlite:///rel.db") == (elsewhere / "mlruns").as_uri()
    assert artifact_root("http://127.0.0.1:5000") is None
    assert not (elsewhere / "mlruns").exists()
