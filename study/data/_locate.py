"""Where a loader looks for its files: data.path, then $LAMP_DATA_DIR, then a default folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from study.core.config import DataConfig
from study.data._errors import DatasetError

ENV_VAR = "LAMP_DATA_DIR"
# Where a loader looks when neither data.path nor $LAMP_DATA_DIR holds the files.
DEFAULT_DIRS: dict[str, Path] = {
    "fashion_mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}


def find_dir(cfg: DataConfig, subdir: str, holds: Callable[[Path], bool], how_to_get: str) -> Path:
    """The first candidate folder that `holds` the data: data.path, then $LAMP_DATA_DIR(/subdir), then the default.

    An explicit data.path is the only candidate: a wrong path is an error, not a
    silent fallback to other data.
    """
    if cfg.path is not None:
        candidates = [Path(cfg.path).expanduser()]
    else:
        candidates = []
        env = os.environ.get(ENV_VAR)
        if env:
            candidates += [Path(env).expanduser() / subdir, Path(env).expanduser()]
        if cfg.name in DEFAULT_DIRS:
            candidates.append(DEFAULT_DIRS[cfg.name])
    for folder in candidates:
        if folder.is_dir() and holds(folder):
            return folder
    looked = ", ".join(str(c) for c in candidates) or "nowhere (data.path and $LAMP_DATA_DIR are unset)"
    raise DatasetError(f"dataset {cfg.name!r} not found; looked in: {looked}. {how_to_get}")
