"""How long does a report of a 1,000- or 13,000-trial study take, next to the bare MLflow query?

Logs a synthetic study into a fresh sqlite MLflow store in a temporary folder
(setup, not timed): by default about 1,100 trials (a full grid with replicate
seeds and lr-matched twins, artifacts for the baselines and the best trial of
each factor); with `--trials N` the `lamp_grid`-sized grid (3 archs x 3 widths x
2 optimizers x 3 metrics x 3 forms x 7 factors, with twins: 1,458 trials a
seed) with enough seeds for at least N trials. Then times
`mlflow.search_runs(experiment_names=[name])` and `build_report` in the same
process, the median of `--repeats` runs each after one untimed warm-up of the
store. Prints the build time, the search_runs time, the report size, and their
ratio last. Goals: build under 10 s and file under 6 MB at 1,100 trials; under
20 s and 10 MB at 13,000 (issue 11).

    .venv/bin/python bench/report_speed.py                 # about a minute of setup on 2 cores
    .venv/bin/python bench/report_speed.py --trials 13000  # ~6 minutes of setup, 13,122 trials
    .venv/bin/python bench/report_speed.py --smoke-test
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlflow

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests._synthetic_study
from reports.build import build_report  # noqa: E402
from tests._synthetic_study import SyntheticGrid, write_synthetic_study  # noqa: E402

FULL = SyntheticGrid(
    archs=("conv_ae", "mlp_ae"),
    optimizers=("adam", "sgd"),
    metrics=("mse", "mae", "ssim"),
    amplifications=("linear", "exp", "log"),
    factors=(1.0, 3.0, 10.0, 30.0, 100.0),
    seeds=(0, 1, 2, 3, 4),
)
SMOKE = SyntheticGrid(archs=("conv_ae",), metrics=("mse",), seeds=(0, 1))
SCALE = (
    SyntheticGrid(  # search_spaces/lamp_grid.yaml's factors, forms, metrics, archs and optimizers, x 3 widths
        archs=("conv_ae", "mlp_ae", "unet_ae"),
        widths=(16, 32, 64),
        optimizers=("adam", "sgd"),
        metrics=("mse", "mae", "ssim"),
        amplifications=("linear", "exp", "log"),
        factors=(1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
        seeds=(0,),
    )
)


def scale_grid(trials: int) -> SyntheticGrid:
    """SCALE with the fewest seeds that give at least `trials` trials."""
    per_seed = len(SCALE.configs())
    return dataclasses.replace(SCALE, seeds=tuple(range(max(1, math.ceil(trials / per_seed)))))


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="a 32-trial study, one repeat")
    parser.add_argument(
        "--trials", type=int, default=None, help="log the large grid with >= this many trials"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dir", default=None, help="where the store goes (default: /dev/shm if writable, else TMPDIR)"
    )
    args = parser.parse_args()
    grid, repeats = (SMOKE, 1) if args.smoke_test else (FULL, args.repeats)
    if args.trials is not None and not args.smoke_test:
        grid = scale_grid(args.trials)
    base = args.dir or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)  # sqlite setup is fsync-bound
    root = Path(tempfile.mkdtemp(prefix="lamp-bench-", dir=base))
    try:
        uri, name = f"sqlite:///{root / 'mlflow.db'}", "bench"
        start = time.perf_counter()
        logged = write_synthetic_study(uri, name, root / "artifacts", grid=grid, artifacts="some")
        print(f"setup: {len(logged.trials)} trials logged in {time.perf_counter() - start:.1f} s (not timed)")
        mlflow.set_tracking_uri(uri)
        n_runs = len(mlflow.search_runs(experiment_names=[name]))  # warm-up: store and engine creation
        out = root / "report.html"
        search_s = _median_time(lambda: mlflow.search_runs(experiment_names=[name]), repeats)
        build_s = _median_time(lambda: build_report(name, tracking_uri=uri, out=out), repeats)
        size_mb = out.stat().st_size / 1e6
        print(f"runs in the experiment: {n_runs} (median of {repeats} timings each)")
        print(f"build_report: {build_s:.2f} s")
        print(f"search_runs: {search_s:.2f} s")
        print(f"report size: {size_mb:.2f} MB")
        print(f"ratio build_report / search_runs: {build_s / search_s:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
