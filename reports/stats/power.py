"""Power and sample-size statements at the level a verdict uses: the exact noncentral t, assured over
the standard error's own uncertainty (what "n seeds would detect x with 80% power" and "this estimate
would need k seeds" say, `reports.stats.effects`)."""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from scipy.special import nctdtr, stdtrit

MAX_SEEDS = 100  # beyond this a study cannot run it: "> 100 seeds"


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
