"""Cross-trial selection without labels: rank a study's finished trials from their logged metrics.

`rules` (the selectors and `pick`), `pool` (whether the unlabelled pool holds
anomalies the trials see), `delong` (DeLong's covariance of correlated AUROCs)
and `paired` (which trials the pool tells apart, and what it can tell). Plain numbers in (pandas, scipy): no torch, so the
registry and the report both use it.
"""

from __future__ import annotations

from study.selection.pool import anomaly_share_bound, detectable_departure, null_sd, pool_informative
from study.selection.rules import (
    DEFAULT_SELECTOR,
    SELECTORS,
    TRIAL_METRICS,
    Frame,
    Selector,
    borda_centrality,
    borda_unlabelled,
    centrality,
    family_columns,
    get_selector,
    pick,
    pool_decision,
    pool_verdict,
    rankable,
    robust_rank_aggregation,
    selector_scores,
    trimmed_borda,
    unlabelled_informative,
    unlabelled_or_borda,
)

__all__ = [
    "DEFAULT_SELECTOR",
    "SELECTORS",
    "TRIAL_METRICS",
    "Frame",
    "Selector",
    "anomaly_share_bound",
    "borda_centrality",
    "borda_unlabelled",
    "centrality",
    "detectable_departure",
    "family_columns",
    "get_selector",
    "null_sd",
    "pick",
    "pool_decision",
    "pool_verdict",
    "pool_informative",
    "rankable",
    "robust_rank_aggregation",
    "selector_scores",
    "trimmed_borda",
    "unlabelled_informative",
    "unlabelled_or_borda",
]
