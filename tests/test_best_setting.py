"""'Best' is a setting (study/selection/best_setting.py): planted studies, and the level of 'distinguishable'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.selection.best_setting import ALPHA, choose_setting


def _frame(settings: dict[str, list[float]], value: str = "val_auroc") -> pd.DataFrame:
    rows = [
        {"run_id": f"{g}-{i}", "trial_id": f"{g}-{i}", "group": g, value: v}
        for g, values in settings.items()
        for i, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_a_lucky_seed_does_not_win_and_the_tie_is_said() -> None:
    # B holds the single highest value (0.95) but the lower mean: the old rule registered B-1
    frame = _frame({"A": [0.80, 0.81, 0.79], "B": [0.70, 0.95, 0.66]})
    assert frame.loc[frame["val_auroc"].idxmax(), "run_id"] == "B-1"
    choice = choose_setting(frame, "val_auroc", "max")
    assert choice is not None
    assert choice.group == "A" and choice.run_id == "A-1"  # the best seed of the best setting
    assert choice.mean == pytest.approx(0.80) and choice.ci_low < 0.80 < choice.ci_high
    assert choice.tied == ("B",) and not choice.distinguishable
    assert "NOT distinguishable" in choice.sentence("val_auroc")


def test_a_clear_gap_is_distinguishable_and_min_mode_ranks_the_other_way() -> None:
    frame = _frame({"A": [0.90, 0.91, 0.92], "B": [0.70, 0.71, 0.72], "C": [0.60, 0.62, 0.61]})
    best = choose_setting(frame, "val_auroc", "max")
    assert best is not None and best.group == "A" and best.distinguishable
    assert "distinguishable from every other setting" in best.sentence("val_auroc")
    low = choose_setting(frame, "val_auroc", "min")
    assert low is not None and low.group == "C" and low.run_id == "C-0"


def test_one_seed_per_setting_is_never_distinguishable_and_nan_is_left_out() -> None:
    frame = _frame({"A": [0.9], "B": [0.5], "C": [float("nan")]})
    choice = choose_setting(frame, "val_auroc", "max")
    assert choice is not None and choice.group == "A" and choice.tied == ("B",)
    assert choice.n_settings == 2 and np.isnan(choice.ci_low)
    assert choose_setting(_frame({"A": [float("nan")]}), "val_auroc", "max") is None


def distinguishable_rate(k: int, n_sims: int, seed: int) -> float:
    """Share of draws in which the best of k settings with the same skewed (lognormal) distribution of
    seed values, 3 seeds each, is called distinguishable (bench/degenerate_levels.py runs more)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_sims):
        values = {f"s{j}": list(0.7 + 0.05 * rng.lognormal(0.0, 1.0, size=3)) for j in range(k)}
        choice = choose_setting(_frame(values), "val_auroc", "max")
        hits += bool(choice and choice.distinguishable)
    return hits / n_sims


@pytest.mark.parametrize("k", [2, 5])
def test_distinguishable_holds_its_level_under_a_global_null(k: int) -> None:
    n_sims = 300
    assert distinguishable_rate(k, n_sims, k) <= ALPHA + 2.5 * np.sqrt(ALPHA * (1 - ALPHA) / n_sims)


def test_settings_beat_the_baseline_only_with_every_seed() -> None:
    from reports.stats.baseline_settings import count_settings

    trials = pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(8)],
            "group": ["A", "A", "B", "B", "C", "C", "D", "E"],
            "status": ["finished"] * 6 + ["degenerate", "collapsed"],
            "beats_baseline": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    count = count_settings(trials)
    assert (count.n_settings, count.n_beat, count.n_some, count.n_none, count.n_degenerate) == (3, 1, 1, 1, 1)
    assert "1 of 3 setting(s) beat" in count.sentence() and "1 degenerate trial(s)" in count.sentence()
    older = count_settings(trials.drop(columns="beats_baseline"))  # trials logged before the comparison
    assert older.n_settings == 0 and "No finished trial logged" in older.sentence()
