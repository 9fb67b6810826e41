"""Does a label-free score rank this study's trials at all? The checks the report states beside its pick.

The unlabelled AUROC ranks trials only where the pool holds anomalies the
trials see (study/labelfree/unlabelled.py); the synthetic families only where
they agree with each other and do not saturate.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from study.core.vocab import UNLABELLED_METRIC
from study.selection import (
    anomaly_share_bound,
    detectable_departure,
    family_columns,
    null_sd,
    unlabelled_informative,
)

SATURATED = 0.99  # a family AUROC at or above this ranks nothing


@dataclass(frozen=True)
class Consensus:
    """Do the synthetic families rank this study's trials at all?"""

    n_families: int
    mean_pairwise_rho: float  # between families, over finished trials
    saturated_share: float  # share of (trial, family) AUROCs >= SATURATED

    @property
    def ranks(self) -> bool:
        return self.n_families >= 2 and self.mean_pairwise_rho > 0.2 and self.saturated_share < 0.5


@dataclass(frozen=True)
class PoolCheck:
    """Does the unlabelled pool hold anomalies this study's trials see?"""

    informative: bool  # study.selection.unlabelled_informative
    best: float  # highest unlabelled AUROC over finished trials
    lowest: float  # lowest one: below 1/2 beyond noise is evidence of anomalies too
    noise_sd: float  # their spread were the pool anomaly-free
    detectable: float  # the least |AUROC - 1/2| the check calls anomalies, at these sizes
    n_normal: int
    n_pool: int

    @property
    def share_bound(self) -> float:
        """Least anomaly share of the pool the trial farthest from 1/2 implies."""
        return max(anomaly_share_bound(self.best), anomaly_share_bound(self.lowest))

    @property
    def none_detects(self) -> bool:
        """The pool holds anomalies, yet every trial scores it below the held-out normals."""
        return self.informative and self.best < 0.5


def consensus(labelled: pd.DataFrame) -> Consensus:
    cols = family_columns(labelled)
    values = labelled[cols].astype(float)
    rhos = []
    for a, b in itertools.combinations(cols, 2):
        ok = values[a].notna() & values[b].notna()
        if ok.sum() >= 3 and values.loc[ok, a].nunique() > 1 and values.loc[ok, b].nunique() > 1:
            rhos.append(float(spearmanr(values.loc[ok, a], values.loc[ok, b]).statistic))
    flat = values.to_numpy(float)
    flat = flat[np.isfinite(flat)]
    return Consensus(
        n_families=len(cols),
        mean_pairwise_rho=float(np.mean(rhos)) if rhos else math.nan,
        saturated_share=float(np.mean(flat >= SATURATED)) if len(flat) else math.nan,
    )


def pool_check(labelled: pd.DataFrame) -> PoolCheck | None:
    if UNLABELLED_METRIC not in labelled or "unlabelled_pool" not in labelled:
        return None
    values = labelled[UNLABELLED_METRIC].to_numpy(float)
    if not np.isfinite(values).any():
        return None
    n, m = int(labelled["unlabelled_normals"].min()), int(labelled["unlabelled_pool"].min())
    return PoolCheck(
        informative=unlabelled_informative(labelled),
        best=float(np.nanmax(values)),
        lowest=float(np.nanmin(values)),
        noise_sd=null_sd(n, m),
        detectable=detectable_departure(int(np.isfinite(values).sum()), n, m),
        n_normal=n,
        n_pool=m,
    )


def consensus_sentence(c: Consensus | None) -> str:
    if c is None:
        return "The trials carry no per-family synthetic AUROCs, so the rank aggregation cannot run here."
    state = (
        "rank trials"
        if c.ranks
        else "do NOT rank trials here: treat a pick by them (borda, rra, a family) as a random one"
    )
    return (
        f"On this study the {c.n_families} synthetic families {state} (mean pairwise ρ between families "
        f"{c.mean_pairwise_rho:.2f}; {c.saturated_share:.0%} of family AUROCs ≥ {SATURATED})."
    )


def pool_sentence(c: PoolCheck | None) -> str:
    if c is None:
        return "The trials carry no unlabelled AUROC (held-out normals against the unlabelled pool)."
    head = (
        f"Unlabelled AUROC ({c.n_normal} held-out normal images against {c.n_pool} unlabelled pool images): "
        f"the best trial scores {c.best:.4f}, against {0.5:.1f} ± {c.noise_sd:.4f} for a pool without anomalies"
    )
    if c.none_detects:
        return (
            f"{head}, and the lowest {c.lowest:.4f}: the pool differs from the held-out normals, so it holds "
            f"anomalies (at least {c.share_bound:.0%}), but every trial scores them BELOW normal images. "
            "Unless the held-out normals drift from the pool's normals, no trial here detects these anomalies "
            "(each one's test AUROC is under 1/2); the pick is the least bad. Try other losses or architectures."
        )
    if c.informative:
        return (
            f"{head}, so at least {c.share_bound:.0%} of the pool is anomalous and this score ranks trials as "
            "their test AUROC would, provided the held-out normals look like the pool's normals (no drift "
            "between training and deployment data)."
        )
    return (
        f"{head}, and the lowest {c.lowest:.4f}: the pool shows no anomaly share these trials can resolve at "
        "this size (it may hold a few anomalies, diluted among its normals), so the unlabelled AUROC ranks "
        "nothing here and the label-free pick falls back to the synthetic families (trimmed Borda). "
        f"At these sizes only a departure beyond ±{c.detectable:.3f} from 1/2 counts; more held-out normal images "
        "(data.val_fraction) or a larger pool would see smaller ones."
    )
