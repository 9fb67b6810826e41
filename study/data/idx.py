"""The MNIST family from its original IDX files (Fashion-MNIST, MNIST)."""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path

import numpy as np

from study.core.config import DataConfig
from study.data._errors import DatasetError
from study.data._locate import DEFAULT_DIRS, ENV_VAR, find_dir
from study.data._protocol import LabelledImages, Loader

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Decode an IDX file (gzipped or not) of unsigned bytes into a read-only uint8 array.

    Args:
        path: the file, e.g. `train-images-idx3-ubyte.gz`.
        ndim: the expected number of dimensions (3 for images, 1 for labels); None accepts any.

    Raises:
        DatasetError: naming the file, when it is not valid gzip or not a ubyte IDX array.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        msg = f"{path} is not an IDX file of unsigned bytes (magic {data[:4].hex() or 'missing'}, expected 000008xx)"
        raise DatasetError(msg)
    dims = data[3]
    if ndim is not None and dims != ndim:
        raise DatasetError(f"{path} holds a {dims}-d IDX array, expected {ndim}-d")
    header = 4 + 4 * dims
    shape = (
        tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
        if len(data) >= header
        else ()
    )
    if len(shape) != dims or len(data) - header != int(np.prod(shape)):
        msg = f"{path} is truncated or malformed: header says shape {shape}, payload is {len(data) - header} bytes"
        raise DatasetError(msg)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=2)
def _read_idx_dir(folder: str) -> dict[str, np.ndarray]:
    """The four decoded IDX arrays of a folder (cached: arrays from frombuffer are read-only)."""
    arrays = {
        key: read_idx(_idx_file(Path(folder), stem), ndim=3 if key.endswith("x") else 1)
        for key, stem in IDX_FILES.items()
    }
    for split in ("train", "test"):
        nx, ny = len(arrays[f"{split}_x"]), len(arrays[f"{split}_y"])
        if nx != ny:
            raise DatasetError(f"{folder}: the {split} split has {nx} images but {ny} labels")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DatasetError(f"{folder}: train and test images differ in size")
    return arrays


def _idx_loader(subdir: str, how_to_get: str, class_names: tuple[str, ...] = ()) -> Loader:
    def load(cfg: DataConfig) -> LabelledImages:
        folder = find_dir(cfg, subdir, lambda f: all(_idx_file(f, s) for s in IDX_FILES.values()), how_to_get)
        a = _read_idx_dir(str(folder))
        return LabelledImages(
            a["train_x"][:, None], a["train_y"], a["test_x"][:, None], a["test_y"], class_names
        )

    return load


_IDX_FOLDER_HINT = (
    f"or set ${ENV_VAR} (or data.path) to a folder holding the four IDX files "
    f"{', '.join(s + '.gz' for s in IDX_FILES.values())}."
)
load_fashion_mnist = _idx_loader(
    "fashion-mnist",
    f"Install it with `sudo apt-get install dataset-fashion-mnist` (files land in "
    f"{DEFAULT_DIRS['fashion_mnist']}), {_IDX_FOLDER_HINT}",
    FASHION_MNIST_CLASSES,
)
load_fashion_mnist.__doc__ = "Fashion-MNIST from its original IDX files (classes 0-9 or their names)."
load_mnist = _idx_loader("mnist", f"Put the MNIST IDX files in {DEFAULT_DIRS['mnist']}, {_IDX_FOLDER_HINT}")
load_mnist.__doc__ = "MNIST from its original IDX files (classes 0-9)."
