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
from functools import cached_property

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from scipy.special import digamma, gammaincinv, ndtr, stdtr, stdtrit

SHRINK_NODES = 16  # midpoints of B in (0, 1)
SCALE_NODES = 17  # log s0² points per d0
SCALE_SPAN = 2.5  # ± natural-log units around each d0's moment estimate of log s0²
KEEP = 1e-3  # grid points under KEEP x the largest weight are dropped (together a few % at most)
_CHI2_NODES = (np.arange(16) + 0.5) / 16  # quantiles of a variance estimate's χ² law, for power


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

    @cached_property
    def _se_draws(self) -> np.ndarray:
        """The true se at χ² quantiles of each grid point's variance estimate: se·sqrt(df/χ²_df)."""
        q = 2 * gammaincinv(self.df[:, None] / 2, _CHI2_NODES[None, :]) / self.df[:, None]
        return self.se[:, None] / np.sqrt(q)

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

    def power(self, effect: float, threshold: float, scale: float = 1.0) -> float:
        """P(|estimate| > `threshold`) when the true effect is `effect`.

        The true se is uncertain: at each grid point it is se·sqrt(df/χ²_df) (its posterior given the
        estimate), averaged over χ² quantiles and the grid. `scale` multiplies every se (more seeds).
        """
        sigma = self._se_draws * scale
        hit = ndtr((effect - threshold) / sigma) + ndtr((-effect - threshold) / sigma)
        return float(self.w @ hit.mean(axis=1))

    def detectable(self, level: float, power: float) -> float:
        """The true effect detected with `power` at `level` (inf where none below 1e6 se is)."""
        h = self.quantile(level)
        if not h > 0:
            return math.nan
        high = 4 * h
        while self.power(high, h) < power and high < 1e6 * h:
            high *= 4
        if self.power(high, h) < power:
            return math.inf
        return brentq(lambda e: self.power(e, h) - power, 0.0, high, xtol=1e-5 * h)


def contrast_mixture(w: np.ndarray, parts: list[np.ndarray], dfs: list[np.ndarray | float]) -> Mixture:
    """The mixture of a contrast whose variance adds `parts` (each per grid point) on `dfs` (Satterthwaite)."""
    total = np.sum(parts, axis=0)
    denominator = sum(np.asarray(p) ** 2 / np.asarray(d) for p, d in zip(parts, dfs, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, total**2 / denominator, np.inf)
    return Mixture(np.asarray(w, float), np.sqrt(total), np.minimum(df, 1e6))
