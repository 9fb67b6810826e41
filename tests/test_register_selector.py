"""`register --by <selector>`: the cross-trial label-free selector picks the run, collapsed trials excluded."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.labelfree import FAMILIES, family_metric
from study.registry import RegistryError, best_trial
from study.tracking import PARENT, ROLE, STATUS, TRIAL_ID


def _study(client: MlflowClient, name: str, objective: str, root: Path) -> dict[str, str]:
    """A study: 5 finished trials ranked t4 best by every family, t5 collapsed; trial id -> run id."""
    exp = client.create_experiment(name, artifact_location=str(root / name))
    parent = client.create_run(exp, tags={ROLE: "study", "lamp.objective_metric": objective})
    ids = {}
    for i in range(6):
        status = "collapsed" if i == 5 else "finished"
        run = client.create_run(exp, tags={PARENT: parent.info.run_id, STATUS: status, TRIAL_ID: f"t{i}"})
        for k, name in enumerate(FAMILIES):
            client.log_metric(run.info.run_id, family_metric(name), 0.6 + 0.05 * i + 0.01 * k)
        client.log_metric(run.info.run_id, "synthetic_auroc_mean", 0.9 - 0.05 * i)  # disagrees on purpose
        client.log_metric(run.info.run_id, "auroc", 0.8)
        client.log_metric(run.info.run_id, "val_auroc", 0.8)  # what a labelled objective ranks by
        client.set_terminated(run.info.run_id)
        ids[f"t{i}"] = run.info.run_id
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, dict[str, str], dict[str, str]]:
    """One real sqlite MLflow store with a label-free study ("lf") and a labelled one ("lab")."""
    root = tmp_path_factory.mktemp("register_selector")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return client, _study(client, "lf", "synthetic_auroc_mean", root), _study(client, "lab", "auroc", root)


def test_label_free_default_is_the_aggregated_selector(store) -> None:
    client, ids, _ = store
    # No --by on a study with a label-free objective: the aggregated selector, not the per-trial objective.
    _, run, metric, mode = best_trial(client, "lf", None, None)
    assert (metric, mode) == ("borda", "max") and run.info.run_id == ids["t4"]
    _, run, metric, _ = best_trial(client, "lf", "label-free", None)
    assert metric == "borda" and run.info.run_id == ids["t4"]
    _, run, metric, _ = best_trial(
        client, "lf", "synthetic_auroc_mean", None
    )  # a per-trial score still works
    assert run.info.run_id == ids["t0"]


def test_labelled_objective_is_unchanged_and_pool_selectors_are_refused(store) -> None:
    client, _, ids = store
    _, _, metric, _ = best_trial(client, "lab", None, None)
    assert metric == "val_auroc"  # selected on the validation part, never on the reported test part
    _, run, _, _ = best_trial(client, "lab", "rra", None)
    assert run.info.run_id == ids["t4"]
    with pytest.raises(RegistryError, match="test-pool scores"):
        best_trial(client, "lab", "centrality", None)
