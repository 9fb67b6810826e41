"""The closed vocabularies of a study, in one place that writer and reader both import.

Statuses are a `StrEnum`: each member equals its string (`TrialStatus.FINISHED ==
"finished"`), so the values logged to MLflow, reported through Ray Tune and
read back by the report are the plain strings of docs/mlflow_schema.md.
Tag keys and a trial's file names are plain constants. Nothing here imports
torch, MLflow or Ray (tests/test_layers.py).
"""

from __future__ import annotations

from enum import StrEnum


class TrialStatus(StrEnum):
    """A trial's `lamp.status` (and a study's summary status: `finished` or `interrupted`)."""

    RUNNING = "running"
    FINISHED = "finished"  # trained, evaluated, not collapsed
    COLLAPSED = "collapsed"  # output independent of input (study/trial/collapse.py)
    DEGENERATE = "degenerate"  # scores like a trivial model, no better than the baselines (study/selection/degeneracy.py)
    DIVERGED = "diverged"  # the training loss became non-finite
    FAILED = "failed"  # an exception (`lamp.error` says which)
    PRUNED = "pruned"  # stopped early by the scheduler
    INTERRUPTED = "interrupted"  # the driver stopped before the trial ended
    RETRIED = "retried"  # a failed/interrupted run whose trial ran again in a new run


# Statuses a trial's run ends with, in the order reports list them.
TERMINAL: tuple[TrialStatus, ...] = (
    TrialStatus.FINISHED,
    TrialStatus.COLLAPSED,
    TrialStatus.DEGENERATE,
    TrialStatus.DIVERGED,
    TrialStatus.FAILED,
    TrialStatus.PRUNED,
)
# Statuses a report shows: the terminal ones and trials still running.
REPORTED: tuple[TrialStatus, ...] = (*TERMINAL, TrialStatus.RUNNING)
# Statuses whose trial `resume --retry-failed` runs again.
RETRYABLE: tuple[TrialStatus, ...] = (TrialStatus.FAILED, TrialStatus.INTERRUPTED)


class Direction(StrEnum):
    """Which way a metric is better; equal to the `mode` strings Ray Tune and Optuna take."""

    MIN = "min"
    MAX = "max"


# MLflow tag keys (docs/mlflow_schema.md).
ROLE_TAG = "lamp.role"  # "study" on the parent run, "trial" on each child
STATUS_TAG = "lamp.status"  # a `TrialStatus`
TRIAL_ID_TAG = "lamp.trial_id"
SPEC_HASH_TAG = "lamp.spec_hash"
ERROR_TAG = "lamp.error"
GROUP_TAG = "lamp.group"
PARENT_TAG = "mlflow.parentRunId"

# A trial's result files (written by study/trial/run.py, logged by study/tracking/runs.py).
MODEL_FILE = "model.pt"  # torch state dict of the trained model
META_FILE = "meta.json"  # {"model_meta": build_model's arguments, "metric": the base metric}
SCORES_FILE = "scores.npz"
LANDSCAPE_FILE = "landscape.npz"
RESULT_FILE = "result.json"
MODEL_ARTIFACT = "model"  # a trial's weights folder in MLflow: MODEL_FILE and META_FILE

# Optimisers whose step scales with the gradient: only these see a linear factor as a learning-rate change.
SCALE_SENSITIVE_OPTIMIZERS = ("sgd",)
# A trial is collapsed when its outputs' variance across samples is below this share of its inputs'.
VAR_RATIO_MIN = 0.01

# Synthetic-anomaly families (study/labelfree/families.py defines them; tests check the names match).
FAMILY_NAMES = ("cutdiff", "cutpaste", "perlin", "intensity", "rotate", "mix")
FAMILY_PREFIX = "synthetic_auroc_"
MEAN_METRIC = "synthetic_auroc_mean"
UNLABELLED_METRIC = "unlabelled_auroc"  # held-out normals against the unlabelled pool


def family_metric(name: str) -> str:
    """MLflow metric name of a family's synthetic AUROC."""
    return FAMILY_PREFIX + name
