"""What the parent run records before the trials: model-free baseline metrics and dataset inputs."""

from __future__ import annotations

import logging

from study.core.config import TrialConfig
from study.spec import StudySpec
from study.tracking import StudyTracker

logger = logging.getLogger(__name__)


def log_baseline_metrics(tracker: StudyTracker, spec: StudySpec, parent: str) -> None:
    """Model-free baseline AUROCs (study/trial/baselines.py) on the parent run; a tpe study has no
    trial list, so its fixed configuration stands for it."""
    from study.trial.baselines import study_baselines

    configs = spec.expand() if spec.search.algorithm != "tpe" else [TrialConfig.from_dict(spec.base_config())]
    for key, value in study_baselines(configs).items():
        tracker.client.log_metric(parent, key, value)


def log_dataset_inputs(tracker: StudyTracker, spec: StudySpec, parent: str) -> None:
    """Every dataset setting the trials use (a study may vary the normal class) as the parent run's inputs.

    A setting that does not load is skipped here: its trials fail with that error and are recorded.
    """
    from study.data import DatasetError, load_dataset
    from study.tracking.meta import log_dataset

    for cfg in spec.data_configs():
        try:
            data = load_dataset(cfg)
        except DatasetError as err:
            logger.warning("dataset setting not logged as an MLflow input: %s", err)
            continue
        log_dataset(tracker.client, parent, cfg, data)
