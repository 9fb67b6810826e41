"""What does label-free scoring cost next to training, on the quickstart settings? Goal: <= 0.15.

Runs `run_trial` for a few quickstart configurations (Fashion-MNIST class 0,
3,000 training images, 3 epochs, width 16, label_free pool 500 / 15 tuning
steps, default budget 0.1) and prints labelfree_time_s / train_time_s per
trial. The first trial of a process also pays the severity calibration
(model-free, cached per process, as in a Ray actor that runs many trials);
it is printed separately. Steepness is off so it does not compete.

    nice -n 10 .venv/bin/python bench/label_free_cost.py
    nice -n 10 .venv/bin/python bench/label_free_cost.py --pool 20000            # + a 20k unlabelled pool, 28 px
    nice -n 10 .venv/bin/python bench/label_free_cost.py --pool 5000 --size 128  # + a 5k pool, 128 px
    .venv/bin/python bench/label_free_cost.py --smoke-test

With `--pool N` every trial also scores `data.unlabelled` (N Fashion-MNIST
training images in an .npz, resized to `--size`); `label_free.pool_budget`
(`--pool-budget`, default the product's; `none` scores every image) subsamples
it, and the share printed includes the pool's scoring.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from study.trial import run_trial

QUICKSTART = {
    "data": {"name": "fashion_mnist", "normal_classes": 0, "train_limit": 3000, "test_limit": 2000},
    "epochs": 3,
    "batch_size": 128,
    "width": 16,
    "latent_dim": 16,
    "eval_limit": 1000,
    "lr": 0.005,
    "landscape": {"power_iters": 0, "hutchinson_probes": 0, "grid_1d": 0, "grid_2d": 0},
    "label_free": {"pool_size": 500, "tune_steps": 15},
}
SETTINGS = [
    {"optimizer": "adam", "metric": "mse"},
    {"optimizer": "adam", "metric": "ssim", "amplification": "exp", "factor": 10.0},
    {"optimizer": "sgd", "metric": "mse", "factor": 10.0},
    {"optimizer": "sgd", "metric": "ssim"},
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a study runs 1 per trial)")
    parser.add_argument(
        "--smoke-test", action="store_true", help="2 settings, 1 epoch on 300 images, a smaller pool"
    )
    parser.add_argument("--pool", type=int, default=0, help="unlabelled pool images (0: none)")
    parser.add_argument("--size", type=int, default=28, help="image side (Fashion-MNIST resized)")
    parser.add_argument(
        "--pool-budget", default=None, help="label_free.pool_budget (default: the product's; none: no cap)"
    )
    parser.add_argument("--settings", type=int, default=len(SETTINGS), help="how many of the settings to run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = {
        **QUICKSTART,
        "data": {**QUICKSTART["data"], "image_size": None if args.size == 28 else args.size},
    }
    settings = SETTINGS[: args.settings]
    if args.smoke_test:
        base = {
            **QUICKSTART,
            "epochs": 1,
            "eval_limit": 300,
            "label_free": {"pool_size": 100, "tune_steps": 2},
        }
        base["data"] = {**base["data"], "train_limit": 300, "test_limit": 400}
        settings = SETTINGS[:2]
    tmp = tempfile.TemporaryDirectory()
    if args.pool:
        base["data"] = {**base["data"], "unlabelled": _pool_file(Path(tmp.name), args.pool)}
    if args.pool_budget is not None:
        budget = None if args.pool_budget.lower() == "none" else float(args.pool_budget)
        base["label_free"] = {**base["label_free"], "pool_budget": budget}
    shares = []
    for i, setting in enumerate(settings):
        m = run_trial({**base, **setting}).metrics
        share = (m["labelfree_time_s"] + m.get("unlabelled_pool_time_s", 0.0)) / m["train_time_s"]
        if args.pool:
            print(
                f"  pool: {int(m['unlabelled_pool_scored'])} of {int(m['unlabelled_pool_available'])} images scored "
                f"in {m['unlabelled_pool_time_s']:.2f} s ({m['unlabelled_pool_time_s'] / m['train_time_s']:.3f} of training)"
            )
        print(
            f"{setting}: train {m['train_time_s']:.2f} s, label-free {m['labelfree_time_s']:.2f} s "
            f"({int(m['labelfree_normals'])} normals, pool {int(m['labelfree_pool'])}, "
            f"{int(m['labelfree_tune_steps'])} tuning steps) -> {share:.3f}{' (includes calibration)' if i == 0 else ''}"
        )
        if i:
            shares.append(share)
    if shares:  # --settings 1 runs the first trial only
        print(
            f"label-free / training after the first trial: median {statistics.median(shares):.3f}, max {max(shares):.3f}"
        )
    return 0


def _pool_file(folder: Path, n: int) -> str:
    """An .npz of n Fashion-MNIST training images (what they show does not matter for the cost)."""
    from study.core.config import DataConfig
    from study.data.idx import load_fashion_mnist

    x = load_fashion_mnist(DataConfig()).train_x
    path = folder / "pool.npz"
    np.savez(path, x=x[np.random.default_rng(0).choice(len(x), n, replace=False), 0])
    return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
