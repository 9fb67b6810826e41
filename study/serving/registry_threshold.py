"""The alarm threshold of a registered model or a trial's run (study/serving/threshold.py), read from MLflow.

`register` stores it as tags of the model version it registers; `score
--threshold` reads it back, or sets it from a run's held-out normal scores.
"""

from __future__ import annotations

import re
import tempfile
from typing import Any

import numpy as np

from study.serving.threshold import DEFAULT_FALSE_ALARM, Threshold, ThresholdError, alarm_threshold

_MODEL_URI = re.compile(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))/?")


def run_threshold(client: Any, run_id: str, false_alarm: float = DEFAULT_FALSE_ALARM) -> Threshold:
    """The threshold set on a trial run's held-out normal scores (its `scores.npz` artifact)."""
    from mlflow.exceptions import MlflowException

    from study.core.vocab import SCORES_FILE

    with tempfile.TemporaryDirectory() as d:
        try:
            path = client.download_artifacts(run_id, SCORES_FILE, d)
        except (MlflowException, OSError) as err:
            raise ThresholdError(
                f"run {run_id} has no {SCORES_FILE} to set a threshold on ({err}); pick a finished trial's run"
            ) from None
        with np.load(path, allow_pickle=False) as arrays:
            return alarm_threshold(arrays["scores"], arrays["labels"], arrays["test_part"], false_alarm)


def stored_threshold(client: Any, model_uri: str, run_id: str | None) -> Threshold:
    """The threshold stored with a registered version; for a run (or a version without one), the run's own."""
    match = _MODEL_URI.fullmatch(model_uri)
    if match:
        name, alias, number = match.groups()
        version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
        found = Threshold.from_tags(dict(version.tags))
        if found is not None:
            return found
        run_id = run_id or version.run_id
    if not run_id:
        raise ThresholdError(
            f"{model_uri} has no stored threshold and no trial run to set one on; pass --threshold VALUE"
        )
    return run_threshold(client, run_id)
