"""Two plain folders: one of normal images, one of anomalous images (the way most people keep their own data).

`dataset: {name: images, path: NORMAL_DIR, anomalous_path: DEFECT_DIR}`. Both
folders are searched recursively. A seeded `TEST_SHARE` of the normal images
(at least one) joins the anomalous ones as the test set, so detection is
measured against normal images training never saw; the rest is the training
pool (from which the protocol holds out `val_fraction`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.core.config import DataConfig
from study.data._errors import DatasetError
from study.data._images import IMAGE_SUFFIXES, image_files, read_folders
from study.data._protocol import LabelledImages

TEST_SHARE = 0.3  # of the normal images, as digits' 70/30 split
DEFAULT_SIZE = 64


def load_folders(cfg: DataConfig) -> LabelledImages:
    """Normal images from data.path and anomalous ones from data.anomalous_path, resized to data.image_size (default 64)."""
    normal = _files(cfg.path, "data.path", "normal")
    anomalous = _files(cfg.anomalous_path, "data.anomalous_path", "anomalous")
    if len(normal) < 3:
        raise DatasetError(
            f"{cfg.path} holds {len(normal)} normal images; at least 3 are needed (train, val and test each need one)"
        )
    normal_x, anomalous_x = read_folders([normal, anomalous], cfg.image_size or DEFAULT_SIZE)
    perm = np.random.default_rng((cfg.split_seed, 3)).permutation(len(normal))
    n_test = max(1, round(len(normal) * TEST_SHARE))
    test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    test_x = np.concatenate([normal_x[test_idx], anomalous_x])
    test_y = np.array([0] * n_test + [1] * len(anomalous_x), dtype=np.int64)
    return LabelledImages(normal_x[train_idx], None, test_x, test_y)


def _files(path: str | None, key: str, what: str) -> list[Path]:
    if path is None:
        raise DatasetError(f"dataset 'images' needs {key}: a folder of {what} images")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{key} {folder} is not a folder; it should hold the {what} images")
    files = image_files(folder, recursive=True)
    if not files:
        raise DatasetError(f"{key} {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
