"""Write the quickstart's unlabelled pool: Fashion-MNIST training images the quickstart never uses, no labels.

The quickstart (search_spaces/quickstart.yaml) trains on class 0 (T-shirt)
with `train_limit` 2,000 and holds out `val_fraction` 0.1 of the class; the
other class-0 training images are never seen. The pool mixes those unseen
normals with other classes' training images (the anomalies) at a known share,
shuffled, and stores the images only (`x`, uint8): the product reads it as a
user's unlabelled production images. The share is printed, never stored.

    python scripts/make_pool.py                       # 2,000 images, 5% anomalous -> data/quickstart_pool.npz
    python scripts/make_pool.py --size 5000 --share 0.02 --out /tmp/pool.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from study.core.config import DataConfig
from study.data import split_normal
from study.data.idx import load_fashion_mnist

QUICKSTART = DataConfig(name="fashion_mnist", normal_classes=(0,), train_limit=2000)


def unused_normals(cfg: DataConfig, train_y: np.ndarray) -> np.ndarray:
    """Indices of normal-class training images the protocol neither trains on nor holds out."""
    normal = np.flatnonzero(np.isin(train_y, cfg.normal_classes))
    rest, _ = split_normal(len(normal), cfg.val_fraction, None, cfg.split_seed)
    trained, _ = split_normal(len(normal), cfg.val_fraction, cfg.train_limit, cfg.split_seed)
    return normal[np.setdiff1d(rest, trained)]


def make_pool(cfg: DataConfig, size: int, share: float, seed: int) -> np.ndarray:
    """[size, 28, 28] uint8: round(share x size) other-class images, the rest unused normals, shuffled."""
    raw = load_fashion_mnist(cfg)
    normals = unused_normals(cfg, raw.train_y)
    others = np.flatnonzero(~np.isin(raw.train_y, cfg.normal_classes))
    n_anom = round(share * size)
    if size - n_anom > len(normals):
        raise SystemExit(f"only {len(normals)} unused normal images; ask for a smaller --size")
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(normals, size - n_anom, replace=False), rng.choice(others, n_anom, replace=False)]
    )
    return raw.train_x[rng.permutation(idx), 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--share", type=float, default=0.05, help="anomalous share of the pool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/quickstart_pool.npz")
    args = parser.parse_args(argv)
    x = make_pool(QUICKSTART, args.size, args.share, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x=x)
    print(
        f"wrote {args.out}: {len(x)} unlabelled images ({round(args.share * args.size)} anomalous; not stored)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
