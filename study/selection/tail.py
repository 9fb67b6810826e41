"""The pool's excess tail: how many pool images a trial puts above its own held-out normals' top 1%.

On a mostly-normal pool the unlabelled AUROC U = pi * AUROC + (1 - pi) / 2
moves by pi x a trial's AUROC difference, while its noise comes from every
held-out normal (study/selection/paired.py), so at pi = 0.05 no pool size
resolves trials 0.05 apart. The anomalies sit in the pool's upper tail: above
the r-th highest of a trial's m held-out normal scores (r = TAIL_FPR x (m + 1)),
a normal pool image lands with probability r / (m + 1) and an anomaly with the
trial's true-positive rate there. The pool's share above that threshold minus
r / (m + 1) estimates pi x (TPR - FPR) at FPR ~ TAIL_FPR: the anomalies a trial
catches at a low false-alarm rate, with the normals' noise confined to one
order statistic.

Two tests:

- `exceedance_pvalue`, exact under the null that pool and held-out normals are
  exchangeable (a clean pool, no drift): the count of pool images above the r-th highest normal
  is hypergeometric (among the top count + r - 1 of the joint ranking at most
  r - 1 are normals); Bonferroni over the trials says whether the pool holds
  anomalies at all (`TailVerdict.fires`), at the rate study/selection/pool.py
  already uses for that question (alpha 0.01). A clean pool fires with
  probability <= alpha.
- the top set (null: equally good trials): trials whose excess is within a paired-bootstrap critical
  difference of the leader's (images resampled jointly for every trial, one
  Bonferroni critical value over the ordered pairs, as in paired.py), so a
  leader that the pool does not separate is reported as a tie. The bootstrap
  of an extreme order statistic is approximate: tests/test_pool_tail.py checks
  by simulation that equally good trials are called apart at most alpha of
  the time.

The excess ranks trials by a low-false-alarm operating point, not by the whole
ROC curve: a trial that is best overall but not in its tail is missed
(bench/RESULTS.md, Deployment pools).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import hypergeom

from study.selection.paired import ALPHA, critical_z
from study.selection.pool import ALPHA as POOL_ALPHA

TAIL_FPR = 0.01  # the operating point: the share of held-out normals above the threshold
BOOTSTRAP = 400  # paired bootstrap draws for the top set
SEED = 0  # the bootstrap's seed: a study's verdict is reproducible


@dataclass(frozen=True)
class TailVerdict:
    """What the pool's tail says about the compared trials."""

    excess: dict[str, float]  # per trial: pool share above its threshold minus the normals' r / (m + 1)
    pvalue: float  # smallest per-trial exceedance p-value, Bonferroni-corrected over the trials
    fires: bool  # the pool holds more images in some trial's tail than normals would put there
    leader: str
    top: tuple[str, ...]  # trials not separated from the leader (leader first)
    rank: int  # r: the threshold is each trial's r-th highest held-out normal score
    n_normal: int
    n_pool: int


def tail_rank(n_normal: int, fpr: float = TAIL_FPR) -> int:
    """r such that r / (m + 1) is the nearest attainable share to `fpr` (at least 1)."""
    return max(1, round(fpr * (n_normal + 1)))


def exceedance_pvalue(normal: np.ndarray, pool: np.ndarray, r: int) -> float:
    """P(count >= observed) of pool images above the r-th highest normal, if pool and normals are exchangeable."""
    m, n = len(normal), len(pool)
    x = int((pool > np.sort(normal)[-r]).sum())
    return float(hypergeom.cdf(r - 1, m + n, m, x + r - 1))


def excess(neg: np.ndarray, pos: np.ndarray, r: int) -> np.ndarray:
    """Per trial (rows): pool share above the r-th highest normal score, minus r / (m + 1)."""
    thresholds = np.sort(neg, axis=1)[:, -r][:, None]
    return (pos > thresholds).mean(axis=1) - r / (neg.shape[1] + 1)


def _bootstrap_sd(neg: np.ndarray, pos: np.ndarray, r: int, lead: int) -> np.ndarray:
    """Paired-bootstrap sd of excess[lead] - excess[i] for every i (images resampled jointly across trials)."""
    rng = np.random.default_rng(SEED)
    m, n = neg.shape[1], pos.shape[1]
    diffs = np.empty((BOOTSTRAP, len(neg)))
    for b in range(BOOTSTRAP):
        e = excess(neg[:, rng.integers(0, m, m)], pos[:, rng.integers(0, n, n)], r)
        diffs[b] = e[lead] - e
    return diffs.std(axis=0, ddof=1)


def tail_verdict(
    ids: list[str],
    neg: np.ndarray,
    pos: np.ndarray,
    *,
    n_trials: int,
    alpha: float = POOL_ALPHA,
    pair_alpha: float = ALPHA,
) -> TailVerdict:
    """Excess, exceedance test and top set of k trials on shared images (neg: [k, m], pos: [k, n], no NaN).

    `n_trials`: the study's finished trials, which the Bonferroni margins count; `alpha`: the
    exceedance test's study-wide rate; `pair_alpha`: the top set's, as for U (paired.py).
    """
    r = tail_rank(neg.shape[1])
    e = excess(neg, pos, r)
    k = max(n_trials, len(ids))
    p = min(1.0, k * min(exceedance_pvalue(neg[i], pos[i], r) for i in range(len(ids))))
    lead = int(np.argmax(e))
    sd = _bootstrap_sd(neg, pos, r, lead)
    z = critical_z(k, pair_alpha)
    within = [i for i in range(len(ids)) if i == lead or e[lead] - e[i] <= z * sd[i]]
    return TailVerdict(
        excess={t: float(v) for t, v in zip(ids, e, strict=True)},
        pvalue=p,
        fires=bool(p <= alpha),
        leader=ids[lead],
        top=tuple(ids[i] for i in sorted(within, key=lambda i: -e[i])),
        rank=r,
        n_normal=neg.shape[1],
        n_pool=pos.shape[1],
    )


def tail_line(v: TailVerdict) -> str:
    """One line: what the pool's tail resolved."""
    head = (
        f"pool tail (above each trial's {v.rank}-th highest of {v.n_normal} held-out normals): "
        f"anomalies {'present' if v.fires else 'not shown'} (p {v.pvalue:.3g})"
    )
    if not v.fires:
        return f"{head}; the tail separates no trials"
    if len(v.top) > 1:
        return f"{head}; the leader ties with {len(v.top) - 1} other trial(s): the pick among them is a tie-break"
    return f"{head}; the tail separates the leader from every other compared trial"
