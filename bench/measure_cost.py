"""What do a trial's end-of-trial measurements cost, relative to its training, as images grow?

For each image size (28, 64, 128 px) this writes a procedural grey texture set
as an MVTec-style folder (`<root>/texture/train/good`, `test/good`,
`test/<defect>`) into a temporary directory, runs one trial on it at default
measurement settings (`run_trial`, conv_ae, Adam, batch 32; by default 470
training images and 6 epochs, the defect-set case of issue 14) and prints, from
the same trial, steepness time / training time and label-free time /
training time. Goal for both: <= 0.15 at every size.

Each size runs `--repeats` trials (seeds 0, 1, ...) and reports the first
apart from the later ones: the first trial on a dataset pays one-off work
(the label-free severity calibration, cached per process and dataset; for the
first size also torch's first calls), which a lone `lamp-study trial` pays in
full and a trial inside a study (a Ray actor runs many) mostly does not.

Prints the worst of both ratios of the later trials last.

    .venv/bin/python bench/measure_cost.py
    .venv/bin/python bench/measure_cost.py --sizes 64 --train 300 --epochs 3   # the lone-trial case of issue 21
    .venv/bin/python bench/measure_cost.py --smoke-test
"""

from __future__ import annotations

import argparse
import statistics
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
        "--repeats", type=int, default=2, help="trials per size: the first is reported apart (default 2)"
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
            for seed in range(args.repeats):
                m = run_trial(
                    {
                        "data": {
                            "name": "mvtec",
                            "path": str(root),
                            "category": "texture",
                            "image_size": size,
                        },
                        "arch": "conv_ae",
                        "epochs": epochs,
                        "batch_size": 32,
                        "seed": seed,
                        "label_free": {"enabled": not args.no_label_free},
                    }
                ).metrics
                rows.append((size, seed == 0, m))
                print(
                    f"{size:>4} px, seed {seed}: training {m['train_time_s']:.2f} s, steepness "
                    f"{m['steepness_time_s']:.2f} s (batch {m['steepness_batch_size']:.0f}, probes "
                    f"{m['steepness_probes']:.0f}, grids {m['steepness_grid_1d']:.0f}/{m['steepness_grid_2d']:.0f}, "
                    f"Lanczos {m['sharpness_iters']:.0f} steps, converged {m['sharpness_converged']:.0f}), "
                    f"label-free {m.get('labelfree_time_s', float('nan')):.2f} s",
                    flush=True,
                )
    _print_table(rows, sizes, n_train, epochs)


def _print_table(
    rows: list[tuple[int, bool, dict[str, float]]], sizes: list[int], n_train: int, epochs: int
) -> None:
    """Per size, the first trial's ratios apart from the later trials' medians; the worst later ratios last."""
    print(
        f"device: cpu, torch threads: {torch.get_num_threads()}, {n_train} training images, {epochs} epochs"
    )
    print("size  trials                     steepness/training  label-free/training")
    later: list[tuple[float, float]] = []
    for size in sizes:
        first = [m for s, is_first, m in rows if s == size and is_first]
        rest = [m for s, is_first, m in rows if s == size and not is_first]
        label = "first (of the process)" if size == sizes[0] else "first on this dataset"
        for name, group in ((label, first), (f"later (median of {len(rest)})", rest)):
            if group:
                st, lf = _ratios(group)
                print(f"{size:>4}  {name:<25}  {st:>18.3f}  {lf:>19.3f}")
        if rest:
            later.append(_ratios(rest))
    if later:
        print(
            f"later trials: worst steepness/training {max(r[0] for r in later):.3f}, "
            f"worst label-free/training {max(r[1] for r in later):.3f} (goal <= 0.15)"
        )


def _ratios(group: list[dict[str, float]]) -> tuple[float, float]:
    """Median steepness / training and label-free / training over trials."""
    st = statistics.median(m["steepness_time_s"] / m["train_time_s"] for m in group)
    lf = statistics.median(m.get("labelfree_time_s", float("nan")) / m["train_time_s"] for m in group)
    return st, lf


if __name__ == "__main__":
    main()
