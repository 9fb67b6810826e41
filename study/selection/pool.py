"""Does the unlabelled pool hold anomalies the trials see? The null of study/labelfree/unlabelled.py.

With no anomalies in the pool every trial's normal-versus-pool AUROC is 1/2
plus noise of known size (`null_sd`, Mann-Whitney U under H0);
`pool_informative` asks whether some trial departs from 1/2 beyond that noise,
in either direction, with a Bonferroni margin over the study's trials. Plain
numbers in, no torch: the registry and the report call it on logged metrics.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

ALPHA = 0.01  # study-wide false-alarm rate of `pool_informative`


def anomaly_share_bound(auroc: float) -> float:
    """Least anomaly share of the pool consistent with `auroc` (the identity with 0 <= AUROC(N vs A) <= 1)."""
    return float(min(1.0, 2.0 * abs(auroc - 0.5)))


def null_sd(n_normal: int, n_pool: int) -> float:
    """Standard deviation of the AUROC when the pool holds normals only (Mann-Whitney U under H0)."""
    return math.sqrt((n_normal + n_pool + 1) / (12.0 * n_normal * n_pool))


def detectable_departure(n_trials: int, n_normal: int, n_pool: int, alpha: float = ALPHA) -> float:
    """Smallest |AUROC - 1/2| that `pool_informative` calls anomalies: what more held-out normals shrink."""
    return float(norm.ppf(1.0 - alpha / (2 * n_trials))) * null_sd(n_normal, n_pool)


def pool_informative(aurocs: np.ndarray, n_normal: int, n_pool: int, alpha: float = ALPHA) -> bool:
    """Whether some trial separates the pool from held-out normals beyond noise, so the pool holds anomalies.

    Two-sided z-test of the trial farthest from 1/2, Bonferroni-corrected over
    the trials: a pool that differs from the normals differs whichever way a
    trial's score points. False when no trial's AUROC is finite.
    """
    finite = aurocs[np.isfinite(aurocs)]
    if not len(finite) or n_normal < 1 or n_pool < 1:
        return False
    return bool(np.abs(finite - 0.5).max() > detectable_departure(len(finite), n_normal, n_pool, alpha))
