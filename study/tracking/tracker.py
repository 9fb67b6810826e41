"""MLflow tracking of a study, from the driver only.

Trials never talk to MLflow: they report to Ray Tune, and the driver turns
those reports into one parent run per study and one child run per trial
(layout in README, section "What a study looks like in MLflow"). So a local
sqlite store works on a laptop and a tracking server works on a cluster, and
trial workers need no MLflow credentials.

Child runs are keyed by the Tune trial id (tag `lamp.trial_id`): a resumed
study re-attaches to its runs instead of creating new ones, and a trial whose
run already ended is never logged twice. The child runs' writes live in
`study.tracking.runs`; this module adds the study's parent run.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from study.core.vocab import (
    PARENT_TAG,
    ROLE_TAG,
    SPEC_HASH_TAG,
    STATUS_TAG,
    TERMINAL,
    TRIAL_ID_TAG,
    TrialStatus,
)
from study.tracking.runs import TrialRuns, _metrics, _params, finite_metrics
from study.tracking.store import _RetryingClient, artifact_root, tracking_retry_s, without_credentials

RETRIED = TrialStatus.RETRIED  # lamp status of a failed/interrupted run whose trial ran again in a new run
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


class StudyTracker(TrialRuns):
    """Parent and child runs of one study in one MLflow experiment."""

    def __init__(self, tracking_uri: str, study_name: str, varied: tuple[str, ...] = ()) -> None:
        from mlflow import MlflowClient

        from study.tracking.meta import standard_tags

        self.tracking_uri = tracking_uri
        self.study_name = study_name
        self.client = _RetryingClient(
            MlflowClient(without_credentials(tracking_uri)), tracking_uri, tracking_retry_s()
        )
        exp = self.client.get_experiment_by_name(study_name)
        self.experiment_id = (
            exp.experiment_id
            if exp
            else self.client.create_experiment(study_name, artifact_location=artifact_root(tracking_uri))
        )
        self.parent_run_id: str | None = None
        super().__init__()
        self.varied = varied
        self.standard_tags = standard_tags(git_commit())

    # ------------------------------------------------------------ study
    def start_study(
        self, spec_text: str, spec_hash: str, tags: dict[str, str], params: dict[str, str]
    ) -> str:
        """Create the parent run, or re-attach to it (and to its children) on resume."""
        existing = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'study'", max_results=1
        )
        if existing:
            self.parent_run_id = existing[0].info.run_id
            self._load_children()
            self.client.set_tag(self.parent_run_id, STATUS_TAG, "running")
            return self.parent_run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study_name,
            tags={
                **self.standard_tags,
                ROLE_TAG: "study",
                SPEC_HASH_TAG: spec_hash,
                STATUS_TAG: "running",
                **tags,
            },
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
        self.client.set_tag(self.parent_run_id, STATUS_TAG, status)
        self.client.set_terminated(
            self.parent_run_id, {"finished": "FINISHED", "failed": "FAILED"}.get(status, "KILLED")
        )

    def _load_children(self) -> None:
        for run in self.children():
            trial_id = run.data.tags.get(TRIAL_ID_TAG)
            if trial_id:
                self._runs[trial_id] = run.info.run_id
                self._started.add(trial_id)
                if run.data.tags.get(STATUS_TAG) in (*TERMINAL, RETRIED):
                    self._ended.add(trial_id)
                else:  # an open run: its trial resumes from a checkpoint and re-sends the epochs after it
                    steps = self.client.get_metric_history(run.info.run_id, EPOCH_METRIC)
                    self._last_epoch[trial_id] = max((m.step for m in steps), default=0)

    def children(self) -> list[Any]:
        """Every child run of the study's parent run (deleted ones too), once queued writes landed."""
        self.flush()
        return _children(self.client, self.experiment_id, self.parent_run_id)

    def mark_retried(self, run_id: str) -> None:
        """A failed or interrupted run whose trial runs again in a new run (`resume --retry-failed`)."""
        self.flush()
        self.client.set_tag(run_id, STATUS_TAG, RETRIED)
        self._ended.update(t for t, r in self._runs.items() if r == run_id)

    def interrupt_open_trials(self) -> None:
        """End the runs of trials still running when the driver stops; `resume` re-attaches to them."""
        self.flush()
        for trial_id, run_id in self._runs.items():
            if trial_id not in self._ended:
                self.client.set_tag(run_id, STATUS_TAG, TrialStatus.INTERRUPTED)
                self.client.set_terminated(run_id, "KILLED")


def _children(client: Any, experiment_id: str, parent_run_id: str | None) -> list[Any]:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
            run_view_type=ViewType.ALL,
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def set_quiet_mlflow_env() -> None:
    """Short retries (an unreachable server fails in seconds, not minutes), no progress bars, and MLflow's
    own INFO lines (database creation, migrations) kept off the terminal; set before mlflow is imported."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
