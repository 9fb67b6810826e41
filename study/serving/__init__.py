"""A trained trial as a model: registration, the pyfunc scorer, scoring and serving.

`registry` (`register` and `score`: pick a study's best trial, log its scorer,
set the registry alias), `scorer` (weights -> anomaly scores; the pyfunc
model), `scorer_model` (MLflow's "model from code" entry point) and `serve`
(`lamp-study serve`). The face exports the scorer only: a served model imports
this package, and must not need the registry's imports.
"""

from __future__ import annotations

from study.serving.scorer import Scorer, load_scorer

__all__ = ["Scorer", "load_scorer"]
