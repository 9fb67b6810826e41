"""Which trials are un-amplified baselines or effective-learning-rate twins, and what a setting is.

A trial's *setting* is its params minus (seed, amplification, factor, twin_of,
lr). The un-amplified **baseline** of a trial shares its setting and lr with
amplification `linear`, factor 1, twin_of 0. Its effective-learning-rate
**twin** shares its setting with amplification `linear`, factor 1,
twin_of = the trial's factor and lr = the trial's lr x factor (`study.training.losses`:
every form's slope at L = 0 is the factor). The comparisons themselves are
contrasts of one linear model (`reports.stats.effects`).
"""

from __future__ import annotations

import pandas as pd

_NOT_SETTING = ("seed", "amplification", "factor", "twin_of", "lr")


def setting_key(trials: pd.DataFrame, param_columns: list[str]) -> pd.Series:
    """One string per trial naming its setting (params other than seed, amplification, factor, twin_of, lr)."""
    cols = [c for c in param_columns if c not in _NOT_SETTING]
    if not cols:
        return pd.Series("", index=trials.index)
    columns = [trials[c].tolist() for c in cols]
    return pd.Series(
        ["|".join(map(str, row)) for row in zip(*columns, strict=True)], index=trials.index, dtype=object
    )


def is_baseline(trials: pd.DataFrame) -> pd.Series:
    """Un-amplified, non-twin trials (linear, factor 1, twin_of 0)."""
    return (_col(trials, "amplification", "linear") == "linear") & (_factor(trials) == 1.0) & ~is_twin(trials)


def is_twin(trials: pd.DataFrame) -> pd.Series:
    """Effective-learning-rate twins (twin_of > 0)."""
    return _col(trials, "twin_of", 0.0).astype(float) > 0


def _factor(trials: pd.DataFrame) -> pd.Series:
    return _col(trials, "factor", 1.0).astype(float)


def _col(trials: pd.DataFrame, name: str, default: object) -> pd.Series:
    return trials[name] if name in trials else pd.Series(default, index=trials.index)
