"""Is the trainer as fast as a hand-written loop, and what does steepness cost?

1. Training throughput of `study.training.train.train` against a minimal hand-written
   PyTorch loop (same model, data, batch size, optimiser, device), alternating
   the two `--repeats` times in this process and taking medians. Goal: >= 0.95.
2. The steepness measurement's time as a fraction of the trial's training time
   at default settings (`run_trial` on Fashion-MNIST class 0, label-free off).
   Goal: <= 0.15.

Prints the throughput ratio last.

    .venv/bin/python bench/trial_speed.py
    .venv/bin/python bench/trial_speed.py --smoke-test
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from study.core.config import DataConfig, TrialConfig
from study.data import load_dataset
from study.training.models import build_model
from study.training.train import resolve_device, train
from study.trial import run_trial


def hand_written_loop(model: torch.nn.Module, x: torch.Tensor, cfg: TrialConfig) -> None:
    """The baseline: what a user would write by hand for plain MSE training."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        for i in range(0, len(x), cfg.batch_size):
            xb = x[perm[i : i + cfg.batch_size]]
            loss = (model(xb) - xb).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="tiny sizes, for a quick check")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    data_cfg = DataConfig(
        name="fashion_mnist", normal_classes=(0,), train_limit=1000 if args.smoke_test else None
    )
    cfg = TrialConfig(data=data_cfg, epochs=1 if args.smoke_test else args.epochs)
    device = resolve_device(cfg.device)
    data = load_dataset(data_cfg)
    x = data.train.to(device)
    n_samples = len(x) * cfg.epochs

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(cfg.arch, data.in_channels, data.image_size, cfg.latent_dim, cfg.width).to(device)

    hand_written_loop(fresh(), x[:256], cfg)  # warm-up: allocator, kernels
    ours_t, base_t = [], []
    for _ in range(1 if args.smoke_test else args.repeats):
        model = fresh()
        t0 = time.perf_counter()
        hand_written_loop(model, x, cfg)
        base_t.append(time.perf_counter() - t0)
        model = fresh()
        t0 = time.perf_counter()
        train(model, x, cfg, device)
        ours_t.append(time.perf_counter() - t0)
    base_rate, ours_rate = n_samples / statistics.median(base_t), n_samples / statistics.median(ours_t)

    trial_cfg = TrialConfig.from_dict(
        {
            "data": {
                "name": "fashion_mnist",
                "normal_classes": [0],
                "train_limit": data_cfg.train_limit,
                "test_limit": 1000 if args.smoke_test else None,
            },
            "epochs": 1 if args.smoke_test else 5,
            "label_free": {"enabled": False},
        }
    )
    result = run_trial(trial_cfg)
    fraction = result.metrics["steepness_time_s"] / result.metrics["train_time_s"]

    print(f"device: {device}, torch threads: {torch.get_num_threads()}, samples per run: {n_samples}")
    print(f"hand-written loop: {base_rate:,.0f} samples/s (median of {len(base_t)})")
    print(f"study.training.train:       {ours_rate:,.0f} samples/s (median of {len(ours_t)})")
    print(
        f"steepness at default settings: {result.metrics['steepness_time_s']:.2f} s over "
        f"{result.metrics['train_time_s']:.2f} s of training ({trial_cfg.epochs} epochs) = {fraction:.3f} "
        f"(goal <= 0.15)"
    )
    print(
        f"training throughput ratio (study.training.train / hand-written): {ours_rate / base_rate:.3f} (goal >= 0.95)"
    )


if __name__ == "__main__":
    main()
