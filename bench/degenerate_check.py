"""Which trials of a study the degenerate rule flags, and why: one line per trial that trained.

Reads a study from its MLflow store (reports.extract), prints each trial's
logged status, its measures (validation AUROC, p of beating / falling below the
model-free baseline, p of being above chance, Spearman with the mean-image
distance, loss and variance ratios to the mean image) and the verdict the
current rule (study/selection/degeneracy.py) gives from those measures, so a study run
with an older threshold can be re-judged without training again. Then the
best setting (study/selection/best_setting.py) with its sentence.

    .venv/bin/python bench/degenerate_check.py quickstart --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from reports.render.labels import describe
from reports.source.extract import load_study
from study.selection.degeneracy import DegeneracyCheck

MEASURES = {
    "val_auroc": "val",
    "beats_baseline_p": "p_beats",
    "below_baseline_p": "p_below",
    "chance_p": "p_chance",
    "mean_rank_corr": "rho_mean",
    "collapse_loss_ratio": "loss_ratio",
    "collapse_var_ratio": "var_ratio",
    "auroc": "test",
}


def verdict(row: pd.Series) -> str:
    """`finished` or `degenerate (<signs>)` under the current rule, from the logged measures."""
    if row["status"] == "collapsed":
        return "collapsed"
    check = DegeneracyCheck(
        row["val_auroc"],
        row["val_auroc"] - row.get("baseline_margin", float("nan")),
        row["beats_baseline_p"],
        row["below_baseline_p"],
        row["chance_p"],
        row["mean_rank_corr"],
        row["collapse_loss_ratio"],
    )
    return f"degenerate ({', '.join(check.reasons)})" if check.degenerate else "finished"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?")
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument(
        "--smoke-test", action="store_true", help="run a two-trial digits study, then check it"
    )
    args = parser.parse_args()
    if args.smoke_test:
        spec = Path(__file__).resolve().parents[1] / "tests" / "specs" / "two_trials.yaml"
        run = [sys.executable, "-m", "study.cli", "run", str(spec), "--tracking-uri", args.tracking_uri]
        subprocess.run(
            [*run, "--storage-path", "storage", "--no-report"], check=True, stdout=subprocess.DEVNULL
        )
        args.study = "two_trials"
    if args.study is None:
        parser.error("name a study (or pass --smoke-test)")
    study = load_study(args.study, tracking_uri=args.tracking_uri)
    trained = study.trials[study.trials["status"].isin(["finished", "degenerate", "collapsed"])]
    trained = trained.sort_values("val_auroc", ascending=False)
    print("logged -> now | " + " ".join(MEASURES.values()) + " | setting")
    for _, row in trained.iterrows():
        shown = " ".join(f"{row.get(k, float('nan')):.3f}" for k in MEASURES)
        print(f"{row['status']} -> {verdict(row)} | {shown} | {describe(row)}")
    choice = study.best_setting()
    if choice is not None:
        print(f"best: {describe(study.best())}: {choice.sentence(study.selection_metric)}")


if __name__ == "__main__":
    main()
