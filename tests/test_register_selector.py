"""`register`: which run it picks (`--by <selector>`, collapsed trials excluded), and what it builds from it.

The selector tests use synthetic runs; the model tests use real trained trials logged by the driver's
tracker (tests/_logged_trials.py): `register` builds one pyfunc LoggedModel per run, with an input
example, and `score` works on any trial's run as on the registered model.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.core.vocab import PARENT_TAG, ROLE_TAG, STATUS_TAG, TRIAL_ID_TAG
from study.labelfree import FAMILIES, family_metric
from study.selection import DEFAULT_SELECTOR
from study.serving.registry import RegistryError, best_trial
from tests._logged_trials import LoggedTrials, log_trials

POOL_AUROC = (0.80, 0.82, 0.90, 0.81, 0.83, 0.95)  # the unlabelled AUROC prefers t2 (t5 is collapsed)


def _study(client: MlflowClient, name: str, objective: str, root: Path, pool: bool = False) -> dict[str, str]:
    """A study: 5 finished trials ranked t4 best by every family, t5 collapsed; trial id -> run id.

    With `pool`, trials also log an unlabelled AUROC that clearly separates the pool (it holds anomalies).
    """
    exp = client.create_experiment(name, artifact_location=str(root / name))
    parent = client.create_run(exp, tags={ROLE_TAG: "study", "lamp.objective_metric": objective})
    ids = {}
    for i in range(6):
        status = "collapsed" if i == 5 else "finished"
        run = client.create_run(
            exp, tags={PARENT_TAG: parent.info.run_id, STATUS_TAG: status, TRIAL_ID_TAG: f"t{i}"}
        )
        for k, name in enumerate(FAMILIES):
            client.log_metric(run.info.run_id, family_metric(name), 0.6 + 0.05 * i + 0.01 * k)
        client.log_metric(run.info.run_id, "synthetic_auroc_mean", 0.9 - 0.05 * i)  # disagrees on purpose
        client.log_metric(run.info.run_id, "auroc", 0.8)
        client.log_metric(run.info.run_id, "val_auroc", 0.8)  # what a labelled objective ranks by
        if pool:
            client.log_metric(run.info.run_id, "unlabelled_auroc", POOL_AUROC[i])
            client.log_metric(run.info.run_id, "unlabelled_normals", 600)
            client.log_metric(run.info.run_id, "unlabelled_pool", 250)
        client.set_terminated(run.info.run_id)
        ids[f"t{i}"] = run.info.run_id
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, dict[str, str], dict[str, str]]:
    """One real sqlite MLflow store with a label-free study ("lf") and a labelled one ("lab")."""
    root = tmp_path_factory.mktemp("register_selector")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    _study(client, "lfpool", "unlabelled_auroc", root, pool=True)
    return client, _study(client, "lf", "synthetic_auroc_mean", root), _study(client, "lab", "auroc", root)


def test_label_free_default_is_the_aggregated_selector(store) -> None:
    client, ids, _ = store
    # No --by on a study with a label-free objective: the aggregated selector, not the per-trial objective.
    _, run, metric, mode = best_trial(client, "lf", None, None)
    assert (metric, mode) == (DEFAULT_SELECTOR, "max") and run.info.run_id == ids["t4"]  # no pool: Borda
    _, run, metric, _ = best_trial(client, "lf", "label-free", None)
    assert metric == DEFAULT_SELECTOR and run.info.run_id == ids["t4"]
    _, run, metric, _ = best_trial(
        client, "lf", "synthetic_auroc_mean", None
    )  # a per-trial score still works
    assert run.info.run_id == ids["t0"]


def test_label_free_default_follows_a_pool_that_holds_anomalies(store) -> None:
    client = store[0]
    _, run, metric, _ = best_trial(client, "lfpool", None, None)
    assert metric == DEFAULT_SELECTOR and run.data.tags[TRIAL_ID_TAG] == "t2"  # not t5: collapsed
    _, run, _, _ = best_trial(client, "lfpool", "borda", None)
    assert run.data.tags[TRIAL_ID_TAG] == "t4"


def test_labelled_objective_is_unchanged_and_pool_selectors_are_refused(store) -> None:
    client, _, ids = store
    _, _, metric, _ = best_trial(client, "lab", None, None)
    assert metric == "val_auroc"  # selected on the validation part, never on the reported test part
    _, run, _, _ = best_trial(client, "lab", "rra", None)
    assert run.info.run_id == ids["t4"]
    with pytest.raises(RegistryError, match="test-pool scores"):
        best_trial(client, "lab", "centrality", None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> LoggedTrials:
    """Two real trials (seeds 0 and 1) of one study in a real sqlite MLflow."""
    return log_trials(tmp_path_factory.mktemp("register_model"), "reg", seeds=(0, 1))


def _versions(client: MlflowClient, name: str) -> list:
    return client.search_model_versions(f"name = '{name}'")


def test_register_builds_one_logged_model_per_run_with_an_input_example(
    trained: LoggedTrials, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow
    import numpy as np

    from study.cli import EXIT_OK, main
    from study.serving.registry import register_best

    uri = trained.tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    before = {r: client.get_run(r).info for r in trained.run_ids}
    info = register_best(trained.name, tracking_uri=uri, model_name="lamp-reg")
    finished = [r for r in trained.run_ids if client.get_run(r).data.tags[STATUS_TAG] == "finished"]
    assert info["run_id"] == max(finished, key=lambda r: client.get_run(r).data.metrics["val_auroc"])
    assert info["new_version"] and info["model_id"].startswith("m-")

    logged = client.get_logged_model(info["model_id"])
    assert logged.source_run_id == info["run_id"] and logged.name == "scorer"
    assert (
        logged.tags["lamp.study"] == "reg"
        and logged.params["seed"] == client.get_run(info["run_id"]).data.params["seed"]
    )
    assert info["model_id"] in {o.model_id for o in client.get_run(info["run_id"]).outputs.model_outputs}
    version = client.get_model_version_by_alias("lamp-reg", "champion")
    assert version.source == f"models:/{info['model_id']}" and version.run_id == info["run_id"]
    after = client.get_run(info["run_id"]).info  # the trial's run is not reopened
    assert (after.status, after.end_time) == (before[info["run_id"]].status, before[info["run_id"]].end_time)

    model = mlflow.pyfunc.load_model(info["uri"])
    assert model.metadata.model_id == info["model_id"]
    example = model.metadata.load_input_example()
    size = trained.results[0].model_meta["image_size"]
    assert example.shape == (1, 1, size, size) and example.dtype == np.float32
    assert np.isfinite(model.predict(example)).all() and model.predict(example).shape == (1,)

    # the same best run again: no second version, no second LoggedModel; the alias moves
    again = register_best(trained.name, tracking_uri=uri, model_name="lamp-reg")
    assert not again["new_version"] and again["version"] == info["version"]
    assert again["model_id"] == info["model_id"]
    capsys.readouterr()
    args = ["register", trained.name, "--model-name", "lamp-reg", "--alias", "prod", "--tracking-uri", uri]
    assert main(args) == EXIT_OK
    assert "no new version" in capsys.readouterr().err
    assert [v.version for v in _versions(client, "lamp-reg")] == [info["version"]]
    assert client.get_model_version_by_alias("lamp-reg", "prod").version == info["version"]
    # another registered name (with a quote a search filter must escape): a version of that name,
    # the same LoggedModel (built once per run), and no second version when registered again
    other = register_best(trained.name, tracking_uri=uri, model_name="lamp-reg's other")
    assert other["new_version"] and other["model_id"] == info["model_id"]
    assert not register_best(trained.name, tracking_uri=uri, model_name="lamp-reg's other")["new_version"]
    experiment = client.get_run(info["run_id"]).info.experiment_id
    assert [m.model_id for m in client.search_logged_models(experiment_ids=[experiment])] == [
        info["model_id"]
    ]


def _score(uri: str, tracking_uri: str, out: Path) -> list[list[str]]:
    from study.serving.registry import score_model

    with score_model(uri, "digits", out=out, tracking_uri=tracking_uri).open() as f:
        return list(csv.reader(f))


def test_score_by_any_run_equals_the_trial_model_and_the_registered_model(
    trained: LoggedTrials, tmp_path: Path
) -> None:
    """Every trial's run scores data from its weights, registered or not; the same numbers as the pyfunc."""
    import numpy as np

    from study.data import load_images
    from study.serving.registry import register_best
    from study.training.evaluate import anomaly_scores
    from study.training.losses import get_metric

    uri = trained.tracking_uri
    images, ids = load_images("digits")
    by_run = {}
    for run_id, result in zip(trained.run_ids, trained.results, strict=True):  # before any register
        rows = _score(f"runs:/{run_id}", uri, tmp_path / f"{run_id}.csv")
        assert rows[0] == ["sample", "score"] and [r[0] for r in rows[1:]] == ids
        expected = anomaly_scores(result.build_model(), images, get_metric(result.config.metric))
        np.testing.assert_allclose([float(r[1]) for r in rows[1:]], expected, rtol=1e-6)  # CSV: 8 digits
        assert _score(run_id, uri, tmp_path / "bare.csv") == rows  # a bare run id works too
        by_run[run_id] = rows
    assert by_run[trained.run_ids[0]] != by_run[trained.run_ids[1]]

    info = register_best(trained.name, tracking_uri=uri, model_name="lamp-reg-score")
    assert _score(info["uri"], uri, tmp_path / "registered.csv") == by_run[info["run_id"]]


def test_score_refuses_a_run_without_weights(trained: LoggedTrials, tmp_path: Path) -> None:
    from study.serving.registry import RegistryError

    client = MlflowClient(trained.tracking_uri)
    parent = client.get_run(trained.run_ids[0]).data.tags[PARENT_TAG]
    with pytest.raises(RegistryError, match=f"run {parent} has no trained weights"):
        _score(f"runs:/{parent}", trained.tracking_uri, tmp_path / "x.csv")
    with pytest.raises(RegistryError, match="cannot score with run"):
        _score("0" * 32, trained.tracking_uri, tmp_path / "x.csv")


def test_runs_logged_before_weights_only_still_score(trained: LoggedTrials, tmp_path: Path) -> None:
    """A run from before this layout holds a pyfunc under model/, its weights in model/artifacts/."""
    client = MlflowClient(trained.tracking_uri)
    source = trained.run_ids[0]
    weights = Path(client.download_artifacts(source, "model", str(tmp_path / "w")))
    old = client.create_run(client.get_run(source).info.experiment_id).info.run_id
    client.log_artifacts(old, str(weights), "model/artifacts")
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    client.log_artifact(old, str(tmp_path / "MLmodel"), "model")
    assert _score(f"runs:/{old}/model", trained.tracking_uri, tmp_path / "old.csv") == _score(
        f"runs:/{source}", trained.tracking_uri, tmp_path / "new.csv"
    )
