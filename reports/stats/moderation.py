"""Empirical-Bayes variance moderation (limma's `fitFDist` / `squeezeVar`, Smyth 2004) and t power.

Two or three seeds give each setting a variance on one or two degrees of freedom:
alone it is useless, pooled over every setting it is wrong as soon as one setting
is noisier (a near-divergent cell makes every interval wide, or its own comparisons
falsely significant). The middle way: each setting's variance s² on d degrees of
freedom is drawn from a scaled inverse-χ² prior (d0, s0²); d0 and s0² are fitted
across settings by the method of moments on log s², and each setting gets the
posterior variance (d0 s0² + d s²) / (d0 + d) on d0 + d degrees of freedom. A large
d0 (the settings' variances agree) is the pooled analysis; a small one lets each
setting keep its own noise.

The power functions are the exact noncentral t at the level the verdict uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import digamma, nctdtr, polygamma, stdtrit


def trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x (Newton's method on 1/trigamma, as limma's `trigammaInverse`)."""
    if x > 1e7:
        return 1.0 / math.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = float(polygamma(1, y))
        step = tri * (1.0 - tri / x) / float(polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def fit_prior(s2: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """(d0, s0²) of the scaled inverse-χ² prior of variances `s2` on `df` degrees of freedom.

    Moments of z = log s² (limma `fitFDist` without covariate): E z = log s0² + ψ(d/2) − log(d/2)
    + log(d0/2) − ψ(d0/2), Var z = ψ'(d/2) + ψ'(d0/2). d0 = ∞ when the spread of log s² is no more
    than sampling noise explains (the variances are consistent with one noise level).
    """
    ok = np.isfinite(s2) & (df > 1e-8)
    s2, df = s2[ok], df[ok]
    if len(s2) < 2:
        raise ValueError("a variance prior needs at least two variances with degrees of freedom")
    median = float(np.median(s2))
    s2 = np.maximum(s2, 1e-5 * median if median > 0 else 1e-300)  # limma's offset away from zero
    e = np.log(s2) - digamma(df / 2) + np.log(df / 2)
    emean = float(e.mean())
    evar = float(((e - emean) ** 2).sum() / (len(e) - 1)) - float(np.mean(polygamma(1, df / 2)))
    if evar <= 0:
        return math.inf, math.exp(emean)
    d0 = 2.0 * trigamma_inverse(evar)
    return d0, math.exp(emean + float(digamma(d0 / 2)) - math.log(d0 / 2))


WINSOR = (0.05, 0.1)  # limma's winsor.tail.p: the lower and upper tail shares of log s² that are clipped


def _winsorized_log_f_moments(df1: float, df2: float) -> tuple[float, float]:
    """Mean and variance of log F(df1, df2) winsorized at the WINSOR tail quantiles (limma's quadrature)."""
    law = stats.chi2(df1, scale=1.0 / df1) if math.isinf(df2) else stats.f(df1, df2)
    lo, hi = float(law.ppf(WINSOR[0])), float(law.isf(WINSOR[1]))
    zlo, zhi = math.log(lo), math.log(hi)
    inner = lambda f, k: math.log(f) ** k * float(law.pdf(f))  # noqa: E731
    mean = quad(inner, lo, hi, args=(1,), limit=200)[0] + WINSOR[0] * zlo + WINSOR[1] * zhi
    second = quad(inner, lo, hi, args=(2,), limit=200)[0] + WINSOR[0] * zlo**2 + WINSOR[1] * zhi**2
    return mean, second - mean**2


@dataclass(frozen=True)
class RobustPrior:
    """limma's `fitFDistRobustly` (Phipson et al. 2016): a prior fitted to the bulk of the variances,
    and each variance's own prior df, small for the ones that are outliers of that bulk."""

    d0: float  # the bulk's prior df (inf: the bulk is one noise level)
    s02: float
    d0_each: np.ndarray  # per variance: d0 where it fits the bulk, toward 0 the more it is an outlier


def fit_prior_robust(s2: np.ndarray, df: np.ndarray) -> RobustPrior:
    """The robust empirical-Bayes prior: moments of winsorized log s², outliers given their own small df.

    Why: one noisier setting among quiet ones (a near-divergent cell) pulls the plain moment fit's d0
    down for every setting, or, when d0 stays large, is shrunk to the quiet noise and gets false
    verdicts. Winsorizing fits (d0, s0²) to the bulk; a setting whose s² is further in the tail than
    its rank explains (limma's ProbNotOutlier = tail p / empirical tail p) gets a df mixing d0 and
    the df that would put it at the median (df2.outlier), so its posterior keeps its own spread.
    Variances on unequal df are first mapped to the largest df by their quantile under the plain fit.
    """
    s2, df = np.asarray(s2, float), np.asarray(df, float)
    n = len(s2)
    plain_d0, plain_s02 = fit_prior(s2, df)
    if n < 3:
        return RobustPrior(plain_d0, plain_s02, np.full(n, plain_d0))
    median = float(np.median(s2))
    x = np.maximum(s2, 1e-12 * median if median > 0 else 1e-300)
    df1 = float(df.max())
    if not np.allclose(df, df1):  # quantile-map each F value to df1 under the plain fit
        f = x / plain_s02
        laws = [stats.f(d, plain_d0) if math.isfinite(plain_d0) else stats.chi2(d, scale=1 / d) for d in df]
        target = stats.f(df1, plain_d0) if math.isfinite(plain_d0) else stats.chi2(df1, scale=1 / df1)
        upper = np.array([law.logsf(v) < law.logcdf(v) for law, v in zip(laws, f, strict=True)])
        f = np.array(
            [
                target.isf(math.exp(law.logsf(v))) if up else target.ppf(math.exp(law.logcdf(v)))
                for law, v, up in zip(laws, f, upper, strict=True)
            ]
        )
        x = f * plain_s02
    z = np.log(x)
    ztrend = float(stats.trim_mean(z, WINSOR[1]))
    zresid = z - ztrend
    zlo, zhi = np.quantile(zresid, [WINSOR[0], 1 - WINSOR[1]])
    zwins = np.clip(zresid, zlo, zhi)
    zwmean = float(zwins.mean())
    zwvar = float(((zwins - zwmean) ** 2).mean() * n / (n - 1))
    mean_inf, var_inf = _winsorized_log_f_moments(df1, math.inf)
    if zwvar <= var_inf:
        d0 = math.inf
    else:
        low = plain_d0 if math.isfinite(plain_d0) else 1.0
        gap = lambda d2: math.log(zwvar / _winsorized_log_f_moments(df1, d2)[1])  # noqa: E731
        if gap(low) >= 0:
            d0 = low
        else:
            high = low * 4
            while gap(high) < 0 and high < 1e6:
                high *= 4
            d0 = brentq(gap, low, high, rtol=1e-6) if gap(high) >= 0 else math.inf
    mean_d0 = mean_inf if math.isinf(d0) else _winsorized_log_f_moments(df1, d0)[0]
    ztrend += zwmean - mean_d0
    s02 = math.exp(ztrend)
    fstat = np.exp(z - ztrend)
    law = stats.chi2(df1, scale=1 / df1) if math.isinf(d0) else stats.f(df1, d0)
    log_tail = law.logsf(fstat)
    rank = stats.rankdata(fstat)
    log_not_outlier = np.minimum(log_tail - np.log((n - rank + 0.5) / n), 0.0)
    d0_each = np.full(n, d0)
    if (log_not_outlier < 0).any():
        not_outlier = np.exp(log_not_outlier)
        if math.isinf(d0):  # limma's df2 = Inf branch: the pooled df, scaled by the outlier probability
            d0_each = np.where(log_not_outlier < 0, not_outlier * n * df1, d0)
            order = np.argsort(log_tail)
            d0_each[order] = np.maximum.accumulate(d0_each[order])
        else:
            worst = float(log_tail.min())
            if math.isinf(worst):
                outlier_df = 0.0
            else:
                outlier_df = math.log(0.5) / worst * d0
                outlier_df = math.log(0.5) / float(stats.f(df1, outlier_df).logsf(fstat.max())) * outlier_df
            d0_each = not_outlier * d0 + (1 - not_outlier) * outlier_df
            order = np.argsort(log_tail)
            ordered = d0_each[order]
            running = np.cumsum(ordered) / np.arange(1, n + 1)
            first = int(np.argmin(running))
            ordered[: first + 1] = running[first]
            d0_each[order] = np.maximum.accumulate(ordered)
    return RobustPrior(d0, s02, d0_each)


def satterthwaite(parts: np.ndarray, dfs: np.ndarray) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of independent variance estimates."""
    parts, dfs = np.asarray(parts, float), np.asarray(dfs, float)
    keep = parts > 0
    if not keep.any():
        return math.inf
    denominator = float((parts[keep] ** 2 / dfs[keep]).sum())
    return float(parts[keep].sum() ** 2 / denominator) if denominator > 0 else math.inf


def t_power(noncentrality: np.ndarray | float, df: np.ndarray | float, alpha: float) -> np.ndarray:
    """Power of the two-sided t test at level `alpha` when the true effect is `noncentrality` SEs.

    The exact noncentral t (scipy.special's `nctdtr`: the distribution objects' wrapping costs
    more than the function, and the calibration simulations call this thousands of times).
    """
    crit = stdtrit(df, 1 - alpha / 2)
    # the far tail of a large noncentrality comes back NaN where it is 0
    return 1.0 - nctdtr(df, noncentrality, crit) + np.nan_to_num(nctdtr(df, noncentrality, -crit))


_NODES = (np.arange(64) + 0.5) / 64  # midpoint quantiles of the variance estimate's χ² law


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


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (what statsmodels' `multipletests(method="holm")` returns, tests check it).

    Written out because `multipletests` runs `gc.collect()` on every call: about a second in a
    report process holding a study, which the calibration simulations repeat thousands of times.
    """
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate(np.minimum((len(p) - np.arange(len(p))) * p[order], 1.0))
    out = np.empty_like(p)
    out[order] = steps
    return out


MAX_SEEDS = 100  # beyond this a study cannot run it: "> 100 seeds"


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
