"""Steepness against detection: Spearman ρ within strata, at the setting level, by permutation.

The metric (and optimizer) shift both steepness and AUROC, so a pooled ρ measures
the strata, not LAMP's claim (Simpson's paradox): ρ is computed within every
metric × optimizer × arch stratum. Its unit is the setting, not the trial: seeds
of one setting share its steepness and its detection, so counting them as
independent points (Fisher z with n − 3 in trials) makes a null correlation
significant far more often than alpha. Each setting enters as its mean over seeds,
and the combined ρ (Fisher-z mean over strata, weights n − 3 in settings) is tested
by permuting the settings' detection values within each stratum — exact for the
setting-level null whatever the distribution. The caller corrects over the
measures it tests (Holm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from reports.stats.effects import STRATUM, setting_keys

PERMUTATIONS = 4000  # p resolution 1/4001; a fixed seed makes the report reproducible
MIN_SETTINGS = 4  # a stratum enters the combination with at least this many settings (Fisher weight n − 3)


@dataclass(frozen=True)
class StratifiedRho:
    """Spearman ρ of x vs y (setting means) within each stratum and their combined estimate."""

    per_stratum: pd.DataFrame  # metric, optimizer, arch, n (settings), trials, rho, p (its own, unadjusted)
    combined_rho: float  # Fisher-z mean of the strata's ρ, weights n − 3 (NaN without a usable stratum)
    combined_p: float  # two-sided permutation p of the combined z, settings permuted within strata
    pooled_rho: float  # over trials, ignoring strata: shown only to say how much pooling misleads


def stratified_spearman(
    trials: pd.DataFrame,
    x: str = "sharpness",
    y: str = "auroc",
    *,
    extra: tuple[str, ...] = (),
    permutations: int = PERMUTATIONS,
) -> StratifiedRho:
    """ρ of setting means within each metric × optimizer × arch stratum, combined, permutation-tested.

    `trials`: finished trials with the setting columns of `reports.stats.setting_of` and a seed;
    `extra` the other params the study varies (part of the setting).
    """
    df = trials[trials[x].notna() & trials[y].notna()]
    keyed = df.assign(_setting=setting_keys(df, extra).to_numpy())
    means = keyed.groupby([*STRATUM, "_setting"], sort=True).agg(
        _x=(x, "mean"), _y=(y, "mean"), trials=(x, "size")
    )
    rows, ranks = [], []
    for key, group in means.groupby(level=list(range(len(STRATUM))), sort=True):
        if len(group) >= 3 and group["_x"].nunique() > 1 and group["_y"].nunique() > 1:
            res = spearmanr(group["_x"], group["_y"])
            rows.append(
                dict(zip(STRATUM, key, strict=True), n=len(group), trials=int(group["trials"].sum()))
                | dict(rho=float(res.statistic), p=float(res.pvalue))
            )
            if len(group) >= MIN_SETTINGS:
                ranks.append((rankdata(group["_x"]), rankdata(group["_y"])))
    per = pd.DataFrame(rows, columns=[*STRATUM, "n", "trials", "rho", "p"])
    combined, p = _combined(ranks, permutations)
    pooled = float(spearmanr(df[x], df[y]).statistic) if len(df) >= 3 else math.nan
    return StratifiedRho(per, combined, p, pooled)


def _combined(ranks: list[tuple[np.ndarray, np.ndarray]], permutations: int) -> tuple[float, float]:
    """Fisher-z mean ρ over strata and its permutation p (y ranks shuffled within each stratum)."""
    if not ranks:
        return math.nan, math.nan
    rng = np.random.default_rng(0)
    z_obs, z_perm, weights = 0.0, np.zeros(permutations), 0.0
    for rx, ry in ranks:
        w = len(rx) - 3
        cx, cy = rx - rx.mean(), ry - ry.mean()
        norm = math.sqrt(float((cx**2).sum() * (cy**2).sum()))
        shuffled = rng.permuted(np.tile(cy, (permutations, 1)), axis=1)
        # |ρ| = 1 has an infinite z; clip just inside so a perfect stratum weighs, not breaks
        z_obs += w * float(np.arctanh(np.clip(cx @ cy / norm, -0.9999, 0.9999)))
        z_perm += w * np.arctanh(np.clip(shuffled @ cx / norm, -0.9999, 0.9999))
        weights += w
    z_obs, z_perm = z_obs / weights, z_perm / weights
    p = (1 + int((np.abs(z_perm) >= abs(z_obs) - 1e-12).sum())) / (permutations + 1)
    return math.tanh(z_obs), p
