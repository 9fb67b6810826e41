"""scikit-learn's 8x8 digits: bundled with scikit-learn, so fast tests need no files."""

from __future__ import annotations

import numpy as np

from study.core.config import DataConfig
from study.data._protocol import LabelledImages


def load_digits(cfg: DataConfig) -> LabelledImages:
    """The digits (0..16 scaled to [0, 1]); they have no split, so a seeded stratified 70/30 one."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images[:, None] / 16.0).astype(np.float32)  # [1797, 1, 8, 8]
    train_x, test_x, train_y, test_y = train_test_split(
        x, bunch.target, test_size=0.3, stratify=bunch.target, random_state=cfg.split_seed
    )
    return LabelledImages(train_x, train_y, test_x, test_y)
