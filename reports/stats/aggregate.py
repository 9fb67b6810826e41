"""Replicate-seed statistics shared by every section: a mean with its 95% t-interval.

Seeds are the unit of replication. A cell that mixes several settings (other
params averaged out) is first averaged within each seed, then summarised over
seeds, so the interval reflects seed-to-seed noise of the marginal mean and
never counts one seed twice. These intervals describe a figure's points; no
verdict is drawn from them (tests of effects are `reports.stats.effects`, their
sentences `reports.render.verdicts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

MAX_FACTOR_LEVELS = 12  # more distinct factors than this (open-ended searches) are binned
MAX_POINTS = 2_000  # a scatter of more trials than this draws per-setting medians (`scatter_points`)


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


@dataclass(frozen=True)
class Points:
    """What a scatter draws: one row per trial, or per setting (median over its seeds) in large studies.

    `frame` holds the requested value columns, `label` (hover text) and `n` (trials behind the point).
    Statistics are always computed on every trial; only the drawing is reduced, so a 13,000-trial
    study gives a readable figure and a page of a few MB instead of a cloud that hides everything.
    """

    frame: pd.DataFrame
    per_setting: bool  # points are setting medians
    n_trials: int
    n_settings: int  # settings behind the points (= n_trials when per trial)

    @property
    def sampled(self) -> bool:
        """Fewer points than settings: an evenly spaced sample over the sorted y values is drawn."""
        return len(self.frame) < self.n_settings

    def what(self, one: str = "one finished trial") -> str:
        """Caption phrase for "Each point is ...": `one` per trial, a setting's median otherwise."""
        if not self.per_setting:
            return one
        what = (
            f"the median of one setting over its seeds ({self.n_trials} trials in {self.n_settings} settings"
        )
        if self.sampled:
            what += f"; {len(self.frame)} settings evenly spaced in the plotted metric are drawn"
        return what + "; statistics use every trial)"


def scatter_points(
    frame: pd.DataFrame,
    columns: list[str],
    y: str,
    keep: Sequence[str] = (),
    max_points: int | None = None,
) -> Points:
    """Per-trial points of `columns` (which include `y`), or per-setting medians beyond `max_points` trials.

    A setting is the trial's `group` (its config without the seed); a trial without one is its own
    setting. `keep` columns are constant within a setting (e.g. its stratum) and carried as they
    are. Beyond `max_points` settings, an evenly spaced sample over the settings sorted by `y`
    keeps the shape of the distribution. `max_points` defaults to `MAX_POINTS`, read at call time.
    """
    max_points = MAX_POINTS if max_points is None else max_points
    trials = frame[frame[columns].notna().all(axis=1)]
    n = len(trials)
    if n <= max_points:
        label = trials["trial_id"].astype(str)
        if "run_id" in trials:  # the hover names the trial's MLflow run
            label = label + " · run " + trials["run_id"].astype(str)
        points = trials[[*columns, *keep]].assign(label=label.to_numpy(), n=1)
        return Points(points.reset_index(drop=True), False, n, n)
    setting = trials["group"].fillna(trials["trial_id"]) if "group" in trials else trials["trial_id"]
    grouped = trials.assign(_setting=setting.astype(str).to_numpy()).groupby("_setting", sort=True)
    points = pd.concat([grouped[columns].median(), grouped[list(keep)].first()], axis=1)
    first = grouped["trial_id"].first().astype(str)
    count = grouped.size()
    more = (" and " + (count - 1).astype(str) + " more seeds").where(count > 1, "")
    points = points.assign(label=first + more, n=count)
    points = points.sort_values([y, "label"], kind="mergesort").reset_index(drop=True)
    n_settings = len(points)
    if n_settings > max_points:
        points = points.iloc[np.unique(np.linspace(0, n_settings - 1, max_points).round().astype(int))]
    return Points(points.reset_index(drop=True), True, n, n_settings)
