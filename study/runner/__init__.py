"""Ray Tune execution of a study (every Ray import of the project lives here: tests/test_layers.py).

A study is a list of `TrialConfig`s (grid, random) or a define-by-run Optuna
space (tpe). Each Tune trial runs `study.trial.run_trial` in a reused actor,
reports every epoch, and hands its result files to the driver in a final
checkpoint. The driver logs to MLflow through `MlflowCallback` and emits
progress records (`Progress`, logger `PROGRESS_LOGGER`) that the caller
renders. `resume_study` restores the Tune experiment from its storage; trials
Tune finished are not re-run, and the tracker never logs a trial twice.

The driver/trial boundary: trials receive plain dicts and return metrics and
files through Tune; they need neither MLflow nor the spec file.

Also here: how Tune proposes trials (`_search`), the storage check before a
study starts (`_storage`), the fault tests' pause point (`_gate`) and the
per-pack timing of `validate --calibrate` (`_calibrate`).
"""

from __future__ import annotations

from study.runner._calibrate import calibrate
from study.runner._callbacks import MlflowCallback
from study.runner._cluster import ClusterError, check_resources
from study.runner._driver import resume_study, run_study, study_dir
from study.runner._keys import (
    ATTEMPTS_TAG,
    EPOCHS_KEY,
    ERROR_KEY,
    NODE_KEY,
    NODE_TAG,
    OBJECTIVE_KEY,
    STATE_FILE,
    STATUS_KEY,
)
from study.runner._progress import PROGRESS_LOGGER, Progress, ProgressState
from study.runner._search import search_algorithm
from study.runner._storage import Storage, check_storage
from study.runner._trainable import report_interval_s, trainable, trial_config
from study.runner._tuner import max_epochs

__all__ = [
    "ATTEMPTS_TAG",
    "EPOCHS_KEY",
    "ERROR_KEY",
    "NODE_KEY",
    "NODE_TAG",
    "OBJECTIVE_KEY",
    "PROGRESS_LOGGER",
    "STATE_FILE",
    "STATUS_KEY",
    "ClusterError",
    "MlflowCallback",
    "Progress",
    "ProgressState",
    "Storage",
    "calibrate",
    "check_resources",
    "check_storage",
    "max_epochs",
    "report_interval_s",
    "resume_study",
    "run_study",
    "search_algorithm",
    "study_dir",
    "trainable",
    "trial_config",
]
