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
from reports.stats.effects import StratifiedRho

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
    """The caption of one `reports.stats.effects.amplification_effects` row, from the same row."""
    what = "gain over the un-amplified baseline" if row["kind"] == "gain" else "difference from its lr twin"
    head = (
        f"{cell_label(row)} · {row['amplification']} λ={row['factor']:g}: "
        f"{what} {row['estimate']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], Holm p = {row['p_holm']:.2g}"
    )
    if row["verdict"] != "not detectable":
        return f"{head} — {row['verdict']}."
    needed = (
        f", this estimate would need {int(row['seeds_needed'])} seeds."
        if math.isfinite(row["seeds_needed"])
        else "."
    )
    return (
        f"{head} — not detectable: the interval is ±{(row['ci_high'] - row['ci_low']) / 2:.3f}; "
        f"{row['n_seeds']} seed{'s' if row['n_seeds'] != 1 else ''} would detect an effect of "
        f"{row['detectable']:.3f}{needed}"
    )


def verdict_counts(rows: pd.DataFrame) -> str:
    """`2 gain, 1 harm, 9 not detectable` (only the verdicts present)."""
    counts = rows["verdict"].value_counts().to_dict()
    return ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))


def effects_caption(optimizer: str, rows: pd.DataFrame, value: str, n_trials: int, alpha: float) -> str:
    """The caption of one optimizer's effects panel: the model, the family, every comparison's verdict."""
    return (
        f"{optimizer}: {len(rows)} comparison(s) of {value} on the test part, from one linear model over "
        f"{n_trials} finished trials (setting + seed effects, noise pooled, Holm-corrected at α = {alpha} over "
        f"every comparison of the study): {verdict_counts(rows)}. "
        + " ".join(verdict_sentence(r) for _, r in rows.iterrows())
        + f" {ABSENCE}"
    )


def lr_control_caption(optimizer: str, vs_twin: pd.DataFrame, value: str, alpha: float) -> str:
    """What the amplified − twin contrasts of one scale-sensitive optimizer show, and no more."""
    gains = vs_twin[vs_twin["verdict"] == "gain"]
    harms = vs_twin[vs_twin["verdict"] == "harm"]
    undetected = vs_twin[vs_twin["verdict"] == "not detectable"]
    parts = [
        f"Under {optimizer}, a linear λ equals its lr twin (linear, λ = 1, lr × λ), so amplified − twin is what "
        f"the amplification form adds beyond a larger step size. Bars: each amplified setting's gain in {value} "
        "over its baseline (blue) beside its twin's gain (orange), estimates and 95% intervals from the linear "
        f"model of the effects section. Amplified − twin, Holm-corrected at α = {alpha} with every comparison "
        f"of the study: {verdict_counts(vs_twin)}."
    ]
    if len(gains):
        parts.append(f"More than a learning-rate change in {len(gains)} setting(s).")
    if len(harms):
        parts.append(f"Worse than its lr twin in {len(harms)} setting(s).")
    if len(undetected):
        widest = float(((undetected["ci_high"] - undetected["ci_low"]) / 2).max())
        parts.append(
            f"In {len(undetected)} setting(s) the difference is not detectable (intervals up to ±{widest:.3f}): "
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


def steepness_sentence(measure: str, value: str, st: StratifiedRho, alpha: float = 0.05) -> str:
    """Stratified ρ(measure, value): a direction only when the combined test is significant."""
    combined_rho, combined_p, pooled_rho = st.combined_rho, st.combined_p, st.pooled_rho
    n_strata = int((st.per_stratum["n"] >= 4).sum())
    if not math.isfinite(combined_rho):
        return (
            f"{measure} vs {value}: no stratum (metric × optimizer × architecture) has 4 or more trials with "
            "varying values, so there is no stratified estimate."
        )
    direction = steepness_direction(st, alpha)
    if direction is not None:
        verdict = f"steeper minima detect {direction}"
    else:
        verdict = (
            f"not significant ({fmt_p(combined_p)} ≥ {alpha}): this study does not show that steeper minima "
            "detect better or worse"
        )
    pooled = f"{pooled_rho:+.2f}" if math.isfinite(pooled_rho) else "undefined"
    return (
        f"{measure} vs {value}: combined stratified ρ = {combined_rho:+.2f} (Fisher z over {n_strata} strata "
        f"with n ≥ 4, {fmt_p(combined_p)}): {verdict}. The pooled ρ ignoring strata is {pooled}; it mixes "
        "the strata (the metric shifts both steepness and detection) and is not evidence"
    )


def steepness_direction(st: StratifiedRho, alpha: float = 0.05) -> str | None:
    """`better` / `worse` when the combined stratified test is significant, else None (shared with the answers)."""
    if not math.isfinite(st.combined_rho) or not st.combined_p < alpha:
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
