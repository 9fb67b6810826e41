"""Texture one-class tasks for the regret bench, cut from scikit-image's bundled photographs (no download).

brick, grass and gravel are 512x512 grayscale photographs of real surfaces, each
flattened first (its Gaussian blur at sigma 24 px subtracted, its mean added
back) so that uneven lighting does not tell one place from another. A task
takes one as the normal surface; every image is a seeded 56x56 px crop of a
photograph averaged 2x2 down to 28x28. Three photographs cannot give hundreds of
disjoint crops, so training, held-out and test crops all come from the whole
photograph at different offsets (they share pixels): held-out and test normals
are then alike, as the label-free scores assume of real data. Anomalies
come in two kinds:

- `other`: crops of the two other photographs — real pixels on both sides, a
  different surface rather than a flaw on this one;
- `patch`: test crops of the normal surface with a disc (6-12 px across at
  28 px) of another surface pasted in with a hard edge — a foreign-material
  flaw whose content is real but whose placement is synthetic.

scikit-image is the `bench` extra (`pip install -e ".[bench]"`); the package is
only read for its data files, never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

TEXTURES = ("brick", "grass", "gravel")
KINDS = ("other", "patch")
CROP = 56  # photograph pixels per side of one image, before the 2x2 average
LIGHTING_SIGMA = 24.0  # px; coarser than a brick, finer than the photograph's light fall-off
N_TRAIN, N_NORMAL, N_ANOMALOUS = 600, 500, 500


def photographs() -> dict[str, np.ndarray]:
    """The three flattened photographs, read from the installed scikit-image's data folder."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit(
            'texture tasks need scikit-image\'s bundled photographs: pip install -e ".[bench]" '
            "(or leave them out: --tasks with fmnist*/digits* names)"
        )
    folder = Path(spec.origin).parent / "data"
    out = {}
    for t in TEXTURES:
        photo = np.asarray(Image.open(folder / f"{t}.png").convert("L"), np.float32)
        out[t] = photo - gaussian_filter(photo, LIGHTING_SIGMA) + photo.mean()
    return out


def _crops(photo: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n seeded CROP x CROP crops of the photograph."""
    ys = rng.integers(0, photo.shape[0] - CROP + 1, n)
    xs = rng.integers(0, photo.shape[1] - CROP + 1, n)
    return np.stack([photo[y : y + CROP, x : x + CROP] for y, x in zip(ys, xs, strict=True)])


def _halve(crops: np.ndarray) -> np.ndarray:
    n, h, w = crops.shape
    small = crops.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _paste_discs(base: np.ndarray, donors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """base with one disc of the matching donor crop pasted at a seeded place and size."""
    out = base.copy()
    yy, xx = np.mgrid[:CROP, :CROP]
    for i in range(len(out)):
        r = rng.uniform(6, 12)  # radius at full size: 6-12 px across after halving
        cy, cx = rng.uniform(r, CROP - r, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        out[i][disc] = donors[i][disc]
    return out


def _check(normal: str, kind: str) -> None:
    if normal not in TEXTURES or kind not in KINDS:
        raise ValueError(f"texture task {kind}-{normal}: normal in {TEXTURES}, kind in {KINDS}")


def _anomalous(
    photos: dict[str, np.ndarray], normal: str, kind: str, n: int, rng: np.random.Generator
) -> np.ndarray:
    """n full-size anomalous crops of `kind` for the surface `normal`."""
    others = [t for t in TEXTURES if t != normal]
    share = [n // 2, n - n // 2]
    foreign = np.concatenate([_crops(photos[t], k, rng) for t, k in zip(others, share, strict=True)])
    if kind == "other":
        return foreign
    return _paste_discs(_crops(photos[normal], n, rng), foreign, rng)


def build(normal: str, kind: str, path: Path, seed: int = 0, n_train: int = N_TRAIN) -> Path:
    """Write the one-class .npz (x_train, x_test, y_test 0 normal / 1 anomalous) of one texture task."""
    _check(normal, kind)
    rng = np.random.default_rng([seed, TEXTURES.index(normal), KINDS.index(kind)])
    photos = photographs()
    x_train = _crops(photos[normal], n_train, rng)
    normals = _crops(photos[normal], N_NORMAL, rng)
    anomalous = _anomalous(photos, normal, kind, N_ANOMALOUS, rng)
    x_test = np.concatenate([normals, anomalous])
    y_test = np.repeat([0, 1], [len(normals), len(anomalous)]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x_train=_halve(x_train), x_test=_halve(x_test), y_test=y_test)
    return path


def bank(
    normal: str, kind: str, n_normal: int, n_anomalous: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(28x28 uint8 images, is_anomalous) of fresh crops, from a seed stream `build` never uses.

    A deployment pool of the task: crops at new offsets (a 512 px photograph
    has ~209k of them), sharing pixels with training crops as the test crops do.
    """
    _check(normal, kind)
    rng = np.random.default_rng([seed, TEXTURES.index(normal), KINDS.index(kind), 1])
    photos = photographs()
    images = np.concatenate(
        [_crops(photos[normal], n_normal, rng), _anomalous(photos, normal, kind, n_anomalous, rng)]
    )
    return _halve(images), np.repeat([False, True], [n_normal, n_anomalous])
