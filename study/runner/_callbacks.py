"""Driver-side Tune callbacks: MLflow logging of every trial (the live progress is study/runner/_progress.py)."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback

from study.core.config import TrialConfig
from study.runner._keys import (
    ATTEMPTS_TAG,
    CHECKPOINTED_KEY,
    EPOCHS_KEY,
    ERROR_KEY,
    NODE_KEY,
    NODE_TAG,
    OBJECTIVE_KEY,
    STATUS_KEY,
)
from study.runner._packed import (
    MEMBER_KEY,
    PACK_KEY,
    PACK_TAG,
    is_pack,
    member_dir,
    member_id,
    member_outcomes,
    members,
)
from study.runner._trainable import trial_config
from study.spec import StudySpec
from study.tracking import StudyTracker

# The live tracker and spec of each study this driver runs. Tune pickles its callbacks with the
# experiment and restores those copies on resume, so callbacks keep only the study name and look
# the live objects up here: a resumed study logs through a tracker that knows the runs of before.
_ACTIVE: dict[str, tuple[StudyTracker, StudySpec]] = {}


class MlflowCallback(Callback):
    """Driver-side MLflow logging of every trial."""

    def __init__(self, study: str) -> None:
        self.study = study

    def _live(self) -> tuple[StudyTracker, StudySpec]:
        return _ACTIVE[self.study]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # A pack's member runs are created with its first result: a pack that ends before it reports
        # then costs one write per member less (its params go with the final write).
        if not is_pack(trial.config):
            tracker, spec = self._live()
            start_runs(tracker, spec, trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        tracker, spec = self._live()
        start_runs(tracker, spec, trial.trial_id, trial.config)
        log_epochs(tracker, trial.trial_id, result)
        if result.get(CHECKPOINTED_KEY):
            # Tune keeps this checkpoint once we return, and a trial restored from it never re-sends
            # the epochs before it: they must be in the store first (a lost store stops the study here)
            tracker.flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tracker, spec = self._live()
        start_runs(tracker, spec, trial.trial_id, trial.config)
        _finish(tracker, trial, spec.early_stopping is not None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tracker, spec = self._live()
        # A trial can fail before it starts (e.g. its reused actor died with its node): it still gets its run.
        start_runs(tracker, spec, trial.trial_id, trial.config)
        close_trial(
            tracker,
            trial.trial_id,
            trial.config,
            "failed",
            {},
            None,
            error=_read_error(trial),
            tags=_run_tags(trial),
        )


WITH_RESULTS = (
    "finished",
    "collapsed",
    "degenerate",
    "diverged",
)  # statuses whose final checkpoint holds result files


def _status(result: dict[str, Any], can_prune: bool) -> str:
    """The lamp status of a trial Tune terminated.

    A trial stopped while still running was pruned when a scheduler can prune,
    else the study was interrupted (Ctrl-C) and `resume` will run it again.
    """
    status = result.get(STATUS_KEY, "running")
    if status != "running":
        return status
    return "pruned" if can_prune else "interrupted"


def trial_outcomes(
    result: dict[str, Any], config: dict[str, Any], can_prune: bool, errored: bool = False
) -> list[tuple[str, float | None]]:
    """(lamp status, selection value) of each trial a Tune trial that ended holds: one, or a pack's members."""
    status = "failed" if errored else _status(result, can_prune)
    if is_pack(config):
        return member_outcomes(result, _size(config), status)
    return [(status, result.get(OBJECTIVE_KEY) if status == "finished" else None)]


def log_epochs(tracker: StudyTracker, trial_id: str, result: dict[str, Any]) -> None:
    """The per-epoch rows a result carries, each to its trial's run (a pack's rows name their member)."""
    for row in json.loads(result.get(EPOCHS_KEY) or "[]"):
        run = member_id(trial_id, row[MEMBER_KEY]) if MEMBER_KEY in row else trial_id
        tracker.log_epoch(run, int(row["epoch"]), _epoch_metrics(row))


def _size(config: dict[str, Any]) -> int:
    """How many trials a Tune trial holds."""
    return len(config[PACK_KEY]["members"]) if is_pack(config) else 1


def _runs(trial_id: str, config: dict[str, Any], spec: StudySpec) -> list[tuple[str, TrialConfig]]:
    """(tracked trial id, config) of the trials a Tune trial holds: itself, or a pack's members."""
    if is_pack(config):
        return members(trial_id, config)
    return [(trial_id, trial_config(config, spec))]


def start_runs(tracker: StudyTracker, spec: StudySpec, trial_id: str, config: dict[str, Any]) -> None:
    """The MLflow run of each trial a Tune trial holds, unless it already ended (a resumed study)."""
    tags = {PACK_TAG: config[PACK_KEY]["pack_id"]} if is_pack(config) else {}
    for run, cfg in _runs(trial_id, config, spec):
        if not tracker.is_ended(run):
            tracker.start_trial(run, cfg, spec.content_hash, tags=tags)


def all_ended(tracker: StudyTracker, trial_id: str, config: dict[str, Any]) -> bool:
    """Whether every run of a Tune trial (one, or a pack's members) has ended."""
    if is_pack(config):
        return all(tracker.is_ended(member_id(trial_id, k)) for k in range(_size(config)))
    return tracker.is_ended(trial_id)


def _epoch_metrics(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k.startswith(("train_", "val_"))}


def _final_metrics(result: dict[str, Any]) -> dict[str, Any]:
    skip = {
        OBJECTIVE_KEY,
        EPOCHS_KEY,
        CHECKPOINTED_KEY,
        "epoch",
        "training_iteration",
        "timestamp",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "pid",
        "done",
        NODE_KEY,
    }
    per_epoch = _epoch_metrics(result).keys() - {"train_time_s"}
    return {k: v for k, v in result.items() if k not in skip and k not in per_epoch}


def _finish(tracker: StudyTracker, trial: Any, can_prune: bool) -> None:
    result = trial.last_result or {}
    status = _status(result, can_prune)
    if status == "interrupted":
        return  # left open for `resume`; `interrupt_open_trials` ends the run if the driver stops
    close_trial(
        tracker,
        trial.trial_id,
        trial.config,
        status,
        result,
        trial.checkpoint,
        error=result.get(ERROR_KEY),
        tags=_run_tags(trial),
    )


def close_trial(
    tracker: StudyTracker,
    trial_id: str,
    config: dict[str, Any],
    status: str,
    result: dict[str, Any],
    checkpoint: Any,
    *,
    error: str | None,
    tags: dict[str, str],
) -> None:
    """End the run of each trial a Tune trial holds, with its final metrics and result files.

    The one way a run is closed, by the callback as trials end and by the
    driver's reconciliation after `fit()` for any the callback missed. A
    pack's members each end with their own status and files (`member_<k>`).
    """
    from study.core.vocab import RESULT_FILE

    d = _local_dir(checkpoint) if checkpoint is not None and status in WITH_RESULTS else None
    # MLflow then holds the files: the checkpoint leaves Tune's storage once the last run is written
    done = _dropper(checkpoint, d) if d is not None else None
    if is_pack(config):
        tags = {**tags, PACK_TAG: config[PACK_KEY]["pack_id"]}
        outcomes = member_outcomes(result, _size(config), status)
        ends = [
            (member_id(trial_id, k), s, member_dir(d, k) if d else None) for k, (s, _) in enumerate(outcomes)
        ]
        without_files: dict[str, Any] = {}
    else:
        ends = [(trial_id, status, d)]
        without_files = _final_metrics(result)  # a failed trial: what its last report had
    for i, (run, run_status, files) in enumerate(ends):
        then = done if i == len(ends) - 1 else None
        if files is None or not (files / RESULT_FILE).exists():
            tracker.end_trial(run, run_status, without_files, error=error, tags=tags, then=then)
            continue
        metrics = _final_metrics(json.loads((files / RESULT_FILE).read_text())["metrics"])
        tracker.end_trial(run, run_status, metrics, result_dir=files, tags=tags, then=then)


def _local_dir(checkpoint: Any) -> Path:
    """The checkpoint's folder on this machine, which outlives the queued writes: the folder itself on a
    local or shared filesystem, else a download from the object store (a temporary folder)."""
    if _is_local(checkpoint):
        return Path(checkpoint.path)
    return Path(checkpoint.to_directory())


def _is_local(checkpoint: Any) -> bool:
    import pyarrow.fs

    return isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem)


def _dropper(checkpoint: Any, d: Path) -> Any:
    """What removes a logged checkpoint: its folder, and in an object store its objects as well."""

    def drop() -> None:
        shutil.rmtree(d, ignore_errors=True)
        if not _is_local(checkpoint):
            with contextlib.suppress(OSError):  # Tune's own retention removes it later otherwise
                checkpoint.filesystem.delete_dir(checkpoint.path)

    return drop


def _run_tags(trial: Any) -> dict[str, str]:
    """Where the trial last ran and how many attempts it took (Tune retries a trial whose worker died)."""
    return {
        NODE_TAG: str((trial.last_result or {}).get(NODE_KEY) or ""),
        ATTEMPTS_TAG: str(trial.num_failures + 1),
    }


def _read_error(trial: Any) -> str:
    path = getattr(trial, "error_file", None) or ""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return "trial failed (no error file; a worker or node may have died)"
    return text.splitlines()[-1] if text else "trial failed"


def reconcile(tracker: StudyTracker, spec: StudySpec, results: Any, can_prune: bool) -> None:
    """Close any child run Tune finished but the callbacks missed (e.g. a driver killed in between, or
    writes lost with the store): creating it first when it never reached the store."""
    for result in results:
        metrics, config = result.metrics or {}, result.config or {}
        trial_id = metrics.get("trial_id")
        status = _status(metrics, can_prune)
        if (
            not trial_id
            or all_ended(tracker, trial_id, config)
            or (status == "interrupted" and not result.error)
        ):
            continue
        tags = {NODE_TAG: str(metrics.get(NODE_KEY) or "")}
        error = str(result.error) if result.error else metrics.get(ERROR_KEY)
        if result.error and not (result.checkpoint is not None and status in WITH_RESULTS):
            status = "failed"
        start_runs(tracker, spec, trial_id, config)
        log_epochs(tracker, trial_id, metrics)  # the last report's epochs, if their writes were lost
        close_trial(tracker, trial_id, config, status, metrics, result.checkpoint, error=error, tags=tags)
