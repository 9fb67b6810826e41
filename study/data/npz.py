"""Arrays a user brings, in one .npz file, under the key names people commonly use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.core.config import DataConfig
from study.data._arrays import as_nchw, open_npz
from study.data._errors import DatasetError
from study.data._protocol import LabelledImages

# Role -> accepted key names (first match wins; two names for one role is an error).
KEYS: dict[str, tuple[str, ...]] = {
    "train_x": ("train_x", "x_train", "X_train", "train_images"),
    "test_x": ("test_x", "x_test", "X_test", "test_images"),
    "train_y": ("train_y", "y_train", "train_labels"),
    "test_y": ("test_y", "y_test", "test_labels"),
}
ACCEPTED = (
    "with classes: train images + train labels + test images + test labels "
    "(e.g. x_train, y_train, x_test, y_test; normal_classes picks the normal ones); "
    "one-class: train images + test images + test labels 0 normal / 1 anomalous, no train labels "
    "(e.g. x_train, x_test, y_test); "
    f"images {' | '.join(KEYS['train_x'])} and {' | '.join(KEYS['test_x'])}, "
    f"labels {' | '.join(KEYS['train_y'])} and {' | '.join(KEYS['test_y'])}"
)


def load_npz(cfg: DataConfig) -> LabelledImages:
    """Images and labels from the .npz file named by data.path.

    Two layouts (key names in `KEYS`: Keras' `x_train`, `train_x`, `train_images`, ...):
    - with classes: train and test images and labels; labels are classes
      (ints or strings) and `normal_classes` picks the normal ones;
    - one-class: no train labels; every training image is normal and the test
      labels are 1 for anomalous test images, 0 for normal ones.

    Images are [N, H, W], [N, H, W, C] or [N, C, H, W] with C in {1, 3}; uint8
    (or other integers) in 0..255, or floats in [0, 1]. Non-square images need
    data.image_size (they are resized to a square).
    """
    if cfg.path is None:
        raise DatasetError(
            f"dataset 'npz' needs data.path: an .npz file holding arrays; accepted layouts: {ACCEPTED}"
        )
    path = Path(cfg.path).expanduser()
    arrays = open_npz(path)
    found = ", ".join(f"{k} {arrays[k].shape}" for k in sorted(arrays)) or "no arrays"
    key = {role: _pick(path, arrays, role, found) for role in KEYS}
    if key["train_x"] is None or key["test_x"] is None or key["test_y"] is None:
        required = ("train_x", "test_x", "test_y")
        missing = [r.replace("_x", " images").replace("_y", " labels") for r in required if key[r] is None]
        raise DatasetError(f"{path}: no {' or '.join(missing)}; found: {found}. Accepted layouts: {ACCEPTED}")
    train_x = as_nchw(arrays[key["train_x"]], f"{path}:{key['train_x']}")
    test_x = as_nchw(arrays[key["test_x"]], f"{path}:{key['test_x']}")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DatasetError(
            f"{path}: {key['train_x']} images are {train_x.shape[1:]} but {key['test_x']} images are {test_x.shape[1:]}"
        )
    train_y = None if key["train_y"] is None else _labels(path, arrays, key["train_y"], len(train_x))
    test_y = _labels(path, arrays, key["test_y"], len(test_x))
    if train_y is None and not np.isin(test_y, (0, 1)).all():
        values = ", ".join(map(str, np.unique(test_y)[:10]))
        raise DatasetError(
            f"{path}: without train labels every training image is normal, so {key['test_y']} must be "
            f"0 (normal) or 1 (anomalous); found values {values}. Store train labels too "
            f"({' | '.join(KEYS['train_y'])}) to use classes with normal_classes"
        )
    return LabelledImages(train_x, train_y, test_x, test_y)


def _pick(path: Path, arrays: dict[str, np.ndarray], role: str, found: str) -> str | None:
    present = [k for k in KEYS[role] if k in arrays]
    if len(present) > 1:
        raise DatasetError(
            f"{path}: {' and '.join(present)} both name the {role} array; keep one. Found: {found}"
        )
    return present[0] if present else None


def _labels(path: Path, arrays: dict[str, np.ndarray], key: str, n: int) -> np.ndarray:
    """A label vector of `n` entries ([n] or [n, 1]); floats must be whole numbers."""
    y = arrays[key]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{path}: {n} images but {key} has shape {y.shape}; expected [{n}] labels")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise DatasetError(f"{path}: {key} holds NaN or fractional values; labels must be classes")
        y = y.astype(np.int64)
    return y
