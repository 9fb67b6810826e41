"""Every sentence of the report that states a test, written from the statistic it states.

One module writes them so no caption can claim more than its test (issue 10
item 8): an effect is a *gain* or *harm* only when its Holm-adjusted p is
below alpha, otherwise it is *not detectable* with its interval and the effect
the seeds could have detected — never "no effect" or "no more than a larger
learning rate" — and a rank correlation is "steeper detects better/worse" only
when its stratified test is significant. The statistics come from
`reports.stats.effects`; the sections pass their rows in.
"""

from __future__ import annotations

import math

import pandas as pd

from reports.render.labels import fmt_p
from reports.stats.power import MAX_SEEDS
from reports.stats.rank import MIN_SETTINGS, StratifiedRho

ABSENCE = (
    "A comparison that is not detectable does not show the effect is zero: "
    "it rules out only effects outside its interval."
)


def cell_label(row: pd.Series, *, optimizer: bool = True) -> str:
    """`mse · sgd · conv_ae` (+ ` · lr=0.01` for the other varied params of the stratum)."""
    parts = [row["metric"], *([row["optimizer"]] if optimizer else []), row["arch"]]
    other = row.get("other") or ""
    return " · ".join([*map(str, parts), *(other.split("|") if other else [])])


def verdict_sentence(row: pd.Series) -> str:
    """The caption of one `reports.stats.amplification_effects` row, from the same row.

    The first interval is family-wise (Bonferroni over the Holm family), the level of the verdict;
    the unadjusted one follows in brackets, and when it alone excludes 0 the sentence says why that
    is not a verdict. Power figures are at the same level; lost seeds are named with what the
    comparison then conditions on.
    """
    what = "gain over the un-amplified baseline" if row["kind"] == "gain" else "difference from its lr twin"
    m = int(row["family"])
    head = (
        f"{cell_label(row)} · {row['amplification']} λ={row['factor']:g}: {what} {row['estimate']:+.3f}, "
        f"family-wise interval [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] (unadjusted 95% "
        f"[{row['ci_unadj_low']:+.3f}, {row['ci_unadj_high']:+.3f}]), Holm p = {row['p_holm']:.2g}"
    )
    lost = (
        f" {row['lost'][0].upper()}{row['lost'][1:]}: the comparison uses the seeds that finished, so it "
        "compares the runs that survived (conditional on finishing), not every run started."
        if row.get("lost")
        else ""
    )
    if row["verdict"] != "not detectable":
        step = (
            " (Holm's step-down rejects here although the Bonferroni interval, which is wider, touches 0)"
            if row["ci_low"] <= 0 <= row["ci_high"]
            else ""
        )
        return f"{head} — {row['verdict']}{step}.{lost}"
    unadjusted = (
        f" The unadjusted interval excludes 0, but {m} comparisons were tested: at the family-wise level "
        "this is within what chance gives."
        if row["ci_unadj_low"] > 0 or row["ci_unadj_high"] < 0
        else ""
    )
    seeds = row["n_seeds"]
    needed = (
        f"this estimate would need {int(row['seeds_needed'])} seeds"
        if math.isfinite(row["seeds_needed"])
        else f"this estimate would need > {MAX_SEEDS} seeds"
    )
    return (
        f"{head} — not detectable: {seeds} seed{'s' if seeds != 1 else ''} would detect an effect of "
        f"{row['detectable']:.3f} with 80% power at α/{m}; {needed}.{unadjusted}{lost}"
    )


def noise_clause(prior_df: float) -> str:
    """How the seed noise entered the comparisons: pooled, or moderated per setting."""
    if not math.isfinite(prior_df):
        return "the settings' seed spreads are consistent with one noise level, so it is pooled"
    return (
        "each setting's seed spread moderated toward its optimizer's common level (empirical Bayes; how "
        f"much is itself uncertain and averaged over, a prior worth {prior_df:.1f} degrees of freedom at the "
        "posterior median), never below its own spread, so a noisy setting keeps wide intervals of its own; "
        "any setting may also be one of a few far noisier ones whose seeds agreed by chance, a share likewise "
        "averaged over"
    )


def verdict_counts(rows: pd.DataFrame) -> str:
    """`2 gain, 1 harm, 9 not detectable` (only the verdicts present)."""
    counts = rows["verdict"].value_counts().to_dict()
    return ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))


def effects_caption(optimizer: str, rows: pd.DataFrame, value: str, n_trials: int, alpha: float) -> str:
    """The caption of one optimizer's effects panel: the model, the family, every comparison's verdict."""
    m = int(rows["family"].iloc[0])
    return (
        f"{optimizer}: {len(rows)} comparison(s) of {value} on the test part, from one linear model over "
        f"{n_trials} finished trials (setting + seed effects; {noise_clause(float(rows['prior_df'].iloc[0]))}; "
        f"Holm-corrected at α = {alpha} over all {m} comparisons of the study). Intervals are family-wise "
        f"(Bonferroni, 1 − α/{m}: one that excludes 0 is a gain or harm), the unadjusted 95% interval in "
        f"brackets: {verdict_counts(rows)}. "
        + " ".join(verdict_sentence(r) for _, r in rows.iterrows())
        + f" {ABSENCE}"
    )


def instability_caption(table: pd.DataFrame, n_settings: int) -> str:
    """Instability as a finding: how many settings lost trials, and which lost the most."""
    worst = table.iloc[0]
    return (
        f"Instability: {len(table)} of {n_settings} settings lost at least one trial (diverged: the loss "
        "became non-finite; collapsed: the model outputs nearly one image; failed: an error). Highest lost "
        f"rate: {worst['setting'].replace('|', ' · ')}, {worst['rate']:.0%} of {int(worst['trials'])} trials. "
        "A comparison that uses such a setting uses its finished seeds only, and says so: it describes the "
        "runs that survived. An amplification that diverges often is a finding in itself, whatever the "
        "survivors detect."
    )


def lr_control_caption(optimizer: str, vs_twin: pd.DataFrame, value: str, alpha: float) -> str:
    """What the amplified − twin contrasts of one scale-sensitive optimizer show, and no more."""
    gains = vs_twin[vs_twin["verdict"] == "gain"]
    harms = vs_twin[vs_twin["verdict"] == "harm"]
    undetected = vs_twin[vs_twin["verdict"] == "not detectable"]
    parts = [
        f"Under {optimizer}, a linear λ equals its lr twin (linear, λ = 1, lr × λ), so amplified − twin is what "
        f"the amplification form adds beyond a larger step size. Bars: each amplified setting's gain in {value} "
        "over its baseline (blue) beside its twin's gain (orange), estimates and unadjusted 95% intervals "
        "from the linear model of the effects section (a picture, not a test). Amplified − twin, "
        f"Holm-corrected at α = {alpha} with every comparison of the study, family-wise intervals: "
        f"{verdict_counts(vs_twin)}."
    ]
    if len(gains):
        parts.append(f"More than a learning-rate change in {len(gains)} setting(s).")
    if len(harms):
        parts.append(f"Worse than its lr twin in {len(harms)} setting(s).")
    if len(undetected):
        widest = float(((undetected["ci_high"] - undetected["ci_low"]) / 2).max())
        parts.append(
            f"In {len(undetected)} setting(s) the difference is not detectable (family-wise intervals up to "
            f"±{widest:.3f}): "
            "these seeds cannot tell amplification from a larger learning rate there, which is not evidence "
            "that they are the same."
        )
    parts += [verdict_sentence(r) for _, r in vs_twin.iterrows()]
    return " ".join(parts)


def scale_free_sentence(optimizers: list[str]) -> str:
    """Adam-like optimisers: the baseline is the lr-matched control (DESIGN fact 1)."""
    if not optimizers:
        return ""
    return (
        f"Under {', '.join(optimizers)} the update ignores gradient scale, so the λ = 1 baseline is the "
        "learning-rate-matched control: the gain comparisons of the effects section are the lr control there."
    )


def steepness_sentence(
    measure: str, value: str, st: StratifiedRho, p_holm: float, n_measures: int, alpha: float = 0.05
) -> str:
    """Stratified ρ(measure, value) of setting means: a direction only when its Holm-adjusted p < alpha.

    `p_holm` is the permutation p Holm-adjusted over the `n_measures` steepness measures tested.
    """
    combined_rho, pooled_rho = st.combined_rho, st.pooled_rho
    usable = st.per_stratum[st.per_stratum["n"] >= MIN_SETTINGS]
    if not math.isfinite(combined_rho):
        return (
            f"{measure} vs {value}: no stratum (metric × optimizer × architecture) has {MIN_SETTINGS} or more "
            "settings with varying values, so there is no stratified estimate."
        )
    direction = steepness_direction(st, p_holm, alpha)
    if direction is not None:
        verdict = f"steeper minima detect {direction}"
    else:
        verdict = (
            f"not significant (Holm-adjusted {fmt_p(p_holm)} ≥ {alpha}): this study does not show that steeper "
            "minima detect better or worse"
        )
    pooled = f"{pooled_rho:+.2f}" if math.isfinite(pooled_rho) else "undefined"
    return (
        f"{measure} vs {value}: combined stratified ρ = {combined_rho:+.2f} over {int(usable['n'].sum())} "
        f"settings (seed means) in {len(usable)} strata, permutation {fmt_p(st.combined_p)} (settings "
        f"permuted within strata), Holm-adjusted over {n_measures} measure(s) {fmt_p(p_holm)}: {verdict}. "
        f"The pooled ρ over trials ignoring strata is {pooled}; it mixes the strata (the metric shifts both "
        "steepness and detection) and is not evidence"
    )


def steepness_direction(st: StratifiedRho, p_holm: float, alpha: float = 0.05) -> str | None:
    """`better` / `worse` when the combined test, Holm-adjusted over the measures (`p_holm`), is significant,
    else None (shared with the answers)."""
    if not math.isfinite(st.combined_rho) or not p_holm < alpha:
        return None
    return "better" if st.combined_rho > 0 else "worse"


def baseline_sentence(best_auroc: float, baseline: str, top: float, beats: bool) -> str:
    """The best trial against the strongest model-free score: two values on one test part, not a test."""
    if beats:
        return (
            f"The best trial (AUROC {best_auroc:.4f}) is above the strongest baseline ({baseline}, {top:.4f}) "
            "on this test part (a comparison of two values, not a test)."
        )
    return (
        f"Warning: the best trial (AUROC {best_auroc:.4f}) does not beat the baseline {baseline} ({top:.4f}): "
        "on this test part a score without a model detects at least as well as the best model of the study."
    )


def selector_verdict(agreement: float, p_two_sided: float, alpha: float) -> str:
    """`ranks trials` only when the agreement ρ is significantly positive (one-sided p < alpha)."""
    if not math.isfinite(agreement):
        return "no better than random here"
    if p_two_sided / 2 < alpha:
        return "ranks trials" if agreement > 0 else "wrong sign"
    return "no better than random here"


def selector_rule(alpha: float) -> str:
    """How a label-free score is flagged, stated once beside the flags."""
    return (
        f"A score is flagged 'no better than random here' unless its ρ is significantly positive "
        f"(one-sided p < {alpha}), and 'wrong sign' when it is significantly negative."
    )
