"""The light core every layer imports: a trial's config, errors, metric directions, vocabularies.

`config` (TrialConfig, the parameters of one trial as data), `errors`
(LampError: bad input, exit 2), `metrics` (which way each comparable metric is
better) and `vocab` (the closed vocabularies: trial statuses, MLflow tag keys,
a trial's file names). Imports no torch, MLflow or Ray (tests/test_layers.py).
"""

from __future__ import annotations

from study.core.config import DataConfig, LabelFreeConfig, LandscapeConfig, TrialConfig
from study.core.errors import LampError
from study.core.metrics import OBJECTIVES, higher_is_better, mode_of
from study.core.vocab import Direction, TrialStatus

__all__ = [
    "OBJECTIVES",
    "DataConfig",
    "Direction",
    "LabelFreeConfig",
    "LampError",
    "LandscapeConfig",
    "TrialConfig",
    "TrialStatus",
    "higher_is_better",
    "mode_of",
]
