"""What no label-free rule can read from a deployment pool: the limits behind bench/label_free_pools.py's misses.

On the deployment-pool benchmark's cached trials and banks (run
bench/label_free_pools.py `--stage trials` first), two questions per task:

1. **How well could the pool tell the best trial's AUROC from the ones that miss?**
   For the best trial b by test AUROC and every trial j more than `MISS`
   (0.03, the issue's worst-case target) below it, the pool's expected U
   difference is pi * (A_b - A_j) (A: AUROC of the bank's anomalies against its
   normals) and its sd is DeLong's paired sd at the cell's sizes (the
   benchmark's 300 held-out normals and the pool). The paired U difference is
   a U-statistic, the minimum-variance unbiased estimator of that difference
   over all score distributions (Halmos 1946), so z = difference / sd is the
   best signal-to-noise any unbiased label-free estimate of the AUROC difference
   has without assuming more (a parametric tail, independent errors across
   trials). A rule that ranks by another quantity (the pool's tail, a low
   false-alarm rate) can have less noise, but then it ranks by that quantity,
   which need not order trials as their AUROC does. `normals` / `pool` are the
   held-out normals (at the pool's size) and the pool images (at 300 normals)
   that would give z >= 1.645 for every such j (inf: the other half alone is
   too noisy).
2. **At pi = 0, can the synthetic families pick a trial no worse than random?**
   A clean pool is exchangeable with the held-out normals whatever the anomalies
   are, so it carries no information about the test ranking. A rule monotone in
   the families' AUROCs (Borda, trimmed Borda, their mean, robust rank
   aggregation) never prefers a trial that another trial beats on every family;
   `above_mean_undominated` counts the trials no worse than a random pick
   (test AUROC >= the finished trials' mean) that no trial dominates. Zero: no
   such rule can be no worse than random on that task.

Prints per cell the median / worst over tasks (each task: mean over draws);
writes `pool_limits` into reports/sections/label_free_record.json.

    .venv/bin/python bench/label_free_limits.py                 # ~2 min on the cached trials
    .venv/bin/python bench/label_free_limits.py --smoke-test    # fmnist0, 3 settings
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_free_pools as pools  # noqa: E402

from study.selection.delong import delong  # noqa: E402
from study.selection.rules import family_columns  # noqa: E402

MISS = 0.03  # the worst-case regret target: trials further below the best must be told apart
Z = float(norm.ppf(0.95))  # one-sided 95% per pair: more lenient than the product's Bonferroni over pairs


def pair_limits(
    neg: np.ndarray, pos: np.ndarray, pool_auroc: np.ndarray, test: np.ndarray, share: float
) -> dict[str, float]:
    """Hardest pair's z and the normals / pool images that would resolve every pair."""
    b = int(np.argmax(test))
    misses = [j for j in range(len(test)) if test[b] - test[j] > MISS]
    if not misses:
        return {"min_z": math.inf, "normals": 0.0, "pool": 0.0}
    d = delong(neg, pos)
    m, n = neg.shape[1], pos.shape[1]
    zs, normals, pool = [], [], []
    for j in misses:
        per_pool, per_normal = d.var_parts(b, j)
        diff = share * (pool_auroc[b] - pool_auroc[j])
        zs.append(diff / d.diff_sd(b, j))
        room = (max(diff, 0.0) / Z) ** 2
        normals.append(per_normal / (room - per_pool / n) if room > per_pool / n else math.inf)
        pool.append(per_pool / (room - per_normal / m) if room > per_normal / m else math.inf)
    return {"min_z": min(zs), "normals": max(normals), "pool": max(pool)}


def undominated_above_mean(frame: pd.DataFrame, ids: list[str]) -> int:
    """Trials no worse than a random pick that no other trial beats on every synthetic family."""
    fams = frame.loc[ids, family_columns(frame.loc[ids])].to_numpy(float)
    test = frame.loc[ids, "auroc"].to_numpy(float)
    count = 0
    for i in np.flatnonzero(test >= test.mean()):
        beaten = any(np.all(fams[k] > fams[i]) for k in range(len(ids)) if k != i)
        count += not beaten
    return count


def task_limits(t_idx: int, name: str, task: dict) -> tuple[dict[str, dict[str, float]], int] | None:
    frame, kept, flags = pools.task_trials(name, task)
    if len(kept) < 2:
        return None
    ids = list(kept)
    test = frame.loc[ids, "auroc"].to_numpy(float)
    neg = np.stack([kept[t]["val"] for t in ids])
    pool_auroc = np.array([roc_auc_score(flags, np.nan_to_num(kept[t]["bank"], nan=np.inf)) for t in ids])
    cells = {}
    for share in pools.SHARES:
        if share == 0:
            continue
        for size in pools.SIZES:
            drawn = [
                pools.draw_pool(flags, share, size, (t_idx, d, size, int(share * 1000)))
                for d in range(pools.DRAWS)
            ]
            if drawn[0] is None:
                continue
            per = [
                pair_limits(
                    neg,
                    np.stack([np.nan_to_num(kept[t]["bank"][p], nan=np.inf) for t in ids]),
                    pool_auroc,
                    test,
                    share,
                )
                for p in drawn
            ]
            cells[f"{share}/{size}"] = {k: float(np.mean([r[k] for r in per])) for k in per[0]}
    return cells, undominated_above_mean(frame, ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="fmnist0, 3 settings, 1k pools")
    tasks = pools.TASKS
    smoke = parser.parse_args(argv).smoke_test
    if smoke:
        pools.SETTINGS, pools.SHARES, pools.SIZES, pools.DRAWS = (0, 1, 7), (0.0, 0.05), (1000,), 1
        tasks = {"fmnist0": pools.TASKS["fmnist0"]}  # 3 epochs: at 1 the conv models collapse
    cells: dict[str, dict[str, dict[str, float]]] = {}
    clean: dict[str, int] = {}
    for t_idx, (name, task) in enumerate(tasks.items()):
        out = task_limits(t_idx, name, task)
        if out is None:
            continue
        for cell, v in out[0].items():
            cells.setdefault(cell, {})[name] = v
        clean[name] = out[1]
        print(f"{name} done", file=sys.stderr, flush=True)
    summary = {}
    print(
        "cell | tasks | hardest z (median / worst) | tasks with every z >= 1.645 (of those with a miss) | "
        "normals needed (median / worst) | pool needed (median / worst)"
    )
    for cell, per in cells.items():
        col = {k: [t[k] for t in per.values()] for k in ("min_z", "normals", "pool")}
        summary[cell] = {
            "tasks": len(per),
            "min_z": [statistics.median(col["min_z"]), min(col["min_z"])],
            "with_misses": sum(math.isfinite(z) for z in col["min_z"]),  # tasks with a trial to rule out
            "resolved": sum(Z <= z < math.inf for z in col["min_z"]),
            "normals": [statistics.median(col["normals"]), max(col["normals"])],
            "pool": [statistics.median(col["pool"]), max(col["pool"])],
        }
        s = summary[cell]
        print(
            f"{cell} | {s['tasks']} | {s['min_z'][0]:.2f} / {s['min_z'][1]:.2f} | {s['resolved']} of {s['with_misses']} | "
            f"{s['normals'][0]:.0f} / {s['normals'][1]:.0f} | "
            f"{s['pool'][0]:.0f} / {s['pool'][1]:.0f}"
        )
    print(f"clean pool: trials no worse than random that no trial beats on every family, per task: {clean}")
    if not smoke:
        record = json.loads(pools.RECORD.read_text()) if pools.RECORD.exists() else {}
        record["pool_limits"] = {
            "date": time.strftime("%Y-%m-%d"),
            "miss": MISS,
            "z": Z,
            "cells": summary,
            "per_task": cells,
            "clean_above_mean_undominated": clean,
        }
        pools.RECORD.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")
    blocked = sum(v == 0 for v in clean.values())
    print(f"tasks where no monotone family rule is no worse than random: {blocked} of {len(clean)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
