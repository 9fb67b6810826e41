"""MVTec-AD-style folders: `<root>/<category>/train/good`, `test/good`, `test/<defect>`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.core.config import DataConfig
from study.data._errors import DatasetError
from study.data._images import IMAGE_SUFFIXES, image_files, read_folders
from study.data._locate import ENV_VAR, find_dir
from study.data._protocol import LabelledImages

MVTEC_DEFAULT_SIZE = 128
LAYOUT = "<root>/<category>/train/good/*.png and <root>/<category>/test/<good|defect>/*.png"


def load_mvtec(cfg: DataConfig) -> LabelledImages:
    """One category of an MVTec-style root (data.path may also be the category folder itself).

    Images under test/<defect> (any folder but `good`, searched recursively, so
    nested defect folders count) are anomalous. Any format Pillow reads
    (`IMAGE_SUFFIXES`); the dataset is RGB if any image is colour, else one
    channel, and every image is converted to that and resized to
    data.image_size (default 128) square. `normal_classes` is ignored. Each test image keeps
    its folder name (`test_groups`), so trials report an AUROC per defect type.
    """
    folder = _category_folder(cfg)
    train_files = image_files(folder / "train" / "good", recursive=True)
    test_dirs = (
        sorted(d for d in (folder / "test").iterdir() if d.is_dir()) if (folder / "test").is_dir() else []
    )
    test_files: list[Path] = []
    test_y: list[int] = []
    groups: list[str] = []
    for d in test_dirs:
        files = image_files(d, recursive=True)
        test_files += files
        test_y += [int(d.name != "good")] * len(files)
        groups += [d.name] * len(files)
    if not train_files or not test_files:
        raise DatasetError(
            f"{folder} needs images ({', '.join(IMAGE_SUFFIXES)}) in train/good and in test/<good|defect>; "
            f"found {len(train_files)} and {len(test_files)}"
        )
    train_x, test_x = read_folders([train_files, test_files], cfg.image_size or MVTEC_DEFAULT_SIZE)
    return LabelledImages(
        train_x, None, test_x, np.asarray(test_y, dtype=np.int64), test_groups=tuple(groups)
    )


def _categories(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if (d / "train" / "good").is_dir()) if root.is_dir() else []


def _category_folder(cfg: DataConfig) -> Path:
    how = f"Set data.path (or ${ENV_VAR}, looked up as ${ENV_VAR}/mvtec then ${ENV_VAR}) to the root holding {LAYOUT}."
    given = Path(cfg.path).expanduser() if cfg.path is not None else None
    if given is not None and (given / "train" / "good").is_dir():
        return given  # data.path names one category folder
    if given is not None and given.is_dir() and not _categories(given):
        inside = sorted(d.name for d in given.iterdir() if d.is_dir())[:10]
        raise DatasetError(
            f"MVTec root {given} has no <category>/train/good folder (sub-folders: {', '.join(inside) or 'none'}); "
            f"expected {LAYOUT}"
        )
    root = find_dir(cfg, "mvtec", lambda f: bool(_categories(f)), how)
    categories = _categories(root)
    if cfg.category not in categories:
        problem = "needs data.category" if cfg.category is None else f"has no category {cfg.category!r}"
        raise DatasetError(f"MVTec root {root} {problem}; available: {', '.join(categories)}")
    return root / cfg.category
