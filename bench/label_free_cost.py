"""What does label-free scoring cost next to training, on the quickstart settings? Goal: <= 0.15.

Runs `run_trial` for a few quickstart configurations (Fashion-MNIST class 0,
3,000 training images, 3 epochs, width 16, label_free pool 500 / 15 tuning
steps, default budget 0.1) and prints labelfree_time_s / train_time_s per
trial. The first trial of a process also pays the severity calibration
(model-free, cached per process, as in a Ray actor that runs many trials);
it is printed separately. Steepness is off so it does not compete.

    nice -n 10 .venv/bin/python bench/label_free_cost.py
    .venv/bin/python bench/label_free_cost.py --smoke-test
"""

from __future__ import annotations

import argparse
import statistics

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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base, settings = QUICKSTART, SETTINGS
    if args.smoke_test:
        base = {
            **QUICKSTART,
            "epochs": 1,
            "eval_limit": 300,
            "label_free": {"pool_size": 100, "tune_steps": 2},
        }
        base["data"] = {**QUICKSTART["data"], "train_limit": 300, "test_limit": 400}
        settings = SETTINGS[:2]
    shares = []
    for i, setting in enumerate(settings):
        m = run_trial({**base, **setting}).metrics
        share = m["labelfree_time_s"] / m["train_time_s"]
        print(
            f"{setting}: train {m['train_time_s']:.2f} s, label-free {m['labelfree_time_s']:.2f} s "
            f"({int(m['labelfree_normals'])} normals, pool {int(m['labelfree_pool'])}, "
            f"{int(m['labelfree_tune_steps'])} tuning steps) -> {share:.3f}{' (includes calibration)' if i == 0 else ''}"
        )
        if i:
            shares.append(share)
    print(
        f"label-free / training after the first trial: median {statistics.median(shares):.3f}, max {max(shares):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
