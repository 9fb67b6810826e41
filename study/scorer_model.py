"""MLflow "model from code" entry point: the pyfunc model that `study.scorer.log_scorer` packages."""

import mlflow

from study.scorer import AnomalyScorer

mlflow.models.set_model(AnomalyScorer())
