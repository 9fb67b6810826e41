"""Arrays of images as people store them, checked and turned into the protocol's tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from study.data._errors import DatasetError

LAYOUTS = "[N,H,W], [N,H,W,C] or [N,C,H,W] with C 1 or 3"


def open_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (pickled objects refused: loading data never runs code)."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such .npz file; set data.path to an existing file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} as an .npz file of arrays: {exc}") from exc


def as_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """Images in [N, H, W], [N, H, W, C] or [N, C, H, W] (C in 1, 3) as [N, C, H, W], range-checked."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] in (1, 3):
        pass
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise DatasetError(f"{where}: images of shape {x.shape}; expected {LAYOUTS}")
    if len(x) == 0:
        raise DatasetError(f"{where}: holds no images (shape {x.shape})")
    if np.issubdtype(x.dtype, np.bool_) or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(
            f"{where}: images of dtype {x.dtype}; expected integers 0..255 or floats in [0, 1]"
        )
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DatasetError(f"{where}: integer images must be in 0..255, got {x.min()}..{x.max()}")
    elif not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DatasetError(f"{where}: {bad} images contain NaN or infinite values; clean or drop them")
    elif x.min() < 0.0 or x.max() > 1.0:
        raise DatasetError(
            f"{where}: float images must be in [0, 1], got {x.min():.3g}..{x.max():.3g}; "
            "scale them or store uint8 0..255"
        )
    return x


def to_tensor(x: np.ndarray, image_size: int | None) -> torch.Tensor:
    """[N, C, H, W] integers 0..255 or floats 0..1 -> float32 tensor in [0, 1], resized to a square if asked."""
    t = torch.from_numpy(x.astype(np.float32, order="C"))  # a fresh copy: never shares the loader's arrays
    if not np.issubdtype(x.dtype, np.floating):
        t.div_(255.0)
    if image_size is not None and tuple(t.shape[2:]) != (image_size, image_size):
        t = F.interpolate(
            t, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )
    return t.clamp_(0.0, 1.0)


def to_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert [N, C, H, W] to 1 (luminance) or 3 channels; None keeps the source's."""
    if channels == 1 and x.shape[1] == 3:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x * luma).sum(dim=1, keepdim=True)
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    return x
