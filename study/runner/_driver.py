"""Running, resuming, extending and retrying a study: one Tune experiment logged to one parent run."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from study.core.config import TrialConfig
from study.core.errors import LampError
from study.core.outcome import study_outcome, study_status
from study.core.vocab import RETRYABLE, STATUS_TAG, TERMINAL, TrialStatus
from study.runner._callbacks import _ACTIVE, reconcile, trial_outcomes
from study.runner._cluster import _init_ray, check_resources
from study.runner._keys import (
    DEFAULT_STORAGE,
    SEGMENTS_DIR,
    SPEC_FILE,
    STATE_FILE,
)
from study.runner._parent_inputs import log_baseline_metrics, log_dataset_inputs
from study.runner._storage import Storage
from study.runner._tuner import _tuner, optuna_storage_url
from study.spec import StudySpec, load_spec
from study.tracking import StudyTracker, git_commit, set_quiet_mlflow_env
from study.tracking.store import TrackingLost, check_tracking_uri, redact

logger = logging.getLogger(__name__)


def _storage(storage_path: str | None) -> Storage:
    return Storage.open(storage_path, DEFAULT_STORAGE)


def study_dir(storage: Storage, name: str) -> str:
    """The study's folder in `storage` (relative to its root); a name that would lead outside it is refused."""
    if not name or name != PurePosixPath(name).name or name in (".", "..") or "\\" in name:
        raise LampError(
            f"study name {name!r} is not a plain directory name inside the storage path {storage.uri}; "
            f"use letters, digits, '_', '.' and '-' (e.g. --name my-study)"
        )
    return name


def run_study(
    spec: StudySpec,
    *,
    address: str | None = None,
    tracking_uri: str = "sqlite:///mlflow.db",
    storage_path: str | None = None,
    name: str | None = None,
    extend: bool = False,
    optuna_storage: str | None = None,
) -> dict[str, Any]:
    """Run a study end to end and return its summary (also logged on the parent run).

    With `extend`, the study must exist: only the spec's trials it has no run
    for (new seeds, a new factor...) run, in a Tune experiment of their own.
    A tpe study keeps its Optuna study in `optuna_storage` (an RDB URL; default
    `optuna_storage_url`).
    """
    if name:
        spec = spec.model_copy(update={"name": name})
    storage = _storage(storage_path)
    if extend:
        return _extend(spec, storage, address, tracking_uri)
    if storage.exists(study_dir(storage, spec.name), STATE_FILE):
        raise LampError(
            f"study {spec.name!r} already exists in {storage.uri}; continue it with `lamp-study resume {spec.name}`, "
            f"add trials to it with `lamp-study run SPEC --extend`, or pick another --name"
        )
    optuna = optuna_storage_url(spec, tracking_uri, optuna_storage)
    return _execute(spec, storage, address, tracking_uri, restore=False, optuna=optuna)


def resume_study(
    name: str,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Continue an interrupted study from its Tune storage; finished trials are kept.

    With `retry_failed`, the trials whose run failed or was interrupted run
    again from scratch, each in a new run; the old run is tagged `retried`.
    """
    storage = _storage(storage_path)
    if not storage.exists(study_dir(storage, name), STATE_FILE):
        known = [d for d in storage.subdirs() if storage.exists(d, STATE_FILE)]
        raise LampError(
            f"no study {name!r} in {storage.uri}; known studies: {', '.join(known) or 'none'} "
            f"(pass --storage-path if it lives elsewhere)"
        )
    state = json.loads(storage.read_text(name, STATE_FILE))
    spec = _stored_spec(storage, name).model_copy(update={"name": name})
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or state["tracking_uri"]
    if "***@" in uri:
        raise LampError(
            f"study {name!r} was tracked at {uri} (credentials not stored); pass --tracking-uri, "
            f"or set MLFLOW_TRACKING_URI with MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
        )
    if retry_failed:
        return _execute(spec, storage, address, uri, select=_retry_select(spec))
    return _execute(spec, storage, address, uri, restore=True, tune_path=state.get("tune_dir", name))


def _stored_spec(storage: Storage, name: str) -> StudySpec:
    """The spec the study was run with, as kept in its storage."""
    if storage.is_local:
        return load_spec(storage.path(name, SPEC_FILE))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / SPEC_FILE
        path.write_text(storage.read_text(name, SPEC_FILE))
        return load_spec(path)


def _extend(spec: StudySpec, storage: Storage, address: str | None, tracking_uri: str) -> dict[str, Any]:
    if not storage.exists(study_dir(storage, spec.name), STATE_FILE):
        raise LampError(
            f"--extend adds trials to an existing study, and there is no study {spec.name!r} in {storage.uri}; "
            f"run it first without --extend"
        )

    def select(tracker: StudyTracker) -> list[TrialConfig]:
        done = {_params_key(r.data.params) for r in tracker.children()}
        return [c for c in _listed(spec, "--extend") if _params_key(c.to_params()) not in done]

    return _execute(spec, storage, address, tracking_uri, select=select)


def _retry_select(spec: StudySpec) -> Any:
    def select(tracker: StudyTracker) -> list[TrialConfig]:
        runs = tracker.children()
        ok = {_params_key(r.data.params) for r in runs if r.data.tags.get(STATUS_TAG) not in RETRYABLE}
        again = {
            _params_key(r.data.params): r
            for r in runs
            if r.data.tags.get(STATUS_TAG) in RETRYABLE and _params_key(r.data.params) not in ok
        }
        for run in again.values():
            tracker.mark_retried(run.info.run_id)
        return [c for c in _listed(spec, "--retry-failed") if _params_key(c.to_params()) in again]

    return select


def _listed(spec: StudySpec, option: str) -> list[TrialConfig]:
    if spec.search.algorithm == "tpe":
        raise LampError(
            f"{option} needs the study's trial list, and study {spec.name!r} uses tpe search (its trials are "
            f"proposed as it runs); use `search: {{algorithm: grid}}` or random, or start a new study"
        )
    return spec.expand()


def _params_key(params: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """A trial's identity: its logged params."""
    return tuple(sorted(params.items()))


def _execute(
    spec: StudySpec,
    storage: Storage,
    address: str | None,
    tracking_uri: str,
    *,
    restore: bool = False,
    tune_path: str | None = None,
    select: Any = None,
    optuna: str | None = None,
) -> dict:
    """Run (or restore) one Tune experiment of the study, logging to its parent run.

    `select(tracker)` picks the trials of a new segment experiment (extend,
    retry) once the tracker knows the study's runs; else the spec's trials run.
    """
    set_quiet_mlflow_env()
    check_tracking_uri(tracking_uri)
    _preflight_data(spec)
    storage.check()  # last check before the first write: MLflow's experiment and parent run
    tracker = StudyTracker(tracking_uri, spec.name, varied=tuple(spec.dimensions))
    _init_ray(address)
    check_resources(spec)
    parent = _start_parent(spec, tracker, log_baselines=not restore and select is None)
    configs = select(tracker) if select is not None else None
    tune_path, planned = _plan(
        spec, storage, tracking_uri, parent, configs, restore=restore, tune_path=tune_path, optuna=optuna
    )
    t0 = time.time()
    status = "interrupted"
    store_lost: TrackingLost | None = None
    try:
        if configs == []:
            logger.info("[%s] nothing to run: every trial of the spec has a run", spec.name)
            status = "finished"
            return _summary(
                spec, "finished", parent, tracking_uri, storage.show(tune_path), t0, _counts(tracker)
            )
        status = _fit(spec, tracker, storage, tune_path, configs, planned, restore=restore, optuna=optuna)
    except Exception as err:
        store_lost = _tracking_lost(err)
        if store_lost is None:
            raise
        logger.warning("[%s] %s", spec.name, store_lost)
    finally:
        counts = _end(spec, tracker, status, store_lost, t0)
    return _summary(spec, status, parent, tracking_uri, storage.show(tune_path), t0, counts)


def _start_parent(spec: StudySpec, tracker: StudyTracker, *, log_baselines: bool) -> str:
    """The study's parent run (created, or re-attached on resume), with the model-free baselines once."""
    tags = {
        "lamp.objective_metric": spec.objective.metric,
        "lamp.objective_mode": spec.objective.mode,
        "lamp.search": spec.search.algorithm,
    }
    if spec.n_trials is not None:
        tags["lamp.n_trials_planned"] = str(spec.n_trials)
    if commit := git_commit():
        tags["lamp.git_commit"] = commit
    params = {
        "study.name": spec.name,
        "search.algorithm": spec.search.algorithm,
        "objective.metric": spec.objective.metric,
        "objective.mode": spec.objective.mode,
        "n_trials": str(spec.n_trials),
    }
    parent = tracker.start_study(spec.source_text, spec.content_hash, tags, params)
    if log_baselines:
        log_baseline_metrics(tracker, spec, parent)
        log_dataset_inputs(tracker, spec, parent)
    return parent


def _plan(
    spec: StudySpec,
    storage: Storage,
    tracking_uri: str,
    parent: str,
    configs: list[TrialConfig] | None,
    *,
    restore: bool,
    tune_path: str | None,
    optuna: str | None,
) -> tuple[str, int | None]:
    """(Tune experiment folder relative to the storage root, trials planned), written to the study's state
    file that `resume` reads."""
    exp_dir = study_dir(storage, spec.name)
    planned = len(configs) if configs is not None else spec.n_trials
    before = json.loads(storage.read_text(exp_dir, STATE_FILE)) if restore else {}
    planned = before.get("planned", planned)  # a restored segment plans its own trials, not the spec's
    if tune_path is None:
        tune_path = exp_dir
        if configs is not None:  # a segment: its own Tune experiment next to the study's
            done = len(storage.subdirs(exp_dir, SEGMENTS_DIR))
            tune_path = f"{exp_dir}/{SEGMENTS_DIR}/{done + 1}"
    storage.write_text(spec.source_text, exp_dir, SPEC_FILE)
    state = {
        "tracking_uri": redact(tracking_uri),
        "parent_run_id": parent,
        "tune_dir": tune_path,
        "planned": planned,
        "optuna_storage": redact(optuna) if optuna else before.get("optuna_storage"),
    }
    storage.write_text(json.dumps(state), exp_dir, STATE_FILE)
    logger.info(
        "[%s] %s trials, MLflow experiment %r at %s, Tune storage %s",
        spec.name,
        planned if planned is not None else "?",
        spec.name,
        redact(tracking_uri),
        storage.show(tune_path),
    )
    return tune_path, planned


def _fit(
    spec: StudySpec,
    tracker: StudyTracker,
    storage: Storage,
    tune_path: str,
    configs: list[TrialConfig] | None,
    planned: int | None,
    *,
    restore: bool,
    optuna: str | None,
) -> str:
    """Run the Tune experiment; the study's status: finished, interrupted, or failed (every trial failed)."""
    tuner = _tuner(spec, storage, tune_path, tracker, restore=restore, configs=configs, optuna_storage=optuna)
    try:
        results = tuner.fit()
    finally:
        _ACTIVE.pop(spec.name, None)  # the callbacks' handle on this study ends with its experiment
    can_prune = spec.early_stopping is not None
    reconcile(tracker, spec, results, can_prune)
    ended = sum(
        status in TERMINAL
        for r in results
        for status, _ in trial_outcomes(r.metrics or {}, r.config or {}, can_prune, r.error is not None)
    )
    status = study_status(ended, planned or len(results), _counts(tracker))
    if status == "failed":
        logger.warning(
            "[%s] every trial failed; the error of each is its run's `lamp.error` tag in MLflow", spec.name
        )
    return status


def _end(
    spec: StudySpec, tracker: StudyTracker, status: str, store_lost: TrackingLost | None, t0: float
) -> dict[str, int]:
    """End the parent run with the study's counts (left open when the store is lost); the counts."""
    if status == "interrupted":
        if store_lost is None:  # with the store away, open runs stay open: resume re-attaches to them
            tracker.interrupt_open_trials()
        logger.warning(
            "[%s] interrupted; continue with `lamp-study resume %s`%s",
            spec.name,
            spec.name,
            " once the tracking store is back (nothing is lost: Tune kept every result)"
            if store_lost
            else "",
        )
    if store_lost is not None:
        return {}
    counts = _counts(tracker)
    tracker.end_study(status, {"wall_time_s": time.time() - t0, **{f"n_{k}": v for k, v in counts.items()}})
    return counts


def _tracking_lost(err: BaseException | None) -> TrackingLost | None:
    """The `TrackingLost` behind an error (Tune wraps what a callback raises)."""
    while err is not None:
        if isinstance(err, TrackingLost):
            return err
        err = err.__cause__ or err.__context__
    return None


def _summary(
    spec: StudySpec, status: str, parent: str, uri: str, tune_path: str, t0: float, counts: dict[str, int]
) -> dict[str, Any]:
    """What `run`/`resume` return (and print); `warning` when most trials did not train (study/outcome.py)."""
    summary = {
        "status": status,
        "study": spec.name,
        "parent_run_id": parent,
        "tracking_uri": redact(uri),
        "storage": tune_path,
        "wall_time_s": round(time.time() - t0, 1),
        "trials": counts,
    }
    if outcome := study_outcome(counts):
        summary["warning"] = outcome.message()
        logger.warning("[%s] WARNING: %s", spec.name, outcome.message())
    return summary


def _counts(tracker: StudyTracker) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in tracker.children():
        status = run.data.tags.get(STATUS_TAG, TrialStatus.RUNNING)
        counts[status] = counts.get(status, 0) + 1
    return counts


def _preflight_data(spec: StudySpec) -> None:
    """Load the dataset once on the driver: a missing dataset fails before Ray starts."""
    from study.data import load_dataset

    load_dataset(TrialConfig.from_dict(spec.base_config()).data)
