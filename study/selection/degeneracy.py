"""Degenerate models beyond constant output: a trained model that scores like a trivial one.

Plain numbers (numpy, scipy: no torch), so the trial, the registry and the report
share the rule; the model-free scores themselves come from study/trial/degenerate.py.

`study/trial/collapse.py` catches a near-constant output. Two other trivial
reconstructors pass it: the identity (output = input: every sample's error is
~0, anomalies included, AUROC 0.5) and a shrunk mean image
(`mean + c·(x − mean)`: its error is (1 − c)² × the distance to the mean image,
so it ranks samples exactly as the model-free baseline does). A trained model
can land near either, or reconstruct held-out normals worse than the mean image
does. Such a trial's AUROC is not a model's, and it must not enter "best", the
effects model or `register`.

Every trial is compared with the model-free scores (study/trial/baselines.py) on the
labelled validation part it is already selected on (never the test part):

- `beats_baseline`: a one-sided paired DeLong test (DeLong et al. 1988, fast
  form of Sun & Xu 2014) that the trial's validation AUROC exceeds the better
  model-free score's on the same samples, at `ALPHA`.
- Three signatures of a trivial model, each a property of the trial alone:
  `chance` — its validation AUROC is not above 0.5 by a one-sided DeLong test
  (anomalies are reconstructed as well as normals: the identity);
  `mean_like` — Spearman correlation of its validation scores with the
  distance to the mean training image >= `MEAN_RANK_CORR` (rho² >= 0.98: its
  ranking is the baseline's up to noise). A shrunk mean reaches 1.0 under mse
  and 0.999 under ssim on digits; real models that follow their input reach
  0.97 on Fashion-MNIST (SSIM under SGD in the quickstart, reconstructions
  keeping 64% of the inputs' variance) and <= 0.92 on digits, so 0.99 keeps a
  margin on both sides (bench/RESULTS.md; 0.95 flagged those real models);
  `worse_than_mean` — `collapse_loss_ratio` > 1 (it reconstructs held-out
  normals worse than the mean training image does) AND its validation AUROC
  is below the model-free score's by the same paired test at `ALPHA`: the
  trivial predictor beats it on both counts. A loss ratio above 1 alone is not
  enough (study/trial/collapse.py): a small, under-trained model that follows its
  input can sit above 1 and still rank like a model (the test suite's digits
  models sit at 1.0-2.4 with validation AUROC 0.996 against the baseline's 1.0).

Rule: a trial is `degenerate` when it does NOT beat the model-free baseline AND
shows at least one signature. The conjunction is what keeps real models: a
trial that beats the baseline is never flagged whatever its correlation, and a
weak model that neither beats the baseline nor looks trivial stays `finished`
(it counts as "does not beat the baseline" in the report). No constant depends
on the dataset: 0.5 and 1 are the trivial predictors' own values, rho² >= 0.9
is a share of rank variance, and the tests use the validation part's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata, spearmanr

ALPHA = 0.05  # one-sided level of the beats-baseline and above-chance tests
MEAN_RANK_CORR = 0.99  # Spearman with the mean-image distance at or above which a ranking is the baseline's
REASONS = ("chance", "mean_like", "worse_than_mean")


def delong(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AUROCs [k], covariance [k, k]) of k score rows on the same samples (label 1 = anomalous).

    The fast DeLong estimator (Sun & Xu 2014) with midranks, so ties count half as in the AUROC.
    """
    scores = np.atleast_2d(np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=np.inf))
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[:, labels], scores[:, ~labels]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least 2 samples of each class, got {m} anomalous and {n} normal")
    tx, ty = rankdata(pos, axis=1), rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    cov = np.atleast_2d(np.cov(v01)) / m + np.atleast_2d(np.cov(v10)) / n
    return aucs, cov


def p_greater(diff: float, var: float) -> float:
    """One-sided normal p-value of `diff > 0` with variance `var`; a zero variance decides by the sign."""
    if not var > 1e-15:
        return 0.0 if diff > 1e-12 else 1.0
    return float(norm.sf(diff / math.sqrt(var)))


@dataclass(frozen=True)
class DegeneracyCheck:
    """The trial's validation comparison with the model-free scores and the verdict (module docstring)."""

    val_auroc: float
    baseline_auroc: float  # the better model-free score's AUROC on the same validation samples
    beats_p: float  # one-sided p of val_auroc > baseline_auroc (paired DeLong)
    below_p: float  # one-sided p of val_auroc < baseline_auroc (the same test, the other side)
    chance_p: float  # one-sided p of val_auroc > 0.5 (DeLong)
    mean_rank_corr: float  # Spearman of the trial's scores with the mean-image distance
    loss_ratio: float  # collapse_loss_ratio: model loss / mean-image loss on held-out normals

    @property
    def beats_baseline(self) -> bool:
        return self.beats_p < ALPHA

    @property
    def reasons(self) -> tuple[str, ...]:
        """The signatures of a trivial model the trial shows (empty when it beats the baseline, or when the
        validation part is too small to test it: a flag needs evidence)."""
        if self.beats_baseline or not math.isfinite(self.beats_p):
            return ()
        signs = {
            "chance": self.chance_p >= ALPHA,
            "mean_like": self.mean_rank_corr >= MEAN_RANK_CORR,
            "worse_than_mean": self.loss_ratio > 1.0 and self.below_p < ALPHA,
        }
        return tuple(r for r in REASONS if signs[r])

    @property
    def degenerate(self) -> bool:
        return bool(self.reasons)

    @property
    def metrics(self) -> dict[str, float]:
        return {
            "model_free_auroc": self.baseline_auroc,
            "baseline_margin": self.val_auroc - self.baseline_auroc,
            "beats_baseline": float(self.beats_baseline),
            "beats_baseline_p": self.beats_p,
            "below_baseline_p": self.below_p,
            "chance_p": self.chance_p,
            "mean_rank_corr": self.mean_rank_corr,
            "degenerate": float(self.degenerate),
        }


def check_degeneracy(
    scores: np.ndarray, labels: np.ndarray, free: dict[str, np.ndarray], loss_ratio: float
) -> DegeneracyCheck:
    """Compare a trial's validation `scores` with the model-free scores `free` on the same samples.

    With fewer than 2 validation samples of a class DeLong has no variance: every p is NaN (not logged)
    and nothing is flagged.
    """
    names = list(free)
    if min(int(np.sum(labels)), int(np.sum(~np.asarray(labels).astype(bool)))) < 2:
        nan = math.nan
        return DegeneracyCheck(nan, nan, nan, nan, nan, nan, float(loss_ratio))
    aucs, cov = delong(np.vstack([scores, *(free[k] for k in names)]), labels)
    best = 1 + int(np.argmax(aucs[1:]))  # the better baseline, chosen on the validation part itself
    diff_var = cov[0, 0] + cov[best, best] - 2 * cov[0, best]
    corr = spearmanr(scores, free["mean_image"]).statistic if np.ptp(scores) > 0 else math.nan
    return DegeneracyCheck(
        val_auroc=float(aucs[0]),
        baseline_auroc=float(aucs[best]),
        beats_p=p_greater(aucs[0] - aucs[best], diff_var),
        below_p=p_greater(aucs[best] - aucs[0], diff_var),
        chance_p=p_greater(aucs[0] - 0.5, cov[0, 0]),
        mean_rank_corr=float(corr) if np.isfinite(corr) else 0.0,
        loss_ratio=float(loss_ratio),
    )
