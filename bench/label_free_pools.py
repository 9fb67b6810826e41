"""Label-free selection on deployment pools: mostly-normal unlabelled images never used in training or testing.

A user without labels judges trials on the images their line produced, mostly
normal. Per Fashion-MNIST class k (the normal class), every trial of the regret
benchmark's grid (bench/label_free_regret.py) is trained once; its model then
scores a *bank*: the class-k training images the protocol left unused (neither
trained on nor held out) and a seeded sample of the other classes' training
images. Pools are drawn from the bank at anomaly share pi and size n (several
seeded draws per cell); the held-out normals and the test split are the
protocol's. Every selector of study/selection.py picks on each pool, and is
scored by its regret (best finished trial's test AUROC minus the pick's)
against a random pick and the labelled reference (`val_auroc`).

Fashion-MNIST holds 6,000 training images per class: with 300 held out and 600
trained on, 5,100 unused normals remain, so its one-class tasks cannot build the
20k cells; two tasks whose normal class is a group of 4 classes (`GROUPS`: 23,100
unused normals, 2,000 anomalies in the bank) can. The
texture tasks (bench/textures.py: a surface photograph is the normal class,
crops of the two other photographs the anomalies) can: their bank is 20,000
fresh crops of the surface and 2,000 of the others, at offsets of a seed stream
the training and test crops never use (crops overlap in pixels, as the
textures' test crops already do). Cells are summarised per family and over all
tasks that can build them.

Trials and bank scores are cached ($LAMP_BENCH_CACHE/label_free_pools); a
re-run only re-judges. Writes `pools` into reports/sections/label_free_record.json.

    nice -n 10 .venv/bin/python bench/label_free_pools.py --stage trials   # train + score banks
    .venv/bin/python bench/label_free_pools.py                             # judge every cell
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import textures  # noqa: E402
from label_free_regret import COMMON, GRID  # noqa: E402

from study.core.config import DataConfig, TrialConfig  # noqa: E402
from study.data import split_normal  # noqa: E402
from study.data._arrays import as_nchw, to_tensor  # noqa: E402
from study.data.idx import load_fashion_mnist  # noqa: E402
from study.labelfree.unlabelled import unlabelled_auroc  # noqa: E402
from study.selection import DEFAULT_SELECTOR, SELECTORS, pool_decision, selector_scores  # noqa: E402
from study.selection.rules import tail_decision  # noqa: E402
from study.training.evaluate import anomaly_scores  # noqa: E402
from study.training.losses import get_metric  # noqa: E402
from study.training.models import build_model  # noqa: E402
from study.trial import run_trial  # noqa: E402

CACHE_VERSION = "1"
CACHE = Path(os.environ.get("LAMP_BENCH_CACHE", Path.home() / ".cache" / "lamp-study" / "label_free_pools"))
RECORD = Path(__file__).resolve().parents[1] / "reports" / "sections" / "label_free_record.json"
SEEDS = (0,)
TRAIN_LIMIT, VAL_FRACTION, BANK_ANOMALIES = 600, 0.05, 600
# The regret grid's settings that span its range (default, fast, SSIM, amplified, diverging, MLP, SGD,
# barely training): the shared 2-core machine affords ~80 trials.
SETTINGS = (0, 1, 2, 3, 6, 7, 8, 13)
LABEL_FREE = {"budget": 0.5, "pool_size": 200, "tune_steps": 0}
SHARES = (0.0, 0.01, 0.02, 0.05, 0.10)
SIZES = (1000, 5000, 20000)
DRAWS = 3
EXTRA_NORMALS = 2000  # 1k-pool cells also run with this many more held-out normals (from the unused bank)
TEXTURE_BANK = (20000, 2000)  # texture tasks' bank: fresh normal crops, anomalous crops
FMNIST_TASKS: dict[str, dict[str, Any]] = {
    f"fmnist{k}": {
        "data": {
            "name": "fashion_mnist",
            "normal_classes": k,
            "train_limit": TRAIN_LIMIT,
            "val_fraction": VAL_FRACTION,
            "test_limit": 2000,
        },
        "label_free": LABEL_FREE,
        "epochs": 3,
    }
    for k in range(10)
}
# Several classes as the normal class (a line making a few product variants): 4 classes hold 24,000
# training images, so 23,100 stay unused and the 20k cells can be built on Fashion-MNIST too.
GROUPS = {"tops": (0, 2, 4, 6), "accessories": (5, 7, 8, 9)}
GROUP_ANOMALIES = 2000  # the 0.1 / 20k cell's anomalies
for _group, _classes in GROUPS.items():
    FMNIST_TASKS[f"fmnist-{_group}"] = {
        **FMNIST_TASKS["fmnist0"],
        "data": {
            **FMNIST_TASKS["fmnist0"]["data"],
            "normal_classes": list(_classes),
            "val_fraction": 300 / (6000 * len(_classes)),  # 300 held out, as for one class
        },
    }
TEXTURE_TASKS: dict[str, dict[str, Any]] = {
    f"{kind}-{t}": {
        "data": {
            "name": "npz",
            "path": str(CACHE / "textures" / f"{kind}-{t}-900.npz"),
            "val_fraction": 1 / 3,  # 300 held out, 600 trained on, as on Fashion-MNIST
        },
        "label_free": LABEL_FREE,
        "epochs": 5,
    }
    for kind in textures.KINDS
    for t in textures.TEXTURES
}
TASKS = {**FMNIST_TASKS, **TEXTURE_TASKS}


def family(task: str) -> str:
    return (
        "textures" if task in TEXTURE_TASKS else "fmnist groups" if task.startswith("fmnist-") else "fmnist"
    )


def trial_config(task: dict[str, Any], overrides: dict[str, Any], seed: int) -> TrialConfig:
    return TrialConfig.from_dict({**COMMON, **task, **overrides, "seed": seed})


def bank(name: str, data: DataConfig) -> tuple[torch.Tensor, np.ndarray]:
    """(images, is_anomalous) of the task's bank: unused normal training images, then sampled other classes
    (Fashion-MNIST); fresh crops of the surface, then of the other surfaces (textures)."""
    if name in TEXTURE_TASKS:
        kind, surface = name.split("-", 1)
        images, flags = textures.bank(surface, kind, *TEXTURE_BANK)
        return to_tensor(as_nchw(images, "texture bank"), None), flags
    raw = load_fashion_mnist(data)
    classes = [int(c) for c in data.normal_classes]
    normal = np.flatnonzero(np.isin(raw.train_y, classes))
    rest, _ = split_normal(len(normal), data.val_fraction, None, data.split_seed)
    trained, _ = split_normal(len(normal), data.val_fraction, data.train_limit, data.split_seed)
    unused = normal[np.setdiff1d(rest, trained)]
    others = np.flatnonzero(~np.isin(raw.train_y, classes))
    n_anomalies = BANK_ANOMALIES if len(classes) == 1 else GROUP_ANOMALIES
    anomalies = np.random.default_rng((data.split_seed, 7)).choice(others, n_anomalies, replace=False)
    idx = np.concatenate([unused, np.sort(anomalies)])
    flags = np.concatenate([np.zeros(len(unused), bool), np.ones(len(anomalies), bool)])
    return to_tensor(raw.train_x[idx], None), flags


def run_cached(cfg: TrialConfig, images: torch.Tensor) -> dict[str, Any]:
    """status, metrics, held-out normal scores and bank scores of one trial (cached)."""
    text = json.dumps(cfg.to_dict(), sort_keys=True) + CACHE_VERSION
    path = CACHE / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {
                "status": str(f["status"]),
                "metrics": json.loads(str(f["metrics"])),
                "val": f["val"],
                "bank": f["bank"],
            }
    val, scored = np.zeros(0), np.zeros(0)
    try:
        result = run_trial(cfg)
        status, metrics = result.status, result.metrics
        if result.model_state is not None:
            model = build_model(**result.model_meta)
            model.load_state_dict(result.model_state)
            from study.data import load_dataset

            metric = get_metric(cfg.metric)
            val = anomaly_scores(model, load_dataset(cfg.data).val, metric)
            t0 = time.perf_counter()
            scored = anomaly_scores(model, images, metric)
            metrics["bank_time_s"] = time.perf_counter() - t0
    except Exception as err:  # a failed trial is data too
        status, metrics = "failed", {"error": repr(err)[:200]}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        status=status,
        metrics=json.dumps(metrics),
        val=np.asarray(val, np.float32),
        bank=np.asarray(scored, np.float32),
    )
    return {"status": status, "metrics": metrics, "val": val, "bank": scored}


def task_trials(
    name: str, task: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]], np.ndarray]:
    """(frame of trial metrics, per finished trial its held-out normal and bank scores, bank anomaly flags)."""
    path = Path(task["data"]["path"]) if name in TEXTURE_TASKS else None
    if path is not None and not path.exists():
        kind, surface = name.split("-", 1)
        textures.build(surface, kind, path, n_train=900)
    images, flags = bank(name, trial_config(task, {}, 0).data)
    rows, kept = [], {}
    for c in SETTINGS:
        overrides = GRID[c][1]
        for seed in SEEDS:
            out = run_cached(trial_config(task, overrides, seed), images)
            tid = f"c{c:02d}s{seed}"
            metrics = {k: v for k, v in out["metrics"].items() if isinstance(v, (int, float))}
            rows.append({"trial_id": tid, "config": c, "status": out["status"], **metrics})
            if out["status"] == "finished" and len(out["bank"]):
                kept[tid] = {"val": np.asarray(out["val"], float), "bank": np.asarray(out["bank"], float)}
    return pd.DataFrame(rows).set_index("trial_id"), kept, flags


def draw_pool(flags: np.ndarray, share: float, size: int, key: tuple[int, ...]) -> np.ndarray | None:
    """Seeded bank indices of a pool of `size` images, `share` of them anomalous; None when the bank is too small."""
    n_anom = round(share * size)
    normals, anomalies = np.flatnonzero(~flags), np.flatnonzero(flags)
    if size - n_anom > len(normals) or n_anom > len(anomalies):
        return None
    rng = np.random.default_rng(key)
    picked = [rng.choice(normals, size - n_anom, replace=False), rng.choice(anomalies, n_anom, replace=False)]
    return rng.permutation(np.concatenate(picked))


def judge_pool(
    frame: pd.DataFrame, kept: dict[str, dict[str, np.ndarray]], pool: np.ndarray, extra: np.ndarray
) -> dict[str, float]:
    """Regret of every selector, random and the labelled reference with the unlabelled AUROC on `pool`.

    `extra`: bank normals outside the pool added to the held-out normals (the lever on the noisier side).
    """
    done = frame.loc[list(kept)].copy()
    scores = {t: (np.r_[s["val"], s["bank"][extra]], s["bank"][pool]) for t, s in kept.items()}
    for t, (val, pooled) in scores.items():
        done.loc[t, "unlabelled_auroc"] = unlabelled_auroc(torch.from_numpy(val), torch.from_numpy(pooled))
        done.loc[t, ["unlabelled_normals", "unlabelled_pool"]] = (len(val), len(pooled))
    matrix = pd.DataFrame({t: np.nan_to_num(p, nan=np.inf) for t, (_, p) in scores.items()}).T
    oracle = float(done["auroc"].max())
    out = {"random": oracle - float(done["auroc"].mean())}
    labelled = done["val_auroc"]
    out["labelled"] = oracle - float(done.loc[labelled.index[labelled == labelled.max()], "auroc"].mean())
    default = done[done["config"] == 0]["auroc"]
    out["default_config"] = oracle - float(default.mean()) if len(default) else math.nan
    for name, sel in SELECTORS.items():
        arg = scores.get if sel.needs_scores else matrix if sel.needs_pool else None
        s = selector_scores(done, name, arg).reindex(done.index)
        ok = s.notna()
        out[name] = (
            oracle - float(done.loc[s.index[ok & (s == s[ok].max())], "auroc"].mean())
            if ok.any()
            else out["random"]
        )
    verdict, _ = pool_decision(done, scores.get)
    if verdict is not None:
        out |= {
            "separated": float(verdict.separated),
            "top_size": float(len(verdict.top)),
            "share_lower": verdict.share_lower,
        }
    tail = tail_decision(done, scores.get)
    if tail is not None:
        out |= {"tail_fires": float(tail.fires), "tail_top": float(len(tail.top))}
    return out


def _spare(flags: np.ndarray, pool: np.ndarray, n: int, draw: int) -> np.ndarray:
    """n seeded bank normals outside `pool` (extra held-out normals)."""
    free = np.setdiff1d(np.flatnonzero(~flags), pool)
    return np.random.default_rng((draw, 11)).choice(free, n, replace=False) if n else np.zeros(0, int)


def judge_all(tasks: dict[str, dict[str, Any]]) -> int:
    """Every cell (share x size) on every task, DRAWS pools each; prints the grid, writes the record."""
    cells: dict[str, dict[str, dict[str, float]]] = {}
    skipped = {}
    for t_idx, (name, task) in enumerate(tasks.items()):
        frame, kept, flags = task_trials(name, task)
        if len(kept) < 2:  # nothing to select among: every other trial diverged, collapsed or is degenerate
            skipped[name] = len(kept)
            continue
        for share in SHARES:
            for size in SIZES:
                pools = [
                    draw_pool(flags, share, size, (t_idx, d, size, int(share * 1000))) for d in range(DRAWS)
                ]
                if pools[0] is None:
                    continue
                for more in (0, EXTRA_NORMALS) if size <= 1000 else (0,):
                    extras = [_spare(flags, p, more, d) for d, p in enumerate(pools)]
                    per_draw = [judge_pool(frame, kept, p, e) for p, e in zip(pools, extras, strict=True)]
                    mean = {k: float(np.mean([r.get(k, math.nan) for r in per_draw])) for k in per_draw[0]}
                    mean["worst_draw"] = max(r[DEFAULT_SELECTOR] for r in per_draw)
                    cell = f"{share}/{size}" + (f"/+{more}" if more else "")
                    cells.setdefault(cell, {})[name] = mean
        print(f"{name} judged", file=sys.stderr, flush=True)
    summary = {cell: summarise(per_task) for cell, per_task in cells.items()}
    by_family = {
        fam: {
            c: summarise(sub)
            for c, per in cells.items()
            if (sub := {t: v for t, v in per.items() if family(t) == fam})
        }
        for fam in ("fmnist", "fmnist groups", "textures")
    }
    for fam, fam_summary in by_family.items():
        print(f"\n## {fam}")
        print_grid(fam_summary)
    print(f"\n## all tasks (skipped, fewer than 2 finished trials: {skipped})")
    print_grid(summary)
    if len(tasks) == len(TASKS):
        write_record(summary, cells, list(tasks), by_family, skipped)
    return 0


def summarise(per_task: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per selector: median and worst (over tasks) of the mean regret over draws; tasks no worse than random."""
    names = [
        k
        for k in next(iter(per_task.values()))
        if k not in ("separated", "top_size", "share_lower", "worst_draw", "tail_fires", "tail_top")
    ]
    out = {}
    for n in names:
        r = [t[n] for t in per_task.values()]
        out[n] = {
            "median_regret": statistics.median(r),
            "worst_regret": max(r),
            "no_worse_than_random": sum(t[n] <= t["random"] + 1e-12 for t in per_task.values()) / len(r),
        }
    out["_pool"] = {
        "separated": float(np.nanmean([t.get("separated", math.nan) for t in per_task.values()])),
        "top_size": float(np.nanmean([t.get("top_size", math.nan) for t in per_task.values()])),
        "share_lower": float(np.nanmedian([t.get("share_lower", math.nan) for t in per_task.values()])),
        "worst_draw": max(t["worst_draw"] for t in per_task.values()),
        "tail_fires": float(np.nanmean([t.get("tail_fires", math.nan) for t in per_task.values()])),
        "tail_top": float(np.nanmean([t.get("tail_top", math.nan) for t in per_task.values()])),
        "n_tasks": len(per_task),
    }
    return out


SHOWN = (
    "random",
    "labelled",
    DEFAULT_SELECTOR,
    "unlabelled_tail",
    "unlabelled_paired_tiebreak",
    "unlabelled_or_borda",
    "unlabelled_auroc",
    "borda",
    "centrality",
    "tail_consensus",
)


def print_grid(summary: dict[str, dict[str, dict[str, float]]]) -> None:
    head = "cell (share/size) | tasks | " + " | ".join(SHOWN)
    print(head + " | separated | top set | pi lower (median) | tail fires | tail top set")
    for cell, s in summary.items():
        vals = " | ".join(f"{s[n]['median_regret']:.4f} / {s[n]['worst_regret']:.4f}" for n in SHOWN)
        p = s["_pool"]
        print(
            f"{cell} | {p['n_tasks']} | {vals} | {p['separated']:.0%} | {p['top_size']:.1f} | "
            f"{p['share_lower']:.3f} | {p['tail_fires']:.0%} | {p['tail_top']:.1f}"
        )
    print("cells: median over tasks / worst task of the regret (each task: mean over draws)")
    print("\nfallback candidates at share 0 (median / worst / share of tasks no worse than random):")
    for cell, s in summary.items():
        if cell.startswith("0.0/"):
            for n, v in sorted(s.items(), key=lambda kv: kv[1].get("median_regret", 9)):
                if n != "_pool":
                    print(
                        f"  {cell} {n:34s} {v['median_regret']:.4f} {v['worst_regret']:.4f} {v['no_worse_than_random']:.2f}"
                    )


def write_record(summary: dict, cells: dict, tasks: list[str], by_family: dict, skipped: dict) -> None:
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    record["pools"] = {
        "date": time.strftime("%Y-%m-%d"),
        "tasks": tasks,
        "settings": [GRID[c][0] for c in SETTINGS],
        "seeds": list(SEEDS),
        "draws": DRAWS,
        "held_out_normals": int(round(6000 * VAL_FRACTION)),
        "cells": summary,
        "cells_by_family": by_family,
        "skipped_tasks": skipped,
        "per_task": cells,
    }
    RECORD.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")
    print(f"wrote {RECORD}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("trials", "judge"), default="judge")
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="one task, 2 settings of 1 epoch, 1k pools, 1 draw (no record)",
    )
    args = parser.parse_args(argv)
    if args.smoke_test:
        global SETTINGS, SHARES, SIZES, DRAWS, EXTRA_NORMALS
        SETTINGS, SHARES, SIZES, DRAWS, EXTRA_NORMALS = (0, 1), (0.0, 0.05), (1000,), 1, 200
        args.stage, args.tasks = "judge", ["fmnist0"]
        TASKS["fmnist0"] = {**TASKS["fmnist0"], "epochs": 1}
    torch.set_num_threads(1)
    tasks = {k: TASKS[k] for k in (args.tasks or TASKS)}
    t0 = time.perf_counter()
    if args.stage == "trials":
        for name, task in tasks.items():
            frame, kept, flags = task_trials(name, task)
            print(
                f"{name}: {len(frame)} trials, {len(kept)} scored a bank of {len(flags)} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        return 0
    return judge_all(tasks)


if __name__ == "__main__":
    raise SystemExit(main())
