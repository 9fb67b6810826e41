"""The user's unlabelled pool (`data.unlabelled`): read without labels, subsampled by the budget, scored per trial.

A deployment's unlabelled images (last week's production, mostly normal) are
what a user without labels can judge trials on. Every trial scores the same
pool with its own model (inference only), so the unlabelled AUROCs of two
trials are paired (study/selection/paired.py). Nothing here reads a label:
a folder is read as images only (any subfolder names are ignored), an .npz
file by one array.

The pool is shuffled once by the data's split seed; a trial scores the first
`pool_size` images of that order, so a smaller budget's pool is nested in a
larger one's and every trial of a study shares the images it scored.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from study.core.config import DataConfig, LabelFreeConfig, TrialConfig
from study.data import DatasetError, OneClassData, load_images
from study.training.evaluate import anomaly_scores
from study.training.losses import get_metric

# Scoring one image costs about this many training samples (forward only, large batches, vs forward +
# backward + update): measured 0.44-0.46 at 28 px on one CPU thread (bench/RESULTS.md, label-free cost).
SCORE_COST = 0.45
MIN_POOL = 64  # fewest pool images scored, whatever the budget


def load_pool(data: DataConfig, *, image_size: int, channels: int) -> torch.Tensor:
    """Every image of `data.unlabelled`, in the study's seeded order, at the trials' size and channels.

    Raises:
        DatasetError: the path is missing, holds no images, or the .npz has no such array.
    """
    if data.unlabelled is None:
        raise DatasetError("data.unlabelled is not set")
    return _load(data.unlabelled, data.unlabelled_key, image_size, channels, data.split_seed).clone()


@functools.lru_cache(maxsize=2)
def _load(source: str, key: str | None, image_size: int, channels: int, seed: int) -> torch.Tensor:
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(
            f"dataset.unlabelled: {path} does not exist; point it at a folder of images or an .npz file"
        )
    if key is not None and not (path.is_file() and path.suffix == ".npz"):
        raise DatasetError(f"dataset.unlabelled_key is set but {path} is not an .npz file")
    x, _ = load_images(path, image_size=image_size, channels=channels, key=key)
    order = torch.from_numpy(np.random.default_rng((seed, 3)).permutation(len(x)))
    return x[order]


def pool_size(lf: LabelFreeConfig, available: int, train_samples: int) -> int:
    """Pool images a trial scores: all of them, or what `lf.pool_budget` x training's cost allows."""
    if lf.pool_budget is None:
        return available
    allowed = int(lf.pool_budget * train_samples / SCORE_COST)
    return int(min(available, max(MIN_POOL, allowed)))


def score_pool(
    model: nn.Module, data: OneClassData, cfg: TrialConfig, train_samples: int
) -> tuple[torch.Tensor | None, np.ndarray | None, dict[str, float]]:
    """(pool images, their scores, metrics) of a trained model on `data.unlabelled`; Nones when it is unset.

    Metrics: `unlabelled_pool_available` (images in the pool), `unlabelled_pool_scored`
    (what the budget let this trial score) and `unlabelled_pool_time_s`.
    """
    if cfg.data.unlabelled is None:
        return None, None, {}
    t0 = time.perf_counter()
    everything = load_pool(cfg.data, image_size=data.image_size, channels=data.in_channels)
    pool = everything[: pool_size(cfg.label_free, len(everything), train_samples)]
    scores = anomaly_scores(model, pool, get_metric(cfg.metric))
    return (
        pool,
        scores,
        {
            "unlabelled_pool_available": float(len(everything)),
            "unlabelled_pool_scored": float(len(pool)),
            "unlabelled_pool_time_s": time.perf_counter() - t0,
        },
    )
