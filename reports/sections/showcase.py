"""The handful of trials whose artifacts a report downloads: the baseline, the best, the best of each factor.

Artifacts (landscape grids, test scores) are fetched for these runs only, so a
1,000-trial study costs a few downloads. "Best" always means the study
objective over finished trials (never the amplified training loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.render.labels import describe
from reports.source.extract import Study
from reports.stats.aggregate import factor_levels, fmt_factor
from reports.stats.pairing import is_baseline, is_twin, setting_key

MAX_SHOWN_FACTORS = 6  # amplified factor levels whose best trial is drawn


@dataclass(frozen=True)
class Shown:
    """A trial picked for an artifact figure."""

    role: str  # "baseline", "best", "best λ=10"
    run_id: str
    trial_id: str
    factor: float
    setting: str
    objective: float


def pick_baseline_and_best(study: Study) -> tuple[Shown | None, Shown | None]:
    """The best trial, and the baseline of its setting (same lr, same seed when possible)."""
    ranked = study.ranked()
    if ranked.empty:
        return None, None
    best_row = ranked.iloc[0]
    best = as_shown("best", best_row, study.objective)
    baselines = ranked[is_baseline(ranked)]
    if baselines.empty:
        return None, best
    if bool(is_baseline(ranked.iloc[[0]]).iloc[0]):
        return as_shown("baseline (also the best)", best_row, study.objective), best
    keys = setting_key(ranked, study.param_columns)
    same = baselines[keys[baselines.index] == keys[best_row.name]]
    if "lr" in same:
        same = same[same["lr"] == best_row["lr"]]
    if "seed" in same and (same["seed"] == best_row["seed"]).any():
        same = same[same["seed"] == best_row["seed"]]
    chosen = same.iloc[0] if not same.empty else baselines.iloc[0]
    return as_shown("baseline", chosen, study.objective), best


def pick_best_per_factor(study: Study) -> list[Shown]:
    """The best finished non-twin trial at each amplified factor level (at most MAX_SHOWN_FACTORS levels)."""
    ranked = study.ranked()
    if ranked.empty or "factor" not in ranked:
        return []
    ranked = ranked[~is_twin(ranked) & (ranked["factor"].astype(float) != 1.0)]
    if ranked.empty:
        return []
    levels, _ = factor_levels(ranked["factor"].astype(float), max_levels=MAX_SHOWN_FACTORS)
    firsts = ranked.assign(_level=levels).groupby("_level", sort=True).head(1)
    firsts = firsts.sort_values("_level", kind="mergesort")
    return [
        as_shown(f"best λ={fmt_factor(float(row['factor']))}", row, study.objective)
        for _, row in firsts.iterrows()
    ]


def as_shown(role: str, row: pd.Series, objective: str) -> Shown:
    """A trial row as a `Shown` (its objective NaN when it has none, e.g. a diverged trial)."""
    return Shown(
        role=role,
        run_id=str(row["run_id"]),
        trial_id=str(row["trial_id"]),
        factor=float(row["factor"]) if "factor" in row else 1.0,
        setting=f"{describe(row)}, run {row['run_id']}",  # figures name the MLflow run they draw
        objective=float(row[objective]),
    )
