"""One trial end to end, with nothing of Ray or MLflow: train, evaluate, check collapse, measure.

`run` (`run_trial(config)`: the work every executor runs), `collapse` (why a
trial is flagged collapsed: output variance against input variance on
held-out normals) and `baselines` (model-free AUROCs of a study's data).
"""

from __future__ import annotations

from study.trial.collapse import CollapseCheck, measure_collapse
from study.trial.run import (
    VAL_FRACTION,
    TrialResult,
    diverged_metrics,
    evaluation_split,
    measure_trained,
    model_meta,
    run_trial,
    selection_split,
)

__all__ = [
    "VAL_FRACTION",
    "CollapseCheck",
    "TrialResult",
    "diverged_metrics",
    "evaluation_split",
    "measure_collapse",
    "measure_trained",
    "model_meta",
    "run_trial",
    "selection_split",
]
