"""Which trials does the unlabelled pool tell apart? Paired DeLong tests between trials, and what the pool can tell.

Every trial scores the same held-out normals N and the same pool P, so the
difference of two trials' unlabelled AUROCs U = pi * AUROC + (1 - pi) / 2 has
DeLong's paired variance (study/selection/delong.py), far below either U's.
A difference pi * (AUROC_i - AUROC_j) shrinks with the anomaly share pi while
the noise does not, so on a mostly-normal pool the question is not "does the
pool hold anomalies" but "does it separate these trials".

`compare` answers it with one critical value for every pair of the study's
trials (Bonferroni over the n (n - 1) ordered pairs, so with probability
>= 1 - alpha no pair of equally good trials is called apart, whichever pairs
are looked at):

- the top set: the candidates (the k best by U) whose U is within the critical
  difference of the leader's. It holds the trial of best expected U with
  probability >= 1 - alpha (Gupta's subset selection, 1965);
- `separated`: some candidate, or the study's lowest-U trial, is outside the
  top set. With an anomaly-free pool every expected U is 1/2, so this is a
  false alarm with probability <= alpha.

It also bounds the anomaly share: AUROC <= 1 gives pi >= |2U - 1|, taken at a
one-sided lower confidence bound of the most departing candidate's U, and says
how many more pool images or held-out normals would resolve the leader from
the runner-up (each half of DeLong's variance scales as 1 / its count).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from study.selection.delong import DeLong, delong

ALPHA = 0.05  # study-wide error rate of the pair tests and of the anomaly-share bound
CANDIDATES = 8  # trials with the highest U whose scores are loaded and compared

# trial id -> (held-out normal scores, pool scores), or None when the trial kept none
ScoreLoader = Callable[[str], "tuple[np.ndarray, np.ndarray] | None"]


@dataclass(frozen=True)
class PoolVerdict:
    """What the pool says about the study's best trials."""

    leader: str  # the compared trial of highest U
    top: tuple[str, ...]  # candidates not separated from the leader (leader first)
    separated: bool  # the pool tells some of the study's trials apart
    n_compared: int  # candidates compared (the top set may extend past them when all are in it)
    n_trials: int  # finished trials the critical value accounts for
    n_normal: int
    n_pool: int
    critical_z: float
    resolvable: float  # smallest U difference from the leader called apart at this size (runner-up's pair)
    gap: float  # leader's U minus the runner-up's
    pool_factor: float  # pool images x this would resolve leader and runner-up (inf: pool alone cannot)
    normal_factor: float  # held-out normals x this would (inf: normals alone cannot)
    share_lower: float  # lower confidence bound on the pool's anomaly share
    aurocs: dict[str, float]  # U of every compared trial, on the shared images


def critical_z(n_trials: int, alpha: float = ALPHA) -> float:
    """One critical value for every ordered pair of `n_trials` trials (Bonferroni)."""
    pairs = max(1, n_trials * (n_trials - 1))
    return float(norm.ppf(1.0 - alpha / pairs))


def compare(
    ordered: list[str], load: ScoreLoader, *, n_trials: int, k: int = CANDIDATES, alpha: float = ALPHA
) -> PoolVerdict | None:
    """Paired comparison of the k highest-U trials (and the lowest) of `ordered` (ids by U, descending).

    Scores of unequal length are cut to their shared prefix: a budgeted pool is
    a prefix of one seeded permutation, so a shorter pool is nested in a longer
    one. None when fewer than two trials kept scores.
    """
    stacked = stack_scores(list(dict.fromkeys([*ordered[:k], *ordered[-1:]])), load)
    if stacked is None:
        return None
    ids, neg, pos = stacked
    m, n = neg.shape[1], pos.shape[1]
    d = delong(neg, pos)
    z = critical_z(max(n_trials, len(ids)), alpha)
    lead = int(np.argmax(d.auroc))
    within = [i for i in range(len(ids)) if i == lead or d.auroc[lead] - d.auroc[i] <= z * d.diff_sd(lead, i)]
    top = sorted(within, key=lambda i: -d.auroc[i])
    candidates = [i for i in range(len(ids)) if ids[i] in ordered[:k]]
    separated = len(within) < len(ids)
    runner = top[1] if len(top) > 1 else _runner_up(d, lead)
    return PoolVerdict(
        leader=ids[lead],
        top=tuple(ids[i] for i in top if i in candidates or i == lead),
        separated=separated,
        n_compared=len(candidates),
        n_trials=max(n_trials, len(ids)),
        n_normal=m,
        n_pool=n,
        critical_z=z,
        resolvable=z * d.diff_sd(lead, runner) if runner is not None else math.nan,
        gap=float(d.auroc[lead] - d.auroc[runner]) if runner is not None else math.nan,
        pool_factor=_growth(d, lead, runner, z, pool=True),
        normal_factor=_growth(d, lead, runner, z, pool=False),
        share_lower=share_lower_bound(d, len(ids), alpha),
        aurocs={t: float(u) for t, u in zip(ids, d.auroc, strict=True)},
    )


def stack_scores(ids: list[str], load: ScoreLoader) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(ids kept, [k, m] held-out normal scores, [k, n] pool scores) of the trials that kept scores.

    Scores of unequal length are cut to their shared prefix (a budgeted pool is
    a prefix of one seeded permutation); NaN scores count as the most anomalous.
    None when fewer than two trials kept scores.
    """
    loaded = {t: s for t in ids if (s := load(t)) is not None}
    ids = [t for t in ids if t in loaded and len(loaded[t][0]) > 1 and len(loaded[t][1]) > 1]
    if len(ids) < 2:
        return None
    m = min(len(loaded[t][0]) for t in ids)
    n = min(len(loaded[t][1]) for t in ids)
    neg = np.stack([np.nan_to_num(loaded[t][0][:m], nan=np.inf) for t in ids])
    pos = np.stack([np.nan_to_num(loaded[t][1][:n], nan=np.inf) for t in ids])
    return ids, neg, pos


def _runner_up(d: DeLong, lead: int) -> int | None:
    others = [i for i in range(len(d.auroc)) if i != lead]
    return max(others, key=lambda i: d.auroc[i]) if others else None


def _growth(d: DeLong, lead: int, runner: int | None, z: float, *, pool: bool) -> float:
    """Factor on the pool's (or the normals') count at which the leader-runner gap reaches z sd.

    1 when it is resolved already; inf when growing that count alone cannot do
    it (the other half of the variance already exceeds the gap) or the gap is 0.
    """
    if runner is None:
        return math.nan
    gap = float(d.auroc[lead] - d.auroc[runner])
    if gap <= 0:
        return math.inf
    a, b = d.var_parts(lead, runner)  # per-image variance of the pool half, of the normal half
    budget = (gap / z) ** 2
    fixed, grow, count = (b / d.n_neg, a, d.n_pos) if pool else (a / d.n_pos, b, d.n_neg)
    if fixed + grow / count <= budget:
        return 1.0
    if fixed >= budget:
        return math.inf
    return float(grow / (budget - fixed) / count)


def share_lower_bound(d: DeLong, n_trials: int, alpha: float = ALPHA) -> float:
    """One-sided lower confidence bound on the pool's anomaly share, from pi >= |2U - 1|.

    Bonferroni over the trials looked at; 0 when no trial departs from 1/2 beyond its noise.
    """
    z = float(norm.ppf(1.0 - alpha / max(1, n_trials)))
    sd = np.sqrt(np.clip(np.diag(d.cov), 0.0, None))
    departure = np.abs(d.auroc - 0.5) - z * sd
    return float(min(1.0, max(0.0, 2.0 * departure.max())))


def verdict_line(v: PoolVerdict | None, mode: str) -> str:
    """One line for `register`'s output: what the pool resolved, and whether the pick is a tie (modes:
    study.selection.pool_decision)."""
    if v is None:
        return "no per-image pool scores: the unlabelled AUROCs were compared without pairing"
    head = f"{v.n_pool} pool images, {v.n_normal} held-out normals; anomaly share >= {v.share_lower:.1%}"
    if mode == "fallback":
        return f"{head}; the pool separates none of the trials: the pick is the fallback's, not the pool's"
    if len(v.top) > 1:
        return (
            f"{head}; the leader is indistinguishable from {len(v.top) - 1} other trial(s) "
            f"(gap {v.gap:.4f} < {v.resolvable:.4f} resolvable): the pick among them is a tie-break"
        )
    return f"{head}; the pool separates the leader from every other compared trial"
