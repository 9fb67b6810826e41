"""The model-free scores a trial is compared with on its validation part (study/selection/degeneracy.py)."""

from __future__ import annotations

import numpy as np
import torch

from study.training.losses import Metric


def model_free_scores(x: torch.Tensor, train: torch.Tensor, metric: Metric) -> dict[str, np.ndarray]:
    """Per-sample scores of `x` that need no model: distance to the mean training image under `metric`
    (`mean_image`) and |mean intensity − the training images' mean intensity| (`intensity`)."""
    mean_image = train.float().mean(0, keepdim=True).expand_as(x)
    return {
        "mean_image": metric.score(mean_image, x.float()).double().numpy(),
        "intensity": (x.float().flatten(1).mean(1) - train.float().mean()).abs().double().numpy(),
    }
