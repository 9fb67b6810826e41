"""The report's statistics: plain tables in, plain tables out; no figures, no prose.

`effects` (amplification effects from one linear model, Holm-corrected; the
stratified steepness correlation), `pairing` (which trials are baselines and
lr twins of which setting) and `aggregate` (per-setting estimates and scatter
points).
"""

from __future__ import annotations

from reports.stats.effects import StratifiedRho, amplification_effects, fit_settings, stratified_spearman
from reports.stats.pairing import is_baseline, is_twin, setting_key

__all__ = [
    "StratifiedRho",
    "amplification_effects",
    "fit_settings",
    "is_baseline",
    "is_twin",
    "setting_key",
    "stratified_spearman",
]
