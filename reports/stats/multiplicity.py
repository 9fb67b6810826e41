"""Holm's step-down adjustment (the verdicts' multiplicity control), and the most seeds a power statement names.

The noise model the verdicts use is in `reports.stats.posterior`.
"""

from __future__ import annotations

import numpy as np

MAX_SEEDS = 100  # beyond this a study cannot run it: "> 100 seeds"


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (what statsmodels' `multipletests(method="holm")` returns, tests check it).

    Written out because `multipletests` runs `gc.collect()` on every call: about a second in a
    report process holding a study, which the calibration simulations repeat thousands of times.
    """
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate(np.minimum((len(p) - np.arange(len(p))) * p[order], 1.0))
    out = np.empty_like(p)
    out[order] = steps
    return out
