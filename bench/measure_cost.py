"""What do a trial's end-of-trial measurements cost, relative to its training, as images grow?

For each image size (28, 64, 128 px) this writes a procedural grey texture set
as an MVTec-style folder (`<root>/texture/train/good`, `test/good`,
`test/<defect>`) into a temporary directory, runs one trial on it at default
measurement settings (`run_trial`, conv_ae, Adam, batch 32; by default 470
training images and 6 epochs, the defect-set case of issue 14) and prints, from
the same trial, steepness time / training time and label-free time /
training time. Goal for both: <= 0.15 at every size.

Prints the worst of both ratios last.

    .venv/bin/python bench/measure_cost.py
    .venv/bin/python bench/measure_cost.py --smoke-test
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from study.trial import run_trial


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey woven-looking texture: a few random plane waves plus pixel noise, uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size))
    for _ in range(4):
        freq = rng.uniform(4, 12)
        angle = rng.uniform(0, np.pi)
        img += np.sin(
            2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi)
        )
    img = 0.5 + 0.1 * img + rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def defect(rng: np.random.Generator, img: np.ndarray, kind: str) -> np.ndarray:
    """A dark blob or a bright scratch at a random place."""
    size = img.shape[0]
    out = img.astype(np.float64)
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    if kind == "blob":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.08 * size) ** 2
        out[mask] *= 0.3
    else:
        angle = rng.uniform(0, np.pi)
        dist = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle))
        mask = (dist < max(1.0, 0.015 * size)) & ((xx - cx) ** 2 + (yy - cy) ** 2 < (0.3 * size) ** 2)
        out[mask] = 240
    return out.astype(np.uint8)


def write_folder(root: Path, size: int, n_train: int, n_test: int, seed: int = 0) -> None:
    """`root/texture/{train/good, test/good, test/blob, test/scratch}` of PNG files."""
    rng = np.random.default_rng(seed)
    base = root / "texture"
    plan = [("train/good", n_train, None), ("test/good", n_test, None)]
    plan += [("test/blob", n_test // 2, "blob"), ("test/scratch", n_test // 2, "scratch")]
    for sub, n, kind in plan:
        (base / sub).mkdir(parents=True)
        for i in range(n):
            img = texture(rng, size)
            if kind is not None:
                img = defect(rng, img, kind)
            Image.fromarray(img).save(base / sub / f"{i:04d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="tiny sizes, for a quick check")
    parser.add_argument("--sizes", default="28,64,128", help="image sizes, comma separated")
    parser.add_argument("--train", type=int, default=470, help="training images per folder")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument(
        "--no-label-free", action="store_true", help="skip label-free scoring (steepness only)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_train, n_test, epochs = (40, 10, 1) if args.smoke_test else (args.train, 60, args.epochs)
    sizes = [28] if args.smoke_test else [int(s) for s in args.sizes.split(",")]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            root = Path(tmp) / f"px{size}"
            write_folder(root, size, n_train, n_test)
            result = run_trial(
                {
                    "data": {"name": "mvtec", "path": str(root), "category": "texture", "image_size": size},
                    "arch": "conv_ae",
                    "epochs": epochs,
                    "batch_size": 32,
                    "label_free": {"enabled": not args.no_label_free},
                }
            )
            m = result.metrics
            rows.append((size, m))
            print(
                f"{size:>4} px: training {m['train_time_s']:.2f} s, steepness {m['steepness_time_s']:.2f} s "
                f"(batch {m['steepness_batch_size']:.0f}, probes {m['steepness_probes']:.0f}, "
                f"grids {m['steepness_grid_1d']:.0f}/{m['steepness_grid_2d']:.0f}, "
                f"Lanczos {m['sharpness_iters']:.0f} steps, converged {m['sharpness_converged']:.0f}), "
                f"label-free {m.get('labelfree_time_s', float('nan')):.2f} s",
                flush=True,
            )
    print(
        f"device: cpu, torch threads: {torch.get_num_threads()}, {n_train} training images, {epochs} epochs"
    )
    print("size  steepness/training  label-free/training")
    for size, m in rows:
        lf = m.get("labelfree_time_s", float("nan")) / m["train_time_s"]
        print(f"{size:>4}  {m['steepness_time_s'] / m['train_time_s']:>18.3f}  {lf:>19.3f}")
    worst = max(m["steepness_time_s"] / m["train_time_s"] for _, m in rows)
    worst_lf = max(m.get("labelfree_time_s", 0.0) / m["train_time_s"] for _, m in rows)
    print(f"worst steepness/training {worst:.3f}, worst label-free/training {worst_lf:.3f} (goal <= 0.15)")


if __name__ == "__main__":
    main()
