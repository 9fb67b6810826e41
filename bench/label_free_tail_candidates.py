"""Selectors on mostly-normal pools that were tried and not shipped: consensus pseudo-labels and raw tail excess.

On the deployment-pool benchmark's cached trials and banks (bench/label_free_pools.py,
run its `--stage trials` first), every candidate picks on the same pools and is
scored by its regret (best finished trial's test AUROC minus the pick's):

- `loo_<versus>_r<q>`: leave-one-out consensus pseudo-labels. For trial i, the
  other trials' mean joint rank (held-out normals and pool ranked together)
  flags the pool images above the r-th highest held-out normal (r / (m + 1) = q)
  as likely anomalies; trial i is scored by its AUROC of those against the rest
  of the pool (`pool`), the held-out normals (`normals`) or both (`both`);
- `loo_top2`: the same with the consensus' top 2% of the pool as pseudo-anomalies;
- `excess_r<q>`: the pool share above the trial's r-th highest held-out normal
  (study/selection/tail.py's statistic) without its exceedance test.

Prints median / worst over tasks (each task: mean over draws) and the tasks no
worse than a random pick, per cell.

    nice -n 10 .venv/bin/python bench/label_free_tail_candidates.py
    .venv/bin/python bench/label_free_tail_candidates.py --smoke-test   # fmnist0, 2 settings of 1 epoch
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_free_pools as pools  # noqa: E402

from study.selection.tail import excess  # noqa: E402

Candidate = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _auc(neg: np.ndarray, pos: np.ndarray) -> float:
    both = rankdata(np.concatenate([pos, neg]))
    n = len(pos)
    return float((both[:n].sum() - n * (n + 1) / 2) / (len(neg) * n))


def loo_pseudo(q: float, versus: str) -> Candidate:
    def score(neg: np.ndarray, pos: np.ndarray) -> np.ndarray:
        k, m = neg.shape
        ranks = rankdata(np.concatenate([neg, pos], axis=1), axis=1)
        total = ranks.sum(axis=0)
        r = max(1, round(q * (m + 1)))
        out = np.full(k, np.nan)
        for i in range(k):
            c = (total - ranks[i]) / (k - 1)
            flagged = c[m:] > np.sort(c[:m])[-r] if versus != "top2" else c[m:] >= np.quantile(c[m:], 0.98)
            if flagged.sum() < 2 or (~flagged).sum() < 2:
                continue
            rest = {"pool": pos[i][~flagged], "normals": neg[i], "both": np.r_[neg[i], pos[i][~flagged]]}
            out[i] = _auc(rest["pool" if versus == "top2" else versus], pos[i][flagged])
        return out

    return score


CANDIDATES: dict[str, Candidate] = {
    "loo_pool_r1": loo_pseudo(0.01, "pool"),
    "loo_pool_r5": loo_pseudo(0.05, "pool"),
    "loo_normals_r1": loo_pseudo(0.01, "normals"),
    "loo_both_r1": loo_pseudo(0.01, "both"),
    "loo_top2": loo_pseudo(0.0, "top2"),
    "excess_r1": lambda neg, pos: excess(neg, pos, max(1, round(0.01 * (neg.shape[1] + 1)))),
    "excess_r5": lambda neg, pos: excess(neg, pos, max(1, round(0.05 * (neg.shape[1] + 1)))),
}


def regrets(auroc: np.ndarray, neg: np.ndarray, pos: np.ndarray) -> dict[str, float]:
    oracle = auroc.max()
    out = {"random": float(oracle - auroc.mean())}
    for name, fn in CANDIDATES.items():
        s = fn(neg, pos)
        ok = np.isfinite(s)
        out[name] = float(oracle - auroc[ok & (s == s[ok].max())].mean()) if ok.any() else out["random"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="fmnist0, 2 settings of 1 epoch, 1k pools")
    tasks = pools.TASKS
    if parser.parse_args(argv).smoke_test:
        pools.SETTINGS, pools.SHARES, pools.SIZES, pools.DRAWS = (0, 1), (0.0, 0.05), (1000,), 1
        tasks = {"fmnist0": {**pools.TASKS["fmnist0"], "epochs": 1}}
    cells: dict[str, dict[str, dict[str, float]]] = {}
    for t_idx, (name, task) in enumerate(tasks.items()):
        frame, kept, flags = pools.task_trials(name, task)
        if len(kept) < 2:
            continue
        ids = list(kept)
        auroc = frame.loc[ids, "auroc"].to_numpy(float)
        neg = np.stack([kept[t]["val"] for t in ids])
        for share in pools.SHARES:
            for size in pools.SIZES:
                keys = [
                    (t_idx, d, size, int(share * 1000)) for d in range(pools.DRAWS)
                ]  # the benchmark's pools
                drawn = [pools.draw_pool(flags, share, size, key) for key in keys]
                if drawn[0] is None:
                    continue
                per_draw = [regrets(auroc, neg, np.stack([kept[t]["bank"][p] for t in ids])) for p in drawn]
                cell = f"{pools.family(name)} {share}/{size}"
                cells.setdefault(cell, {})[name] = {
                    k: float(np.mean([r[k] for r in per_draw])) for k in per_draw[0]
                }
        print(f"{name} judged", file=sys.stderr, flush=True)
    print("cell | tasks | " + " | ".join(["random", *CANDIDATES]))
    for cell, per_task in cells.items():
        vals = []
        for k in ["random", *CANDIDATES]:
            r = [t[k] for t in per_task.values()]
            ok = sum(t[k] <= t["random"] + 1e-12 for t in per_task.values())
            vals.append(f"{statistics.median(r):.4f} / {max(r):.4f} ({ok}/{len(r)})")
        print(f"{cell} | {len(per_task)} | " + " | ".join(vals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
