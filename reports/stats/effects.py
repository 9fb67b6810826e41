"""Amplification effects from one linear model over all trials, with family-wise control.

Per-cell t-tests on 2 seeds have 1 degree of freedom (intervals of ±0.1 AUROC)
and pooled averages hide interactions. Instead, one OLS over every finished
trial:

    value ~ C(setting) + C(seed)

`setting` is a full configuration (metric, optimizer, arch, amplification,
factor; an lr twin is its own setting), `seed` a block, so comparisons are
paired by seed and the seed noise is pooled over all cells: 2 seeds per cell
give usable intervals. Each comparison is a contrast of two setting
coefficients within one metric × optimizer × arch stratum, never an average
over a stratum dimension:

- `gain`: amplified setting − its baseline (linear, λ = 1) in the same stratum;
- `vs_twin`: amplified − its effective-learning-rate twin (SGD only; under Adam
  the baseline already is the twin).

The family of all comparisons is Holm-corrected (statsmodels `multipletests`,
`holm`: family-wise error control, valid under any dependence). Verdicts:
`gain` / `harm` when the Holm-adjusted p < alpha, else `not detectable` with
the interval and a power estimate: the smallest effect that `n` seeds detect
with 80% power at this pooled noise, and the seeds the estimated effect would
need (the noncentral-t approximation with the model's residual degrees of freedom).

Steepness against detection is a rank correlation within the same strata,
combined over them (`stratified_spearman`). The sentences stating these
statistics are written in `reports.render.verdicts` only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr, t
from statsmodels.stats.multitest import multipletests

from study.core.vocab import SCALE_SENSITIVE_OPTIMIZERS

STRATUM = ("metric", "optimizer", "arch")
POWER = 0.8


def setting_of(row: Mapping[str, Any], extra: tuple[str, ...] = ()) -> str:
    """`metric|optimizer|arch[|k=v ...]|form|factor`; a twin (linear, λ 1, lr x twin_of) is `...|twin|twin_of`.

    `extra` names the other params the study varies (lr, width, ...): each is part of the stratum, so
    no comparison averages over it. A twin's lr is keyed by the lr it matches (lr / twin_of).
    """
    twin = bool(row.get("twin_of", 0)) and row["twin_of"] > 0
    factor = float(row["twin_of"]) if twin else float(row["factor"])
    others = [f"{k}={_base_value(row, k, twin):.6g}" if _numeric(row[k]) else f"{k}={row[k]}" for k in extra]
    return "|".join(
        [*(str(row[k]) for k in STRATUM), *others, "twin" if twin else row["amplification"], f"{factor:g}"]
    )


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _base_value(row: Mapping[str, Any], key: str, twin: bool) -> float:
    return float(row[key]) / float(row["twin_of"]) if key == "lr" and twin else float(row[key])


def partners(row: pd.Series) -> tuple[str, str, str]:
    """(amplified, baseline, twin) setting keys of an `amplification_effects` row."""
    stratum = "|".join([*(str(row[k]) for k in STRATUM), *([row["other"]] if row["other"] else [])])
    return (
        f"{stratum}|{row['amplification']}|{row['factor']:g}",
        f"{stratum}|linear|1",
        f"{stratum}|twin|{row['factor']:g}",
    )


EFFECT_COLUMNS = [
    "metric",
    "optimizer",
    "arch",
    "other",  # the other varied params of the stratum, `k=v|k=v` ("" when none)
    "kind",
    "amplification",
    "factor",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
    "verdict",
    "n_seeds",
    "detectable",
    "seeds_needed",
]


@dataclass(frozen=True)
class SettingModel:
    """The fitted `value ~ C(setting) + C(seed)` and what a contrast of two settings needs.

    Solved by blocks, not as one dense least-squares problem: the setting block of XᵀX is the
    diagonal of trial counts, so the seed effects come from the small Schur complement
    M = DᵀD − DᵀS N⁻¹ SᵀD (seeds − 1 square) and the setting means from them. The estimates,
    residual variance, degrees of freedom and contrast variances are those of the dense OLS
    (statsmodels, tests/test_report_scale.py); a 13,000-trial study with 1,458 settings takes
    milliseconds instead of minutes (a dense SVD of a 13,000 x 1,467 design, then one covariance
    matrix per contrast).
    """

    settings: frozenset[str]
    seeds: dict[str, int]  # setting -> distinct seeds it finished on
    scale: float  # residual variance σ² (RSS / df_resid)
    df_resid: float
    _index: dict[str, int]  # setting -> row of the arrays below
    _effect: np.ndarray  # setting effect (seed effects removed), one per setting
    _count: np.ndarray  # trials per setting
    _cross: np.ndarray  # settings x (seeds but the first): trials of that setting on that seed
    _schur_pinv: np.ndarray  # pseudo-inverse of M

    def contrast(self, a: str, b: str, *, alpha: float = 0.05) -> dict[str, float]:
        """a - b: estimate, ci_low, ci_high, p (two-sided t-test of the model), n_seeds (the smaller)."""
        i, j = self._index[a], self._index[b]
        estimate = float(self._effect[i] - self._effect[j])
        w = self._cross[i] / self._count[i] - self._cross[j] / self._count[j]
        variance = 1.0 / self._count[i] + 1.0 / self._count[j] + float(w @ self._schur_pinv @ w)
        se = math.sqrt(self.scale * variance) if i != j else 0.0
        half = float(t.ppf(1 - alpha / 2, self.df_resid)) * se
        p = float(2 * t.sf(abs(estimate) / se, self.df_resid)) if se > 0 else math.nan
        return dict(
            estimate=estimate,
            ci_low=estimate - half,
            ci_high=estimate + half,
            p=p,
            n_seeds=int(min(self.seeds[a], self.seeds[b])),
        )


def fit_settings(
    trials: pd.DataFrame, value: str = "auroc", extra: tuple[str, ...] = ()
) -> SettingModel | None:
    """OLS of `value` on setting and seed over `trials`; None when it has no residual degree of freedom.

    `trials` holds finished trials only (collapsed, diverged, failed excluded by the caller) with
    columns metric, optimizer, arch, amplification, factor, seed, twin_of, `extra` and `value`.
    """
    df = trials[trials[value].notna()]
    # records, not DataFrame.apply or iterrows: apply turns an empty frame 2-D, iterrows is slow
    keyed = df[
        [c for c in dict.fromkeys((*STRATUM, *extra, "twin_of", "amplification", "factor", "lr")) if c in df]
    ]
    setting = pd.Series([setting_of(r, extra) for r in keyed.to_dict("records")], dtype=object)
    seed = pd.Series(df["seed"].astype(str).to_numpy(), dtype=object)
    y = df[value].to_numpy(float)
    if setting.nunique() < 2 or len(df) <= setting.nunique() + seed.nunique() - 1:
        return None
    s_code, s_names = pd.factorize(setting, sort=True)
    d_code, _ = pd.factorize(seed, sort=True)
    p, k = len(s_names), int(d_code.max()) + 1
    count = np.bincount(s_code, minlength=p).astype(float)
    cells = np.zeros((p, k))
    np.add.at(cells, (s_code, d_code), 1.0)
    cross = cells[:, 1:]  # SᵀD, the first seed is the reference level
    sum_s = np.bincount(s_code, weights=y, minlength=p)
    sum_d = np.bincount(d_code, weights=y, minlength=k)[1:]
    schur = np.diag(cells.sum(axis=0)[1:]) - cross.T @ (cross / count[:, None])
    schur_pinv = np.linalg.pinv(schur) if k > 1 else np.zeros((0, 0))
    gamma = schur_pinv @ (sum_d - cross.T @ (sum_s / count)) if k > 1 else np.zeros(0)
    effect = (sum_s - cross @ gamma) / count
    fitted = effect[s_code] + np.r_[0.0, gamma][d_code]
    rank = p + (np.linalg.matrix_rank(schur) if k > 1 else 0)
    df_resid = float(len(y) - rank)
    scale = float(((y - fitted) ** 2).sum() / df_resid)
    seeds = pd.Series(d_code).groupby(s_code).nunique()
    return SettingModel(
        settings=frozenset(s_names),
        seeds={str(s_names[i]): int(n) for i, n in seeds.items()},
        scale=scale,
        df_resid=df_resid,
        _index={str(name): i for i, name in enumerate(s_names)},
        _effect=effect,
        _count=count,
        _cross=cross,
        _schur_pinv=schur_pinv,
    )


def _comparisons(model: SettingModel, alpha: float) -> pd.DataFrame:
    """Every amplified setting against its baseline and, under scale-sensitive optimizers, its lr twin."""
    rows = []
    for setting in sorted(model.settings):
        *stratum, form, factor = setting.split("|")
        if form == "twin" or (form == "linear" and float(factor) == 1.0):
            continue
        pairs = [("gain", "|".join([*stratum, "linear", "1"]))]
        if stratum[1] in SCALE_SENSITIVE_OPTIMIZERS:  # under Adam the baseline already is the twin
            pairs.append(("vs_twin", "|".join([*stratum, "twin", factor])))
        for kind, partner in pairs:
            if partner in model.settings:
                rows.append(
                    dict(
                        zip(STRATUM, stratum[:3], strict=True),
                        other="|".join(stratum[3:]),
                        kind=kind,
                        amplification=form,
                        factor=float(factor),
                    )
                    | model.contrast(setting, partner, alpha=alpha)
                )
    return pd.DataFrame(rows, columns=[c for c in EFFECT_COLUMNS if c not in _DERIVED])


_DERIVED = ("p_holm", "verdict", "detectable", "seeds_needed")


def _verdicts(out: pd.DataFrame, model: SettingModel, alpha: float) -> pd.DataFrame:
    """Holm-adjusted p, the verdict, and the power figures of each comparison."""
    out["p_holm"] = multipletests(out["p"], alpha=alpha, method="holm")[1]
    significant = out["p_holm"] < alpha
    out["verdict"] = np.where(significant, np.where(out["estimate"] > 0, "gain", "harm"), "not detectable")
    # power from the same model: a seed-paired difference of two settings with n seeds each has
    # standard error sigma * sqrt(2 / n); it is detected with power POWER when
    # |effect| >= (t_{1-alpha/2} + t_{POWER}) * se, t with the model's residual degrees of freedom
    df_resid = model.df_resid
    k = float(t.ppf(1 - alpha / 2, df_resid) + t.ppf(POWER, df_resid)) * math.sqrt(model.scale)
    out["detectable"] = [k * math.sqrt(2 / n) for n in out["n_seeds"]]
    out["seeds_needed"] = [
        float(max(2, math.ceil(2 * (k / abs(e)) ** 2))) if abs(e) > 0 else math.inf for e in out["estimate"]
    ]
    return out[EFFECT_COLUMNS]


def amplification_effects(
    trials: pd.DataFrame, value: str = "auroc", *, alpha: float = 0.05, extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    """One row per comparison (EFFECT_COLUMNS): stratum, kind, factor, estimate, interval, Holm p, verdict, power.

    `trials` and `extra` as for `fit_settings`; an empty frame (with the columns) when nothing can be compared.
    """
    model = fit_settings(trials, value, extra)
    out = _comparisons(model, alpha) if model is not None else pd.DataFrame()
    if out.empty:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    return _verdicts(out, model, alpha)


@dataclass(frozen=True)
class StratifiedRho:
    """Spearman rho of x vs y within each stratum and their combined estimate."""

    per_stratum: pd.DataFrame  # metric, optimizer, arch, n, rho, p
    combined_rho: float  # Fisher-z mean of the strata's rho, weights n - 3 (NaN without a stratum of n >= 4)
    combined_p: float  # two-sided, z = combined z * sqrt(sum(n - 3))
    pooled_rho: float  # ignoring strata: shown only to say how much pooling misleads


def stratified_spearman(
    trials: pd.DataFrame, x: str = "sharpness", y: str = "auroc", strata: tuple[str, ...] = STRATUM
) -> StratifiedRho:
    """rho within each metric x optimizer x arch stratum, combined, on finished trials only.

    The metric (and optimizer) shift both steepness and AUROC, so a pooled rho
    measures the strata, not LAMP's claim (Simpson's paradox). Strata with
    fewer than 4 trials have no Fisher-z variance and are left out of the
    combination.
    """
    df = trials[trials[x].notna() & trials[y].notna()]
    rows = []
    for key, group in df.groupby(list(strata), sort=True):
        if len(group) >= 3 and group[x].nunique() > 1 and group[y].nunique() > 1:
            res = spearmanr(group[x], group[y])
            rows.append(
                dict(
                    zip(strata, key, strict=True), n=len(group), rho=float(res.statistic), p=float(res.pvalue)
                )
            )
    per = pd.DataFrame(rows, columns=[*strata, "n", "rho", "p"])
    usable = per[per["n"] >= 4]
    if usable.empty:
        combined, p = math.nan, math.nan
    else:
        w = usable["n"] - 3
        # |rho| = 1 has an infinite z; clip just inside so a perfect stratum weighs, not breaks
        z = float((np.arctanh(usable["rho"].clip(-0.9999, 0.9999)) * w).sum() / w.sum())
        combined = math.tanh(z)
        p = float(2 * norm.sf(abs(z) * math.sqrt(w.sum())))
    pooled = float(spearmanr(df[x], df[y]).statistic) if len(df) >= 3 else math.nan
    return StratifiedRho(per, combined, p, pooled)
