"""Model-free baselines: what "no learning" scores on a study's own data.

A reconstruction model's anomaly score is a distance between an input and its
reconstruction. Two scores need no model at all, and a trained model that does
not beat them has learned nothing a user needs:

- `baseline_<metric>_auroc`: the distance of each test sample to the mean
  training image under the base metric `<metric>` (what a collapsed model,
  one that outputs one fixed image, scores at best), for each metric the study
  trains with.
- `baseline_intensity_auroc`: |mean intensity of the sample − mean intensity
  of the normal training images|. Unsigned on purpose: picking the sign (darker
  or brighter = anomalous) that gives the better AUROC would use the test
  labels, which a real user does not have; the unsigned deviation is the
  label-free one-class version.

Both are computed on the reported test part of the test split (the same cut
as every trial's `auroc`, study/trial/run.py `selection_split`), once per study,
on the driver, and logged to the study's parent run.
"""

from __future__ import annotations

import torch

from study.core.config import TrialConfig
from study.data import OneClassData, load_dataset
from study.training.evaluate import detection_metrics
from study.training.losses import get_metric
from study.trial import selection_split
from study.trial.degenerate import model_free_scores


def baseline_aurocs(data: OneClassData, metrics: list[str], split_seed: int) -> dict[str, float]:
    """AUROC of each model-free score on the test part (see the module docstring)."""
    _, test_idx = selection_split(data.test_labels.numpy(), split_seed)
    x = data.test[torch.from_numpy(test_idx)]
    labels = data.test_labels.numpy()[test_idx]
    out = {}
    for name in sorted(set(metrics)):
        free = model_free_scores(x, data.train, get_metric(name))
        out[f"baseline_{name}_auroc"] = detection_metrics(free["mean_image"], labels)["auroc"]
    out["baseline_intensity_auroc"] = detection_metrics(free["intensity"], labels)["auroc"]
    return out


def study_baselines(configs: list[TrialConfig]) -> dict[str, float]:
    """Baselines for a study's trial configurations (its dataset and every metric it trains with)."""
    first = configs[0]
    return baseline_aurocs(load_dataset(first.data), [c.metric for c in configs], first.data.split_seed)
