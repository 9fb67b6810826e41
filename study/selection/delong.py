"""DeLong's covariance of correlated AUROCs, in its fast form (Sun & Xu, IEEE SPL 2014).

Every trial of a study scores the same held-out normals and the same
unlabelled pool, so their unlabelled AUROCs are correlated: the image that one
trial finds odd, another usually does too. The difference of two such AUROCs
is far less noisy than either value, and DeLong, DeLong & Clarke-Pearson
(Biometrics 1988) give its variance from the per-image structural components
V10 (one per pool image) and V01 (one per normal). Sun & Xu compute them from
midranks in O((m + n) log(m + n)) per trial instead of the O(m n) kernel sum.

Here "positives" are the pool's images (scored higher when anomalous) and
"negatives" the held-out normals; ties count one half, as in
study/labelfree/unlabelled.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class DeLong:
    """AUROCs of k score vectors on shared images, and their covariance."""

    auroc: np.ndarray  # [k]
    cov: np.ndarray  # [k, k]
    v10: np.ndarray  # [k, n_pos] structural components of the positives (pool images)
    v01: np.ndarray  # [k, n_neg] structural components of the negatives (held-out normals)

    @property
    def n_pos(self) -> int:
        return self.v10.shape[1]

    @property
    def n_neg(self) -> int:
        return self.v01.shape[1]

    def diff_sd(self, i: int, j: int, n_pos: float | None = None, n_neg: float | None = None) -> float:
        """Standard deviation of auroc[i] - auroc[j], at the given sizes (default: the measured ones).

        The two halves of DeLong's variance scale as 1/n_pos and 1/n_neg, which
        is what says how many more images would resolve a difference.
        """
        a = _pair_var(self.v10, i, j)
        b = _pair_var(self.v01, i, j)
        return float(np.sqrt(a / (n_pos or self.n_pos) + b / (n_neg or self.n_neg)))

    def var_parts(self, i: int, j: int) -> tuple[float, float]:
        """(pool part x n_pos, normal part x n_neg) of var(auroc[i] - auroc[j]): each per image."""
        return _pair_var(self.v10, i, j), _pair_var(self.v01, i, j)


def _pair_var(v: np.ndarray, i: int, j: int) -> float:
    d = v[i] - v[j] if i != j else v[i]
    return float(np.var(d, ddof=1)) if len(d) > 1 else 0.0


def delong(negatives: np.ndarray, positives: np.ndarray) -> DeLong:
    """DeLong's AUROCs and covariance of k scorers on shared images.

    Args:
        negatives: [k, m] scores of the m held-out normals by each of k trials.
        positives: [k, n] scores of the n pool images by the same trials, same order.
    """
    neg = np.atleast_2d(np.asarray(negatives, float))
    pos = np.atleast_2d(np.asarray(positives, float))
    if neg.shape[0] != pos.shape[0] or neg.shape[1] < 2 or pos.shape[1] < 2:
        raise ValueError(
            f"delong: needs k x m negatives and k x n positives with m, n >= 2; got {neg.shape}, {pos.shape}"
        )
    m, n = neg.shape[1], pos.shape[1]
    both = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # midranks, ties averaged
    within_pos = rankdata(pos, axis=1)
    within_neg = rankdata(neg, axis=1)
    auroc = (both[:, :n].sum(axis=1) - n * (n + 1) / 2) / (m * n)
    v10 = (both[:, :n] - within_pos) / m  # share of normals each pool image outscores
    v01 = 1.0 - (both[:, n:] - within_neg) / n  # share of pool images that outscore each normal
    cov = np.atleast_2d(np.cov(v10)) / n + np.atleast_2d(np.cov(v01)) / m
    return DeLong(auroc, cov, v10, v01)
