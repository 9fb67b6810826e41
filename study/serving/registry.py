"""Model Registry: register a study's best trial, and score data with a registered model or any trial.

"Best" is by a detection metric or a label-free score of finished trials,
never by the amplified training loss (not comparable across factors). A
detection metric ranks by its validation value (`val_auroc` for `auroc`): the
test-part value is what the report states, so it must not also pick the model.
A collapsed trial (output independent of input, study/trial/collapse.py) is never
picked unless asked (`allow_collapsed`). Stages are deprecated in MLflow 3, so
the version gets an alias (`champion`).

Trials log weights only (study/serving/scorer.py); `register` builds the pyfunc scorer
of the trial it picks, as an MLflow LoggedModel linked to the trial's run, and
registers that once per run. `score` takes a registered model or any trial's
run, whose weights it rebuilds in memory.
"""

from __future__ import annotations

import csv
import math
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from study.core.errors import LampError
from study.core.metrics import mode_of
from study.core.vocab import (
    MODEL_ARTIFACT,
    PARENT_TAG,
    ROLE_TAG,
    SPEC_HASH_TAG,
    STATUS_TAG,
    TRIAL_ID_TAG,
    TrialStatus,
)
from study.tracking.store import check_tracking_uri

SELECTED_ON_VALIDATION = ("auroc", "ap")  # ranked by val_<metric>
LABEL_FREE = "label-free"  # `register --by label-free`: the default label-free selector


class RegistryError(LampError):
    """Nothing to register, or nothing to score with."""


def best_trial(
    client: Any, study: str, metric: str | None, mode: str | None, *, allow_collapsed: bool = False
) -> tuple[Any, Any, str, str]:
    """(parent run, best child run, ranking metric, mode) of a study's finished trials."""
    exp = client.get_experiment_by_name(study)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise RegistryError(
            f"no study {study!r} in this tracking store; studies: {', '.join(names) or 'none'}"
        )
    parents = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'study'", max_results=1
    )
    if not parents:
        raise RegistryError(
            f"experiment {study!r} has no lamp-study parent run; was it made by `lamp-study run`?"
        )
    parent = parents[0]
    objective = parent.data.tags.get("lamp.objective_metric", "auroc")
    from study.selection import DEFAULT_SELECTOR, SELECTORS, TRIAL_METRICS

    if metric == LABEL_FREE or (metric is None and objective in TRIAL_METRICS):
        metric = DEFAULT_SELECTOR  # label-free: the benchmark's best selector (bench/RESULTS.md)
    metric = metric or objective
    if metric in SELECTORS and metric not in TRIAL_METRICS:
        return (
            parent,
            _pick_by_selector(client, exp.experiment_id, parent.info.run_id, study, metric),
            metric,
            "max",
        )
    if mode is None:  # the study's mode belongs to its objective; any other metric has its natural direction
        natural = mode_of(metric)
        mode = parent.data.tags.get("lamp.objective_mode", natural) if metric == objective else natural
    if metric in SELECTED_ON_VALIDATION:
        metric = f"val_{metric}"
    statuses = (TrialStatus.FINISHED, TrialStatus.COLLAPSED) if allow_collapsed else (TrialStatus.FINISHED,)
    children = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
        order_by=[f"metrics.`{metric}` {'DESC' if mode == 'max' else 'ASC'}"],
        max_results=1000,
    )
    runs = [
        r
        for r in children
        if r.data.tags.get(STATUS_TAG) in statuses and math.isfinite(r.data.metrics.get(metric, math.nan))
    ]
    if not runs:
        collapsed = [r for r in children if r.data.tags.get(STATUS_TAG) == TrialStatus.COLLAPSED]
        hint = (
            f"; {len(collapsed)} collapsed trial(s) (output independent of input) were left out, "
            "pass --allow-collapsed to consider them"
            if collapsed and not allow_collapsed
            else ""
        )
        raise RegistryError(f"study {study!r} has no finished trial with metric {metric!r} to register{hint}")
    return parent, runs[0], metric, mode


def _pick_by_selector(client: Any, experiment_id: str, parent_id: str, study: str, selector: str) -> Any:
    """The finished trial a cross-trial label-free selector (study/selection/rules.py) picks."""
    import pandas as pd

    from study.selection import get_selector, pick

    sel = get_selector(selector)
    if sel.needs_pool:
        raise RegistryError(
            f"selector {selector!r} needs every trial's test-pool scores; register --by borda or rra"
        )
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{STATUS_TAG}` = 'finished'",
        max_results=5000,
    )
    frame = pd.DataFrame([{"run_id": r.info.run_id, "status": "finished", **r.data.metrics} for r in runs])
    load = _score_loader(client) if sel.needs_scores else None
    chosen = pick(frame.set_index("run_id"), selector, load) if not frame.empty else None
    if chosen is None:
        raise RegistryError(f"study {study!r} has no finished trial that selector {selector!r} can rank")
    return next(r for r in runs if r.info.run_id == chosen)


def _score_loader(client: Any) -> Any:
    """Per run: its held-out normal and unlabelled-pool scores from `scores.npz` (None when it has none).

    The paired comparison (study/selection/paired.py) loads only its few candidates.
    """
    import numpy as np
    from mlflow.exceptions import MlflowException

    from study.core.vocab import SCORES_FILE

    def load(run_id: str) -> tuple[Any, Any] | None:
        with tempfile.TemporaryDirectory() as d:
            try:
                path = client.download_artifacts(run_id, SCORES_FILE, d)
                with np.load(path, allow_pickle=False) as f:
                    if "unlabelled_pool" not in f:
                        return None
                    return f["unlabelled_normals"].astype(float), f["unlabelled_pool"].astype(float)
            except (OSError, ValueError, MlflowException):
                return None

    return load


def pool_note(client: Any, study: str, parent_id: str, selector: str) -> str | None:
    """What the pool said about the trials a score-loading selector compared (register's output says it)."""
    import pandas as pd

    from study.selection import SELECTORS, pool_decision
    from study.selection.paired import verdict_line

    if selector not in SELECTORS or not SELECTORS[selector].needs_scores:
        return None
    exp = client.get_experiment_by_name(study)
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{STATUS_TAG}` = 'finished'",
        max_results=5000,
    )
    frame = pd.DataFrame([{"run_id": r.info.run_id, **r.data.metrics} for r in runs])
    if frame.empty:
        return None
    frame["status"] = "finished"
    return verdict_line(*pool_decision(frame.set_index("run_id"), _score_loader(client)))


def register_best(
    study: str,
    *,
    tracking_uri: str,
    metric: str | None = None,
    mode: str | None = None,
    model_name: str | None = None,
    alias: str = "champion",
    allow_collapsed: bool = False,
) -> dict[str, Any]:
    """Register the best finished trial's scorer and point `alias` at its version.

    The pyfunc scorer is built here, from the trial's weights, as an MLflow LoggedModel of the trial's
    run. A run that already has a version of `model_name` gets no second one: the alias moves to it.
    """
    import mlflow
    from mlflow import MlflowClient

    check_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    parent, best, metric, mode = best_trial(client, study, metric, mode, allow_collapsed=allow_collapsed)
    run_id = best.info.run_id
    name = model_name or f"lamp-{study}"
    value = best.data.metrics.get(metric)  # None for a cross-trial selector: it has no per-trial value
    tags = {
        "lamp.study": study,
        SPEC_HASH_TAG: parent.data.tags.get(SPEC_HASH_TAG, ""),
        "lamp.metric": metric,
        "lamp.metric_value": "n/a (a cross-trial selector)" if value is None else f"{value:.6g}",
        TRIAL_ID_TAG: best.data.tags.get(TRIAL_ID_TAG, ""),
    }
    note = pool_note(client, study, parent.info.run_id, metric)
    if note:
        tags["lamp.label_free_pool"] = note
    version, created = _version_for(client, name, best, tags)
    client.set_registered_model_alias(name, alias, version.version)
    return {
        "model_name": name,
        "version": version.version,
        "new_version": created,
        "alias": alias,
        "uri": f"models:/{name}@{alias}",
        "model_id": _model_id(version.source),
        "run_id": run_id,
        "metric": metric,
        "value": value,
        **({"label_free_pool": note} if note else {}),
        "params": {
            k: best.data.params[k] for k in ("arch", "metric", "amplification", "factor", "optimizer", "lr")
        },
    }


def _version_for(client: Any, name: str, run: Any, tags: dict[str, str]) -> tuple[Any, bool]:
    """(version of `name` holding `run`'s scorer, whether it is new): built and registered once per run."""
    import mlflow

    version = _version_of_run(client, name, run.info.run_id)
    if version is not None:  # the same trial again: the same model, so the same version
        for key, tag in tags.items():  # its tags say how it was picked this time
            client.set_model_version_tag(name, version.version, key, tag)
        return version, False
    return mlflow.register_model(f"models:/{_scorer_of_run(client, run, tags)}", name, tags=tags), True


def _scorer_of_run(client: Any, run: Any, tags: dict[str, str]) -> str:
    """The model id of `run`'s scorer LoggedModel, built on the first registration of the run under any name."""
    from mlflow.entities import LoggedModelStatus

    from study.serving.scorer import LOGGED_MODEL_NAME, log_scorer

    run_id = run.info.run_id
    found = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{LOGGED_MODEL_NAME}'",
    )
    ready = [m for m in found if m.status == LoggedModelStatus.READY]  # not one whose logging broke off
    if ready:
        return ready[0].model_id
    with tempfile.TemporaryDirectory() as d:
        return log_scorer(
            _download_weights(client, run_id, Path(d)),
            experiment_id=run.info.experiment_id,
            run_id=run_id,
            params=run.data.params,
            tags={
                k: v for k, v in tags.items() if k in ("lamp.study", SPEC_HASH_TAG, TRIAL_ID_TAG)
            },  # not how picked
        )


def _version_of_run(client: Any, name: str, run_id: str) -> Any:
    """The newest version of registered model `name` made from run `run_id`, or None."""
    versions = client.search_model_versions(f"name = {_quoted(name)} and run_id = '{run_id}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def _quoted(value: str) -> str:
    """`value` as a string literal of an MLflow search filter (double quotes when it holds a `'`)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' in value:
        raise RegistryError(f"model name {value!r} holds both ' and \"; allowed: at most one kind of quote")
    return f'"{value}"'


def _model_id(source: str) -> str | None:
    """The LoggedModel id of a version's source `models:/<model_id>` (None for an older runs:/ source)."""
    match = re.fullmatch(r"models:/(m-[0-9a-f]+)", source or "")
    return match.group(1) if match else None


def _download_weights(client: Any, run_id: str, dest: Path) -> Path:
    """Download a trial run's weights folder (study/serving/scorer.py layout) into `dest`; the folder.

    Runs logged before the scorer moved to `register` hold a pyfunc under `model/`, with the same two
    files in its `artifacts/` folder: those work too.
    """
    from mlflow.exceptions import MlflowException

    from study.core.vocab import META_FILE
    from study.serving.scorer import WEIGHTS_FILE

    try:
        root = Path(client.download_artifacts(run_id, MODEL_ARTIFACT, str(dest)))
    except (MlflowException, OSError) as err:
        raise RegistryError(
            f"run {run_id} has no trained weights under {MODEL_ARTIFACT!r} ({err}); "
            "only finished or collapsed trials have a model: pick one of those"
        ) from None
    for folder in (root, root / "artifacts"):
        if (folder / WEIGHTS_FILE).is_file() and (folder / META_FILE).is_file():
            return folder
    raise RegistryError(
        f"run {run_id} has no {WEIGHTS_FILE} and {META_FILE} under {MODEL_ARTIFACT!r}; "
        "was it logged by lamp-study? Pick a finished trial's run"
    )


_RUN_URI = re.compile(rf"(?:runs:/)?([0-9a-f]{{32}})(?:/{MODEL_ARTIFACT})?/?")


def _scoring_function(model_uri: str, client: Any) -> tuple[Any, int | None, int | None]:
    """(predict, channels, image size) of a registered model or of any trial's run.

    A run (`runs:/<run_id>` or a bare run id) is scored from its weights, rebuilt in memory: it needs no
    pyfunc, so every trial of a study can score data, registered or not.
    """
    import mlflow

    run = _RUN_URI.fullmatch(model_uri)
    if run:
        from study.serving.scorer import load_scorer

        try:
            client.get_run(run.group(1))
        except mlflow.exceptions.MlflowException as err:
            raise RegistryError(f"cannot score with run {model_uri!r}: {err.message}") from None
        with tempfile.TemporaryDirectory() as d:
            scorer = load_scorer(_download_weights(client, run.group(1), Path(d)))
        return scorer.predict, scorer.in_channels, scorer.image_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # type-hint advice; the signature is explicit
            model = mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as err:
        raise RegistryError(f"cannot load model {model_uri!r}: {err.message}") from None
    meta = model.metadata.metadata or {}
    return model.predict, meta.get("lamp_in_channels"), meta.get("lamp_image_size")


def score_model(model_uri: str, data: str, *, out: str | Path, tracking_uri: str) -> Path:
    """Write `sample,score` rows, one per sample of `data`, scored by a registered model or a trial's run."""
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    from study.data import load_images

    check_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    predict, channels, size = _scoring_function(model_uri, MlflowClient(tracking_uri))
    images, ids = load_images(data, image_size=size, channels=channels)
    scores = predict(images.numpy().astype(np.float32))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample", "score"])
        writer.writerows(zip(ids, (f"{s:.8g}" for s in np.asarray(scores)), strict=True))
    return out
