"""CI guard for the degenerate rule: a real small study's trained models stay `finished`, every trial
carries its comparison with the model-free baselines, and `register` and the report pick one setting."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from reports.source.extract import load_study
from study.serving.registry import best_pick
from tests.conftest import SPECS, Study, run_small_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return run_small_study(SPECS / "guard.yaml", tmp_path_factory.mktemp("guard"))


def test_trained_models_stay_finished_and_are_compared_with_the_baselines(guard: Study) -> None:
    study = load_study(guard.name, tracking_uri=guard.tracking_uri)
    trials = study.trials
    assert len(trials) == 4 and set(trials["status"]) == {"finished"}
    assert (trials["degenerate"] == 0.0).all() and trials["beats_baseline"].isin([0.0, 1.0]).all()
    assert (trials["collapse_loss_ratio"] < 1.0).all()  # real models: better than the mean image
    for key in ("model_free_auroc", "baseline_margin", "beats_baseline_p", "chance_p", "mean_rank_corr"):
        assert trials[key].notna().all(), key  # the comparison reaches MLflow through the real runner
    pick = best_pick(MlflowClient(guard.tracking_uri), guard.name, None, None)
    assert pick.setting is not None and pick.setting.n_settings == 2 and pick.setting.n_seeds == 2
    assert study.best()["run_id"] == pick.run.info.run_id
