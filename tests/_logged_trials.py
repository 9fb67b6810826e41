"""Real trained trials logged by the driver's own tracker into a real sqlite MLflow, without Ray.

What `register` and `score` read, made the way a study makes it (`StudyTracker.end_trial` with the
trial's result files), in seconds: tiny conv autoencoders on scikit-learn digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from study.core.config import TrialConfig
from study.tracking import StudyTracker
from study.trial import TrialResult, run_trial
from tests.test_trial import TINY as TRIAL_TINY

# the tiny trial of tests/test_trial.py, measured more cheaply: these tests read what is logged
TINY = {
    **TRIAL_TINY,
    "landscape": {"batch_size": 16, "power_iters": 3, "hutchinson_probes": 2, "grid_1d": 3, "grid_2d": 3},
    "label_free": {"enabled": False},
}


@dataclass
class LoggedTrials:
    """A study's tracking URI and name, and per trial: its run id and its in-memory result."""

    tracking_uri: str
    name: str
    run_ids: list[str]
    results: list[TrialResult]


def log_trials(root: Path, name: str, seeds: tuple[int, ...] = (0,)) -> LoggedTrials:
    """Train one TINY trial per seed and log each as a child run of study `name` in `root`/mlflow.db."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).create_experiment(name, artifact_location=str(root / "artifacts"))  # not in the cwd
    tracker = StudyTracker(uri, name)
    tracker.start_study("name: " + name, "hash", {}, {})
    run_ids, results = [], []
    for seed in seeds:
        cfg = TrialConfig.from_dict({**TINY, "seed": seed})
        result = run_trial(cfg)
        trial_id = f"trial_{seed}"
        tracker.start_trial(trial_id, cfg, "hash")
        result_dir = result.save(root / trial_id)
        tracker.end_trial(trial_id, result.status, result.metrics, result_dir=result_dir)
        run_ids.append(tracker.run_id(trial_id))
        results.append(result)
    tracker.end_study("finished", {})
    return LoggedTrials(uri, name, run_ids, results)
