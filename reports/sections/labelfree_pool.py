"""What the unlabelled pool can and cannot tell: the report's reading of the paired comparison between trials.

The default selector (study.selection.rules.unlabelled_tail) compares the best
trials by unlabelled AUROC with paired DeLong tests on their per-image scores
(`scores.npz`: `unlabelled_normals`, `unlabelled_pool`), loaded here for those
few trials only; where they separate nothing, it reads the pool's tail above
each trial's top held-out normals (study/selection/tail.py). The sentence states the pool's size, a lower bound on its
anomaly share and count, the smallest difference it resolves, whether the
pick is a ranking or a tie, how many more pool images or held-out normals
would resolve the leader from the runner-up, and the benchmark's regret for a
pool like this one (bench/label_free_pools.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.source.extract import ArtifactLoader, Study
from study.selection import DEFAULT_SELECTOR, Frame, pool_decision
from study.selection.paired import PoolVerdict, ScoreLoader
from study.selection.rules import tail_decision
from study.selection.tail import TailVerdict, tail_line

SCORES = "scores.npz"


@dataclass(frozen=True)
class PoolReading:
    """The paired verdict, how the default picked, and the benchmark cell nearest this pool."""

    verdict: PoolVerdict
    mode: str  # study.selection.pool_decision: separated | anomalies | fallback
    available: int  # images in data.unlabelled (0: the pool is the test split's validation part)
    record: dict[str, Any] | None  # {"cell": "share/size", "default": {...}, "random": {...}} or None
    tail: TailVerdict | None = None  # the pool's tail, read where U separates nothing


def score_loader(study: Study, artifacts: ArtifactLoader) -> ScoreLoader:
    """trial id -> (held-out normal scores, pool scores) from the trial's `scores.npz`, or None."""
    runs = dict(zip(study.trials["trial_id"].astype(str), study.trials["run_id"].astype(str), strict=False))

    def load(trial_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        arrays = artifacts.npz(runs[trial_id], SCORES) if trial_id in runs else None
        if arrays is None or "unlabelled_pool" not in arrays:
            return None
        return arrays["unlabelled_normals"].astype(float), arrays["unlabelled_pool"].astype(float)

    return load


def pool_reading(labelled: Frame, load: ScoreLoader | None, record_path: Path) -> PoolReading | None:
    """None when the trials kept no per-image pool scores (older runs) or fewer than two could be compared."""
    verdict, mode = pool_decision(labelled, load)
    if verdict is None:
        return None
    column = labelled.get("unlabelled_pool_available", pd.Series(dtype=float))
    available = int(column.max()) if column.notna().any() else 0
    tail = tail_decision(labelled, load) if mode != "separated" else None
    return PoolReading(verdict, mode, available, _nearest_cell(record_path, verdict), tail)


def _nearest_cell(path: Path, v: PoolVerdict) -> dict[str, Any] | None:
    """The benchmark cell of the largest share <= the bound and the largest size <= the pool (conservative)."""
    if not path.exists():
        return None
    cells = json.loads(path.read_text()).get("pools", {}).get("cells", {})
    keys = [tuple(float(x) for x in k.split("/")) for k in cells if k.count("/") == 1]
    fits = [
        k for k in keys if k[0] <= v.share_lower + 1e-12 and k[1] <= max(v.n_pool, min(s for _, s in keys))
    ]
    if not fits:
        return None
    share, size = max(fits)
    cell = cells[f"{share}/{int(size)}"]
    return {
        "cell": f"{share:g} / {int(size)}",
        "default": cell.get(DEFAULT_SELECTOR),
        "random": cell.get("random"),
        "tasks": cell.get("_pool", {}).get("n_tasks"),
    }


def pool_reading_sentence(r: PoolReading | None) -> str:
    if r is None:
        return (
            "The trials kept no per-image pool scores, so the pool's unlabelled AUROCs could not be compared "
            "pairwise: treat a pick by them as unresolved."
        )
    v = r.verdict
    size = f"{v.n_pool} unlabelled pool images" + (
        f" (of {r.available}: the label-free budget's share)" if r.available > v.n_pool else ""
    )
    count = int(math.floor(v.share_lower * v.n_pool))
    head = (
        f"Pool: {size} against {v.n_normal} held-out normals, scored by every trial. From U = π·AUROC + (1 − π)/2 "
        f"with AUROC ≤ 1, at least {v.share_lower:.1%} of the pool is anomalous (95% one-sided), at least "
        f"{count} images. Paired DeLong tests of the {v.n_compared} best trials by U (critical z {v.critical_z:.2f}, "
        f"Bonferroni over every pair of {v.n_trials} trials): the smallest U difference resolved here is "
        f"{v.resolvable:.4f}"
        + (f", {v.resolvable / v.share_lower:.3f} of test AUROC at most" if v.share_lower > 0 else "")
        + "."
    )
    return f"{head} {_pick_sentence(v, r.mode, r.tail)} {_more_sentence(v)} {_record_text(r.record)}".strip()


def _pick_sentence(v: PoolVerdict, mode: str, tail: TailVerdict | None) -> str:
    if mode == "separated":
        if len(v.top) > 1:
            return (
                f"The leader {v.leader} is NOT distinguishable from {len(v.top) - 1} other trial(s) "
                f"({', '.join(v.top[1:])}; gap {v.gap:.4f}): the pick among them is a tie-break by U, not a ranking."
            )
        return f"The pool separates the leader {v.leader} from every other compared trial (gap {v.gap:.4f})."
    if tail is not None and tail.fires:
        tie = (
            f"it is NOT distinguishable from {len(tail.top) - 1} other trial(s) ({', '.join(tail.top[1:])}): "
            "a tie-break by the tail, not a ranking"
            if len(tail.top) > 1
            else "the tail separates it from every other compared trial"
        )
        return (
            f"U separates none of these trials, but the pool's tail shows anomalies ({tail_line(tail)}), so the "
            f"default picks the tail's leader {tail.leader}: {tie}."
        )
    shows = (
        "holds anomalies by U but separates none of these trials"
        if mode == "anomalies"
        else "separates none of these trials"
    )
    return (
        f"The pool {shows}, and its tail shows no anomalies, so the default falls back to trimmed Borda over "
        "the synthetic families; its pick is not a ranking by the pool."
    )


def _more_sentence(v: PoolVerdict) -> str:
    if not math.isfinite(v.gap) or v.pool_factor == 1.0 or v.normal_factor == 1.0:
        return ""

    if not (math.isfinite(v.pool_factor) or math.isfinite(v.normal_factor)):
        return (
            f"Neither more pool images alone nor more held-out normals alone would resolve the leader from the "
            f"runner-up (gap {v.gap:.4f}): each half of the noise already exceeds it; both would have to grow."
        )

    def how(factor: float, n: int, what: str) -> str:
        return (
            f"no number of {what} alone" if not math.isfinite(factor) else f"~{math.ceil(factor * n)} {what}"
        )

    return (
        f"Resolving the leader from the runner-up at this gap would take {how(v.pool_factor, v.n_pool, 'pool images')} "
        f"or {how(v.normal_factor, v.n_normal, 'held-out normals')} (data.val_fraction)."
    )


def _record_text(rec: dict[str, Any] | None) -> str:
    if rec is None or rec.get("default") is None:
        return ""
    d, rnd = rec["default"], rec.get("random") or {}
    return (
        f"Benchmark (bench/label_free_pools.py) for a pool like this (share / size {rec['cell']}"
        f"{f', {tasks} tasks' if (tasks := rec.get('tasks')) else ''}): the default's "
        f"median regret {d['median_regret']:.4f}, worst {d['worst_regret']:.4f}; a random pick's median "
        f"{rnd.get('median_regret', math.nan):.4f}."
    )
