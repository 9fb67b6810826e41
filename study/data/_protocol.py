"""The one-class protocol: what every loader returns, and how it becomes train / val / test.

Contract of a loaded dataset (`OneClassData`): every image tensor is float32,
[N, C, H, W], values in [0, 1], square (H == W == `image_size`), C in {1, 3}.
`train` and `val` hold normal samples only; `val` is a seeded held-out share of
the normal training samples that training never sees; `test` mixes normal
(label 0) and anomalous (label 1) samples. `one_class` applies the protocol the
same way for every dataset:
- training pool = train samples whose class is in `normal_classes`;
- `val` = a seeded `val_fraction` of that pool; `train_limit` caps the rest;
- `test` = the whole test split, label 1 for classes outside `normal_classes`;
  `test_limit` caps it with a seeded stratified subsample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from study.core.config import DataConfig
from study.data._arrays import to_tensor
from study.data._errors import DatasetError

Tensor = torch.Tensor


@dataclass(frozen=True)
class OneClassData:
    """A dataset under the one-class protocol (see the module docstring for the contract)."""

    train: Tensor  # [N, C, H, W] float32 in [0, 1], normal samples used for training
    val: Tensor  # [V, C, H, W] held-out normal samples, never trained on
    test: Tensor  # [M, C, H, W] normal and anomalous samples
    test_labels: Tensor  # [M] int64, 0 normal, 1 anomalous
    in_channels: int
    image_size: int
    test_groups: tuple[str, ...] | None = None  # [M] folder of each test sample (MVTec defect type), if known


@dataclass(frozen=True)
class LabelledImages:
    """What a loader returns: images and their classes, before the one-class protocol.

    Images are [N, C, H, W] numpy arrays, integers in 0..255 or floats in [0, 1].
    With `train_y` None every training image is normal and `test_y` holds binary
    anomaly labels (1 = anomalous); otherwise `train_y`/`test_y` hold classes
    (ints or strings) and `normal_classes` decides which are normal.
    """

    train_x: np.ndarray
    train_y: np.ndarray | None
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...] = ()  # name of integer class i, so normal_classes may use names
    test_groups: tuple[str, ...] | None = None  # per test image: its defect type (`good` when normal)


Loader = Callable[[DataConfig], LabelledImages]


def split_normal(
    n: int, val_fraction: float, train_limit: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of `n` normal samples into (train, val) indices, both sorted and disjoint.

    `val` takes round(n * val_fraction) samples (at least 1) and does not depend
    on `train_limit`, which only caps the remaining training samples.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    if train_limit is not None and train_limit < 1:
        raise DatasetError(f"data.train_limit must be a positive count or null, got {train_limit}")
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise DatasetError(
            f"{n} normal training samples cannot be split into train and val (val_fraction {val_fraction})"
        )
    perm = np.random.default_rng((seed, 1)).permutation(n)
    rest = perm[n_val:] if train_limit is None else perm[n_val : n_val + train_limit]
    return np.sort(rest), np.sort(perm[:n_val])


def stratified_subset(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Sorted seeded indices of at most `limit` samples keeping the share of each binary label.

    Each label present keeps at least one sample when `limit` >= 2.
    """
    n = len(labels)
    if limit is not None and limit < 1:
        raise DatasetError(f"data.test_limit must be a positive count or null, got {limit}")
    if limit is None or limit >= n:
        return np.arange(n)
    anomalous = np.flatnonzero(labels == 1)
    normal = np.flatnonzero(labels != 1)
    k_anom = round(limit * len(anomalous) / n)
    if len(anomalous) and len(normal) and limit >= 2:
        k_anom = min(max(k_anom, 1), limit - 1)
    rng = np.random.default_rng((seed, 2))
    keep = np.concatenate(
        [rng.choice(anomalous, k_anom, replace=False), rng.choice(normal, limit - k_anom, replace=False)]
    )
    return np.sort(keep)


def one_class(images: LabelledImages, cfg: DataConfig) -> OneClassData:
    """Apply the one-class protocol of `cfg` to a loader's output (see the module docstring)."""
    if images.train_y is None:
        pool = np.arange(len(images.train_x))
        test_labels = np.asarray(images.test_y, dtype=np.int64)
    else:
        normal = _resolve_classes(cfg, images)
        pool = np.flatnonzero(np.isin(images.train_y, normal))
        test_labels = (~np.isin(images.test_y, normal)).astype(np.int64)
    if len(pool) == 0:
        raise DatasetError(
            f"dataset {cfg.name!r} has no normal training samples with normal_classes {list(cfg.normal_classes)}"
        )
    train_idx, val_idx = split_normal(len(pool), cfg.val_fraction, cfg.train_limit, cfg.split_seed)
    test_idx = stratified_subset(test_labels, cfg.test_limit, cfg.split_seed)
    test_labels = test_labels[test_idx]
    groups = None if images.test_groups is None else tuple(images.test_groups[i] for i in test_idx)
    n_anom = int(test_labels.sum())
    if n_anom == 0 or n_anom == len(test_labels):
        kind = "anomalous" if n_anom == 0 else "normal"
        msg = f"dataset {cfg.name!r}: the test set has no {kind} samples with normal_classes {list(cfg.normal_classes)}, so detection cannot be measured"
        raise DatasetError(msg)
    height, width = images.train_x.shape[2:]
    if cfg.image_size is None and height != width:
        msg = f"dataset {cfg.name!r} has {height}x{width} images; set data.image_size to resize them to a square"
        raise DatasetError(msg)
    train = to_tensor(images.train_x[pool[train_idx]], cfg.image_size)
    return OneClassData(
        train=train,
        val=to_tensor(images.train_x[pool[val_idx]], cfg.image_size),
        test=to_tensor(images.test_x[test_idx], cfg.image_size),
        test_labels=torch.from_numpy(test_labels),
        in_channels=train.shape[1],
        image_size=train.shape[2],
        test_groups=groups,
    )


def _resolve_classes(cfg: DataConfig, images: LabelledImages) -> list[int | str]:
    """Normal classes as values of train_y; names and numeric strings are accepted."""
    if not cfg.normal_classes:
        raise DatasetError(f"data.normal_classes is empty: name at least one normal class of {cfg.name!r}")
    available = np.unique(images.train_y).tolist()
    out: list[int | str] = []
    for c in cfg.normal_classes:
        text = str(c)
        if c in available:
            out.append(c)
        elif text in images.class_names:
            out.append(images.class_names.index(text))
        elif text.lstrip("-").isdigit() and int(text) in available:
            out.append(int(text))
        elif text in available:
            out.append(text)
        else:
            names = f" (or by name: {', '.join(images.class_names)})" if images.class_names else ""
            msg = f"normal class {c!r} is not a class of {cfg.name!r}; available: {', '.join(map(str, available))}{names}"
            raise DatasetError(msg)
    return out
