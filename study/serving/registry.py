"""Model Registry: register a study's best trial, and score data with a registered model or any trial.

"Best" is by a detection metric or a label-free score of finished trials,
never by the amplified training loss (not comparable across factors). A
detection metric ranks by its validation value (`val_auroc` for `auroc`): the
test-part value is what the report states, so it must not also pick the model.
A per-trial metric picks a setting by its seed-mean, then that setting's best
seed (study/selection/best_setting.py, the report's rule too), among every trial of the
study (`search_runs` page after page). A collapsed trial (output independent
of input, study/trial/collapse.py) or a degenerate one (scores like a trivial model,
study/selection/degeneracy.py) is never picked unless asked (`allow_collapsed`,
`allow_degenerate`). Stages are deprecated in MLflow 3, so
the version gets an alias (`champion`).

Trials log weights only (study/serving/scorer.py); `register` builds the pyfunc scorer
of the trial it picks, as an MLflow LoggedModel linked to the trial's run, and
registers that once per run. `score` takes a registered model or any trial's
run, whose weights it rebuilds in memory.
"""

from __future__ import annotations

import csv
import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from study.core.vocab import (
    MODEL_ARTIFACT,
    PARENT_TAG,
    SPEC_HASH_TAG,
    STATUS_TAG,
    TRIAL_ID_TAG,
    TrialStatus,
)
from study.serving.registry_runs import LABEL_FREE as LABEL_FREE  # re-exported: how register picks
from study.serving.registry_runs import Pick as Pick
from study.serving.registry_runs import RegistryError as RegistryError
from study.serving.registry_runs import best_pick as best_pick
from study.serving.registry_runs import best_trial as best_trial
from study.serving.registry_runs import score_loader, setting_info
from study.serving.registry_threshold import run_threshold, stored_threshold
from study.serving.threshold import DEFAULT_FALSE_ALARM, Threshold, ThresholdError, alarms
from study.tracking.store import check_tracking_uri

logger = logging.getLogger(__name__)


def pool_note(client: Any, study: str, parent_id: str, selector: str) -> str | None:
    """What the pool said about the trials a score-loading selector compared (register's output says it)."""
    import pandas as pd

    from study.selection import SELECTORS, pool_decision
    from study.selection.paired import verdict_line
    from study.selection.rules import tail_decision
    from study.selection.tail import tail_line

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
    frame, load = frame.set_index("run_id"), score_loader(client)
    verdict, mode = pool_decision(frame, load)
    line = verdict_line(verdict, mode)
    if selector == "unlabelled_tail" and mode != "separated" and (tail := tail_decision(frame, load)):
        line += f"; {tail_line(tail)}"  # the pick came from the pool's tail or, when it shows nothing, the fallback
    return line


def register_best(  # flat: one registration tag or output key per line, no branch to split out
    study: str,
    *,
    tracking_uri: str,
    metric: str | None = None,
    mode: str | None = None,
    model_name: str | None = None,
    alias: str = "champion",
    allow_collapsed: bool = False,
    allow_degenerate: bool = False,
    allow_running: bool = False,
    false_alarm: float = DEFAULT_FALSE_ALARM,
) -> dict[str, Any]:
    """Register the best finished trial's scorer and point `alias` at its version.

    The pyfunc scorer is built here, from the trial's weights, as an MLflow LoggedModel of the trial's
    run. A run that already has a version of `model_name` gets no second one: the alias moves to it.
    Its tags hold an alarm threshold for `false_alarm`; a running study is refused unless `allow_running`.
    """
    import mlflow
    from mlflow import MlflowClient

    check_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    pick = best_pick(client, study, metric, mode, allow=_allowed(allow_collapsed, allow_degenerate))
    parent, best, metric = pick.parent, pick.run, pick.metric
    _check_ended(parent, study, allow_running)
    run_id = best.info.run_id
    threshold = _threshold_or_none(client, run_id, false_alarm)
    name = model_name or f"lamp-{study}"
    value = best.data.metrics.get(metric)  # None for a cross-trial selector: it has no per-trial value
    tags = {
        "lamp.study": study,
        SPEC_HASH_TAG: parent.data.tags.get(SPEC_HASH_TAG, ""),
        "lamp.metric": metric,
        "lamp.metric_value": "n/a (a cross-trial selector)" if value is None else f"{value:.6g}",
        TRIAL_ID_TAG: best.data.tags.get(TRIAL_ID_TAG, ""),
        **(threshold.tags() if threshold else {}),
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
        "threshold": threshold
        and {"value": threshold.value, "false_alarm": threshold.bound, "claim": threshold.sentence()},
        "setting": None if pick.setting is None else setting_info(pick),
    }


def _allowed(collapsed: bool, degenerate: bool) -> tuple[str, ...]:
    """The statuses beside `finished` a user let `register` consider."""
    return ("collapsed",) * collapsed + ("degenerate",) * degenerate


def _threshold_or_none(client: Any, run_id: str, false_alarm: float) -> Threshold | None:
    """The run's alarm threshold; None (and a warning) for a run logged without held-out scores."""
    if not 0 < false_alarm < 1:  # a bad rate is the caller's error, not the run's
        raise ThresholdError(
            f"--false-alarm {false_alarm}: a rate strictly between 0 and 1 is needed, e.g. 0.01"
        )
    try:
        return run_threshold(client, run_id, false_alarm)
    except ThresholdError as err:
        logger.warning("no alarm threshold stored with the model: %s", err)
        return None


def _check_ended(parent: Any, study: str, allow_running: bool) -> None:
    """Refuse (or, when allowed, warn about) a study whose parent run is still running."""
    if parent.data.tags.get(STATUS_TAG) != TrialStatus.RUNNING:
        return
    ended = {k: v for k, v in parent.data.metrics.items() if k.startswith("n_")}
    what = (
        f"study {study!r} is still running (or its driver was stopped without ending it): its best trial so "
        f"far may not be its best{' (' + str(ended) + ')' if ended else ''}"
    )
    if not allow_running:
        raise RegistryError(
            f"{what}; wait for it to end (or `lamp-study resume {study}`), or pass --allow-running"
        )
    logger.warning("%s; registering it anyway (--allow-running)", what)


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


def model_threshold(model_uri: str, *, tracking_uri: str) -> Threshold:
    """The alarm threshold stored with a registered version, or set on a trial run's held-out normals."""
    from mlflow import MlflowClient

    check_tracking_uri(tracking_uri)
    run = _RUN_URI.fullmatch(model_uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return stored_threshold(client, model_uri, run.group(1) if run else None)


def score_model(
    model_uri: str, data: str, *, out: str | Path, tracking_uri: str, threshold: float | None = None
) -> Path:
    """Write `sample,score` rows, one per sample of `data`, scored by a registered model or a trial's run.

    With `threshold` (e.g. `model_threshold(...).value`) each row also gets `alarm`: 1 above it, else 0.
    """
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    from study.data import load_images

    check_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    predict, channels, size = _scoring_function(model_uri, MlflowClient(tracking_uri))
    images, ids = load_images(data, image_size=size, channels=channels)
    scores = np.asarray(predict(images.numpy().astype(np.float32)))
    rows: list[tuple[Any, ...]] = [(i, f"{s:.8g}") for i, s in zip(ids, scores, strict=True)]
    if threshold is not None:
        rows = [(*row, a) for row, a in zip(rows, alarms(scores, threshold), strict=True)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample", "score", *(["alarm"] if threshold is not None else [])])
        writer.writerows(rows)
    return out
