"""The report's statistics: plain tables in, plain tables out; no figures, no prose.

`effects` (amplification effects from one linear model, Holm-corrected, each
setting's noise moderated over the prior's posterior in `posterior`, power and seed counts in
`power`; survivorship
in `survival`; Holm in `multiplicity`), `rank`
(the stratified steepness correlation of setting means, by permutation),
`pairing` (which trials are baselines and lr twins of which setting) and
`aggregate` (per-setting estimates and scatter points).
"""

from __future__ import annotations

from reports.stats.effects import amplification_effects, fit_settings
from reports.stats.pairing import is_baseline, is_twin, setting_key
from reports.stats.rank import StratifiedRho, stratified_spearman

__all__ = [
    "StratifiedRho",
    "amplification_effects",
    "fit_settings",
    "is_baseline",
    "is_twin",
    "setting_key",
    "stratified_spearman",
]
