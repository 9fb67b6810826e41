"""Normal-versus-pool AUROC: the test AUROC, up to a known affine map, estimated without labels.

A trial's score separates held-out normal images N (never trained on) from the
unlabelled pool P. If P is a mixture of normals drawn like N (share 1 - pi) and
anomalies A (share pi), then, ties counted one half,

    AUROC(N vs P) = pi * AUROC(N vs A) + (1 - pi) / 2

(positive-unlabelled learning: Menon et al., ICML 2015; Jain, White & Radivojac,
KDD 2017). pi is the same for every trial of a study, so this label-free
statistic ranks trials exactly as their test AUROC does in expectation, for
any kind of anomaly the pool holds — semantic ones included, which synthetic
local corruptions do not measure (bench/RESULTS.md, Fashion-MNIST bags).

It needs two things the product cannot check from images alone, so the report
says them: the held-out normals look like the pool's normals (no drift between
training and deployment data), and the pool holds anomalies at all. The
second is tested here: with no anomalies every trial's AUROC is 1/2 plus noise
of known size (`null_sd`), and `pool_informative` asks whether some trial
departs from 1/2 beyond that noise, in either direction, with a Bonferroni
margin over the study's trials. A departure below 1/2 is evidence too: the
identity then says every such trial scores the anomalies below the normals
(test AUROC < 1/2), and the ranking still holds.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import norm

from study.labelfree.stssad import separation_auroc

Tensor = torch.Tensor
ALPHA = 0.01  # study-wide false-alarm rate of `pool_informative`


def unlabelled_auroc(normal_scores: Tensor, pool_scores: Tensor) -> float:
    """AUROC of held-out normal scores (negatives) against the unlabelled pool's (positives)."""
    return separation_auroc(normal_scores.double().cpu(), pool_scores.double().cpu())


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
