"""Anomaly scores and detection metrics.

The anomaly score of a sample is its reconstruction error under the trial's
base metric (never the amplified objective, which is a monotone transform of a
batch mean and carries no per-sample information of its own).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from study.core.metrics import DEFECT_PREFIX
from study.training.losses import Metric

Tensor = torch.Tensor


CPU_BATCH_PIXELS = 2**17  # per inference batch on a CPU: a few MB of activations stay in cache


def eval_batch_size(sample: Tensor, device: torch.device) -> int:
    """Samples per inference batch: 1024 on an accelerator; on a CPU as many as fit in
    `CPU_BATCH_PIXELS` values (167 at 1x28x28, 8 at 1x128x128).

    A CPU forward of a large batch runs out of cache: at 128 px, batch 1024 cost
    several times more per sample than batch 8, which made scoring a large share
    of a trial at real image sizes.
    """
    if device.type != "cpu":
        return 1024
    return max(1, CPU_BATCH_PIXELS // max(1, sample.numel()))


@torch.no_grad()
def anomaly_scores(model: nn.Module, x: Tensor, metric: Metric, batch_size: int | None = None) -> np.ndarray:
    """Per-sample scores [N] (float64, CPU) of `x` under `metric`, model in eval mode.

    `x` may live on the CPU; batches are moved to the model's device. A score does
    not depend on the batch (eval mode), so the batch size only sets the speed.
    """
    device = next(model.parameters()).device
    if len(x) == 0:
        return np.zeros(0)
    batch_size = batch_size or eval_batch_size(x[0], device)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True)
        out.append(metric.score(model(xb).float(), xb))
    model.train(was_training)
    return torch.cat(out).double().cpu().numpy()


def detection_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUROC, average precision and mean score per class (label 1 = anomalous).

    Non-finite scores (a broken model) rank as most anomalous rather than crash.
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=np.inf)
    scores = np.clip(scores, -np.finfo(np.float64).max, np.finfo(np.float64).max)
    labels = np.asarray(labels).astype(int)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "score_normal_mean": float(scores[labels == 0].mean()),
        "score_anomalous_mean": float(scores[labels == 1].mean()),
    }


def defect_metric_name(group: str) -> str:
    """`auroc_defect_<name>`: the folder name lower-cased, every character but [a-z0-9_] as `_`."""
    return DEFECT_PREFIX + re.sub(r"[^a-z0-9_]", "_", group.lower())


def defect_aurocs(scores: np.ndarray, labels: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """AUROC of each anomalous group (MVTec defect type) against all normal samples of the same part.

    Anomaly detection papers report MVTec per defect type; one pooled AUROC hides a defect the
    model never sees. Groups of normal samples (label 0) are the reference, never a row.
    """
    labels = np.asarray(labels).astype(int)
    names = np.asarray(groups, dtype=object)
    normal = labels == 0
    out: dict[str, float] = {}
    for group in sorted(set(names[labels == 1])):
        keep = normal | (names == group)
        if normal.any():
            out[defect_metric_name(str(group))] = detection_metrics(scores[keep], labels[keep])["auroc"]
    return out


def stratified_subset(labels: np.ndarray | Tensor, limit: int, seed: int) -> Tensor:
    """A seeded subset of `limit` indices, sorted, that keeps every class present.

    Each class gets its share of `limit` (at least one sample), so AUROC on an
    `eval_limit` subset is always defined: a plain random subset of a test set
    with few anomalies can hold none, and `roc_auc_score` raises. (With more
    classes than `limit`, the subset holds one sample per class.)
    """
    labels = torch.as_tensor(np.asarray(labels)).flatten()
    n = len(labels)
    if limit <= 0 or limit >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    quota = torch.clamp((counts.double() * limit / n).floor().long(), min=1)
    quota = torch.minimum(quota, counts)
    while int(quota.sum()) < min(limit, n):  # the floors leave a few places: give them to the largest classes
        room = counts - quota
        quota[int(torch.argmax(room))] += 1
    picked = []
    for cls, k in zip(classes.tolist(), quota.tolist(), strict=True):
        idx = torch.nonzero(labels == cls).flatten()
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    return torch.cat(picked).sort().values
