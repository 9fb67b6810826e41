"""Trial runs: one MLflow child run per trial, created, filled and ended through a queued writer.

What to write is decided on the caller's thread (Tune's callbacks), so
`is_ended` and the epoch bookkeeping are exact at once; how is queued on one
writer thread (study/tracking/writer.py), so Tune's loop never waits on the
store. `StudyTracker` (study/tracking/tracker.py) adds the study's parent run.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from study.core.config import TrialConfig
from study.core.vocab import (
    ERROR_TAG,
    GROUP_TAG,
    LANDSCAPE_FILE,
    MODEL_ARTIFACT,
    MODEL_FILE,
    PARENT_TAG,
    ROLE_TAG,
    SCORES_FILE,
    SPEC_HASH_TAG,
    STATUS_TAG,
    TRIAL_ID_TAG,
    TrialStatus,
)
from study.tracking.meta import run_name
from study.tracking.writer import Writer

# MLflow run status per lamp status: a diverged or pruned trial is a valid outcome of a study.
_RUN_STATUS = {
    TrialStatus.FINISHED: "FINISHED",
    TrialStatus.COLLAPSED: "FINISHED",
    TrialStatus.DEGENERATE: "FINISHED",
    TrialStatus.DIVERGED: "FINISHED",
    TrialStatus.PRUNED: "KILLED",
    TrialStatus.FAILED: "FAILED",
}


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric, finite values only: MLflow rejects NaN/inf in some stores."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


class TrialRuns:
    """The child runs of one study: `client`, `experiment_id` and `parent_run_id` come from the tracker."""

    client: Any
    experiment_id: str
    parent_run_id: str | None

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}  # trial id -> run id (filled by the writer as runs are created)
        self._started: set[str] = set()  # trial ids whose run exists or is queued for creation
        self._ended: set[str] = set()  # trial ids whose run has ended (or whose end is queued)
        # trial id -> last epoch logged (a restored trial re-sends the epochs after its checkpoint)
        self._last_epoch: dict[str, int] = {}
        self._epochs: dict[str, list[Any]] = {}  # trial id -> epoch metrics not yet written
        self._params_due: dict[str, list[Any]] = {}  # trial id -> params its queued end will write
        self._lock = threading.Lock()  # guards _epochs and _params_due between the caller and the writer
        self._writer = Writer()
        self.varied: tuple[str, ...] = ()  # the study's varied dimensions: every run name shows them
        self.standard_tags: dict[str, str] = {}  # mlflow.user, mlflow.source.* (study/tracking_meta.py)

    def flush(self) -> None:
        """Wait for every queued trial write; raises the first one's error (e.g. `TrackingLost`)."""
        self._writer.flush()

    def is_ended(self, trial_id: str) -> bool:
        """Whether the trial's run has already ended (a re-run must not log again)."""
        return trial_id in self._ended

    def start_trial(
        self, trial_id: str, cfg: TrialConfig, spec_hash: str, tags: dict[str, str] | None = None
    ) -> None:
        """Create the trial's child run (with extra `tags`) unless it has one; the write is queued."""
        if trial_id in self._started:
            return
        self._started.add(trial_id)
        run_tags = {
            **self.standard_tags,
            PARENT_TAG: self.parent_run_id,
            ROLE_TAG: "trial",
            TRIAL_ID_TAG: trial_id,
            STATUS_TAG: "running",
            GROUP_TAG: cfg.group_key(),
            SPEC_HASH_TAG: spec_hash,
            **(tags or {}),
        }
        name = run_name(cfg, self.varied)
        self._writer.submit(lambda: self._create(trial_id, name, run_tags, cfg.to_params()))

    def _create(self, trial_id: str, name: str, tags: dict[str, str], params: dict[str, str]) -> None:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        if self.client.retried:  # an attempt may have reached the store before its answer was lost
            run = _keep_one_run(self.client, self.experiment_id, trial_id, run)
        self._runs[trial_id] = run.info.run_id
        with self._lock:
            if trial_id in self._ended:  # its end is queued: that write takes the params (one call less)
                self._params_due[trial_id] = _params(params)
                return
        self.client.log_batch(run.info.run_id, params=_params(params))

    def run_id(self, trial_id: str) -> str:
        """The trial's run id, once its queued creation landed."""
        self.flush()
        return self._runs[trial_id]

    def log_epoch(self, trial_id: str, epoch: int, metrics: dict[str, Any]) -> None:
        """Per-epoch metrics at step = epoch, once per epoch (queued; written with the next write of the run).

        A trial restored from a checkpoint re-trains the epochs after it; those
        already logged keep their first values, so every step appears once.
        """
        if (
            trial_id in self._ended
            or trial_id not in self._started
            or epoch <= self._last_epoch.get(trial_id, 0)
        ):
            return
        with self._lock:
            self._epochs.setdefault(trial_id, []).extend(_metrics(finite_metrics(metrics), step=epoch))
        self._last_epoch[trial_id] = epoch
        self._writer.submit(lambda: self._write_epochs(trial_id))

    def _write_epochs(self, trial_id: str) -> None:
        """The epochs queued for this run, unless its end is queued: that write takes them (one call less)."""
        if trial_id in self._ended:
            return
        if pending := self._take_epochs(trial_id):
            _log_metrics(self.client, self._runs[trial_id], pending)

    def _take_epochs(self, trial_id: str) -> list[Any]:
        with self._lock:
            return self._epochs.pop(trial_id, [])

    def end_trial(
        self,
        trial_id: str,
        status: str,
        metrics: dict[str, Any],
        *,
        result_dir: str | Path | None = None,
        error: str | None = None,
        tags: dict[str, str] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Final metrics, artifacts and model, extra `tags`, the lamp status, and the end of the run.

        Queued: `result_dir` must outlive the call (a checkpoint folder in the
        study's storage). `then()` runs after the write, on the writer thread.
        """
        if trial_id in self._ended or trial_id not in self._started:
            return
        self._ended.add(trial_id)
        run_tags = {**(tags or {}), STATUS_TAG: status}
        if error:
            run_tags[ERROR_TAG] = error[:4000]
        final = finite_metrics(metrics)

        def write() -> None:
            from mlflow.entities import RunTag

            run_id = self._runs[trial_id]
            batch = self._take_epochs(trial_id) + _metrics(final)
            with self._lock:
                params = self._params_due.pop(trial_id, [])
            _log_metrics(
                self.client,
                run_id,
                batch,
                tags=[
                    RunTag(k, str(v)) for k, v in run_tags.items() if v
                ],  # str: a TrialStatus as its plain string
                params=params,
            )
            if result_dir is not None:
                _log_result_files(self.client, run_id, Path(result_dir))
            self.client.set_terminated(run_id, _RUN_STATUS[status])
            if then is not None:
                then()

        self._writer.submit(write)


def _keep_one_run(client: Any, experiment_id: str, trial_id: str, run: Any) -> Any:
    """After a retried create: delete any second run the lost attempts made for this trial."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TRIAL_ID_TAG}` = '{trial_id}'", order_by=["start_time ASC"]
    )
    for extra in runs[1:]:
        client.delete_run(extra.info.run_id)
    return runs[0] if runs else run


def _log_result_files(client: Any, run_id: str, result_dir: Path) -> None:
    """The trial's scores and landscape arrays, and its weights with what rebuilds the model.

    Weights, not a pyfunc model: `register` builds the pyfunc scorer of the one trial it picks
    (study/serving/scorer.py). The run's artifact tree is laid out in a scratch folder (links, not copies)
    and logged in one call: per-call store overhead, not bytes, is what a finished trial costs.
    """
    from study.serving.scorer import write_weights

    with tempfile.TemporaryDirectory() as d:
        tree = Path(d)
        for name in (SCORES_FILE, LANDSCAPE_FILE):
            if (result_dir / name).exists():
                _link_or_copy(result_dir / name, tree / name)
        if (result_dir / MODEL_FILE).exists():
            write_weights(result_dir, tree / MODEL_ARTIFACT)
        if any(tree.iterdir()):
            client.log_artifacts(run_id, d)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copyfile(src, dst)


def _log_metrics(
    client: Any,
    run_id: str,
    metrics: list[Any],
    tags: list[Any] | None = None,
    params: list[Any] | None = None,
) -> None:
    """One log_batch, or several when there are more metrics than MLflow takes in one (1,000 entities)."""
    chunks = [metrics[i : i + 800] for i in range(0, len(metrics), 800)] or [[]]
    for i, chunk in enumerate(chunks):
        first = i == 0
        if chunk or (first and (tags or params)):
            client.log_batch(
                run_id,
                metrics=chunk,
                tags=(tags or []) if first else [],
                params=(params or []) if first else [],
            )


def _params(params: dict[str, str]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in params.items()]


def _metrics(metrics: dict[str, float], step: int = 0) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, v, now, step) for k, v in metrics.items()]
