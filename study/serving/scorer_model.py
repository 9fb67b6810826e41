"""MLflow "model from code" entry point: the pyfunc model that `study.serving.scorer.log_scorer` packages."""

import mlflow

from study.serving.scorer import AnomalyScorer

mlflow.models.set_model(AnomalyScorer())
