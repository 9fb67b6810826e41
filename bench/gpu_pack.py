"""Packed trials against solo trials: throughput of the same set of trials both ways.

The trials: `--trials` conv_ae configurations on Fashion-MNIST class 0 that
share a pack key and differ in what a pack batches (amplification form,
factor, base metric, lr, seed). Solo: `run_trial` one after another (on CUDA
also `--concurrency` processes sharing the GPU, which is what fractional
`resources.gpu` amounts to). Packed: `run_pack` in packs of `--max-members`.
Both run the full trial (training, detection, steepness, label-free); the
table splits training from measurement, since only training is packed.

Prints trials/hour for each way, GPU utilisation sampled during each when
CUDA exists, the pack plan of search_spaces/lamp_grid.yaml with a
training-only extrapolation of its wall time from the packed rate, and the
packed/solo ratio last.

    .venv/bin/python bench/gpu_pack.py                          # GPU: 64 trials, 5 epochs
    nice -n 10 .venv/bin/python bench/gpu_pack.py --trials 8 --epochs 2 --train-limit 1000
    .venv/bin/python bench/gpu_pack.py --smoke-test
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

from study.core.config import TrialConfig
from study.data import load_dataset
from study.packing import pack_plan, run_pack
from study.trial import TrialResult, run_trial

GRID = Path(__file__).resolve().parent.parent / "search_spaces" / "lamp_grid.yaml"
FORMS = ("linear", "exp", "log")
FACTORS = (1.0, 3.0, 10.0, 30.0)
METRICS = ("mse", "mae", "ssim")


# the smoke test times training only: the measurement's code path is the solo trial's, smoke-tested elsewhere
SMOKE_MEASUREMENT = {
    "label_free": {"enabled": False},
    "landscape": {"power_iters": 0, "hutchinson_probes": 0, "grid_1d": 0, "grid_2d": 0},
}


def bench_configs(args: argparse.Namespace) -> list[TrialConfig]:
    """`args.trials` configs of one pack key, cycling through forms, factors, metrics and seeds."""
    combos = itertools.cycle(itertools.product(FORMS, FACTORS, METRICS))
    out = []
    for i in range(args.trials):
        form, factor, metric = next(combos)
        out.append(
            TrialConfig.from_dict(
                {
                    "data": {
                        "name": "fashion_mnist",
                        "normal_classes": [0],
                        "train_limit": args.train_limit,
                        "test_limit": args.test_limit,
                    },
                    "arch": "conv_ae",
                    "epochs": args.epochs,
                    "optimizer": args.optimizer,
                    "amplification": form,
                    "factor": factor,
                    "metric": metric,
                    "lr": 1e-3 if args.optimizer != "sgd" else 5e-3,
                    "seed": i,
                    "device": args.device,
                    **(SMOKE_MEASUREMENT if args.smoke_test else {}),
                }
            )
        )
    return out


class UtilisationSampler:
    """GPU busy % polled every `interval` s on a thread, from nvidia-smi or torch.cuda.utilization."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._read = self._reader()

    @staticmethod
    def _reader() -> Callable[[], float] | None:
        if not torch.cuda.is_available():
            return None
        smi = shutil.which("nvidia-smi")
        if smi:
            query = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
            return lambda: float(
                subprocess.run(query, capture_output=True, text=True, check=True).stdout.split()[0]
            )
        return lambda: float(torch.cuda.utilization())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self._read())

    @contextmanager
    def during(self) -> Iterator[UtilisationSampler]:
        if self._read is not None:
            self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if self._read is not None:
                self._thread.join()

    def summary(self) -> str:
        if self._read is None:
            return "n/a (no CUDA)"
        if not self.samples:
            return "no samples"
        return f"mean {statistics.mean(self.samples):.0f}%, median {statistics.median(self.samples):.0f}%"


def _solo_worker(cfg_dicts: list[dict]) -> list[TrialResult]:
    return [run_trial(c) for c in cfg_dicts]


def run_solo(cfgs: list[TrialConfig], concurrency: int) -> list[TrialResult]:
    if concurrency <= 1:
        return [run_trial(c) for c in cfgs]
    shares = [[c.to_dict() for c in cfgs[i::concurrency]] for i in range(concurrency)]
    with ProcessPoolExecutor(concurrency, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [r for part in pool.map(_solo_worker, shares) for r in part]


def run_packed(cfgs: list[TrialConfig], max_members: int) -> list[TrialResult]:
    return [r for pack in pack_plan(cfgs, max_members) for r in run_pack(list(pack.configs))]


def timed(label: str, fn: Callable[[], list[TrialResult]]) -> dict[str, float | str]:
    sampler = UtilisationSampler()
    with sampler.during():
        t0 = time.perf_counter()
        results = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    statuses = {s: sum(r.status == s for r in results) for s in ("finished", "diverged")}
    train_s = sum(r.metrics["train_time_s"] for r in results)
    return {
        "label": label,
        "wall": wall,
        "trials": len(results),
        "per_hour": 3600 * len(results) / wall,
        "train_s": train_s,
        "statuses": ", ".join(f"{n} {s}" for s, n in statuses.items() if n),
        "gpu": sampler.summary(),
    }


def lamp_grid_line(packed_train_s_per_trial_epoch: float, max_members: int) -> str:
    """Pack plan of lamp_grid.yaml and its training-only wall time at the packed rate."""
    from study.spec import load_spec

    spec = load_spec(GRID)
    trials = spec.expand()
    plan = pack_plan(trials, max_members)
    keys = len({p.key for p in plan})
    epochs = sum(t.epochs for t in trials)
    hours = epochs * packed_train_s_per_trial_epoch / 3600
    return (
        f"lamp_grid: {len(trials)} trials -> {keys} pack keys, {len(plan)} packs of <= {max_members}; "
        f"training at this bench's packed rate: {hours:.2f} h "
        "(conv_ae rate for all three architectures; measurement and the driver not included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-members", type=int, default=64)
    parser.add_argument("--optimizer", default="adam", choices=("adam", "adamw", "sgd"))
    parser.add_argument("--train-limit", type=int, default=None, help="cap on training images (CPU runs)")
    parser.add_argument("--test-limit", type=int, default=None, help="cap on test images (CPU runs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="CUDA only: solo processes sharing the GPU (fractional GPU)",
    )
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="4 trials of 1 epoch on 200 images, packs of 2, CPU, no measurement",
    )
    args = parser.parse_args()
    if args.smoke_test:
        args.trials, args.epochs, args.max_members, args.device = 4, 1, 2, "cpu"
        args.train_limit, args.test_limit = 200, 200

    cfgs = bench_configs(args)
    load_dataset(cfgs[0].data)  # warm the dataset cache: neither way pays the first load
    run_pack(cfgs[:2] if len(cfgs) > 1 else cfgs)  # warm-up: allocator, kernels, vmap paths
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else "CPU"
    print(f"device: {device}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{args.trials} conv_ae trials, {args.epochs} epochs, {args.optimizer}, train_limit {args.train_limit}"
    )

    rows = [timed("solo, sequential", lambda: run_solo(cfgs, 1))]
    if torch.cuda.is_available() and args.device != "cpu" and args.concurrency > 1:
        rows.append(
            timed(
                f"solo, {args.concurrency} processes share the GPU", lambda: run_solo(cfgs, args.concurrency)
            )
        )
    rows.append(timed(f"packed, <= {args.max_members} members", lambda: run_packed(cfgs, args.max_members)))

    print(f"{'way':<36} {'wall s':>8} {'trials/h':>9} {'train s':>8} {'GPU busy':>24}  statuses")
    for r in rows:
        print(
            f"{r['label']:<36} {r['wall']:>8.1f} {r['per_hour']:>9.0f} {r['train_s']:>8.1f} {r['gpu']:>24}  {r['statuses']}"
        )
    packed, best_solo = rows[-1], max(rows[:-1], key=lambda r: r["per_hour"])
    print(lamp_grid_line(packed["train_s"] / (args.trials * args.epochs), args.max_members))
    # sequential solo: its per-trial training times do not overlap, so their sum is its training time
    print(f"training only: packed / sequential solo = {rows[0]['train_s'] / packed['train_s']:.2f}x")
    print(f"packed / best solo trials per hour = {packed['per_hour'] / best_solo['per_hour']:.2f}x")


if __name__ == "__main__":
    main()
