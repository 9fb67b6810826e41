"""MLflow conventions that need no store: run names over a real spec, links to a server's run pages."""

from __future__ import annotations

from pathlib import Path

from study.spec import load_spec
from study.tracking.meta import run_name, run_url

ROOT = Path(__file__).resolve().parents[1]


def test_every_trial_of_the_full_grid_has_its_own_run_name() -> None:
    spec = load_spec(ROOT / "search_spaces" / "lamp_grid.yaml")  # 10 normal classes x the LAMP grid
    configs = spec.expand()
    names = [run_name(c, spec.dimensions) for c in configs]
    assert len(set(names)) == len(configs)
    assert all(
        n.endswith(f"-normal_classes={c.data.normal_classes[0]}") for n, c in zip(names, configs, strict=True)
    )
    assert len({run_name(c) for c in configs}) < len(configs)  # without the varied dimensions, names repeat


def test_a_server_gets_run_links_without_credentials_and_a_local_store_none() -> None:
    assert run_url("sqlite:///mlflow.db", "1", "abc") is None
    assert run_url("https://u:secret@host:5000/", "7", "abc") == "https://host:5000/#/experiments/7/runs/abc"


def test_a_folder_dataset_is_logged_as_a_local_source_with_its_digest(tmp_path: Path) -> None:
    import json

    from mlflow import MlflowClient

    from study.core.config import DataConfig
    from study.data import load_dataset
    from study.tracking.meta import dataset_digest, log_dataset
    from tests.test_cli import _own_data

    good, bad = _own_data(tmp_path)
    cfg = DataConfig(name="images", path=str(good), anomalous_path=str(bad), image_size=16)
    data = load_dataset(cfg)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("d", artifact_location=str(tmp_path / "a")))
    log_dataset(client, run.info.run_id, cfg, data)
    (logged,) = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert logged.dataset.source_type == "local" and json.loads(logged.dataset.source)["uri"] == str(good)
    assert logged.dataset.digest == dataset_digest(data)
    assert {t.key: t.value for t in logged.tags}["lamp.normal_classes"] == "normal folder"


def test_a_study_varying_its_normal_class_logs_every_dataset_it_trains_on(tmp_path: Path) -> None:
    """lamp_grid varies data.normal_classes: each class is its own dataset input of the parent run."""
    from mlflow import MlflowClient

    from study.runner._parent_inputs import log_dataset_inputs
    from study.spec import load_spec
    from study.tracking.tracker import StudyTracker

    path = tmp_path / "s.yaml"
    path.write_text(
        "name: classes\ndataset: {name: digits, test_limit: 100}\nfixed: {epochs: 1}\n"
        "dimensions: {data.normal_classes: {grid: [0, 3, 7]}}\nseeds: [0]\n"
    )
    spec = load_spec(path)
    tracker = StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", spec.name)
    parent = tracker.start_study(spec.source_text, spec.content_hash, {}, {})
    log_dataset_inputs(tracker, spec, parent)
    inputs = MlflowClient(tracker.client.tracking_uri).get_run(parent).inputs.dataset_inputs
    classes = sorted({t.key: t.value for t in i.tags}["lamp.normal_classes"] for i in inputs)
    assert classes == ["0", "3", "7"] and len({i.dataset.digest for i in inputs}) == 3
