"""The documented Python API (docs/api.md) through its example script, and what that study leaves in MLflow.

One real study (docs/examples/api_example.py: real Ray, real sqlite MLflow, digits)
serves every test here: the export must equal what MLflow holds, and MLflow must
hold the conventions (standard tags, dataset input, report artifact) read back
from the store, not from our writer.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "api_example.py"
NAME = "api_example"

pytestmark = pytest.mark.slow


@dataclass
class Example:
    work: Path
    uri: str
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    work = tmp_path_factory.mktemp("api")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), str(work)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return Example(work, f"sqlite:///{work / 'mlflow.db'}", out.stdout, out.stderr)


def _children(uri: str) -> tuple[object, list]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(NAME)
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("lamp.role") == "study")
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def test_the_api_example_runs_every_step(example: Example) -> None:
    assert "study: finished" in example.stdout
    assert (example.work / "api_example.html").is_file()
    assert "registered: models:/lamp-api_example@champion" in example.stdout
    assert "normal images raise an alarm" in example.stdout  # the stored threshold's claim


def test_a_real_run_logs_one_progress_line_per_event(example: Example) -> None:
    lines = [ln for ln in example.stderr.splitlines() if "trials done" in ln]
    # max_concurrent 1: the first start, then each end (the next start shares its record or stays DEBUG)
    assert [ln.split(" trials done")[0] for ln in lines] == [
        "[api_example] 0/2",
        "[api_example] 1/2",
        "[api_example] 2/2",
    ]
    assert "0 running" in lines[-1] and "best auroc (validation)" in lines[-1]


def test_the_report_shows_per_phase_times_as_the_trials_logged_them(example: Example) -> None:
    import numpy as np

    from reports.sections.phases import extract_phases
    from reports.source.extract import load_study

    data = extract_phases(load_study(NAME, tracking_uri=example.uri))
    _, runs = _children(example.uri)
    assert {r.metric for r in data.rows} == {"train_time_s", "steepness_time_s"}  # label-free is off
    for row in data.rows:
        logged = [r.data.metrics[row.metric] for r in runs]
        assert row.n == len(logged) == 2
        assert row.total_s == pytest.approx(sum(logged)) and row.median_s == pytest.approx(np.median(logged))
        assert 0 < row.median_share < 1
    assert "Where the time went" in (example.work / "api_example.html").read_text()


def _same(exported: object, logged: str) -> bool:
    """A typed exported param equals MLflow's string: None for "None", else equal as text or as a number."""
    if logged == "None":
        return exported is None or (isinstance(exported, float) and math.isnan(exported)) or exported == ""
    if str(exported) == logged or str(exported).lower() == logged.lower():
        return True
    try:
        return float(exported) == float(logged)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_round_trip_equals_what_mlflow_holds(example: Example, suffix: str) -> None:
    from study.cli import main

    out = example.work / f"trials{suffix}"
    assert main(["export", NAME, "--out", str(out), "--tracking-uri", example.uri]) == 0
    table = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, keep_default_na=True)
    _, runs = _children(example.uri)
    assert sorted(table["run_id"]) == sorted(r.info.run_id for r in runs)  # one row per trial
    for run in runs:
        row = table[table["run_id"] == run.info.run_id].iloc[0]
        assert row["status"] == run.data.tags["lamp.status"]
        assert row["trial_id"] == run.data.tags["lamp.trial_id"]
        for key, value in run.data.params.items():
            exported = None if pd.isna(row[key]) else row[key]
            assert _same(exported, value), (key, row[key], value)
        for key, value in run.data.metrics.items():
            column = key if key in table else f"metric.{key}"
            assert row[column] == pytest.approx(value, rel=1e-12), key


def test_export_refuses_an_unknown_format_naming_the_allowed_ones(example: Example) -> None:
    from study.cli import main

    assert main(["export", NAME, "--out", str(example.work / "t.xlsx"), "--tracking-uri", example.uri]) == 2


def test_mlflow_conventions_read_back_from_the_store(example: Example) -> None:
    from mlflow import MlflowClient

    from study.core.config import TrialConfig
    from study.data import load_dataset
    from study.spec import load_spec
    from study.tracking.meta import dataset_digest, run_name

    parent, runs = _children(example.uri)
    for run in [parent, *runs]:
        tags = run.data.tags
        assert tags["mlflow.user"] and tags["mlflow.source.name"].endswith("api_example.py")
        assert tags.get("mlflow.source.git.commit") == parent.data.tags.get("lamp.git_commit")
    spec = load_spec(example.work / "api_example.yaml")
    for run in runs:  # the run name shows the varied factor: the two trials' names differ
        cfg = TrialConfig.from_dict(spec.base_config() | {"factor": float(run.data.params["factor"])})
        assert run.info.run_name == run_name(cfg, spec.dimensions)
    assert len({r.info.run_name for r in runs}) == len(runs)
    (dataset_input,) = MlflowClient(example.uri).get_run(parent.info.run_id).inputs.dataset_inputs
    data = load_dataset(TrialConfig.from_dict(spec.base_config()).data)
    assert dataset_input.dataset.digest == dataset_digest(data)
    shapes = json.loads(dataset_input.dataset.profile)["features_shape"]
    assert shapes == {k: list(getattr(data, k).shape) for k in ("train", "val", "test")}
    tags = {t.key: t.value for t in dataset_input.tags}
    assert tags == {"mlflow.data.context": "train", "lamp.normal_classes": "0"}
    assert "lamp.loader" in dataset_input.dataset.source


def test_the_report_is_the_parent_runs_artifact_and_a_rebuild_replaces_it(example: Example) -> None:
    from mlflow import MlflowClient

    from reports.build import REPORT_ARTIFACT, build_report

    parent, _ = _children(example.uri)
    client = MlflowClient(example.uri)
    rebuilt = build_report(NAME, tracking_uri=example.uri, out=example.work / "again.html")
    listed = [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    assert listed == [REPORT_ARTIFACT.as_posix()]
    logged = Path(
        client.download_artifacts(parent.info.run_id, REPORT_ARTIFACT.as_posix(), str(example.work))
    )
    assert logged.read_text() == rebuilt.read_text()


def test_report_rows_carry_the_run_id_and_a_link_on_a_server(example: Example) -> None:
    import dataclasses

    from mlflow import MlflowClient

    from reports.sections.summary import draw_summary, extract_summary
    from reports.source.extract import ArtifactLoader, load_study

    study = load_study(NAME, tracking_uri=example.uri)
    best = study.best()
    local = extract_summary(study, ArtifactLoader(MlflowClient(example.uri), example.work))
    assert (
        local.best_run is not None and local.best_run.text == best["run_id"] and local.best_run.href is None
    )
    server = dataclasses.replace(study, tracking_uri="http://127.0.0.1:5000")
    data = extract_summary(server, ArtifactLoader(MlflowClient(example.uri), example.work))
    href = f"http://127.0.0.1:5000/#/experiments/{study.experiment_id}/runs/{best['run_id']}"
    assert data.best_run is not None and data.best_run.href == href
    best_table = next(p for p in draw_summary(data) if p.name == "best").table_html
    assert f'<a href="{href}">{best["run_id"]}</a>' in best_table
