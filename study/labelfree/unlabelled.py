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
of known size (`null_sd`), and `pool_informative` asks whether the best trial
clears that noise with a Bonferroni margin over the study's trials.
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
    """Least anomaly share of the pool consistent with `auroc` (the identity with AUROC(N vs A) <= 1)."""
    return float(min(1.0, max(0.0, 2.0 * (auroc - 0.5))))


def null_sd(n_normal: int, n_pool: int) -> float:
    """Standard deviation of the AUROC when the pool holds normals only (Mann-Whitney U under H0)."""
    return math.sqrt((n_normal + n_pool + 1) / (12.0 * n_normal * n_pool))


def pool_informative(aurocs: np.ndarray, n_normal: int, n_pool: int, alpha: float = ALPHA) -> bool:
    """Whether some trial separates the pool from held-out normals beyond noise, so the pool holds anomalies.

    One-sided z-test of the best trial's AUROC against 1/2, Bonferroni-corrected
    over the trials. False when no trial's AUROC is finite.
    """
    finite = aurocs[np.isfinite(aurocs)]
    if not len(finite) or n_normal < 1 or n_pool < 1:
        return False
    z = (float(finite.max()) - 0.5) / null_sd(n_normal, n_pool)
    return bool(z > norm.ppf(1.0 - alpha / len(finite)))
