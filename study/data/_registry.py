"""The dataset registry, loading with a per-process cache, and images to score from any source."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import torch

from study.core.config import DataConfig
from study.data._arrays import as_nchw, open_npz, to_channels, to_tensor
from study.data._errors import DatasetError
from study.data._images import IMAGE_SUFFIXES, any_colour, image_files, read_images
from study.data._locate import ENV_VAR
from study.data._protocol import Loader, OneClassData, one_class
from study.data.digits import load_digits
from study.data.folders import load_folders
from study.data.idx import load_fashion_mnist, load_mnist, read_idx
from study.data.mvtec import load_mvtec
from study.data.npz import load_npz

LOADERS: dict[str, Loader] = {
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "digits": load_digits,
    "mvtec": load_mvtec,
    "npz": load_npz,
    "images": load_folders,
}


def get_loader(name: str) -> Loader:
    """The loader registered under `name`; an unknown name lists the available ones."""
    if name not in LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; available: {', '.join(sorted(LOADERS))}")
    return LOADERS[name]


def load_dataset(cfg: DataConfig) -> OneClassData:
    """Load `cfg`'s dataset under the one-class protocol, once per process.

    The result is cached per process (keyed by the frozen config and
    $LAMP_DATA_DIR), so a Ray actor running many trials decodes the data once.
    Every call returns its own copies of the cached tensors: a caller that
    modifies its tensors in place cannot corrupt another trial's data, and the
    cached originals are never handed out.

    Raises:
        DatasetError: unknown dataset, missing or malformed files, or a bad protocol setting.
    """
    classes = cfg.normal_classes
    cfg = dataclasses.replace(
        cfg, normal_classes=tuple(classes) if isinstance(classes, (list, tuple)) else (classes,)
    )
    cached = _load_cached(cfg, os.environ.get(ENV_VAR))
    return dataclasses.replace(
        cached,
        train=cached.train.clone(),
        val=cached.val.clone(),
        test=cached.test.clone(),
        test_labels=cached.test_labels.clone(),
    )


@functools.lru_cache(maxsize=8)
def _load_cached(cfg: DataConfig, data_dir: str | None) -> OneClassData:
    # data_dir is only part of the cache key: loaders read $LAMP_DATA_DIR themselves.
    return one_class(get_loader(cfg.name)(cfg), cfg)


def load_images(
    source: str | Path, *, image_size: int | None = None, channels: int | None = None, key: str | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Images to score, from a dataset name, an .npz file, an IDX file or a folder.

    Args:
        source: a registered dataset name (its whole test split); an .npz file
            (array `x`, `images`, `test_x` or `x_test`, in that order of
            preference; layouts as in `load_npz`); an IDX image file
            (`*-idx3-ubyte[.gz]`); or a folder of images (any format in
            `IMAGE_SUFFIXES`, searched recursively, sorted by path).
        image_size: resize to this square size; required for a folder of images of different sizes.
        channels: convert to 1 (luminance) or 3 channels; None keeps the source's.
        key: the .npz array to read (default: the first of the names above that exists).

    Returns:
        [N, C, H, W] float32 in [0, 1], and one identifier per sample: the path
        relative to the folder for a folder, the index as a string otherwise.
    """
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    path = Path(source).expanduser()
    if path.is_dir():
        files = image_files(path, recursive=True)
        if not files:
            raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        colour = channels == 3 if channels else any_colour(files)
        x = read_images(files, image_size, 3 if colour else 1)
        ids = [f.relative_to(path).as_posix() for f in files]
    elif path.is_file() and path.suffix == ".npz":
        arrays = open_npz(path)
        wanted = (key,) if key is not None else ("x", "images", "test_x", "x_test")
        key = next((k for k in wanted if k in arrays), None)
        if key is None:
            found = ", ".join(sorted(arrays)) or "none"
            names = " or ".join(repr(k) for k in wanted)
            raise DatasetError(f"{path} has no array {names}; found: {found}")
        x = as_nchw(arrays[key], f"{path}:{key}")
        ids = [str(i) for i in range(len(x))]
    elif path.is_file():
        x = read_idx(path, ndim=3)[:, None]
        ids = [str(i) for i in range(len(x))]
    elif str(source) in LOADERS:
        x = LOADERS[str(source)](DataConfig(name=str(source), image_size=image_size)).test_x
        ids = [str(i) for i in range(len(x))]
    else:
        raise DatasetError(
            f"cannot load images from {str(source)!r}: not a folder, an .npz or IDX file, "
            f"or a dataset name ({', '.join(sorted(LOADERS))})"
        )
    return to_channels(to_tensor(x, image_size), channels), ids
