"""The noise prior's own uncertainty, integrated: limma's moderation without plugging in (d0, s0²).

limma fits the variance prior (d0, s0²) once and treats it as known, which is
right for thousands of genes. A study has 10–30 settings per optimizer, each
with 1–2 degrees of freedom: the fitted d0 swings from 2 to ∞ between replicate
studies, and a plugged-in d0 that happens to be large shrinks a noisy setting
to the quiet ones' noise (false verdicts), while one that happens to be small
makes everything undetectable. Here (d0, s0²) get a posterior on a grid instead:

- d0 through the shrinkage weight B = d0 / (d0 + d̄) (d̄ the settings' own df),
  uniform on (0, 1): the uniform shrinkage prior (Strawderman; Daniels 1999),
  scale-free and proper, so few settings leave B uncertain and many settings
  pin it down;
- log s0² flat, on a grid around each d0's moment estimate;
- wild settings: each setting is, with probability ε, far noisier than the
  prior (prior scale k x s0², one k in {4, 16, 64} for the group's wild
  settings), ε uniform on a grid up to 1/4.
  A near-divergent setting whose 2 seeds agree by chance looks quiet (a 1-df
  variance is below a fifth of its truth one time in three), and shrinking it
  to its quiet neighbours' noise made its chance agreement a verdict in 7-11%
  of null studies. No estimate can tell it from a quiet one, so every setting
  carries the chance of being one, by its own spread's evidence;
- unstable amplifications: instability belongs to an amplification (λ, form,
  optimizer) more than to a loss metric, so the settings that differ only in
  their metric share it: with probability η the amplification is unstable and
  each of its settings wild with probability q (η on {0, 1/8, 1/4, 1/2}, q on
  {1/2, 1}), else each is wild with probability ε. Four such settings at 3
  seeds, sd 5x, gave a verdict in 5.3% of null studies with ε alone (the ones
  whose seeds agreed were read as quiet), and 3.1% once the metric beside them,
  whose seeds did not agree, could say otherwise;
- the likelihood of each setting's s² is the scaled F(d, d0) of limma's model,
  mixed over quiet and wild.

Given a grid point and a setting's component (quiet or wild), its variance has
limma's posterior (d0 s0² + d s²) / (d0 + d) on d0 + d df, so a contrast is a
t at each point and pair of components, and its p-value and quantiles are the
weighted mixture (`Mixture`, with near-equal t laws pooled). Calibrated by
simulation in tests/test_stats.py and bench/stats_calibration.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from scipy.special import digamma, stdtr, stdtrit

from reports.stats.power import detectable_noncentrality

SHRINK_NODES = 16  # midpoints of B in (0, 1)
SCALE_NODES = 17  # log s0² points per d0
SCALE_SPAN = 2.5  # ± natural-log units around each d0's moment estimate of log s0²
WILD = np.array([4.0, 16.0, 64.0])  # k grid: the wild settings' prior scale, k x s0² (their sd 2x, 4x, 8x)
SHARES = np.array([0.0, 1 / 32, 1 / 16, 1 / 8, 1 / 4])  # ε grid: the share of wild settings
# (η, q) grid: the share of unstable amplifications, and of wild settings within one; η uniform on
# {0, 1/8, 1/4, 1/2} and q on {1/2, 1} (η = 0 has no q: one point with both q's weight)
UNSTABLE = np.array([(0.0, 1.0), *((eta, q) for eta in (1 / 8, 1 / 4, 1 / 2) for q in (1 / 2, 1.0))])
UNSTABLE_PRIOR = np.where(UNSTABLE[:, 0] == 0, 2.0, 1.0) / 8
KEEP = 1e-3  # grid points under KEEP x the largest weight are dropped (together a few % at most)


@dataclass(frozen=True)
class NoisePosterior:
    """Grid points (d0, s0², ε, k, η, q) of one group's variance prior with their posterior weights (summing
    to 1). A setting's variance components depend on (d0, s0², k) only: `base` maps each point to its
    (d0, s0², k) point, so the t laws of a contrast are built once per base point."""

    d0: np.ndarray
    s02: np.ndarray
    eps: np.ndarray
    wild: np.ndarray
    eta: np.ndarray  # the share of unstable amplifications
    q: np.ndarray  # the share of wild settings in an unstable amplification
    w: np.ndarray

    @classmethod
    def known(cls, variance: float, df: float) -> NoisePosterior:
        """A single noise level (the pooled one) on `df` degrees of freedom: no moderation."""
        one, zero = np.array([1.0]), np.array([0.0])
        return cls(np.array([df]), np.array([variance]), zero, one, zero, one, one)

    @cached_property
    def base(self) -> tuple[np.ndarray, np.ndarray]:
        """(first point of each base point, each point's base point)."""
        _, first, where = np.unique(
            np.stack([self.d0, self.s02, self.wild]), axis=1, return_index=True, return_inverse=True
        )
        return first, where.reshape(-1)

    def median_d0(self) -> float:
        order = np.argsort(self.d0)
        return float(self.d0[order][np.searchsorted(np.cumsum(self.w[order]), 0.5)])

    def posterior(self, s2: np.ndarray, df: np.ndarray, cluster: np.ndarray) -> SettingNoise:
        """Each setting's variance law (`SettingNoise`, settings first): limma's posterior under either
        prior scale at each base point, and the chance of each at each point, which reads the setting's
        own spread and its amplification's (`cluster`)."""
        first, where = self.base
        s2, df = np.asarray(s2, float)[:, None, None], np.asarray(df, float)[:, None, None]
        scale = np.stack([self.s02[first], self.s02[first] * self.wild[first]], axis=-1)[None]  # 1 x base x 2
        d0 = self.d0[first][None, :, None]
        var = (d0 * scale + df * s2) / (d0 + df)
        seen = np.maximum(s2, 1e-5 * scale)  # limma's offset away from zero, as in `fit_posterior`
        evidence = np.where(df > 1e-6, _log_f(np.log(seen), np.maximum(df, 1e-6), d0, np.log(scale)), 0.0)
        evidence = evidence[:, where]  # settings x points x 2
        wild = _wild_given_cluster(evidence[..., 0], evidence[..., 1], self.eps, self.eta, self.q, cluster)
        return SettingNoise(var, np.stack([1 - wild, wild], axis=-1), (d0 + df)[..., 0], where)


def _shares(log_quiet: np.ndarray, log_wild: np.ndarray, share: np.ndarray) -> np.ndarray:
    """log of a setting's density when it is wild with probability `share`."""
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log1p(-share) + log_quiet, np.log(share) + log_wild)


def _wild_given_cluster(
    log_quiet: np.ndarray,
    log_wild: np.ndarray,
    eps: np.ndarray,
    eta: np.ndarray,
    q: np.ndarray,
    cluster: np.ndarray,
) -> np.ndarray:
    """P(wild) of each setting (settings x points) given its own spread and its cluster's: the cluster is
    unstable with probability η (its settings wild with probability q), else its settings are wild with
    probability ε."""
    stable, unstable = _shares(log_quiet, log_wild, eps), _shares(log_quiet, log_wild, q)
    one_hot = _one_hot(cluster)  # settings x clusters
    with np.errstate(divide="ignore"):
        odds = one_hot.T @ (unstable - stable) + np.log(eta) - np.log1p(-eta)  # clusters x points
        odds[one_hot.sum(axis=0) < 2] = -np.inf  # a lone setting shares nothing: its wild chance is ε
        p_unstable = one_hot @ _expit(odds)
        return (1 - p_unstable) * np.exp(np.log(eps) + log_wild - stable) + p_unstable * np.exp(
            np.log(q) + log_wild - unstable
        )


def _one_hot(cluster: np.ndarray) -> np.ndarray:
    """settings x clusters indicator of integer or string cluster labels."""
    codes = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
    return np.eye(int(codes.max()) + 1 if len(codes) else 0)[codes]


def _expit(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _log_f(log_s2: np.ndarray, df: np.ndarray, d0: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """log density of a variance estimate s2 on df under limma's prior (d0, scale): scaled F(df, d0).
    In logs: a study of identical seeds has variances near 1e-300."""
    return stats.f.logpdf(np.exp(log_s2 - log_scale), df, d0) - log_scale


def fit_posterior(s2: np.ndarray, df: np.ndarray, cluster: np.ndarray | None = None) -> NoisePosterior:
    """The (d0, s0², ε, k, η, q) posterior of variances `s2` on `df` degrees of freedom (settings with df > 0).

    Each setting is quiet (limma's prior) or wild: its prior scale k x s0², one k for the group's
    wild settings, so the wild settings whose seeds show it tell how wild the ones whose seeds agreed
    by chance may be. Settings of one amplification (`cluster`: the settings that differ only in
    their loss metric; each its own when None) share its stability: with probability η the
    amplification is unstable and each of its settings wild with probability q, else each is wild
    with probability ε. A lone setting (no other metric of its amplification) is wild with probability
    ε: with nothing to share, η and q would only move its prior share of wild settings.
    """
    s2, df = np.asarray(s2, float), np.asarray(df, float)
    cluster = np.arange(len(s2)) if cluster is None else np.asarray(cluster)
    median = float(np.median(s2))
    s2 = np.maximum(s2, 1e-5 * median if median > 0 else 1e-300)  # limma's offset away from zero
    dbar = float(np.median(df))
    b = (np.arange(SHRINK_NODES) + 0.5) / SHRINK_NODES
    d0 = b / (1 - b) * dbar
    # moment estimate of log s0² given d0 (limma's fitFDist relation), the centre of that d0's grid
    z = float(np.mean(np.log(s2) - digamma(df / 2) + np.log(df / 2)))
    centre = z + digamma(d0 / 2) - np.log(d0 / 2)
    offsets = np.linspace(-SCALE_SPAN, SCALE_SPAN, SCALE_NODES)
    log_s02 = centre[:, None] + offsets[None, :]  # d0 x scale
    log_scale = log_s02[..., None, None] + np.log(np.r_[1.0, WILD])[:, None]  # d0 x scale x (1 + k) x 1
    each = _log_f(np.log(s2), df, d0[:, None, None, None], log_scale)  # d0 x scale x (1 + k) x settings
    quiet, wild = each[:, :, None, :1], each[:, :, None, 1:]  # d0 x scale x 1 x 1 x settings, x 1 x k x
    one_hot = _one_hot(cluster)  # settings x clusters
    stable = _shares(quiet, wild, SHARES[:, None, None]) @ one_hot  # d0 x scale x ε x k x clusters
    shared = one_hot.sum(axis=0) >= 2  # a lone setting's instability is its own: ε says it
    loglik = []
    for eta, q in UNSTABLE:
        unstable = _shares(quiet, wild, np.array(q)) @ one_hot  # d0 x scale x 1 x k x clusters
        with np.errstate(divide="ignore"):
            mixed = np.logaddexp(np.log1p(-eta) + stable, np.log(eta) + unstable)
        loglik.append(np.where(shared, mixed, stable).sum(axis=-1))
    loglik = np.stack(loglik, axis=-1) + np.log(UNSTABLE_PRIOR)  # d0 x scale x ε x k x (η, q)
    loglik -= loglik.max()
    w = np.exp(loglik)
    keep = w > KEEP * w.max()

    def along(x: np.ndarray, axis: int) -> np.ndarray:
        """The values of the grid axes `axis`.. (as many as x has) at the kept points."""
        others = [i for i in range(w.ndim) if not axis <= i < axis + x.ndim]
        return np.broadcast_to(np.expand_dims(x, others), w.shape)[keep]

    return NoisePosterior(
        along(d0, 0),
        along(np.exp(log_s02), 0),
        along(SHARES, 2),
        along(WILD, 3),
        along(UNSTABLE[:, 0], 4),
        along(UNSTABLE[:, 1], 4),
        w[keep] / w[keep].sum(),
    )


@dataclass(frozen=True)
class SettingNoise:
    """Variance laws over a group's grid (settings first, or one setting): the components' variances
    (base points x (quiet, wild)) and df (base points), each component's probability at each point
    (points x 2), and each point's base point."""

    var: np.ndarray
    prob: np.ndarray
    df: np.ndarray
    where: np.ndarray

    def __getitem__(self, row: int) -> SettingNoise:
        return SettingNoise(self.var[row], self.prob[row], self.df[row], self.where)

    def mean(self, w: np.ndarray) -> float:
        return float(w @ (self.var[self.where] * self.prob).sum(axis=1))

    def weights(self, w: np.ndarray) -> np.ndarray:
        """base points x 2: the posterior weight of each component at each base point."""
        return _by_base(w[:, None] * self.prob, self.where, len(self.df))

    def joint(self, other: SettingNoise, w: np.ndarray) -> np.ndarray:
        """base points x 2 x 2: the weight of each pair of this and `other`'s components (one group's grid:
        given a point, the two settings' components are independent)."""
        return _by_base(
            w[:, None, None] * self.prob[:, :, None] * other.prob[:, None, :], self.where, len(self.df)
        )


def _by_base(weights: np.ndarray, where: np.ndarray, n: int) -> np.ndarray:
    """Sum `weights` (points x ...) over the points of each base point: base points x ..."""
    flat = weights.reshape(len(where), -1)
    cols = flat.shape[1]
    key = (where[:, None] * cols + np.arange(cols)[None, :]).ravel()
    return np.bincount(key, weights=flat.ravel(), minlength=n * cols).reshape((n, *weights.shape[1:]))


def group_posteriors(
    rss: np.ndarray,
    own_df: np.ndarray,
    scale: float,
    df_resid: float,
    group: np.ndarray,
    cluster: np.ndarray,
    unstable: np.ndarray,
) -> tuple[list[NoisePosterior], list[SettingNoise]]:
    """Each group's noise posterior, and each setting's variance law at the group's grid points.

    Each optimizer (`group`) gets its own prior: SGD and Adam settings differ in noise as a rule,
    and one prior for both shrinks the noisy optimizer's variances toward the quiet one's. A group
    with fewer than 3 settings with a variance of their own pools the study's noise (`scale`). An
    `unstable` setting (it lost seeds to divergence or collapse) is taken as noisy as its group's
    noisiest at every grid point and component, since the seeds it lost are the evidence its spread would have shown.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(own_df > 1e-6, rss / own_df, 0.0)
    posts: list[NoisePosterior] = []
    noise: list[SettingNoise | None] = [None] * len(rss)
    for g in range(int(group.max()) + 1):
        mine, own = group == g, (group == g) & (own_df > 1e-6)
        post = (
            fit_posterior(s2[own], own_df[own], cluster[own])
            if own.sum() >= 3
            else NoisePosterior.known(scale, df_resid)
        )
        posts.append(post)
        idx = np.flatnonzero(mine)
        laws = post.posterior(s2[idx], own_df[idx], cluster[idx])
        var = np.maximum(laws.var, s2[idx][:, None, None])  # seeds that visibly disagree keep that noise
        if (mine & unstable).any():
            var[unstable[idx]] = var.max(axis=0)
        laws = SettingNoise(var, laws.prob, laws.df, laws.where)
        for row, i in enumerate(idx):
            noise[i] = laws[row]
    return posts, noise


@dataclass(frozen=True)
class Mixture:
    """A contrast's null law: weights of t laws with scale `se` and `df` (one per grid point)."""

    w: np.ndarray
    se: np.ndarray
    df: np.ndarray

    def tail(self, h: float) -> float:
        """P(|estimate| > h) with no true effect: the two-sided p-value of an estimate of size h."""
        if not np.all(self.se > 0):
            return math.nan
        return float(self.w @ (2 * stdtr(self.df, -abs(h) / self.se)))

    def quantile(self, level: float) -> float:
        """h with tail(h) = level: the half-width of the (1 - level) interval."""
        if not np.all(self.se > 0):
            return 0.0
        each = self.se * stdtrit(self.df, 1 - level / 2)  # the mixture's quantile lies among its parts'
        low, high = float(each.min()), float(each.max())
        if high - low <= 1e-9 * high:
            return high
        return brentq(lambda h: self.tail(h) - level, low, high, xtol=1e-7 * high, rtol=1e-7)

    def effective(self, level: float, reference: float = 0.05) -> tuple[float, float]:
        """(se, df) of the single t law with this mixture's quantiles at `level` and `reference`."""
        far, near = self.quantile(level), self.quantile(reference)
        if near <= 0:
            return 0.0, math.inf
        ratio = far / near
        gap = lambda d: stdtrit(d, 1 - level / 2) / stdtrit(d, 1 - reference / 2) - ratio  # noqa: E731
        if gap(1e6) >= 0:
            df = math.inf
        elif gap(0.2) <= 0:
            df = 0.2
        else:
            df = brentq(gap, 0.2, 1e6, rtol=1e-8)
        return near / float(stdtrit(df, 1 - reference / 2)), df

    def detectable(self, level: float, power: float) -> float:
        """The effect detected with `power` at `level`: the assured noncentral t of the t law matching this
        mixture at `level` and 0.05 (`effective`). Measured: planted at the stated size, an effect is
        found in 80–81% of equal- and unequal-noise studies (the mixture's own plug-in power was
        met 56% of the time); docs/statistics.md."""
        se, df = self.effective(level)
        return float(detectable_noncentrality(np.array([df]), level, power)[0]) * se


def contrast_mixture(w: np.ndarray, parts: list[np.ndarray], dfs: list[np.ndarray | float]) -> Mixture:
    """The mixture of a contrast whose variance adds `parts` (each per grid point) on `dfs` (Satterthwaite)."""
    total = np.sum(parts, axis=0)
    denominator = sum(np.asarray(p) ** 2 / np.asarray(d) for p, d in zip(parts, dfs, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, total**2 / denominator, np.inf)
    return _merged(np.asarray(w, float), np.sqrt(total), np.minimum(df, 1e6))


SE_STEP, DF_STEP = 0.01, 0.1  # log-width of the bins `_merged` pools t laws in


def _merged(w: np.ndarray, se: np.ndarray, df: np.ndarray) -> Mixture:
    """The mixture with t laws of nearly equal (se, df) pooled (weighted means), so a contrast over
    hundreds of grid points and components costs tens of t laws: their tails differ by < 1%."""
    if len(w) <= 64 or not np.all(se > 0):
        return Mixture(w, se, df)
    se_bin = np.round(np.log(se) / SE_STEP).astype(np.int64)
    df_bin = np.round(np.log(df) / DF_STEP).astype(np.int64)  # df in [~0.2, 1e6]: bins in (-20, 140)
    _, where = np.unique((se_bin << 10) + df_bin, return_inverse=True)
    total = np.bincount(where, weights=w)
    pooled = lambda x: np.bincount(where, weights=w * x) / total  # noqa: E731
    return Mixture(total, np.exp(pooled(np.log(se))), np.exp(pooled(np.log(df))))
