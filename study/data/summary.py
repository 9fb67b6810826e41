"""A few lines that say what a dataset holds, for `lamp-study validate` (opened, never trained on)."""

from __future__ import annotations

from study.core.config import DataConfig
from study.data._protocol import OneClassData


def describe(cfg: DataConfig, d: OneClassData) -> list[str]:
    """`name (source), normal classes …` then sizes and counts per split."""
    n_anom = int(d.test_labels.sum())
    where = f" from {cfg.path}" if cfg.path else ""
    which = f", category {cfg.category}" if cfg.category else ""
    classes = "" if cfg.name in ("mvtec", "images") else f", normal classes {list(cfg.normal_classes)}"
    lines = [
        f"{cfg.name}{where}{which}{classes}: {d.in_channels}x{d.image_size}x{d.image_size} images",
        f"train {len(d.train)} + val {len(d.val)} normal; test {len(d.test)} = "
        f"{len(d.test) - n_anom} normal + {n_anom} anomalous",
    ]
    if cfg.unlabelled is not None:
        from study.labelfree.pool import load_pool

        n = len(load_pool(cfg, image_size=d.image_size, channels=d.in_channels))
        lines.append(f"unlabelled pool {cfg.unlabelled}: {n} images (no labels read; scored by every trial)")
    return lines
