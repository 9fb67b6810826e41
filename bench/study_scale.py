"""Can the driver keep up with thousands of trials? Trials per second through the real runner.

Runs >= 10,000 fast trials (bench/specs/scale.yaml: scikit-learn digits, a
tiny MLP autoencoder, one epoch, steepness on a small batch, no label-free;
packed, so many trials share one Tune trial) through `run_study`: real Ray
Tune on a local Ray, a real sqlite MLflow store in a temporary folder. Then it
checks that every trial is a finished (or collapsed / diverged) child run, and
prints:

- sustained trials/s: trials / the study's `fit()` wall (Ray start and
  MLflow setup excluded, reported apart);
- driver CPU seconds per trial: this process's CPU time during the study
  (Tune's loop, the MLflow callbacks, every store write) / trials;
- the baseline, measured in the same run: the same packs' work in a bare
  loop in this process (`run_pack`, no Ray, no MLflow) on a sample of packs,
  per trial; and the ratio study s/trial / bare s/trial last (1.0 would mean
  the runner and MLflow cost nothing over the work itself).

    .venv/bin/python bench/study_scale.py                 # 10,000 trials, ~10 min on 2 cores
    .venv/bin/python bench/study_scale.py --smoke-test    # 400 trials
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from study.spec import load_spec

SPEC = Path(__file__).parent / "specs" / "scale.yaml"
ENDED = {"finished", "collapsed", "degenerate", "diverged"}


def _spec_file(tmp: Path, seeds: int, smoke: bool) -> Path:
    """scale.yaml with `seeds` replicate seeds (1,000 configurations each); smoke: 4 learning rates, 400."""
    raw = yaml.safe_load(SPEC.read_text())
    raw["seeds"] = list(range(seeds))
    if smoke:
        raw["dimensions"]["lr"]["grid"] = raw["dimensions"]["lr"]["grid"][:4]
    path = tmp / "scale.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bare_per_trial(spec_path: Path, n_packs: int) -> float:
    """Seconds per trial of the packs' own work (train + measure) in a plain loop, on `n_packs` packs."""
    from study.packing import pack_plan, run_pack

    spec = load_spec(spec_path)
    packs = pack_plan(spec.expand(), spec.packing.max_members)[:n_packs]
    run_pack(packs[0].configs[:2])  # warm-up: imports, dataset cache
    t0 = time.perf_counter()
    for pack in packs:
        run_pack(pack.configs)
    return (time.perf_counter() - t0) / sum(len(p) for p in packs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=10, help="replicate seeds: 1,000 trials each (default 10)"
    )
    parser.add_argument("--smoke-test", action="store_true", help="400 trials (one seed, 4 learning rates)")
    parser.add_argument("--bare-packs", type=int, default=3, help="packs timed in the bare loop (baseline)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lamp-scale-"))
    try:
        spec_path = _spec_file(tmp, 1 if args.smoke_test else args.seeds, args.smoke_test)
        spec = load_spec(spec_path)
        from study.runner import run_study

        n = spec.n_trials
        print(
            f"{n} trials in packs of up to {spec.packing.max_members}; store {tmp / 'mlflow.db'}", flush=True
        )
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        t0, cpu0 = time.perf_counter(), _cpu_s()
        summary = run_study(spec, tracking_uri=uri, storage_path=str(tmp / "storage"))
        total_s, driver_cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        fit_s = summary["wall_time_s"]
        ended = sum(v for k, v in summary["trials"].items() if k in ENDED)
        runs = _child_runs(uri, spec.name)
        print(f"statuses: {summary['trials']}; child runs ended in MLflow: {runs} of {n}")
        if ended != n or runs != n:
            sys.exit(f"not every trial ended as a child run ({ended} ended, {runs} runs, {n} planned)")
        bare = bare_per_trial(spec_path, args.bare_packs)
        study_per_trial = fit_s / n
        print(f"study: {fit_s:.1f} s fit() wall ({total_s:.1f} s with Ray start and MLflow setup)")
        print(f"sustained: {n / fit_s:.1f} trials/s (goal >= 20)")
        print(f"driver CPU: {driver_cpu / n * 1000:.1f} ms per trial ({driver_cpu:.1f} s in all)")
        print(f"bare loop (same packs' work, no Ray, no MLflow): {bare * 1000:.1f} ms per trial")
        print(f"ratio study s/trial / bare s/trial: {study_per_trial / bare:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _child_runs(uri: str, study: str) -> int:
    """Child runs of the study that ended with a lamp status of a completed trial."""
    from study.tracking import StudyTracker

    tracker = StudyTracker(uri, study)
    parent = tracker.client.search_runs([tracker.experiment_id], "tags.`lamp.role` = 'study'")[0]
    tracker.parent_run_id = parent.info.run_id
    return sum(
        r.data.tags.get("lamp.status") in ENDED and r.info.status == "FINISHED" for r in tracker.children()
    )


if __name__ == "__main__":
    main()
