"""Image files on disk: finding them, deciding the channel count, decoding them with Pillow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from study.data._errors import DatasetError

# Formats Pillow decodes without plugins; the suffix decides what counts as an image in a folder.
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga",
)  # fmt: skip
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in `folder` (and its sub-folders when `recursive`), sorted by path; hidden files skipped."""
    files = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(
        f for f in files if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.name.startswith(".")
    )


def _read_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    return (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def any_colour(files: Sequence[Path]) -> bool:
    """Whether any image is colour (opening reads only the header); a folder that mixes both becomes RGB."""
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as img:
                if img.mode not in _GREY_MODES:
                    return True
        except _read_errors() as exc:
            raise DatasetError(f"cannot read image {f}: {exc}; remove or replace the file") from None
    return False


def read_images(files: Sequence[Path], size: int | None, channels: int) -> np.ndarray:
    """Decode image files (threads: PIL releases the GIL) into uint8 [N, C, size, size].

    Every image is converted to `channels` (1: luminance, 3: RGB), so a folder
    mixing grey and colour images loads consistently.
    """
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    errors = _read_errors()

    def read(f: Path) -> np.ndarray:
        try:
            with Image.open(f) as img:
                img = img.convert(mode)
                if size is not None and img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(img)
        except errors as exc:
            raise DatasetError(f"cannot read image {f}: {exc}; remove or replace the file") from None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(read, files))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DatasetError(
            f"images under {Path(files[0]).parent} have different sizes {sorted(shapes)}; set data.image_size"
        )
    x = np.stack(arrays)  # [N, H, W] or [N, H, W, 3]
    return x[:, None] if channels == 1 else x.transpose(0, 3, 1, 2)


def read_folders(folders: Sequence[Sequence[Path]], size: int | None) -> list[np.ndarray]:
    """Several lists of files decoded with one channel count (RGB if any file is colour) and one size."""
    channels = 3 if any_colour([f for files in folders for f in files]) else 1
    return [read_images(files, size, channels) for files in folders]
