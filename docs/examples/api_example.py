"""lamp-study from Python: run a tiny study, read its trials as a DataFrame, build its report, register.

    python docs/examples/api_example.py [WORK_DIR]

Everything lands in WORK_DIR (default: a new temporary folder): the MLflow
store, Tune's storage, the report. scikit-learn's digits, 2 epochs, 2 trials:
about a minute on a laptop CPU. tests/test_api.py runs this file.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from study.api import build_report, load_spec, register_best, run_study, trials_frame

SPEC = """\
name: api_example
dataset: {name: digits, normal_classes: 0}
fixed: {epochs: 2, batch_size: 8, width: 4, latent_dim: 8, eval_limit: 200, optimizer: sgd, lr: 0.05}
dimensions:
  factor: {grid: [1, 10]}
search: {algorithm: grid}
seeds: [0]
objective: {metric: auroc}
resources: {cpu: 1, gpu: 0}
max_concurrent: 1
landscape: {batch_size: 16, power_iters: 3, hutchinson_probes: 2, grid_1d: 3, grid_2d: 0}
label_free: {enabled: false}
"""


def main(work: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the study's progress lines
    work.mkdir(parents=True, exist_ok=True)
    spec_file = work / "api_example.yaml"
    spec_file.write_text(SPEC)
    uri = f"sqlite:///{work / 'mlflow.db'}"

    # 1. run the study (Ray starts in this process; every trial is logged to MLflow)
    summary = run_study(load_spec(spec_file), tracking_uri=uri, storage_path=str(work / "storage"))
    print("study:", summary["status"], summary["trials"])

    # 2. its trials as a DataFrame: one row per trial, params, status, final metrics, run id
    trials = trials_frame("api_example", tracking_uri=uri)
    print(trials[["run_id", "status", "factor", "val_auroc", "auroc"]].to_string(index=False))

    # 3. the HTML report (also logged on the study's parent run as report/report.html)
    print("report:", build_report("api_example", tracking_uri=uri, out=work / "api_example.html"))

    # 4. register the trial that is best on the validation part, with its alarm threshold
    info = register_best("api_example", tracking_uri=uri)
    print("registered:", info["uri"], "from run", info["run_id"])
    print(info["threshold"]["claim"])  # scores above it raise an alarm: `lamp-study score --threshold`


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="lamp-api-")))
