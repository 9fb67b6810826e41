"""What does the driver pay to log one finished trial's result files: weights only, or a pyfunc per trial?

Trains one trial of the quickstart's shape (`search_spaces/quickstart.yaml`,
first configuration, 1 epoch: the files' sizes do not depend on the epochs),
then logs its result files into fresh child runs of a real sqlite MLflow store,
alternating two ways, `--repeats` times each after one untimed warm-up of each:

- before (issue 11, the baseline): scores, landscape, and the trial's pyfunc
  scorer (`mlflow.pyfunc.save_model` of the same model the registry now builds:
  the `study` package as code, pinned requirements, signature), as the driver
  did up to now;
- after: scores, landscape, and the weights folder (`model.pt`, `meta.json`),
  `study.tracking.runs._log_result_files` as the driver does now.

Prints the median driver seconds per trial and the artifact bytes and files per
trial of each way, and the ratio after / before last.

    .venv/bin/python bench/trial_logging.py
    .venv/bin/python bench/trial_logging.py --smoke-test
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from study.core.config import TrialConfig
from study.core.vocab import LANDSCAPE_FILE, MODEL_ARTIFACT, SCORES_FILE
from study.serving.scorer import pyfunc_arguments, write_weights
from study.spec import load_spec
from study.tracking import StudyTracker, set_quiet_mlflow_env
from study.tracking.runs import _log_result_files
from study.trial import run_trial

QUICKSTART = Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml"


def log_with_pyfunc(client: Any, run_id: str, result_dir: Path) -> None:
    """The driver's logging before issue 11: the result arrays and a whole pyfunc scorer per trial."""
    for name in (SCORES_FILE, LANDSCAPE_FILE):
        if (result_dir / name).exists():
            client.log_artifact(run_id, str(result_dir / name))
    with tempfile.TemporaryDirectory() as d:
        weights = write_weights(result_dir, Path(d) / "weights")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(path=str(Path(d) / MODEL_ARTIFACT), **pyfunc_arguments(weights))
        client.log_artifacts(run_id, str(Path(d) / MODEL_ARTIFACT), MODEL_ARTIFACT)


def artifact_size(root: Path) -> tuple[int, int, int]:
    """(bytes, files, bytes under model/) of a run's local artifact folder."""
    files = [p for p in root.rglob("*") if p.is_file()]
    model = sum(p.stat().st_size for p in (root / MODEL_ARTIFACT).rglob("*") if p.is_file())
    return sum(p.stat().st_size for p in files), len(files), model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed trials per way (default 20)")
    parser.add_argument("--smoke-test", action="store_true", help="3 timed trials per way")
    args = parser.parse_args()
    repeats = 3 if args.smoke_test else args.repeats
    set_quiet_mlflow_env()  # as the driver runs: no progress bars

    first = load_spec(QUICKSTART).expand()[0]
    # without the quickstart's generated pool (scripts/make_pool.py): the logging cost does not depend on it
    data = {**first.to_dict()["data"], "unlabelled": None}
    cfg = TrialConfig.from_dict({**first.to_dict(), "data": data, "epochs": 1})
    ways = {"before (pyfunc per trial)": log_with_pyfunc, "after (weights + meta)": _log_result_files}
    times: dict[str, list[float]] = {way: [] for way in ways}
    sizes: dict[str, tuple[int, int, int]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = run_trial(cfg)
        result_dir = result.save(tmp / "result")
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        mlflow.MlflowClient(uri).create_experiment("logging", artifact_location=str(tmp / "artifacts"))
        tracker = StudyTracker(uri, "logging")
        tracker.start_study("name: logging", "hash", {}, {})
        for i in range(repeats + 1):  # round 0 warms both ways up (imports, first writes), untimed
            for way, log in ways.items():
                tracker.start_trial(f"{way}-{i}", cfg, "hash")  # queued on the driver's writer thread
                run_id = tracker.run_id(f"{way}-{i}")  # waits for the run to exist, untimed
                t0 = time.perf_counter()
                log(tracker.client, run_id, result_dir)
                elapsed = time.perf_counter() - t0
                if i:
                    times[way].append(elapsed)
                uri_path = tracker.client.get_run(run_id).info.artifact_uri.removeprefix("file://")
                sizes[way] = artifact_size(Path(uri_path))

    print(
        f"one quickstart trial ({cfg.arch}, width {cfg.width}, latent {cfg.latent_dim}, "
        f"{result.model_meta['image_size']} px), sqlite MLflow, {repeats} timed trials per way, median"
    )
    medians = {}
    for way in ways:
        medians[way] = statistics.median(times[way])
        size, files, model = sizes[way]
        print(
            f"{way:26s} {medians[way] * 1000:7.1f} ms per trial (min {min(times[way]) * 1000:.1f}, "
            f"max {max(times[way]) * 1000:.1f}); {size / 1024:6.1f} KB in {files} files per trial, "
            f"{model / 1024:6.1f} KB of it under {MODEL_ARTIFACT}/"
        )
    before, after = medians.values()
    (size_before, *_), (size_after, *_) = sizes.values()
    print(f"bytes after / before: {size_after / size_before:.3f}")
    print(f"driver seconds per trial after / before: {after / before:.3f}")


if __name__ == "__main__":
    main()
