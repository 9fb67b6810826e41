"""MLflow tracking of a study, from the driver only.

Trials never talk to MLflow: they report to Ray Tune, and the driver turns
those reports into one parent run per study and one child run per trial
(layout in README, section "What a study looks like in MLflow"). So a local
sqlite store works on a laptop and a tracking server works on a cluster, and
trial workers need no MLflow credentials.

Child runs are keyed by the Tune trial id (tag `lamp.trial_id`): a resumed
study re-attaches to its runs instead of creating new ones, and a trial whose
run already ended is never logged twice.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from study.config import TrialConfig
from study.tracking_store import (
    _RetryingClient,
    tracking_retry_s,
    without_credentials,
)
from study.tracking_writer import Writer

ROLE = "lamp.role"
STATUS = "lamp.status"
TRIAL_ID = "lamp.trial_id"
SPEC_HASH = "lamp.spec_hash"
PARENT = "mlflow.parentRunId"
TERMINAL = ("finished", "collapsed", "diverged", "failed", "pruned")
# MLflow run status per lamp status: a diverged or pruned trial is a valid outcome of a study.
_RUN_STATUS = {
    "finished": "FINISHED",
    "collapsed": "FINISHED",
    "diverged": "FINISHED",
    "pruned": "KILLED",
    "failed": "FAILED",
}
MODEL_ARTIFACT = "model"  # a trial's weights folder: model.pt and meta.json (study/scorer.py)
RETRIED = "retried"  # lamp status of a failed/interrupted run whose trial ran again in a new run
EPOCH_METRIC = "train_base_loss"  # logged every epoch of every trial: its steps are the epochs logged


def git_commit() -> str | None:
    """The working tree's commit, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric, finite values only: MLflow rejects NaN/inf in some stores."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


class StudyTracker:
    """Parent and child runs of one study in one MLflow experiment."""

    def __init__(self, tracking_uri: str, study_name: str) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.study_name = study_name
        self.client = _RetryingClient(
            MlflowClient(without_credentials(tracking_uri)), tracking_uri, tracking_retry_s()
        )
        exp = self.client.get_experiment_by_name(study_name)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(study_name)
        self.parent_run_id: str | None = None
        self._runs: dict[str, str] = {}  # trial id -> run id (filled by the writer as runs are created)
        self._started: set[str] = set()  # trial ids whose run exists or is queued for creation
        self._ended: set[str] = set()  # trial ids whose run has ended (or whose end is queued)
        # trial id -> last epoch logged (a restored trial re-sends the epochs after its checkpoint)
        self._last_epoch: dict[str, int] = {}
        self._epochs: dict[str, list[Any]] = {}  # trial id -> epoch metrics not yet written
        self._params_due: dict[str, list[Any]] = {}  # trial id -> params its queued end will write
        self._lock = threading.Lock()  # guards _epochs and _params_due between the caller and the writer
        self._writer = Writer()

    # ------------------------------------------------------------ study
    def start_study(
        self, spec_text: str, spec_hash: str, tags: dict[str, str], params: dict[str, str]
    ) -> str:
        """Create the parent run, or re-attach to it (and to its children) on resume."""
        existing = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{ROLE}` = 'study'", max_results=1
        )
        if existing:
            self.parent_run_id = existing[0].info.run_id
            self._load_children()
            self.client.set_tag(self.parent_run_id, STATUS, "running")
            return self.parent_run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study_name,
            tags={ROLE: "study", SPEC_HASH: spec_hash, STATUS: "running", **tags},
        )
        self.parent_run_id = run.info.run_id
        self.client.log_batch(self.parent_run_id, params=_params(params))
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "spec.yaml"
            path.write_text(spec_text)
            self.client.log_artifact(self.parent_run_id, str(path))
        return self.parent_run_id

    def end_study(self, status: str, metrics: dict[str, float]) -> None:
        """Record the study's outcome and end the parent run (after every queued trial write)."""
        assert self.parent_run_id is not None
        self.flush()
        self.client.log_batch(self.parent_run_id, metrics=_metrics(finite_metrics(metrics)))
        self.client.set_tag(self.parent_run_id, STATUS, status)
        self.client.set_terminated(
            self.parent_run_id, {"finished": "FINISHED", "failed": "FAILED"}.get(status, "KILLED")
        )

    def flush(self) -> None:
        """Wait for every queued trial write; raises the first one's error (e.g. `TrackingLost`)."""
        self._writer.flush()

    def _load_children(self) -> None:
        for run in self.children():
            trial_id = run.data.tags.get(TRIAL_ID)
            if trial_id:
                self._runs[trial_id] = run.info.run_id
                self._started.add(trial_id)
                if run.data.tags.get(STATUS) in (*TERMINAL, RETRIED):
                    self._ended.add(trial_id)
                else:  # an open run: its trial resumes from a checkpoint and re-sends the epochs after it
                    steps = self.client.get_metric_history(run.info.run_id, EPOCH_METRIC)
                    self._last_epoch[trial_id] = max((m.step for m in steps), default=0)

    def children(self) -> list[Any]:
        """Every child run of the study's parent run (deleted ones too), once queued writes landed."""
        self.flush()
        return _children(self.client, self.experiment_id, self.parent_run_id)

    # ------------------------------------------------------------ trials
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
            PARENT: self.parent_run_id,
            ROLE: "trial",
            TRIAL_ID: trial_id,
            STATUS: "running",
            "lamp.group": cfg.group_key(),
            SPEC_HASH: spec_hash,
            **(tags or {}),
        }
        self._writer.submit(lambda: self._create(trial_id, _run_name(cfg), run_tags, cfg.to_params()))

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
        run_tags = {**(tags or {}), STATUS: status}
        if error:
            run_tags["lamp.error"] = error[:4000]
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
                tags=[RunTag(k, v) for k, v in run_tags.items() if v],
                params=params,
            )
            if result_dir is not None:
                _log_result_files(self.client, run_id, Path(result_dir))
            self.client.set_terminated(run_id, _RUN_STATUS[status])
            if then is not None:
                then()

        self._writer.submit(write)

    def mark_retried(self, run_id: str) -> None:
        """A failed or interrupted run whose trial runs again in a new run (`resume --retry-failed`)."""
        self.flush()
        self.client.set_tag(run_id, STATUS, RETRIED)
        self._ended.update(t for t, r in self._runs.items() if r == run_id)

    def interrupt_open_trials(self) -> None:
        """End the runs of trials still running when the driver stops; `resume` re-attaches to them."""
        self.flush()
        for trial_id, run_id in self._runs.items():
            if trial_id not in self._ended:
                self.client.set_tag(run_id, STATUS, "interrupted")
                self.client.set_terminated(run_id, "KILLED")


def _run_name(cfg: TrialConfig) -> str:
    name = f"{cfg.arch}-{cfg.metric}-{cfg.amplification}{cfg.factor:g}-{cfg.optimizer}-s{cfg.seed}"
    return name + (f"-twin{cfg.twin_of:g}" if cfg.twin_of else "")


def _children(client: Any, experiment_id: str, parent_run_id: str | None) -> list[Any]:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT}` = '{parent_run_id}'",
            run_view_type=ViewType.ALL,
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _keep_one_run(client: Any, experiment_id: str, trial_id: str, run: Any) -> Any:
    """After a retried create: delete any second run the lost attempts made for this trial."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TRIAL_ID}` = '{trial_id}'", order_by=["start_time ASC"]
    )
    for extra in runs[1:]:
        client.delete_run(extra.info.run_id)
    return runs[0] if runs else run


def _log_result_files(client: Any, run_id: str, result_dir: Path) -> None:
    """The trial's scores and landscape arrays, and its weights with what rebuilds the model.

    Weights, not a pyfunc model: `register` builds the pyfunc scorer of the one trial it picks
    (study/scorer.py). The run's artifact tree is laid out in a scratch folder (links, not copies)
    and logged in one call: per-call store overhead, not bytes, is what a finished trial costs.
    """
    from study.scorer import write_weights
    from study.trial import LANDSCAPE_FILE, MODEL_FILE, SCORES_FILE

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


def set_quiet_mlflow_env() -> None:
    """Short retries (an unreachable server fails in seconds, not minutes) and no progress bars."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
