"""Cost section: where a trial's time goes (training, steepness, label-free scores), from the trials' own timers.

Each trial logs one duration per phase (`train_time_s`, `steepness_time_s`,
`labelfree_time_s`; a packed trial its share of the pack's). The table gives,
per phase, the trials that timed it, its median and total seconds, and its
median share of a trial's timed total: what to cut when a study is too slow.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.render.section import Panel, html_table
from reports.source.extract import Study

PHASES = {
    "train_time_s": "training",
    "steepness_time_s": "steepness (Hessian, slices)",
    "labelfree_time_s": "label-free scores",
}
_FIX = {
    "train_time_s": "fewer epochs or a smaller train_limit",
    "steepness_time_s": "a smaller landscape.budget, or landscape.grid_2d: 0",
    "labelfree_time_s": "label_free.enabled: false, or a smaller label_free.pool_size",
}


@dataclass(frozen=True)
class PhaseRow:
    """One phase over the trials that timed it."""

    metric: str
    name: str
    n: int
    median_s: float
    total_s: float
    median_share: float  # median over trials of phase / the trial's timed total


@dataclass(frozen=True)
class PhaseData:
    """Per-phase times, and the study's wall time to compare their sum with."""

    rows: list[PhaseRow]
    wall_time_s: float | None


def extract_phases(study: Study) -> PhaseData:
    """Per-phase times of the trials that logged any (finished and collapsed ones log all three)."""
    present = [m for m in PHASES if m in study.trials and study.trials[m].notna().any()]
    timed = study.trials[present].dropna(how="all") if present else pd.DataFrame()
    total = timed.sum(axis=1, min_count=1)
    rows = []
    for m in present:
        values = timed[m].dropna()
        share = (values / total[values.index]).median()
        rows.append(
            PhaseRow(m, PHASES[m], len(values), float(values.median()), float(values.sum()), float(share))
        )
    parent = study.parent
    wall = parent.metrics.get("wall_time_s") if parent else None
    return PhaseData(rows, float(wall) if wall is not None else None)


def draw_phases(data: PhaseData) -> list[Panel]:
    """The per-phase table, with the costliest phase and what shortens it in the caption."""
    if not data.rows:
        return [
            Panel(
                "phases",
                "No trial logged a phase duration (train_time_s, steepness_time_s, labelfree_time_s).",
            )
        ]
    top = max(data.rows, key=lambda r: r.median_share)
    summed = sum(r.total_s for r in data.rows)
    caption = (
        f"Where a trial's time goes, from the timers each trial logs. {top.name.capitalize()} takes the "
        f"largest share (median {top.median_share:.0%} of a trial's timed total); to shorten it: "
        f"{_FIX[top.metric]}."
    )
    if data.wall_time_s:
        caption += (
            f" The phases sum to {summed:.0f} s of trial time over {data.wall_time_s:.0f} s of study wall time "
            "(trials run in parallel; scoring, data loading, Ray start-up and MLflow writes are in no phase)."
        )
    rows = [(r.name, r.n, r.median_s, r.total_s, f"{r.median_share:.0%}") for r in data.rows]
    table = html_table(["phase", "trials", "median s", "total s", "median share of a trial"], rows)
    return [Panel("phases", caption, table_html=table)]
