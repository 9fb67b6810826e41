""" "Best" is a setting, not a lucky seed: rank settings by their seed-mean validation score.

Seeds are replicates of a setting (every parameter but the seed; trials share a
`lamp.group` tag). Taking the single highest validation value picks the
luckiest seed of whichever setting happened to have one; here the setting
with the best seed-mean validation value wins, with a t interval over its
seeds, and the model to register is the seed of that setting with the best
validation value. That last step is not the lucky-seed error again: the
setting is already chosen, its seeds are different trained weights of it, and
one of them is deployed, so the best-validated one is the natural pick (its
validation value, like any maximum, is optimistic; the report states the
test-part value).

"Distinguishable": the best setting is distinguishable when a Welch t-test on
the seeds' values separates it from every other setting at two-sided `ALPHA`.
Requiring all comparisons to reject is an intersection-union test (no
multiplicity correction needed), and the two-sided level pays for the best
being chosen as the maximum (tests/test_best_setting.py checks the level by
simulation, skewed values included). A setting with one seed has no replicate
spread, so nothing is distinguishable from it. The seed spread is the
model-to-model variation on the fixed validation samples: what separates
settings on this validation part, not on new data. (A simple test of this
module's own; reports/stats.py holds the report's effect statistics.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
MAX_LISTED = 5  # tied settings named in a sentence; the rest are counted


@dataclass(frozen=True)
class SettingChoice:
    """The best setting, the seed to register, and which settings it cannot be told from."""

    group: str
    run_id: str  # the registered seed's run
    trial_id: str
    value: float  # the registered seed's validation value
    mean: float  # the setting's seed-mean validation value
    ci_low: float  # 95% t interval of the seed mean (NaN with one seed)
    ci_high: float
    n_seeds: int
    tied: tuple[str, ...]  # groups not distinguishable from the best, best first
    n_settings: int

    @property
    def distinguishable(self) -> bool:
        return not self.tied

    def sentence(self, value_name: str, labels: dict[str, str] | None = None) -> str:
        """One line for the report summary and `register`'s output."""
        labels = labels or {}
        interval = (
            f" [{self.ci_low:.4f}, {self.ci_high:.4f}]" if math.isfinite(self.ci_low) else " (no interval)"
        )
        head = (
            f"best setting by seed-mean {value_name}: {self.mean:.4f}{interval} over {self.n_seeds} "
            f"seed(s), among {self.n_settings} setting(s)"
        )
        if self.distinguishable:
            return (
                head
                + f"; distinguishable from every other setting on the validation part ({ALPHA:.0%} Welch t)"
            )
        named = ", ".join(labels.get(g, f"lamp.group={g}") for g in self.tied[:MAX_LISTED])
        more = f" and {len(self.tied) - MAX_LISTED} more" if len(self.tied) > MAX_LISTED else ""
        return (
            head + f"; NOT distinguishable on the validation part from {len(self.tied)} other setting(s) "
            f"({named}{more}): the choice among them is not supported by the validation data"
        )


def setting_table(frame: pd.DataFrame, value: str, mode: str) -> pd.DataFrame:
    """Per setting (`group`): n, mean, sd, 95% t interval of `value` over its trials, and its best trial.

    Sorted best first (ties by the best trial's id, so every reader picks the same one).
    """
    rows = []
    for group, part in frame.groupby("group", sort=False):
        v = part[value].to_numpy(float)
        n, mean = len(v), float(v.mean())
        sd = float(v.std(ddof=1)) if n > 1 else math.nan
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else math.nan
        top = part.sort_values([value, "trial_id"], ascending=[mode == "min", True], kind="mergesort").iloc[0]
        rows.append(
            (
                str(group),
                n,
                mean,
                sd,
                mean - half,
                mean + half,
                top["run_id"],
                str(top["trial_id"]),
                top[value],
            )
        )
    table = pd.DataFrame(
        rows, columns=["group", "n", "mean", "sd", "ci_low", "ci_high", "run_id", "trial_id", "value"]
    )
    return table.sort_values(
        ["mean", "trial_id"], ascending=[mode == "min", True], kind="mergesort"
    ).reset_index(drop=True)


def separated(best: pd.Series, other: pd.Series, mode: str, alpha: float = ALPHA) -> bool:
    """Whether a Welch t-test separates `best` from `other` (two rows of `setting_table`) at two-sided `alpha`."""
    if best["n"] < 2 or other["n"] < 2:
        return False
    gap = (best["mean"] - other["mean"]) * (1 if mode == "max" else -1)
    v1, v2 = best["sd"] ** 2 / best["n"], other["sd"] ** 2 / other["n"]
    if v1 + v2 <= 0:
        return gap > 0
    df = (v1 + v2) ** 2 / (v1**2 / (best["n"] - 1) + v2**2 / (other["n"] - 1))
    return bool(stats.t.sf(gap / math.sqrt(v1 + v2), df) < alpha / 2)


def choose_setting(frame: pd.DataFrame, value: str, mode: str) -> SettingChoice | None:
    """The best setting of `frame` (columns run_id, trial_id, group, `value`; eligible trials only).

    Trials with a non-finite `value` are left out; None when nothing is left.
    """
    frame = frame[np.isfinite(frame[value].astype(float))]
    if frame.empty:
        return None
    table = setting_table(frame, value, mode)
    best = table.iloc[0]
    tied = tuple(str(r["group"]) for _, r in table.iloc[1:].iterrows() if not separated(best, r, mode))
    return SettingChoice(
        group=str(best["group"]),
        run_id=str(best["run_id"]),
        trial_id=str(best["trial_id"]),
        value=float(best["value"]),
        mean=float(best["mean"]),
        ci_low=float(best["ci_low"]),
        ci_high=float(best["ci_high"]),
        n_seeds=int(best["n"]),
        tied=tied,
        n_settings=len(table),
    )


def setting_key(params: dict[str, str]) -> str:
    """A setting's key from a trial's params when it has no `lamp.group` tag: every param but the seed."""
    return "|".join(f"{k}={params[k]}" for k in sorted(params) if k != "seed")
