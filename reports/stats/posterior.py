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
- the likelihood of each setting's s² is the scaled F(d, d0) of limma's model.

Given a grid point, a setting's variance has limma's posterior (d0 s0² + d s²) /
(d0 + d) on d0 + d df, so a contrast is a t at each point, and its p-value and
quantiles are the weighted mixture over the grid (`Mixture`). Calibrated by
simulation in tests/test_stats.py and bench/stats_calibration.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from scipy.special import digamma, nctdtr, stdtr, stdtrit

SHRINK_NODES = 16  # midpoints of B in (0, 1)
SCALE_NODES = 17  # log s0² points per d0
SCALE_SPAN = 2.5  # ± natural-log units around each d0's moment estimate of log s0²
MAX_SEEDS = 100  # beyond this a study cannot run it: "> 100 seeds"
KEEP = 1e-3  # grid points under KEEP x the largest weight are dropped (together a few % at most)


@dataclass(frozen=True)
class NoisePosterior:
    """Grid points (d0, s0²) of one group's variance prior with their posterior weights (summing to 1)."""

    d0: np.ndarray
    s02: np.ndarray
    w: np.ndarray

    @classmethod
    def known(cls, variance: float, df: float) -> NoisePosterior:
        """A single noise level (the pooled one) on `df` degrees of freedom: no moderation."""
        return cls(np.array([df]), np.array([variance]), np.array([1.0]))

    def median_d0(self) -> float:
        order = np.argsort(self.d0)
        return float(self.d0[order][np.searchsorted(np.cumsum(self.w[order]), 0.5)])

    def posterior(self, s2: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each setting's variance and df at each grid point: settings x points (limma's posterior)."""
        s2, df = np.asarray(s2, float)[:, None], np.asarray(df, float)[:, None]
        return (self.d0 * self.s02 + df * s2) / (self.d0 + df), self.d0 + df


def fit_posterior(s2: np.ndarray, df: np.ndarray) -> NoisePosterior:
    """The (d0, s0²) posterior of variances `s2` on `df` degrees of freedom (settings with df > 0)."""
    s2, df = np.asarray(s2, float), np.asarray(df, float)
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
    x = s2[None, None, :] / np.exp(log_s02)[..., None]
    loglik = stats.f.logpdf(x, df[None, None, :], d0[:, None, None]).sum(axis=-1) - len(s2) * log_s02
    loglik -= loglik.max()
    w = np.exp(loglik)
    keep = w > KEEP * w.max()
    d0_grid = np.broadcast_to(d0[:, None], w.shape)[keep]
    return NoisePosterior(d0_grid, np.exp(log_s02[keep]), w[keep] / w[keep].sum())


def group_posteriors(
    rss: np.ndarray,
    own_df: np.ndarray,
    scale: float,
    df_resid: float,
    group: np.ndarray,
    unstable: np.ndarray,
) -> tuple[list[NoisePosterior], list[np.ndarray], list[np.ndarray]]:
    """Each group's noise posterior, and each setting's variance and df at the group's grid points.

    Each optimizer (`group`) gets its own prior: SGD and Adam settings differ in noise as a rule,
    and one prior for both shrinks the noisy optimizer's variances toward the quiet one's. A group
    with fewer than 3 settings with a variance of their own pools the study's noise (`scale`). An
    `unstable` setting (it lost seeds to divergence or collapse) is taken as noisy as its group's
    noisiest at every grid point, since the seeds it lost are the evidence its spread would have shown.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(own_df > 1e-6, rss / own_df, 0.0)
    posts: list[NoisePosterior] = []
    pvar: list[np.ndarray] = [np.empty(0)] * len(rss)
    pdf: list[np.ndarray] = [np.empty(0)] * len(rss)
    for g in range(int(group.max()) + 1):
        mine, own = group == g, (group == g) & (own_df > 1e-6)
        post = (
            fit_posterior(s2[own], own_df[own]) if own.sum() >= 3 else NoisePosterior.known(scale, df_resid)
        )
        posts.append(post)
        idx = np.flatnonzero(mine)
        var, dfs = post.posterior(s2[idx], own_df[idx])
        var = np.maximum(var, s2[idx][:, None])  # seeds that visibly disagree keep that noise
        if (mine & unstable).any():
            var[unstable[idx]] = var.max(axis=0)
        for row, i in enumerate(idx):
            pvar[i], pdf[i] = var[row], dfs[row]
    return posts, pvar, pdf


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
        found in ~70% of equal-noise studies (the true 80% point is ~7 se; the mixture's own
        plug-in power said ~5.6 se and found 56%); docs/statistics.md."""
        se, df = self.effective(level)
        return float(detectable_noncentrality(np.array([df]), level, power)[0]) * se


def contrast_mixture(w: np.ndarray, parts: list[np.ndarray], dfs: list[np.ndarray | float]) -> Mixture:
    """The mixture of a contrast whose variance adds `parts` (each per grid point) on `dfs` (Satterthwaite)."""
    total = np.sum(parts, axis=0)
    denominator = sum(np.asarray(p) ** 2 / np.asarray(d) for p, d in zip(parts, dfs, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, total**2 / denominator, np.inf)
    return Mixture(np.asarray(w, float), np.sqrt(total), np.minimum(df, 1e6))


def t_power(noncentrality: np.ndarray | float, df: np.ndarray | float, alpha: float) -> np.ndarray:
    """Power of the two-sided t test at level `alpha` when the true effect is `noncentrality` SEs.

    The exact noncentral t (scipy.special's `nctdtr`: the distribution objects' wrapping costs
    more than the function, and the calibration simulations call this thousands of times).
    """
    crit = stdtrit(df, 1 - alpha / 2)
    # the far tail of a large noncentrality comes back NaN where it is 0
    return 1.0 - nctdtr(df, noncentrality, crit) + np.nan_to_num(nctdtr(df, noncentrality, -crit))


_NODES = (np.arange(24) + 0.5) / 24  # midpoint quantiles of the variance estimate's χ² law


def assured_power(
    noncentrality: np.ndarray | float,
    df: np.ndarray | float,
    alpha: float,
    var_df: np.ndarray | float | None = None,
) -> np.ndarray:
    """Power of the t test at `alpha` for an effect of `noncentrality` *estimated* SEs, averaged over
    what the true SE may be given its estimate on `var_df` df (the test's `df` unless told otherwise).

    Why: a report states "x would be detected with 80% power" from its own se estimate. The true se
    is se_hat·sqrt(var_df / χ²) (χ² on var_df df), so the power an effect of x really has is that
    average, 10–15 points under the plug-in noncentral t at the df of 2-seed studies (assurance,
    O'Hagan & Stevens 2001). An infinite var_df is the plug-in power.
    """
    nc, test_df = np.asarray(noncentrality, float), np.asarray(df, float)
    var_df = test_df if var_df is None else np.asarray(var_df, float)
    nc, test_df, var_df = np.broadcast_arrays(nc, test_df, var_df)
    finite = np.isfinite(var_df)
    ratio = np.ones(nc.shape + (len(_NODES),))  # se_hat / se_true at each node
    if finite.any():
        q = stats.chi2.ppf(_NODES[None, :], var_df[finite][:, None]) / var_df[finite][:, None]
        ratio[finite] = np.sqrt(q)
    with np.errstate(invalid="ignore"):
        power = t_power(nc[..., None] * ratio, test_df[..., None], alpha)
    return np.nan_to_num(power, nan=1.0).mean(axis=-1)


def detectable_noncentrality(df: np.ndarray, alpha: float, power: float) -> np.ndarray:
    """The effect, in estimated standard errors, that the two-sided t test at `alpha` detects with `power`
    (assured over the se's own uncertainty on `df` degrees of freedom, `assured_power`).

    One root per distinct df (power rises with the noncentrality, so the bracket is widened until
    it holds the root); inf where no effect below 1e6 SEs reaches `power`.
    """
    df = np.asarray(df, float)
    distinct, where = np.unique(df, return_inverse=True)
    roots = np.empty(len(distinct))
    for i, d in enumerate(distinct):
        high = float(stdtrit(d, 1 - alpha / 2)) + 5.0
        while float(assured_power(high, d, alpha)) < power and high < 1e6:
            high *= 4.0
        gap = lambda nc, d=d: float(assured_power(nc, d, alpha)) - power  # noqa: E731
        roots[i] = brentq(gap, 0.0, high, xtol=1e-7) if gap(high) >= 0 else np.inf
    return roots[where.reshape(df.shape)]


def seeds_needed(
    effect: np.ndarray, se: np.ndarray, df: np.ndarray, n: np.ndarray, alpha: float, power: float
) -> np.ndarray:
    """Fewest seeds per setting detecting each |effect| with `power` at `alpha` (inf beyond MAX_SEEDS).

    More seeds shrink the se as sqrt(n / n') and add about one residual df per setting and seed
    (two settings per contrast); the noise is the one the verdict used, with its uncertainty on
    today's df (`assured_power`). Power rises with n', so a bisection over n' in [n, MAX_SEEDS] finds it.
    """

    def enough(more: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            nc = np.abs(effect) / (se * np.sqrt(n / more))
            return assured_power(nc, np.maximum(df + 2.0 * (more - n), 1.0), alpha, df) >= power

    low, high = np.maximum(n, 2.0) - 1, np.full(len(n), float(MAX_SEEDS))
    for _ in range(8):  # 2^8 > MAX_SEEDS: low fails (or is below n), high passes if anything does
        mid = np.floor((low + high) / 2)
        ok = enough(mid) & (mid >= n)
        low, high = np.where(ok, low, mid), np.where(ok, mid, high)
    return np.where(enough(high), high, np.inf)
