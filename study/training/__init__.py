"""What a trial trains and how: models, loss metrics and amplifications, the training loop, evaluation.

`models` (the autoencoder registry), `losses` (base metrics and amplification
forms), `train` (optimisers, the epoch loop, divergence), `evaluate` (anomaly
scores, AUROC/AP, the stratified evaluation subset). torch only: no Ray, no
MLflow (tests/test_layers.py).
"""

from __future__ import annotations

from study.training.evaluate import anomaly_scores, detection_metrics, stratified_subset
from study.training.losses import (
    AMPLIFICATIONS,
    METRICS,
    Amplification,
    Metric,
    get_amplification,
    get_metric,
)
from study.training.models import MODELS, build_model
from study.training.train import OPTIMIZERS, DeviceError, TrainResult, TrainState, resolve_device, train

__all__ = [
    "AMPLIFICATIONS",
    "METRICS",
    "MODELS",
    "OPTIMIZERS",
    "Amplification",
    "DeviceError",
    "Metric",
    "TrainResult",
    "TrainState",
    "anomaly_scores",
    "build_model",
    "detection_metrics",
    "get_amplification",
    "get_metric",
    "resolve_device",
    "stratified_subset",
    "train",
]
