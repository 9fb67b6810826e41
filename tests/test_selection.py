"""Label-free selectors across trials: exclusion, rank aggregation, centrality, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.labelfree import FAMILIES, family_metric
from study.selection import (
    DEFAULT_SELECTOR,
    SELECTORS,
    get_selector,
    pick,
    robust_rank_aggregation,
    selector_scores,
    trimmed_borda,
)

FAMS = [family_metric(f) for f in FAMILIES]


def _frame(values: dict[str, list[float]], status: list[str] | None = None) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    frame = pd.DataFrame(values, index=[f"t{i}" for i in range(n)])
    frame["status"] = status or ["finished"] * n
    return frame


def _consistent(n: int = 6) -> pd.DataFrame:
    """Every family ranks trial t{n-1} best, t0 worst, with small per-family offsets."""
    base = np.linspace(0.55, 0.9, n)
    return _frame({c: list(base + 0.01 * k) for k, c in enumerate(FAMS)})


def test_aggregators_follow_families_that_agree() -> None:
    frame = _consistent()
    for name in ("borda", "rra", *FAMS):
        assert pick(frame, name) == "t5", name
        s = selector_scores(frame, name)
        assert s.idxmin() == "t0", name


def test_non_finished_trials_are_never_picked() -> None:
    frame = _consistent()
    frame.loc["t5", "status"] = "collapsed"
    frame.loc["t4", "status"] = "diverged"
    for name in ("borda", "rra", *FAMS):
        assert pick(frame, name) == "t3", name
        assert set(selector_scores(frame, name).index) == {"t0", "t1", "t2", "t3"}


def test_trimmed_borda_ignores_one_fooled_family() -> None:
    frame = _consistent()
    fooled = FAMS[0]
    frame[fooled] = frame[fooled].to_numpy()[::-1]  # one family ranks everything backwards
    assert pick(frame, fooled) == "t0"
    assert pick(frame, "borda") == "t5"
    assert trimmed_borda(frame).is_monotonic_increasing


def test_rra_prefers_consistently_high_ranks() -> None:
    frame = _consistent(8)
    scores = robust_rank_aggregation(frame)
    assert scores.idxmax() == "t7" and np.isfinite(scores).all()


def test_centrality_needs_pool_scores_and_prefers_the_consensus() -> None:
    frame = _consistent(4)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=50)
    pool = pd.DataFrame(
        [truth + rng.normal(0, s, 50) for s in (3.0, 0.1, 0.2, 0.3)], index=frame.index
    )  # t0 is noisy: it disagrees with the consensus
    c = get_selector("centrality").fn(frame, pool)
    assert c.idxmin() == "t0"
    with pytest.raises(ValueError, match="test pool"):
        get_selector("centrality").fn(frame, None)


def test_missing_family_columns_and_unknown_selector_are_explained() -> None:
    frame = _frame({"auroc": [0.8, 0.9]})
    with pytest.raises(ValueError, match="synthetic_auroc_<family>"):
        trimmed_borda(frame)
    with pytest.raises(KeyError, match="available: borda"):
        get_selector("oracle")
    assert DEFAULT_SELECTOR in SELECTORS


def test_nothing_rankable_picks_nothing() -> None:
    frame = _consistent(3)
    frame["status"] = "diverged"
    assert pick(frame) is None


def test_every_label_free_metric_is_a_study_objective_in_its_direction() -> None:
    from study.selection import TRIAL_METRICS
    from study.spec import OBJECTIVES

    for name, higher in TRIAL_METRICS.items():
        assert OBJECTIVES.get(name) == ("max" if higher else "min"), name


def test_the_core_lists_the_synthetic_families_the_trials_score() -> None:
    """selection ranks by the core's family names (no torch); the trial layer defines the families."""
    from study.core.vocab import FAMILY_NAMES

    assert tuple(FAMILIES) == FAMILY_NAMES
