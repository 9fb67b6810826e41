"""Amplification effects from one linear model over all trials, with family-wise control.

Per-cell t-tests on 2 seeds have 1 degree of freedom (intervals of ±0.1 AUROC)
and pooled averages hide interactions. Instead, one OLS over every finished
trial:

    value ~ C(setting) + C(seed)

`setting` is a full configuration (metric, optimizer, arch, amplification,
factor; an lr twin is its own setting), `seed` a block, so comparisons are
paired by seed. One noise level for every setting is wrong both ways (a
near-divergent setting widens every interval, or gets false verdicts of its
own), so each setting's seed variance is moderated toward a prior shared by
its optimizer's settings (limma's moderated t), with the prior's own
uncertainty integrated over a posterior grid rather than plugged in, a share
of wild settings (far noisier than the prior, their seeds agreeing by chance)
admitted and averaged over, and an amplification's settings (its metrics)
sharing its stability (`reports.stats.posterior`, docs/statistics.md),
and never below the setting's own spread. Each comparison is a contrast of two setting effects
within one metric × optimizer × arch stratum, never an average over a
stratum dimension:

- `gain`: amplified setting − its baseline (linear, λ = 1) in the same stratum;
- `vs_twin`: amplified − its effective-learning-rate twin (SGD only; under Adam
  the baseline already is the twin).

The family of all m comparisons is Holm-corrected (family-wise error control,
valid under any dependence). Verdicts:
`gain` / `harm` when the Holm-adjusted p < alpha, else `not detectable`. The
interval shown is family-wise (Bonferroni, 1 − alpha/m), so one that excludes 0
always sits beside a gain or harm; the power figures (the effect n seeds detect
with 80% power, the seeds the estimate would need) are at alpha/m, over the
same noise posterior and the standard error's own uncertainty. A comparison whose
settings lost seeds (diverged, collapsed) says so (`reports.survival`).

The sentences stating these statistics are written in `reports.render.verdicts` only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reports.stats.multiplicity import holm
from reports.stats.posterior import (
    KEEP,
    Mixture,
    NoisePosterior,
    SettingNoise,
    contrast_mixture,
    group_posteriors,
)
from reports.stats.power import detectable_noncentrality, seeds_needed
from reports.stats.survival import Losses, losses_by_setting, lost_note
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


def setting_keys(trials: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.Series:
    """`setting_of` of every row, positionally (a fresh index)."""
    # records, not DataFrame.apply or iterrows: apply turns an empty frame 2-D, iterrows is slow
    keyed = trials[
        [
            c
            for c in dict.fromkeys((*STRATUM, *extra, "twin_of", "amplification", "factor", "lr"))
            if c in trials
        ]
    ]
    return pd.Series([setting_of(r, extra) for r in keyed.to_dict("records")], dtype=object)


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
    "se",  # from the two settings' moderated variances (and the seed effects')
    "df",  # Welch–Satterthwaite over the moderated dfs
    "ci_low",  # family-wise interval: Bonferroni 1 - alpha/m over the m comparisons of the Holm family
    "ci_high",
    "ci_unadj_low",  # the comparison's own 1 - alpha interval, unadjusted
    "ci_unadj_high",
    "p",
    "p_holm",
    "verdict",
    "n_seeds",
    "family",  # m, the comparisons Holm corrects over
    "detectable",  # the effect n_seeds detect with 80% power at alpha/m (exact noncentral t)
    "seeds_needed",  # seeds the estimate needs for that power at alpha/m; inf beyond MAX_SEEDS
    "lost",  # "1 of 2 seeds diverged in the amplified setting" ("" when every seed finished)
    "prior_df",  # d0 of the variance prior the comparisons used (inf: one pooled noise level)
]


@dataclass(frozen=True)
class SettingModel:
    """The fitted `value ~ C(setting) + C(seed)`, each setting's moderated noise, and contrasts.

    Solved by blocks, not as one dense least-squares problem: the setting block of XᵀX is the
    diagonal of trial counts, so the seed effects come from the small Schur complement
    M = DᵀD − DᵀS N⁻¹ SᵀD (seeds − 1 square) and the setting means from them. The estimates are
    those of the dense OLS (statsmodels, tests/test_report_scale.py); a 13,000-trial study with
    1,458 settings takes milliseconds. Each setting's residual variance (its seed spread once the
    seed effects are removed, on its share of the residual degrees of freedom) is moderated toward
    its optimizer's prior at each grid point of that prior's posterior (`reports.stats.posterior`);
    a contrast's variance adds the two settings' variances and that of the seed effects it leans on
    (Welch–Satterthwaite df), and its null law is the mixture of those t laws over the grid.
    """

    settings: frozenset[str]
    seeds: dict[str, int]  # setting -> distinct seeds it finished on
    scale: float  # pooled residual variance σ² (RSS / df_resid), the one-noise-level estimate
    df_resid: float
    prior_df: float  # the posterior median d0 of the largest group's variance prior
    prior_var: float  # its posterior mean s0²
    _index: dict[str, int]  # setting -> row of the arrays below
    _effect: np.ndarray  # setting effect (seed effects removed), one per setting
    _count: np.ndarray  # trials per setting
    _cross: np.ndarray  # settings x (seeds but the first): trials of that setting on that seed
    _group: np.ndarray  # the variance group (optimizer) of each setting
    _posts: list[NoisePosterior]  # each group's (d0, s0²) posterior grid
    _noise: list[SettingNoise]  # per setting: its variance law over its group's grid points
    _seed_cov: np.ndarray  # covariance of the seed effects under the posterior-mean variances

    def mixture(self, a: str, b: str) -> Mixture:
        """The null law of the contrast a - b: a t at each grid point of the noise posterior and each
        pair of the two settings' variance components there (quiet or wild)."""
        i, j = self._index[a], self._index[b]
        w = self._cross[i] / self._count[i] - self._cross[j] / self._count[j]
        seed_part = float(w @ self._seed_cov @ w)
        gi, gj = self._group[i], self._group[j]
        ni, nj = self._noise[i], self._noise[j]
        if gi == gj:  # one grid: given a point, the two settings' components are independent
            weights = ni.joint(nj, self._posts[gi].w)  # base points x 2 x 2
            vi, vj = ni.var[:, :, None], nj.var[:, None, :]
            di, dj = ni.df[:, None, None], nj.df[:, None, None]
        else:  # settings of two groups: independent posteriors, every pair of base points and components
            wi, wj = ni.weights(self._posts[gi].w), nj.weights(self._posts[gj].w)
            weights = wi.ravel()[:, None] * wj.ravel()[None, :]
            vi, vj = ni.var.ravel()[:, None], nj.var.ravel()[None, :]
            di = np.repeat(ni.df, ni.var.shape[1])[:, None]
            dj = np.repeat(nj.df, nj.var.shape[1])[None, :]
        shape = np.broadcast_shapes(weights.shape, vi.shape, vj.shape)
        keep = (weights > KEEP * weights.max()).ravel()
        flat = [np.broadcast_to(x, shape).ravel()[keep] for x in (weights, vi, vj, di, dj)]
        weights, vi, vj, di, dj = flat
        parts = [vi / self._count[i], vj / self._count[j], np.full(len(vi), seed_part)]
        return contrast_mixture(weights / weights.sum(), parts, [di, dj, np.full(len(vi), self.df_resid)])

    def contrast(self, a: str, b: str, *, alpha: float = 0.05, figures: bool = True) -> dict[str, Any]:
        """a - b: estimate, se and df (the t law matching the mixture's 1 - alpha and alpha/28 quantiles),
        ci_low, ci_high (at 1 - alpha), p (two-sided), n_seeds (the smaller), mixture (the null law).

        `figures=False`: se, df and the interval NaN (the p-value alone, what a verdict needs)."""
        i, j = self._index[a], self._index[b]
        estimate = float(self._effect[i] - self._effect[j])
        mix = self.mixture(a, b)
        if not figures:
            half, se, df = math.nan, math.nan, math.nan
        else:
            half = mix.quantile(alpha) if i != j else 0.0
            se, df = mix.effective(alpha / 28, alpha) if i != j else (0.0, math.inf)
        return dict(
            estimate=estimate,
            se=se,
            df=df,
            ci_low=estimate - half,
            ci_high=estimate + half,
            p=mix.tail(estimate) if i != j else math.nan,
            n_seeds=int(min(self.seeds[a], self.seeds[b])),
            mixture=mix,
        )


def fit_settings(
    trials: pd.DataFrame,
    value: str = "auroc",
    extra: tuple[str, ...] = (),
    unstable: frozenset[str] = frozenset(),
) -> SettingModel | None:
    """OLS of `value` on setting and seed over `trials`; None when it has no residual degree of freedom.

    `trials` holds finished trials only (collapsed, diverged, failed excluded by the caller) with
    columns metric, optimizer, arch, amplification, factor, seed, twin_of, `extra` and `value`.
    """
    df = trials[trials[value].notna()]
    setting = setting_keys(df, extra)
    seed = pd.Series(df["seed"].astype(str).to_numpy(), dtype=object)
    if setting.nunique() < 2 or len(df) <= setting.nunique() + seed.nunique() - 1:
        return None
    s_code, s_names = pd.factorize(setting, sort=True)
    d_code, _ = pd.factorize(seed, sort=True)
    return fit_codes(s_code, [str(s) for s in s_names], d_code, df[value].to_numpy(float), unstable)


def fit_codes(
    s_code: np.ndarray,
    names: list[str],
    d_code: np.ndarray,
    y: np.ndarray,
    unstable: frozenset[str] = frozenset(),
) -> SettingModel:
    """The setting model from integer setting and seed codes (`fit_settings` without the frame).

    `unstable`: settings that lost seeds (their noise is taken as their optimizer's largest).
    """
    p, k = len(names), int(d_code.max()) + 1
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
    rss = np.bincount(s_code, weights=(y - effect[s_code] - np.r_[0.0, gamma][d_code]) ** 2, minlength=p)
    # each setting's share of the residual df: its trials minus their leverages (1/n + seed part)
    seed_leverage = cross @ np.diag(schur_pinv) - ((cross @ schur_pinv) * cross).sum(axis=1) / count
    own_df = np.clip(count - 1.0 - seed_leverage, 0.0, None)
    df_resid = float(len(y) - p - (np.linalg.matrix_rank(schur) if k > 1 else 0))
    scale = float(rss.sum() / df_resid)
    optimizer = pd.factorize(pd.Series([n.split("|")[1] for n in names], dtype=object))[0]
    lost = np.array([n in unstable for n in names])
    amplification = np.array(["|".join(n.split("|")[1:]) for n in names], dtype=object)  # all but the metric
    posts, noise = group_posteriors(rss, own_df, scale, df_resid, optimizer, amplification, lost)
    mean_var = np.array([n.mean(posts[optimizer[i]].w) for i, n in enumerate(noise)])
    spread = np.diag(mean_var @ cross) - cross.T @ (cross * (mean_var / count)[:, None])
    seeds = pd.Series(d_code).groupby(s_code).nunique()
    largest = posts[int(np.bincount(optimizer).argmax())]
    return SettingModel(
        settings=frozenset(names),
        seeds={names[i]: int(n) for i, n in seeds.items()},
        scale=scale,
        df_resid=df_resid,
        prior_df=largest.median_d0(),
        prior_var=float(largest.w @ largest.s02),
        _index={name: i for i, name in enumerate(names)},
        _effect=effect,
        _count=count,
        _cross=cross,
        _group=optimizer,
        _posts=posts,
        _noise=noise,
        _seed_cov=schur_pinv @ spread @ schur_pinv if k > 1 else np.zeros((0, 0)),
    )


def _comparisons(
    model: SettingModel, alpha: float, losses: Losses, figures: bool = True
) -> tuple[pd.DataFrame, list[Mixture]]:
    """Every amplified setting against its baseline and, under scale-sensitive optimizers, its lr twin."""
    rows, mixtures = [], []
    for setting in sorted(model.settings):
        *stratum, form, factor = setting.split("|")
        if form == "twin" or (form == "linear" and float(factor) == 1.0):
            continue
        pairs = [("gain", "|".join([*stratum, "linear", "1"]))]
        if stratum[1] in SCALE_SENSITIVE_OPTIMIZERS:  # under Adam the baseline already is the twin
            pairs.append(("vs_twin", "|".join([*stratum, "twin", factor])))
        for kind, partner in pairs:
            if partner in model.settings:
                c = model.contrast(setting, partner, alpha=alpha, figures=figures)
                c["ci_unadj_low"], c["ci_unadj_high"] = c.pop("ci_low"), c.pop("ci_high")
                mixtures.append(c.pop("mixture"))
                rows.append(
                    dict(
                        zip(STRATUM, stratum[:3], strict=True),
                        other="|".join(stratum[3:]),
                        kind=kind,
                        amplification=form,
                        factor=float(factor),
                        lost=lost_note(setting, partner, kind, model.seeds, losses),
                    )
                    | c
                )
    return pd.DataFrame(rows, columns=[c for c in EFFECT_COLUMNS if c not in _DERIVED]), mixtures


_DERIVED = ("ci_low", "ci_high", "p_holm", "verdict", "family", "detectable", "seeds_needed", "prior_df")


def _verdicts(out: pd.DataFrame, mixtures: list[Mixture], alpha: float, figures: bool = True) -> pd.DataFrame:
    """Holm-adjusted p, the verdict, the family-wise interval and the power figures of each comparison.

    Everything at the level the verdict uses: Holm rejects no less than Bonferroni at alpha/m, so an
    interval at 1 - alpha/m that excludes 0 always sits beside a gain or harm, and the power of the
    stated detectable effect (at alpha/m, over the noise posterior and the se's own uncertainty) is
    a lower bound for Holm's. `se` and `df` are re-expressed as the t law matching the mixture at
    alpha/m and alpha, what the sentences and seed counts use.
    """
    m = len(out)
    out["family"] = m
    out["p_holm"] = holm(out["p"].to_numpy(float))
    significant = out["p_holm"] < alpha
    out["verdict"] = np.where(significant, np.where(out["estimate"] > 0, "gain", "harm"), "not detectable")
    if not figures:
        for column in ("ci_low", "ci_high", "detectable", "seeds_needed"):
            out[column] = math.nan
        return out[EFFECT_COLUMNS]
    half = np.array([mix.quantile(alpha / m) for mix in mixtures])
    out["ci_low"], out["ci_high"] = out["estimate"] - half, out["estimate"] + half
    effective = [mix.effective(alpha / m, alpha) for mix in mixtures]
    out["se"], out["df"] = [e[0] for e in effective], [e[1] for e in effective]
    # one power root per df to 1% (the effective dfs are all distinct): milliseconds, not seconds, at 13k trials
    df_key = np.exp(np.round(np.log(out["df"].to_numpy(float)), 2))
    out["detectable"] = detectable_noncentrality(df_key, alpha / m, POWER) * out["se"].to_numpy(float)
    out["seeds_needed"] = seeds_needed(
        *(out[c].to_numpy(float) for c in ("estimate", "se", "df", "n_seeds")), alpha / m, POWER
    )
    return out[EFFECT_COLUMNS]


def amplification_effects(
    trials: pd.DataFrame,
    value: str = "auroc",
    *,
    alpha: float = 0.05,
    extra: tuple[str, ...] = (),
    lost: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per comparison (EFFECT_COLUMNS): stratum, kind, factor, estimate, intervals, Holm p, verdict, power.

    `trials` and `extra` as for `fit_settings`; `lost`: the study's trials that did not finish
    (diverged, collapsed, failed; columns as `trials` plus `status`), so a comparison says how
    many seeds it lost. An empty frame (with the columns) when nothing can be compared.
    """
    losses = losses_by_setting(setting_keys(lost, extra), lost) if lost is not None else {}
    unstable = frozenset(k for k, lost_by in losses.items() if set(lost_by) & {"diverged", "collapsed"})
    model = fit_settings(trials, value, extra, unstable=unstable)
    if model is None:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    return model_effects(model, alpha=alpha, losses=losses)


def model_effects(
    model: SettingModel, *, alpha: float = 0.05, losses: Losses | None = None, figures: bool = True
) -> pd.DataFrame:
    """`amplification_effects` of a fitted model (the calibration simulations refit values, not frames).

    `figures=False` leaves the intervals and power figures NaN: the verdicts alone, what the error-rate
    simulations count (the verdicts do not depend on the figures).
    """
    out, mixtures = _comparisons(model, alpha, losses or {}, figures)
    if out.empty:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    out["prior_df"] = model.prior_df
    return _verdicts(out, mixtures, alpha, figures)
