"""A trial's label-free metrics: calibrated synthetic-anomaly AUROCs per family, plus ST-SSAD's scores.

Called once at the end of a trial (study/trial/run.py). Per family f it logs
`synthetic_auroc_<f>` (normal held-out images against their corrupted copies,
`draws` copies each, at the study's calibrated severity `severity_<f>`, where
the model-free reference scores `reference_auroc_<f>`) and their mean
`synthetic_auroc_mean`, and `unlabelled_auroc`: held-out normal images against
the unlabelled pool, an affine image of the test AUROC (study/labelfree/unlabelled.py).
The cross-trial selector
(study/selection/rules.py) combines the per-family ranks. ST-SSAD's
`synthetic_auroc`, `alignment_loss` and their self-tuned versions are kept for
comparison (the regret benchmark demoted the alignment loss: bench/RESULTS.md).

Fairness across trials: severities come from the data alone
(study/labelfree/calibration.py) and the corruptions are seeded by the data's
split seed, not the trial seed, so every trial of a study, every seed
included, is scored on the same pseudo-anomalies (common random numbers).

Cost: `label_free.budget` caps the forward passes at a share of training's
(`plan_budget`); the normal images are a prefix of one seeded permutation, so
a budgeted subset is nested in the full set. The test pool enters without its
labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from study.core.config import LabelFreeConfig, TrialConfig
from study.core.vocab import MEAN_METRIC, UNLABELLED_METRIC, family_metric
from study.data import OneClassData
from study.labelfree.calibration import calibrate_severity
from study.labelfree.families import FAMILIES, corrupt
from study.labelfree.stssad import label_free_scores, separation_auroc
from study.labelfree.unlabelled import unlabelled_auroc
from study.training.evaluate import anomaly_scores
from study.training.losses import Metric, get_metric

TRAIN_FORWARDS_PER_SAMPLE = (
    3.0  # a training step (forward, backward, update) costs about three forward passes
)
FAMILY_SHARE = 0.7  # share of the budget the synthetic families may take before ST-SSAD gets the rest
MIN_POOL = 32  # a smaller test pool gives the alignment loss nothing to align to
TUNE_BATCH = 64  # normal images per self-tuning step (study.labelfree.stssad.label_free_scores default)
CALIBRATION_IMAGES = 256  # normal images the severity calibration corrupts (model-free, once per process)


@dataclass(frozen=True)
class Plan:
    """How much label-free work one trial does."""

    n_normal: int  # normal images scored (each family corrupts all of them `draws` times)
    pool_size: int  # unlabelled test images for the alignment loss
    tune_steps: int  # self-tuning steps


def plan_budget(lf: LabelFreeConfig, *, n_val: int, n_test: int, train_samples: int) -> Plan:
    """Sizes within `lf.budget` x the forward passes training spent on `train_samples` samples.

    Counted in forward passes, not seconds, so the plan is deterministic and
    scales with image size exactly as training does. Families come first (the
    default selector needs them), at least `min_normal` images each; the pool
    and the tuning steps get what is left.
    """
    full = Plan(n_val, min(lf.pool_size, n_test), lf.tune_steps)
    if lf.budget is None:
        return full
    allowed = lf.budget * TRAIN_FORWARDS_PER_SAMPLE * train_samples
    per_normal = 3 + len(FAMILIES) * lf.draws  # clean, CutDiff before and after tuning, family copies
    n = int(min(n_val, max(min(lf.min_normal, n_val), FAMILY_SHARE * allowed // per_normal)))
    rest = allowed - n * per_normal
    pool = int(min(full.pool_size, max(MIN_POOL, rest // 2)))
    steps = int(min(lf.tune_steps, max(0, (rest - pool) // (TRAIN_FORWARDS_PER_SAMPLE * TUNE_BATCH))))
    return Plan(n, pool, steps)


def label_free_metrics(
    model: nn.Module,
    data: OneClassData,
    cfg: TrialConfig,
    device: torch.device,
    *,
    train_samples: int,
    pool: torch.Tensor | None = None,
    pool_scores: np.ndarray | None = None,
    normal_scores: np.ndarray | None = None,
) -> dict[str, float]:
    """Every label-free metric of a trained model, with the plan it ran under and its wall time.

    Args:
        model: the trained autoencoder (its mode is restored).
        data: the trial's data: `train` (its mean image), `val`, and `test` images if no `pool` is given.
        cfg: the trial's configuration (label_free section, metric, seeds).
        device: where the model lives.
        train_samples: samples the training loop processed (epochs x training set), for the budget.
        pool: the unlabelled images to judge against (default: every test image).
        pool_scores, normal_scores: the model's scores of `pool` and of every `data.val` image, if known.
    """
    t0 = time.perf_counter()
    lf = cfg.label_free
    metric = get_metric(cfg.metric)
    seed = cfg.data.split_seed
    pool = data.test if pool is None else pool
    plan = plan_budget(lf, n_val=len(data.val), n_test=len(pool), train_samples=train_samples)
    order = torch.randperm(len(data.val), generator=torch.Generator().manual_seed(seed + 2))
    normal = data.val[order[: plan.n_normal]]
    pool_idx = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed + 1))[: plan.pool_size]
    pool_scores = _scored(model, pool, metric, pool_scores)
    val_scores = torch.from_numpy(_scored(model, data.val, metric, normal_scores))
    result = label_free_scores(
        model,
        metric.score,
        normal.to(device),
        pool[pool_idx.sort().values].to(device),
        seed=cfg.seed,
        steps=plan.tune_steps,
        lr=lf.tune_lr,
        area=lf.area,
        aspect=lf.aspect,
        tune_batch=TUNE_BATCH,
    )
    metrics = dict(result.metrics)
    calibration_set = data.val[order[:CALIBRATION_IMAGES]]  # the same images for every trial of the study
    metrics |= _family_metrics(
        model, normal, result.normal_scores, calibration_set, data.train.mean(0, keepdim=True), cfg
    )
    metrics[UNLABELLED_METRIC] = unlabelled_auroc(val_scores, torch.as_tensor(pool_scores))
    metrics |= {
        "unlabelled_normals": float(len(val_scores)),
        "unlabelled_pool": float(len(pool_scores)),
        "labelfree_normals": float(plan.n_normal),
        "labelfree_pool": float(plan.pool_size),
        "labelfree_tune_steps": float(plan.tune_steps),
        "labelfree_time_s": time.perf_counter() - t0,
    }
    return metrics


def _scored(model: nn.Module, x: torch.Tensor, metric: Metric, given: np.ndarray | None) -> np.ndarray:
    """`given` scores of `x` as float64, or the model's when the caller has none."""
    return np.asarray(anomaly_scores(model, x, metric) if given is None else given, np.float64)


def _family_metrics(
    model: nn.Module,
    normal: torch.Tensor,
    clean: torch.Tensor,
    calibration_set: torch.Tensor,
    mean_image: torch.Tensor,
    cfg: TrialConfig,
) -> dict[str, float]:
    """Per family: synthetic AUROC of `normal` (scores `clean`) against its corrupted copies, and their mean."""
    lf, metric, seed = cfg.label_free, get_metric(cfg.metric), cfg.data.split_seed
    metrics, aurocs = {}, []
    for name in FAMILIES:
        cal = calibrate_severity(calibration_set, mean_image, name, target_auroc=lf.target_auroc, seed=seed)
        copies = [corrupt(name, normal, cal.severity, seed=seed + 1000 * (d + 1)) for d in range(lf.draws)]
        s_aug = anomaly_scores(model, torch.cat(copies), metric)
        value = separation_auroc(clean.double().cpu(), torch.from_numpy(s_aug))
        metrics[family_metric(name)] = value
        metrics[f"severity_{name}"] = cal.severity
        metrics[f"reference_auroc_{name}"] = cal.reference_auroc
        aurocs.append(value)
    metrics[MEAN_METRIC] = float(np.mean(aurocs))
    return metrics
