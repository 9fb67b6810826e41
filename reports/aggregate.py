"""Replicate-seed statistics shared by every section: a mean with its 95% t-interval.

Seeds are the unit of replication. A cell that mixes several settings (other
params averaged out) is first averaged within each seed, then summarised over
seeds, so the interval reflects seed-to-seed noise of the marginal mean and
never counts one seed twice. These intervals describe a figure's points; no
verdict is drawn from them (tests of effects are `reports.stats`, their
sentences `reports.verdicts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

MAX_FACTOR_LEVELS = 12  # more distinct factors than this (open-ended searches) are binned


@dataclass(frozen=True)
class Estimate:
    """Mean over replicate seeds with a t-based 95% interval (NaN half width when n < 2)."""

    mean: float
    half_width: float
    n: int

    @property
    def lo(self) -> float:
        return self.mean - self.half_width

    @property
    def hi(self) -> float:
        return self.mean + self.half_width

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.half_width)


def estimate(values: Sequence[float] | np.ndarray | pd.Series) -> Estimate:
    """Mean and t-based 95% half width of finite values (one value per seed)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    if n == 1:
        return Estimate(float(x[0]), math.nan, 1)
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Estimate(float(x.mean()), half, n)


def seed_estimates(frame: pd.DataFrame, value: str, by: list[str]) -> dict[tuple, Estimate]:
    """Per cell of `by`: average within each seed, then `estimate` over seeds."""
    frame = frame[frame[value].notna()]
    if frame.empty:
        return {}
    seed = frame["seed"] if "seed" in frame else pd.Series(0, index=frame.index)
    per_seed = frame.assign(_seed=seed).groupby([*by, "_seed"], dropna=False, sort=True)[value].mean()
    out: dict[tuple, Estimate] = {}
    for key, series in per_seed.groupby(level=list(range(len(by))), dropna=False, sort=True):
        out[key if isinstance(key, tuple) else (key,)] = estimate(series.to_numpy())
    return out


def factor_levels(factors: pd.Series, max_levels: int = MAX_FACTOR_LEVELS) -> tuple[pd.Series, bool]:
    """Map each amplification factor to a plotted level; bins log-spaced when there are too many.

    Returns the levels (same index) and whether binning happened. A bin's level is the
    geometric mean of its edges, so a log axis shows it in the middle of the bin.
    """
    distinct = np.unique(factors.dropna().to_numpy(dtype=float))
    if distinct.size <= max_levels or (distinct <= 0).any():
        return factors.astype(float), False
    edges = np.geomspace(distinct.min(), distinct.max(), max_levels + 1)
    index = np.clip(
        np.searchsorted(edges, factors.to_numpy(dtype=float), side="right") - 1, 0, max_levels - 1
    )
    centres = np.sqrt(edges[:-1] * edges[1:])
    levels = pd.Series(centres[index], index=factors.index)
    levels[factors.isna()] = np.nan
    levels[factors == 1.0] = 1.0  # the baseline factor keeps its exact value
    return levels, True


def fmt_factor(value: float) -> str:
    """Compact label of a factor (`10`, `0.5`, `31.6`)."""
    return f"{value:.3g}"
