"""What does running trials as a Ray Tune study cost over a bare serial loop?

Runs N identical short trials (`--trials`, default 16) (bench/specs/overhead.yaml: a Fashion-MNIST
subset, a small conv AE, steepness and label-free on) in the same run:

- as a bare serial loop calling `run_trial` in this process, with torch's
  default threads (the baseline) and with one thread;
- through `lamp-study run` (local Ray, sqlite MLflow, actor reuse) with
  one CPU per trial and two trials at a time ("parallel"), and with every
  core for one trial at a time ("wide").

For each study it prints the `fit()` wall (the runner's own clock; Ray start
and MLflow setup are reported apart) and the per-trial overhead

    overhead = (study wall x concurrency - bare wall at the same threads) / N

which includes each actor's one-off start-up (imports, dataset load) spread
over N, and, from each trial's MLflow child run (its end minus its start),
the steady-state overhead (median trial time in the study minus the bare
per-trial time) and the start-up. The ratio best study wall / bare wall comes last (below 1: the study
beats the serial loop).

    .venv/bin/python bench/study_overhead.py
    .venv/bin/python bench/study_overhead.py --trials 8      # on a loaded machine
    .venv/bin/python bench/study_overhead.py --smoke-test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from study.spec import load_spec
from study.trial import run_trial

SPEC = Path(__file__).parent / "specs" / "overhead.yaml"


def bare_loop(trials: list, threads: int) -> float:
    """Wall time of the trials run one after another in this process."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    for cfg in trials:
        run_trial(cfg)
    torch.set_num_threads(before)
    return time.perf_counter() - t0


def study_run(text: str, tmp: Path, label: str) -> tuple[dict, float, list[float]]:
    """Run the spec through the CLI; (summary, command wall, each trial's time in the study by its end).

    A trial's time is its MLflow child run's end minus its start: the driver opens the run when Tune
    starts the trial and ends it once the trial's result is logged, so it is the trial as the study
    sees it (the actor's work, its reports, the driver's logging).
    """
    from mlflow.tracking import MlflowClient

    spec_file = tmp / f"{label}.yaml"
    spec_file.write_text(text.replace("name: overhead", f"name: overhead_{label}"))
    uri = f"sqlite:///{tmp}/mlflow.db"
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "study.cli", "run", str(spec_file), "--tracking-uri", uri]
        + ["--storage-path", f"{tmp}/storage"],
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - t0
    print(f"study {label}: {total:.1f} s", file=sys.stderr, flush=True)
    if out.returncode != 0:
        sys.exit(f"lamp-study run exited {out.returncode}:\n{out.stderr[-3000:]}")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"overhead_{label}")
    runs = client.search_runs([experiment.experiment_id], "tags.`lamp.role` = 'trial'", max_results=10_000)
    runs = sorted(runs, key=lambda r: r.info.end_time)
    return json.loads(out.stdout), total, [(r.info.end_time - r.info.start_time) / 1000 for r in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="identical trials (default 16)")
    parser.add_argument("--smoke-test", action="store_true", help="4 trials of 1 epoch")
    args = parser.parse_args()
    n = 4 if args.smoke_test else args.trials
    cores = os.cpu_count() or 1

    text = SPEC.read_text().replace("samples: 16", f"samples: {n}")
    if args.smoke_test:
        text = text.replace("epochs: 3", "epochs: 1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "base.yaml").write_text(text)
        trials = load_spec(tmp / "base.yaml").expand()
        assert len(trials) == n, (len(trials), n)
        run_trial(trials[0])  # warm-up: imports, dataset cache
        threads = torch.get_num_threads()
        bare = bare_loop(trials, threads)
        bare_1 = bare_loop(trials, 1)
        print(f"bare loops: {bare:.1f} s, {bare_1:.1f} s on one thread", file=sys.stderr, flush=True)
        variants = {
            "parallel": (text, 2, bare_1),
            "wide": (
                text.replace("resources: {cpu: 1, gpu: 0}", f"resources: {{cpu: {cores}, gpu: 0}}").replace(
                    "max_concurrent: 2", "max_concurrent: 1"
                ),
                1,
                bare,
            ),
        }
        results = {label: (study_run(t, tmp, label), k, ref) for label, (t, k, ref) in variants.items()}

    print(f"{n} identical trials; {cores} cores; torch default threads {threads}")
    print(f"bare serial loop, {threads} threads: {bare:.1f} s ({bare / n:.2f} s per trial)")
    print(f"bare serial loop, 1 thread:  {bare_1:.1f} s ({bare_1 / n:.2f} s per trial)")
    walls = {}
    for label, ((summary, total, times), k, ref) in results.items():
        wall = summary["wall_time_s"]
        walls[label] = wall
        steady = statistics.median(times[k:]) - ref / n if len(times) > k else float("nan")
        startup = max(times[:k]) - statistics.median(times[k:]) if len(times) > k else float("nan")
        print(
            f"study {label:8s} ({k} at a time): fit {wall:.1f} s (command incl. Ray start {total:.1f} s), "
            f"{summary['trials']}; overhead {(wall * k - ref) / n:.2f} s per trial "
            f"(steady state {steady:.2f} s, actor start-up {startup:.1f} s once per actor); "
            f"wall / bare {wall / bare:.3f}"
        )
    best = min(walls, key=walls.get)
    print(f"best study wall / bare wall ({best}): {walls[best] / bare:.3f} (goal < 1)")


if __name__ == "__main__":
    main()
