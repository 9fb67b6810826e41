"""A real study with a collapsed and a diverged trial: statuses, their measures in MLflow, register."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient

from study.serving.registry import RegistryError, register_best
from study.trial.collapse import VAR_RATIO_MIN
from tests.conftest import SPECS, Study, run_small_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def collapse_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return run_small_study(SPECS / "collapse.yaml", tmp_path_factory.mktemp("collapse_study"))


def _runs_by_factor(study: Study) -> dict[float, object]:
    client = MlflowClient(study.tracking_uri)
    exp = client.get_experiment_by_name(study.name)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`lamp.role` = 'trial'")
    return {float(r.data.params["factor"]): r for r in runs}


def test_collapsed_and_diverged_trials_carry_their_status_and_measures(collapse_study: Study) -> None:
    runs = _runs_by_factor(collapse_study)
    collapsed, diverged = runs[100.0], runs[100000.0]
    assert collapsed.data.tags["lamp.status"] == "collapsed"
    assert collapsed.data.metrics["collapse_var_ratio"] < VAR_RATIO_MIN
    assert collapsed.data.metrics["collapsed"] == 1.0
    assert "collapse_loss_ratio" in collapsed.data.metrics
    assert diverged.data.tags["lamp.status"] == "diverged"
    # docs/mlflow_schema.md: train_time_s and diverged_value are in MLflow
    for run in (collapsed, diverged):
        assert run.data.metrics["train_time_s"] > 0
    assert math.isfinite(diverged.data.metrics["diverged_value"])
    assert diverged.data.metrics["diverged_epoch"] == 1


def test_parent_run_holds_the_model_free_baselines(collapse_study: Study) -> None:
    client = MlflowClient(collapse_study.tracking_uri)
    exp = client.get_experiment_by_name(collapse_study.name)
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.`lamp.role` = 'study'")
    for key in ("baseline_mse_auroc", "baseline_intensity_auroc"):
        assert 0.0 <= parent.data.metrics[key] <= 1.0


def test_register_refuses_a_collapsed_trial_unless_asked(collapse_study: Study) -> None:
    with pytest.raises(RegistryError, match="collapsed.*--allow-collapsed"):
        register_best(collapse_study.name, tracking_uri=collapse_study.tracking_uri)
    info = register_best(collapse_study.name, tracking_uri=collapse_study.tracking_uri, allow_collapsed=True)
    assert info["run_id"] == _runs_by_factor(collapse_study)[100.0].info.run_id
    assert info["metric"] == "val_auroc"  # selected on the validation part, not on the reported test part
