"""Does label-free selection hold when the pool is mostly normal? The regret benchmark's trials on thinned pools.

The regret benchmark's pools (the validation part of a one-class test split)
are ~90% anomalous; a deployment's unlabelled images are mostly normal. The
unlabelled AUROC's signal shrinks with the anomaly share pi (it is
pi * AUROC + (1 - pi) / 2) while its noise does not, so this re-judges the
benchmark's cached Fashion-MNIST trials on pools rebuilt as the validation
part's normal images plus a seeded sample of its anomalies in share pi
(0, 1%, 5%, 20%; 5 draws each). Held-out normals, trials and the reported
test part stay the same; only the pool changes, and every selector picks again.
At pi = 0 the pool check must say "no anomalies" and the default must fall
back to the synthetic families. Digits' validation parts hold ~13 normal
images, too few to thin, and are left out.

Needs bench/label_free_regret.py's cache (it runs missing trials first).

    .venv/bin/python bench/label_free_contamination.py
    LAMP_BENCH_CACHE=$(mktemp -d) .venv/bin/python bench/label_free_contamination.py --smoke-test
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_free_regret import GRID, SEEDS, TASKS, run_cached, trial_config  # noqa: E402

from study.labelfree.unlabelled import unlabelled_auroc  # noqa: E402
from study.selection import DEFAULT_SELECTOR, selector_scores, unlabelled_informative  # noqa: E402
from study.trial import selection_split  # noqa: E402

SHARES = (0.0, 0.01, 0.05, 0.2)
DRAWS = 5
SHOWN = (DEFAULT_SELECTOR, "unlabelled_auroc", "borda", "borda_unlabelled")


def task_data(
    task: dict, grid: list = GRID, seeds: tuple[int, ...] = SEEDS
) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]], np.ndarray]:
    """(frame of trial metrics, per finished trial its test and held-out normal scores, the test labels)."""
    rows, kept, labels = [], {}, None
    for c, (_, overrides) in enumerate(grid):
        for seed in seeds:
            out = run_cached(trial_config(task, overrides, seed))
            tid = f"c{c:02d}s{seed}"
            rows.append({"trial_id": tid, "status": out["status"], **out["metrics"]})
            if out["status"] == "finished" and len(out["val_scores"]):
                kept[tid] = {
                    "test": np.asarray(out["scores"], float),
                    "val": np.asarray(out["val_scores"], float),
                }
                labels = np.asarray(out["labels"])
    if labels is None:
        sys.exit(f"no trial of {task['data']} finished with held-out scores: nothing to re-judge")
    frame = pd.DataFrame(rows).set_index("trial_id")
    return frame[frame["status"] == "finished"], kept, labels


def thinned_pool(labels: np.ndarray, share: float, draw: int) -> np.ndarray:
    """The validation part's normal images plus a seeded sample of its anomalies making `share` of the pool."""
    part = selection_split(labels, 0)[0]
    normals, anomalies = part[labels[part] == 0], part[labels[part] == 1]
    k = round(share / (1 - share) * len(normals))
    picked = np.random.default_rng(draw).choice(anomalies, size=min(k, len(anomalies)), replace=False)
    return np.sort(np.concatenate([normals, picked]))


def judge(frame: pd.DataFrame, kept: dict, pool: np.ndarray) -> dict[str, float]:
    """Regret of each shown selector (and a random pick) with the unlabelled AUROC recomputed on `pool`."""
    done = frame.loc[list(kept)].copy()
    for tid, s in kept.items():
        done.loc[tid, "unlabelled_auroc"] = unlabelled_auroc(
            torch.from_numpy(s["val"]), torch.from_numpy(s["test"][pool])
        )
        done.loc[tid, ["unlabelled_normals", "unlabelled_pool"]] = (len(s["val"]), len(pool))
    oracle = float(done["auroc"].max())
    out = {"random": oracle - float(done["auroc"].mean()), "informative": float(unlabelled_informative(done))}
    for name in SHOWN:
        scores = selector_scores(done, name)
        out[name] = oracle - float(done.loc[scores.index[scores == scores.max()], "auroc"].mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="one Fashion-MNIST task on 1,000 test images, 3 settings, 1 seed, 2 draws",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tasks = {k: v for k, v in TASKS.items() if k.startswith("fmnist")}
    grid, seeds, draws = GRID, SEEDS, DRAWS
    if args.smoke_test:
        small = {**TASKS["fmnist0"], "data": {**TASKS["fmnist0"]["data"], "test_limit": 1000}}
        tasks, grid, seeds, draws = {"fmnist0-small": small}, GRID[:3], (0,), 2
    results: dict[float, list[dict[str, float]]] = {s: [] for s in SHARES}
    for name, task in tasks.items():
        frame, kept, labels = task_data(task, grid, seeds)
        for share in SHARES:
            per_draw = [judge(frame, kept, thinned_pool(labels, share, d)) for d in range(draws)]
            mean = {k: float(np.mean([r[k] for r in per_draw])) for k in per_draw[0]}
            results[share].append(mean)
            cells = " ".join(f"{k} {v:.4f}" for k, v in mean.items())
            print(f"{name} share {share:.2f}: {cells}", file=sys.stderr, flush=True)
    print(f"\n{len(tasks)} Fashion-MNIST tasks x {draws} pool draws; regret = mean over draws")
    print("cells: median over tasks / worst task of the regret")
    print(
        f"{'anomaly share':>13s} {'pool says anomalies':>19s} "
        + " ".join(f"{n:>26s}" for n in ("random", *SHOWN))
    )
    for share, rows in results.items():
        said = statistics.mean(r["informative"] for r in rows)
        cells = " ".join(
            f"{statistics.median(r[n] for r in rows):>11.4f} / {max(r[n] for r in rows):.4f} (max)"
            for n in ("random", *SHOWN)
        )
        print(f"{share:>13.2f} {said:>19.0%} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
