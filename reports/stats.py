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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy.stats import norm, spearmanr, t
from statsmodels.stats.multitest import multipletests

from reports.extract import Study
from reports.section import Panel, html_table

STRATUM = ("metric", "optimizer", "arch")
POWER = 0.8


def _setting(row: pd.Series) -> str:
    """A twin (linear, factor 1, lr x twin_of) is keyed by the factor it matches."""
    twin = bool(row.get("twin_of", 0)) and row["twin_of"] > 0
    factor = float(row["twin_of"]) if twin else float(row["factor"])
    return "|".join(
        [*(str(row[k]) for k in STRATUM), "twin" if twin else row["amplification"], f"{factor:g}"]
    )


def amplification_effects(trials: pd.DataFrame, value: str = "auroc", *, alpha: float = 0.05) -> pd.DataFrame:
    """One row per comparison: stratum, kind, factor, estimate, ci_low/high, p, p_holm, verdict, power.

    `trials` holds finished trials only (collapsed, diverged, failed excluded by the caller) with
    columns metric, optimizer, arch, amplification, factor, seed, twin_of and `value`.
    """
    df = trials[trials[value].notna()].copy()
    df["setting"] = [_setting(row) for _, row in df.iterrows()]  # (DataFrame.apply turns an empty frame 2-D)
    df["seed"] = df["seed"].astype(str)
    df = df.rename(columns={value: "y"})
    columns = [
        "metric",
        "optimizer",
        "arch",
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
    if df["setting"].nunique() < 2 or len(df) <= df["setting"].nunique() + df["seed"].nunique() - 1:
        return pd.DataFrame(columns=columns)
    fit = smf.ols("y ~ C(setting) + C(seed)", data=df).fit()
    names = list(fit.params.index)
    sigma = math.sqrt(fit.scale)

    def indicator(setting: str) -> np.ndarray:
        vec = np.zeros(len(names))
        key = f"C(setting)[T.{setting}]"
        if key in names:
            vec[names.index(key)] = 1.0
        return vec

    settings = set(df["setting"])
    rows = []
    for setting in sorted(settings):
        *stratum, form, factor = setting.split("|")
        if form in ("twin",) or (form == "linear" and float(factor) == 1.0):
            continue
        base = "|".join([*stratum, "linear", "1"])
        twin = "|".join([*stratum, "twin", factor])
        pairs = [("gain", base)] + ([("vs_twin", twin)] if stratum[1] == "sgd" else [])
        for kind, other in pairs:
            if other not in settings:
                continue
            test = fit.t_test(indicator(setting) - indicator(other))
            low, high = test.conf_int(alpha=alpha)[0]
            n = int(
                min(
                    df.loc[df.setting == setting, "seed"].nunique(),
                    df.loc[df.setting == other, "seed"].nunique(),
                )
            )
            rows.append(
                dict(
                    zip(STRATUM, stratum, strict=True),
                    kind=kind,
                    amplification=form,
                    factor=float(factor),
                    estimate=float(test.effect[0]),
                    ci_low=float(low),
                    ci_high=float(high),
                    p=float(test.pvalue),
                    n_seeds=n,
                )
            )
    out = pd.DataFrame(
        rows, columns=[c for c in columns if c not in ("p_holm", "verdict", "detectable", "seeds_needed")]
    )
    if out.empty:
        return pd.DataFrame(columns=columns)
    out["p_holm"] = multipletests(out["p"], alpha=alpha, method="holm")[1]
    significant = out["p_holm"] < alpha
    out["verdict"] = np.where(significant, np.where(out["estimate"] > 0, "gain", "harm"), "not detectable")
    # power from the same model: a seed-paired difference of two settings with n seeds each has
    # standard error sigma * sqrt(2 / n); it is detected with power POWER when
    # |effect| >= (t_{1-alpha/2} + t_{POWER}) * se, t with the model's residual degrees of freedom
    k = float(t.ppf(1 - alpha / 2, fit.df_resid) + t.ppf(POWER, fit.df_resid))
    out["detectable"] = [k * sigma * math.sqrt(2 / n) for n in out["n_seeds"]]
    out["seeds_needed"] = [
        float(max(2, math.ceil(2 * (k * sigma / abs(e)) ** 2))) if abs(e) > 0 else math.inf
        for e in out["estimate"]
    ]
    return out[columns]


def verdict_sentence(row: pd.Series) -> str:
    """The caption of one comparison, from the same row it states."""
    what = "gain over the un-amplified baseline" if row["kind"] == "gain" else "difference from its lr twin"
    head = (
        f"{row['metric']} · {row['optimizer']} · {row['arch']} · {row['amplification']} λ={row['factor']:g}: "
        f"{what} {row['estimate']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], Holm p = {row['p_holm']:.2g}"
    )
    if row["verdict"] != "not detectable":
        return f"{head} — {row['verdict']}."
    return (
        f"{head} — not detectable: the interval is ±{(row['ci_high'] - row['ci_low']) / 2:.3f}; "
        f"{row['n_seeds']} seeds would detect an effect of {row['detectable']:.3f}"
        + (
            f", this estimate would need {int(row['seeds_needed'])} seeds."
            if math.isfinite(row["seeds_needed"])
            else "."
        )
    )


@dataclass(frozen=True)
class EffectsData:
    """The comparisons of a study and what they were computed on."""

    value: str  # the detection metric compared (test part)
    effects: pd.DataFrame  # amplification_effects(...) rows
    n_trials: int  # finished trials in the model (collapsed, diverged, failed excluded)
    alpha: float
    steepness: StratifiedRho | None = None  # rho(sharpness, value) within strata, finished trials only


def extract_effects(study: Study, *, alpha: float = 0.05) -> EffectsData:
    """Effects on the test-part `auroc` of the study's finished trials."""
    frame = study.finished()
    needed = {"metric", "optimizer", "arch", "amplification", "factor", "seed", "auroc"}
    if not needed <= set(frame.columns):
        return EffectsData("auroc", pd.DataFrame(), 0, alpha)
    frame = frame.assign(twin_of=frame.get("twin_of", 0.0))
    steep = stratified_spearman(frame) if "sharpness" in frame else None
    return EffectsData("auroc", amplification_effects(frame, "auroc", alpha=alpha), len(frame), alpha, steep)


def draw_effects(data: EffectsData) -> list[Panel]:
    """One panel per optimizer (never averaged over it): each comparison's sentence and numbers."""
    if data.effects.empty:
        return [
            Panel(
                "none",
                "No comparison could be estimated: the study needs an un-amplified baseline (linear, λ = 1) "
                "and more trials than settings + seeds (at least 2 seeds per setting).",
            )
        ]
    panels = []
    for optimizer, rows in data.effects.groupby("optimizer", sort=True):
        counts = rows["verdict"].value_counts().to_dict()
        caption = (
            f"{optimizer}: {len(rows)} comparison(s) of {data.value} on the test part, from one linear model over "
            f"{data.n_trials} finished trials (setting + seed effects, noise pooled, Holm-corrected at "
            f"α = {data.alpha}): "
            + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
            + ". "
            + " ".join(verdict_sentence(r) for _, r in rows.iterrows())
        )
        table = html_table(
            ["metric", "arch", "comparison", "form", "λ", "estimate", "95% CI", "Holm p", "verdict"],
            [
                (
                    r["metric"],
                    r["arch"],
                    "vs baseline" if r["kind"] == "gain" else "vs lr twin",
                    r["amplification"],
                    f"{r['factor']:g}",
                    f"{r['estimate']:+.4f}",
                    f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
                    f"{r['p_holm']:.2g}",
                    r["verdict"],
                )
                for _, r in rows.iterrows()
            ],
        )
        panels.append(Panel(f"effects-{optimizer}", caption, table_html=table))
    if data.steepness is not None and not data.steepness.per_stratum.empty:
        panels.append(_steepness_panel(data.steepness, data.value))
    return panels


def _steepness_panel(st: StratifiedRho, value: str) -> Panel:
    """Stratified rho(sharpness, value): the caption states only what the combined test supports."""
    verdict = (
        "not significant (p >= 0.05): this study does not show that steeper minima detect better or worse"
        if not st.combined_p < 0.05
        else ("steeper minima detect better" if st.combined_rho > 0 else "steeper minima detect worse")
    )
    caption = (
        f"Sharpness vs {value} within each metric × optimizer × architecture stratum (finished trials only; "
        f"collapsed excluded). Combined stratified ρ = {st.combined_rho:+.2f} (Fisher z over "
        f"{int((st.per_stratum['n'] >= 4).sum())} strata with n ≥ 4, p = {st.combined_p:.2g}): {verdict}. "
        f"The pooled ρ ignoring strata is {st.pooled_rho:+.2f}; it mixes the strata and is not evidence."
    )
    table = html_table(
        ["metric", "optimizer", "arch", "n", "ρ", "p"],
        [
            (r["metric"], r["optimizer"], r["arch"], int(r["n"]), f"{r['rho']:+.2f}", f"{r['p']:.2g}")
            for _, r in st.per_stratum.iterrows()
        ],
    )
    return Panel("steepness-stratified", caption, table_html=table)


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


def median_iqr(values: pd.Series) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile): steepness values can be <= 0, so no geometric mean."""
    q = values.dropna().quantile([0.5, 0.25, 0.75])
    return float(q[0.5]), float(q[0.25]), float(q[0.75])
