"""Label-free selectors: rank a study's trials without anomaly labels.

Each trial logs its unlabelled AUROC (held-out normals against the unlabelled
pool: an affine image of its test AUROC, study/labelfree/unlabelled.py) and
per-family synthetic AUROCs (study/labelfree/trial_scores.py); a selector
turns those columns, across the study's trials, into one score per trial
(higher is better). The default, `unlabelled_tail`, uses the unlabelled
AUROC where the pool tells trials apart (paired DeLong), the pool's tail above
the held-out normals where only the tail shows anomalies (study/selection/tail.py),
and the synthetic families where the pool shows nothing. Aggregating the families' ranks rather than their AUROCs is
what makes several weak criteria robust (Goswami et al., ICLR 2023: trimmed
Borda over many criteria): one family that saturates or is fooled by a
degenerate model moves a trial by one rank, not by its raw value. Trials whose
`lamp.status` is not `finished` (diverged, failed, collapsed, ...) are
excluded before ranking, so a collapsed model cannot be picked.

Used by `lamp-study register --by` (study/serving/registry.py), the report
(reports/sections/labelfree.py) and the regret benchmark (bench/label_free_regret.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import beta, spearmanr

from study.core.vocab import FAMILY_NAMES, MEAN_METRIC, UNLABELLED_METRIC, TrialStatus, family_metric
from study.selection.paired import PoolVerdict, ScoreLoader, compare, stack_scores
from study.selection.pool import pool_informative
from study.selection.tail import TailVerdict, tail_verdict

# Per-trial label-free metrics and whether higher is better.
TRIAL_METRICS: dict[str, bool] = {
    "synthetic_auroc": True,
    "synthetic_auroc_tuned": True,
    "alignment_loss": False,
    "alignment_loss_tuned": False,
    MEAN_METRIC: True,
    UNLABELLED_METRIC: True,
    **{family_metric(name): True for name in FAMILY_NAMES},
}
CENTRALITY_WEIGHT = 0.5  # share of the centrality rank in `borda_centrality`
TAIL_SHARE = 0.02  # share of the pool `tail_consensus` takes as pseudo-anomalies
TAIL_CANDIDATES = 32  # trials with the highest U whose pool tails `unlabelled_tail` compares
UNLABELLED_WEIGHT = 0.5  # share of the unlabelled-AUROC rank in `borda_unlabelled`

Frame = pd.DataFrame  # one row per trial (index: trial id), a `status` column and metric columns
PoolScores = pd.DataFrame  # optional: rows = trials, columns = unlabelled test-pool samples (anomaly scores)
# what a selector's second argument is: pool scores (needs_pool), a ScoreLoader (needs_scores) or None
Second = PoolScores | ScoreLoader | None


@dataclass(frozen=True)
class Selector:
    """A way to score trials without labels; higher `fn` output is better, NaN = not rankable."""

    name: str
    fn: Callable[[Frame, PoolScores | None], pd.Series]
    what: str
    needs_pool: bool = False
    needs_scores: bool = False  # takes a ScoreLoader (per-trial held-out normal and pool scores) as `pool`


def family_columns(frame: Frame) -> list[str]:
    """The per-family synthetic AUROC columns the frame holds, in registry order.

    Every family counts, even one the model-free reference cannot see (e.g. `mix`
    on Fashion-MNIST): leaving those out per study made the regret benchmark
    worse (bench/RESULTS.md); the trimming already drops a trial's outlier family.
    """
    return [c for c in (family_metric(n) for n in FAMILY_NAMES) if c in frame and frame[c].notna().any()]


def rankable(frame: Frame) -> Frame:
    """Finished trials only: diverged, failed, collapsed or pruned trials are never picked."""
    return frame[frame["status"] == TrialStatus.FINISHED.value]


def _rank_matrix(frame: Frame) -> pd.DataFrame:
    """Per-family ranks scaled to (0, 1], 1 = best trial; NaN where a trial lacks the family."""
    cols = family_columns(frame)
    if not cols:
        raise ValueError(
            "selection: the trials carry no per-family synthetic AUROC (synthetic_auroc_<family>); "
            "run the study with label_free.enabled: true on this version of lamp-study"
        )
    return frame[cols].rank(ascending=True, pct=True)


def trimmed_borda(frame: Frame, pool: PoolScores | None = None) -> pd.Series:
    """Mean per-family rank after dropping each trial's best and worst family (when it has >= 4)."""
    ranks = _rank_matrix(frame).to_numpy(float)
    out = np.full(len(frame), np.nan)
    for i, row in enumerate(ranks):
        r = np.sort(row[np.isfinite(row)])
        if len(r) >= 4:
            r = r[1:-1]
        if len(r):
            out[i] = r.mean()
    return pd.Series(out, index=frame.index)


def robust_rank_aggregation(frame: Frame, pool: PoolScores | None = None) -> pd.Series:
    """Kolde et al. (2012): how unlikely a trial's best normalised ranks are under random ranking.

    For a trial with sorted normalised ranks u_(1) <= ... <= u_(m) (0 = best),
    rho = min_k P(Beta(k, m - k + 1) <= u_(k)); the score is -log10(rho), so higher is better.
    """
    ranks = 1.0 - _rank_matrix(frame).to_numpy(float) + 1.0 / max(len(frame), 1)
    out = np.full(len(frame), np.nan)
    for i, row in enumerate(ranks):
        u = np.sort(row[np.isfinite(row)])
        m = len(u)
        if m:
            k = np.arange(1, m + 1)
            rho = min(1.0, float(np.min(beta.cdf(u, k, m - k + 1))) * m)  # Bonferroni over k, as in the paper
            out[i] = -np.log10(max(rho, 1e-300))
    return pd.Series(out, index=frame.index)


def centrality(frame: Frame, pool: PoolScores | None) -> pd.Series:
    """Agreement of a trial's test-pool score ranks with the consensus (median rank over trials).

    Needs no labels: only each trial's anomaly scores on the unlabelled pool.
    """
    if pool is None:
        raise ValueError("selection: centrality needs the trials' anomaly scores on the unlabelled test pool")
    p = pool.reindex(frame.index)
    ranks = p.rank(axis=1, pct=True)
    consensus = ranks.median(axis=0).to_numpy(float)
    out = []
    for _, row in ranks.iterrows():
        v = row.to_numpy(float)
        ok = np.isfinite(v)
        out.append(float(spearmanr(v[ok], consensus[ok]).statistic) if ok.sum() >= 3 else np.nan)
    return pd.Series(out, index=frame.index)


def tail_consensus(frame: Frame, pool: PoolScores | None, share: float = TAIL_SHARE) -> pd.Series:
    """AUROC of a trial's pool scores for the pool images the trials jointly rank most anomalous.

    Pseudo-anomalies: the top `share` of the pool by the trials' mean rank. No
    held-out normals enter, so its noise is the pool's, not theirs; with a clean
    pool it is a centrality measure.
    """
    if pool is None:
        raise ValueError("selection: tail_consensus needs the trials' anomaly scores on the unlabelled pool")
    ranks = pool.reindex(frame.index).rank(axis=1, pct=True)
    consensus = ranks.mean(axis=0)
    flagged = (consensus >= consensus.quantile(1.0 - share)).to_numpy()
    if flagged.all() or not flagged.any():
        return pd.Series(np.nan, index=frame.index)
    r = ranks.to_numpy(float)
    return pd.Series(
        np.nanmean(r[:, flagged], axis=1) - np.nanmean(r[:, ~flagged], axis=1), index=frame.index
    )


def borda_centrality(frame: Frame, pool: PoolScores | None) -> pd.Series:
    """Trimmed Borda with a model-centrality term: a weighted mean of the two as ranks in (0, 1]."""
    b = trimmed_borda(frame).rank(pct=True)
    c = centrality(frame, pool).rank(pct=True)
    return (1 - CENTRALITY_WEIGHT) * b + CENTRALITY_WEIGHT * c


def unlabelled_informative(frame: Frame) -> bool:
    """Whether the study's pool holds anomalies its trials see (study.selection.pool.pool_informative)."""
    if (
        UNLABELLED_METRIC not in frame
        or "unlabelled_pool" not in frame
        or frame["unlabelled_pool"].isna().all()
    ):
        return False  # trials logged before the unlabelled AUROC existed
    return pool_informative(
        frame[UNLABELLED_METRIC].to_numpy(float),
        int(frame["unlabelled_normals"].min()),
        int(frame["unlabelled_pool"].min()),
    )


def unlabelled_or_borda(frame: Frame, pool: PoolScores | None = None) -> pd.Series:
    """The unlabelled AUROC where the pool holds anomalies the trials see; trimmed Borda where it does not.

    The unlabelled AUROC ranks trials as their test AUROC does (an affine map
    of it), semantic anomalies included; with an anomaly-free pool it is noise,
    and the synthetic families are all that is left.
    """
    if unlabelled_informative(frame):
        return frame[UNLABELLED_METRIC].astype(float)
    return trimmed_borda(frame)


def fallback(frame: Frame, pool: PoolScores | None = None) -> pd.Series:
    """What the default ranks by when the pool separates no trials: trimmed Borda over the families."""
    return trimmed_borda(frame)


def pool_verdict(frame: Frame, load: ScoreLoader | None) -> PoolVerdict | None:
    """The paired comparison of the best trials by unlabelled AUROC (study/selection/paired.py), if scores exist."""
    if load is None or UNLABELLED_METRIC not in frame:
        return None
    u = frame[UNLABELLED_METRIC].astype(float).dropna()
    if len(u) < 2:
        return None
    ordered = [str(i) for i in sorted(u.index, key=lambda i: (-u[i], str(i)))]
    return compare(ordered, load, n_trials=len(u))


def pool_decision(frame: Frame, load: ScoreLoader | None) -> tuple[PoolVerdict | None, str]:
    """(verdict, how the default picks): `separated` (the pool tells trials apart), `anomalies` (it holds
    anomalies but separates none: the leader is a tie-break), `fallback` (neither) or `unpaired` (no scores)."""
    verdict = pool_verdict(frame, load)
    if verdict is None:
        return None, "unpaired"
    if verdict.separated:
        return verdict, "separated"
    return verdict, "anomalies" if unlabelled_informative(frame) else "fallback"


def unlabelled_paired(frame: Frame, load: ScoreLoader | None = None, *, tie_break: bool = False) -> pd.Series:
    """The unlabelled AUROC's leader where the pool separates trials (paired DeLong) or holds anomalies; else the fallback.

    Where the leader is not separated from the runners-up (the top set holds
    several trials), the pick is still the leader — the point estimate — and
    the report says the pick is a tie; with `tie_break` the fallback's order
    decides within the top set instead. Without per-trial scores it is
    `unlabelled_or_borda`.
    """
    verdict, mode = pool_decision(frame, load)
    if verdict is None:
        return unlabelled_or_borda(frame)
    if mode == "fallback":
        return fallback(frame)
    out = frame[UNLABELLED_METRIC].astype(float).rank(pct=True)
    top = list(verdict.top)
    inside = fallback(frame.loc[top]).rank(pct=True) if tie_break and len(top) > 1 else None
    for t in top:
        out[t] = 2.0 + (inside[t] if inside is not None else verdict.aurocs[t])
    return out


def tail_decision(frame: Frame, load: ScoreLoader | None) -> TailVerdict | None:
    """The pool-tail verdict (study/selection/tail.py) of the TAIL_CANDIDATES best trials by U, if scores exist."""
    if load is None or UNLABELLED_METRIC not in frame:
        return None
    u = frame[UNLABELLED_METRIC].astype(float).dropna()
    ordered = [str(i) for i in sorted(u.index, key=lambda i: (-u[i], str(i)))][:TAIL_CANDIDATES]
    stacked = stack_scores(ordered, load)
    return None if stacked is None else tail_verdict(*stacked, n_trials=len(u))


def unlabelled_tail(frame: Frame, load: ScoreLoader | None = None) -> pd.Series:
    """As `unlabelled_paired` where the pool separates trials by U; else the pool tail's excess where the
    tail shows anomalies (leader first, the report says when it ties); else the fallback.

    Trials outside the compared ones rank below them.
    """
    verdict, mode = pool_decision(frame, load)
    if verdict is None or mode == "separated":
        return unlabelled_paired(frame, load)
    tail = tail_decision(frame, load)
    if tail is None or not tail.fires:
        return fallback(frame)
    out = pd.Series(np.nan, index=frame.index)
    for t, e in tail.excess.items():
        out[t] = 1.0 + e
    return out


def borda_unlabelled(frame: Frame, pool: PoolScores | None = None) -> pd.Series:
    """Trimmed Borda with the unlabelled AUROC's rank: a weighted mean of the two as ranks in (0, 1]."""
    b = trimmed_borda(frame).rank(pct=True)
    if UNLABELLED_METRIC not in frame:
        return b
    u = frame[UNLABELLED_METRIC].astype(float).rank(pct=True)
    return (1 - UNLABELLED_WEIGHT) * b + UNLABELLED_WEIGHT * u


def _metric_selector(name: str, higher: bool) -> Callable[[Frame, PoolScores | None], pd.Series]:
    def fn(frame: Frame, pool: PoolScores | None = None) -> pd.Series:
        if name not in frame:
            return pd.Series(np.nan, index=frame.index)
        values = frame[name].astype(float)
        return values if higher else -values

    return fn


SELECTORS: dict[str, Selector] = {
    "borda": Selector("borda", trimmed_borda, "trimmed Borda over the per-family synthetic AUROC ranks"),
    "rra": Selector("rra", robust_rank_aggregation, "robust rank aggregation over the per-family ranks"),
    "borda_centrality": Selector(
        "borda_centrality", borda_centrality, "trimmed Borda plus model centrality on the test pool", True
    ),
    "unlabelled_or_borda": Selector(
        "unlabelled_or_borda",
        unlabelled_or_borda,
        "the unlabelled AUROC (held-out normals against the pool) if the pool holds anomalies, else trimmed Borda",
    ),
    "unlabelled_paired": Selector(
        "unlabelled_paired",
        unlabelled_paired,
        "the unlabelled AUROC's leader if the pool separates the trials (paired DeLong), else trimmed Borda",
        needs_scores=True,
    ),
    "unlabelled_paired_tiebreak": Selector(
        "unlabelled_paired_tiebreak",
        lambda frame, load=None: unlabelled_paired(frame, load, tie_break=True),
        "as unlabelled_paired, but trimmed Borda picks within the top set the pool cannot separate",
        needs_scores=True,
    ),
    "unlabelled_tail": Selector(
        "unlabelled_tail",
        unlabelled_tail,
        "the unlabelled AUROC's leader if the pool separates the trials, else the pool tail's excess "
        "above each trial's top 1% of held-out normals if the tail shows anomalies, else trimmed Borda",
        needs_scores=True,
    ),
    "borda_unlabelled": Selector(
        "borda_unlabelled", borda_unlabelled, "trimmed Borda plus the unlabelled AUROC's rank"
    ),
    "tail_consensus": Selector(
        "tail_consensus",
        tail_consensus,
        "how high the trial ranks the pool images all trials rank highest",
        True,
    ),
    "centrality": Selector(
        "centrality", centrality, "agreement of the trial's test-pool ranking with the consensus", True
    ),
    **{
        name: Selector(name, _metric_selector(name, higher), f"the per-trial metric {name}")
        for name, higher in TRIAL_METRICS.items()
    },
}
# Better than `unlabelled_paired` on both benchmarks: on test-split pools (bench/label_free_regret.py, worst
# regret 0.0069 against 0.022) and on mostly-normal deployment pools (bench/label_free_pools.py, where U
# separates nothing and the tail still carries the real anomalies); identical where the pool is clean.
DEFAULT_SELECTOR = "unlabelled_tail"


def get_selector(name: str) -> Selector:
    """Look up a selector; the error lists what exists."""
    if name not in SELECTORS:
        raise KeyError(f"unknown label-free selector {name!r}; available: {', '.join(SELECTORS)}")
    return SELECTORS[name]


def selector_scores(frame: Frame, name: str = DEFAULT_SELECTOR, pool: Second = None) -> pd.Series:
    """Score of every finished trial under selector `name` (higher is better; NaN = not rankable)."""
    done = rankable(frame)
    if done.empty:
        return pd.Series(dtype=float)
    return get_selector(name).fn(done, pool)


def pick(frame: Frame, name: str = DEFAULT_SELECTOR, pool: Second = None) -> str | None:
    """Trial id the selector picks (ties: the first id in sorted order), or None when nothing is rankable."""
    s = selector_scores(frame, name, pool).dropna()
    if s.empty:
        return None
    best = s.max()
    return str(sorted(str(i) for i in s.index[s == best])[0])
