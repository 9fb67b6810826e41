"""How a trial reaches MLflow: every MLflow write of a study, from the driver only.

`tracker` (`StudyTracker`: the study's parent run), `runs` (one child run per
trial, its params, metrics and result files), `writer` (the background thread
that keeps Tune's loop off the store) and `store` (tracking URIs: checks,
retries, redaction). The run layout is docs/mlflow_schema.md; its tag keys
live in study/core/vocab.py.
"""

from __future__ import annotations

from study.tracking.runs import finite_metrics
from study.tracking.store import TrackingError, TrackingLost, check_tracking_uri, redact
from study.tracking.tracker import EPOCH_METRIC, StudyTracker, git_commit, set_quiet_mlflow_env

__all__ = [
    "EPOCH_METRIC",
    "StudyTracker",
    "TrackingError",
    "TrackingLost",
    "check_tracking_uri",
    "finite_metrics",
    "git_commit",
    "redact",
    "set_quiet_mlflow_env",
]
