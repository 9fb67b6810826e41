"""How much detection quality does label-free selection give up? Regret over many one-class tasks.

For every task (10 Fashion-MNIST classes, 10 scikit-learn digits classes, and
6 texture tasks cut from scikit-image's bundled photographs: bench/textures.py) a
fixed grid of trials runs with 2 seeds — forms, factors, metrics, optimizers,
an MLP, and settings that barely train, collapse or diverge. Every selector of
study/selection/rules.py then picks one trial per task without labels, and is scored
with the labels it never saw:

- regret: best finished trial's test AUROC minus the picked trial's;
- ρ: Spearman correlation of the selector's score with AUROC over finished trials;
- against a random pick (its expected regret: best minus mean AUROC of the
  finished trials), the default configuration (TrialConfig defaults, mean over
  seeds) and the labelled selection (`val_auroc`: the anomaly labels of the
  validation part, the images the label-free pool is drawn from).

Prints, per selector, the median and worst regret, the share of tasks where it
beats the random pick's expected regret and the share where it is no worse;
writes the record the report shows (reports/sections/label_free_record.json). Trials run
in-process with study.trial.run_trial (no Ray, no MLflow) and are cached on disk
(keyed by their full config and CACHE_VERSION, not by the code: delete
$LAMP_BENCH_CACHE after changing how trials are scored), so a re-run only
recomputes the selectors; bench/label_free_contamination.py re-judges them on
mostly-normal pools.

    .venv/bin/pip install -c constraints.txt -e ".[bench]"           # texture tasks: scikit-image's photographs
    nice -n 10 .venv/bin/python bench/label_free_regret.py            # ~20 min on one core, first time
    .venv/bin/python bench/label_free_regret.py --smoke-test          # 2 tasks, 3 settings, 1 seed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import textures
import torch
from scipy.stats import spearmanr

from study.core.config import TrialConfig
from study.data import load_dataset
from study.selection import DEFAULT_SELECTOR, SELECTORS, selector_scores
from study.training.evaluate import anomaly_scores
from study.training.losses import get_metric
from study.training.models import build_model
from study.trial import TrialResult, run_trial, selection_split

PAIRED: dict[
    tuple[int, str], tuple[np.ndarray, np.ndarray]
] = {}  # (task, trial) -> held-out normal, pool scores
CACHE_VERSION = "3"  # part of every cache key: bump when what a cached trial holds changes
CACHE = Path(os.environ.get("LAMP_BENCH_CACHE", Path.home() / ".cache" / "lamp-study" / "label_free_regret"))
RECORD = Path(__file__).resolve().parents[1] / "reports" / "sections" / "label_free_record.json"
SEEDS = (0, 1)
COMMON: dict[str, Any] = {
    "batch_size": 64,
    "width": 8,
    "latent_dim": 16,
    "eval_every": 0,
    "device": "cpu",
    "landscape": {"power_iters": 0, "hutchinson_probes": 0, "grid_1d": 0, "grid_2d": 0},
    "label_free": {"budget": 0.5, "pool_size": 500, "tune_steps": 15},
}
TASKS: dict[str, dict[str, Any]] = {
    **{
        f"fmnist{k}": {
            "data": {"name": "fashion_mnist", "normal_classes": k, "train_limit": 600},
            "epochs": 3,
        }
        for k in range(10)
    },
    **{
        f"digits{k}": {"data": {"name": "digits", "normal_classes": k, "val_fraction": 0.3}, "epochs": 30}
        for k in range(10)
    },
    **{
        f"{kind}-{normal}": {
            "data": {"name": "npz", "path": str(CACHE / "textures" / f"{kind}-{normal}.npz")},
            "epochs": 5,
        }
        for kind in textures.KINDS
        for normal in textures.TEXTURES
    },
}
# (label, overrides); the first is the default configuration (TrialConfig's defaults).
GRID: list[tuple[str, dict[str, Any]]] = [
    ("default adam mse linear 1 lr1e-3", {}),
    ("adam mse linear 1", {"lr": 5e-3}),
    ("adam ssim linear 1", {"lr": 5e-3, "metric": "ssim"}),
    ("adam mae exp 10", {"lr": 5e-3, "metric": "mae", "amplification": "exp", "factor": 10.0}),
    ("adam ssim exp 100", {"lr": 5e-3, "metric": "ssim", "amplification": "exp", "factor": 100.0}),
    (
        "adamw ssim log 10",
        {"lr": 5e-3, "optimizer": "adamw", "metric": "ssim", "amplification": "log", "factor": 10.0},
    ),
    ("adam mse linear 1 lr5e-2", {"lr": 5e-2}),
    ("mlp adam mse linear 1", {"lr": 5e-3, "arch": "mlp_ae"}),
    ("sgd mse linear 1", {"lr": 5e-3, "optimizer": "sgd"}),
    ("sgd mse linear 100", {"lr": 5e-3, "optimizer": "sgd", "factor": 100.0}),
    ("sgd ssim linear 10", {"lr": 5e-3, "optimizer": "sgd", "metric": "ssim", "factor": 10.0}),
    (
        "sgd ssim exp 10",
        {"lr": 5e-3, "optimizer": "sgd", "metric": "ssim", "amplification": "exp", "factor": 10.0},
    ),
    ("sgd mse exp 100", {"lr": 5e-3, "optimizer": "sgd", "amplification": "exp", "factor": 100.0}),
    ("sgd mse linear 1 lr1e-4", {"lr": 1e-4, "optimizer": "sgd"}),
]


def trial_config(task: dict[str, Any], overrides: dict[str, Any], seed: int) -> TrialConfig:
    raw = {**COMMON, **task, **overrides, "seed": seed}
    return TrialConfig.from_dict(raw)


def run_cached(cfg: TrialConfig) -> dict[str, Any]:
    """status, metrics, test scores and held-out normal scores of one trial, from the cache or by running it."""
    text = json.dumps(cfg.to_dict(), sort_keys=True) + CACHE_VERSION
    path = CACHE / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {
                "status": str(f["status"]),
                "metrics": json.loads(str(f["metrics"])),
                **{k: f[k] for k in ("scores", "labels", "val_scores")},
            }
    try:
        result = run_trial(cfg)
        status, metrics = result.status, result.metrics
        scores = result.scores.get("scores", np.zeros(0))
        labels = result.scores.get("labels", np.zeros(0))
        val_scores = _val_scores(result, cfg) if result.model_state is not None else np.zeros(0)
    except Exception as err:  # a failed trial is data too; the bench goes on
        status, metrics = "failed", {"error": repr(err)[:200]}
        scores, labels, val_scores = np.zeros(0), np.zeros(0), np.zeros(0)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        status=status,
        metrics=json.dumps(metrics),
        scores=np.asarray(scores, np.float32),
        labels=np.asarray(labels, np.int8),
        val_scores=np.asarray(val_scores, np.float32),
    )
    return {
        "status": status,
        "metrics": metrics,
        "scores": scores,
        "labels": labels,
        "val_scores": val_scores,
    }


def _val_scores(result: TrialResult, cfg: TrialConfig) -> np.ndarray:
    """The trained model's scores of the held-out normal images (bench/label_free_contamination.py re-pools them)."""
    model = build_model(**result.model_meta)
    model.load_state_dict(result.model_state)
    return anomaly_scores(model, load_dataset(cfg.data).val, get_metric(cfg.metric))


def task_trials(
    task: dict[str, Any], grid: list[tuple[str, dict[str, Any]]], seeds: tuple[int, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(frame: one row per trial with status, config index and metrics; pool: test scores per trial)."""
    rows, pool = [], {}
    for c, (_, overrides) in enumerate(grid):
        for seed in seeds:
            out = run_cached(trial_config(task, overrides, seed))
            tid = f"c{c:02d}s{seed}"
            metrics = {k: v for k, v in out["metrics"].items() if isinstance(v, (int, float))}
            rows.append({"trial_id": tid, "config": c, "status": out["status"], **metrics})
            if out["status"] == "finished" and len(out["scores"]):
                pool[tid] = np.nan_to_num(np.asarray(out["scores"], float), nan=np.inf)
                if len(out["val_scores"]):  # the paired selectors' per-image scores: normals, validation part
                    part = selection_split(
                        np.asarray(out["labels"]), trial_config(task, overrides, seed).data.split_seed
                    )[0]
                    PAIRED[(id(task), tid)] = (np.asarray(out["val_scores"], float), pool[tid][part])
    frame = pd.DataFrame(rows).set_index("trial_id")
    frame.attrs["task"] = id(task)
    return frame, pd.DataFrame(pool).T


def judge(frame: pd.DataFrame, pool: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per selector: regret, ρ with AUROC; plus the random pick's expected regret and the default's."""
    done = frame[(frame["status"] == "finished") & frame["auroc"].notna()]
    oracle = float(done["auroc"].max())
    out: dict[str, dict[str, float]] = {
        "random": {"regret": oracle - float(done["auroc"].mean()), "rho": 0.0},
    }
    default = frame[frame["config"] == 0]
    default_auroc = default["auroc"].where(default["status"] == "finished").mean()
    out["default"] = {
        "regret": oracle - float(default_auroc) if math.isfinite(default_auroc) else math.nan,
        "rho": math.nan,
    }
    labelled = done["val_auroc"]  # the labelled selection on the same images the pool comes from
    picked = labelled.index[labelled == labelled.max()]
    out["labelled"] = {
        "regret": oracle - float(done.loc[picked, "auroc"].mean()),
        "rho": float(spearmanr(labelled, done["auroc"]).statistic),
    }
    load = lambda tid: PAIRED.get((frame.attrs.get("task"), tid))  # noqa: E731
    for name, sel in SELECTORS.items():
        arg = load if sel.needs_scores else pool if sel.needs_pool else None
        scores = selector_scores(frame, name, arg).reindex(done.index)
        ok = scores.notna()
        if not ok.any():
            out[name] = {"regret": out["random"]["regret"], "rho": math.nan}
            continue
        best = scores[ok].max()
        picked = sorted(scores.index[ok & (scores == best)])
        regret = oracle - float(done.loc[picked, "auroc"].mean())  # ties: the expected regret among them
        rho = float(spearmanr(scores[ok], done.loc[ok, "auroc"]).statistic) if ok.sum() >= 3 else math.nan
        out[name] = {"regret": regret, "rho": rho}
    return out


def summarise(per_task: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    names = list(next(iter(per_task.values())))
    summary = {}
    for name in names:
        regrets = [t[name]["regret"] for t in per_task.values()]
        rhos = [t[name]["rho"] for t in per_task.values() if math.isfinite(t[name]["rho"])]
        randoms = [t["random"]["regret"] for t in per_task.values()]
        fin = [r for r in regrets if math.isfinite(r)]
        summary[name] = {
            "median_regret": statistics.median(fin) if fin else math.nan,
            "worst_regret": max(fin) if fin else math.nan,
            "beats_random": sum(r < q - 1e-12 for r, q in zip(regrets, randoms, strict=True)) / len(regrets),
            "no_worse_than_random": sum(r <= q + 1e-12 for r, q in zip(regrets, randoms, strict=True))
            / len(regrets),
            "median_rho": statistics.median(rhos) if rhos else math.nan,
            "n_tasks": len(regrets),
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke-test", action="store_true", help="2 tasks, 3 settings, 1 seed; writes no record"
    )
    parser.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tasks = {k: TASKS[k] for k in (args.tasks or TASKS)}
    grid, seeds = GRID, SEEDS
    if args.smoke_test:
        tasks = {k: TASKS[k] for k in ("digits0", "digits1")}
        grid, seeds = GRID[:3], (0,)
    per_task, t0, statuses = {}, time.perf_counter(), {}
    lf_share = []
    for name, task in tasks.items():
        if task["data"]["name"] == "npz" and not Path(task["data"]["path"]).exists():
            kind, normal = name.split("-")
            textures.build(normal, kind, Path(task["data"]["path"]))
        frame, pool = task_trials(task, grid, seeds)
        for s in frame["status"]:
            statuses[s] = statuses.get(s, 0) + 1
        done = frame[frame["status"] == "finished"]
        if "labelfree_time_s" in done:
            lf_share += list(done["labelfree_time_s"] / done["train_time_s"])
        per_task[name] = judge(frame, pool)
        print(
            f"{name}: {len(frame)} trials, oracle {done['auroc'].max():.4f}, random regret "
            f"{per_task[name]['random']['regret']:.4f}, {DEFAULT_SELECTOR} regret {per_task[name][DEFAULT_SELECTOR]['regret']:.4f}"
            f" ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    summary = summarise(per_task)
    print(f"\n{len(tasks)} tasks x {len(grid)} settings x {len(seeds)} seeds; trial statuses {statuses}")
    print(
        f"label-free time / training time per trial: median {np.median(lf_share):.3f}, max {np.max(lf_share):.3f}"
    )
    print(f"{'selector':28s} {'median':>8s} {'worst':>8s} {'beats rnd':>9s} {'<= rnd':>7s} {'med rho':>8s}")
    for name, s in sorted(summary.items(), key=lambda kv: kv[1]["median_regret"]):
        print(
            f"{name:28s} {s['median_regret']:8.4f} {s['worst_regret']:8.4f} {s['beats_random']:9.2f} "
            f"{s['no_worse_than_random']:7.2f} {s['median_rho']:+8.2f}"
        )
    if not args.smoke_test and args.tasks is None:
        # keep what other benchmarks wrote there (`pools`: label_free_pools.py)
        record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
        record |= {
            "date": time.strftime("%Y-%m-%d"),
            "tasks": list(tasks),
            "settings": [label for label, _ in grid],
            "seeds": list(seeds),
            "selectors": summary,
            "per_task": per_task,
        }
        RECORD.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")
        print(f"wrote {RECORD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
