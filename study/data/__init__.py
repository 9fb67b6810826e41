"""Datasets: one loader per source, a registry, and the one-class protocol they all go through.

A loader maps a `DataConfig` to `LabelledImages` (images before the protocol);
adding a dataset is one module and one `LOADERS` entry. `one_class`
(`_protocol`) then applies the protocol the same way for every dataset, and
`load_dataset` caches the result per process. Nothing downloads: a missing
dataset raises `DatasetError` saying where the loader looked and how to get the
files.

Sources: `idx` (Fashion-MNIST, MNIST), `digits` (scikit-learn), `npz` (arrays
a user brings), `mvtec` (MVTec-style folders), `folders` (a folder of normal
images and one of anomalous images, registered as `images`).
"""

from __future__ import annotations

from study.data._errors import DatasetError
from study.data._images import IMAGE_SUFFIXES
from study.data._locate import DEFAULT_DIRS, ENV_VAR
from study.data._protocol import (
    LabelledImages,
    Loader,
    OneClassData,
    one_class,
    split_normal,
    stratified_subset,
)
from study.data._registry import LOADERS, get_loader, load_dataset, load_images
from study.data.idx import IDX_FILES, read_idx
from study.data.mvtec import MVTEC_DEFAULT_SIZE

__all__ = [
    "DEFAULT_DIRS",
    "ENV_VAR",
    "IDX_FILES",
    "IMAGE_SUFFIXES",
    "LOADERS",
    "MVTEC_DEFAULT_SIZE",
    "DatasetError",
    "LabelledImages",
    "Loader",
    "OneClassData",
    "get_loader",
    "load_dataset",
    "load_images",
    "one_class",
    "read_idx",
    "split_normal",
    "stratified_subset",
]
