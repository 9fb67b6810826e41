"""Answers section: the study's answers in plain sentences, read from the data the sections below computed.

A reader comes with a few questions (does amplification help, under which
optimizer, beyond a larger learning rate? does steepness go with detection?
which model, and how sure?). Each answer here restates verdicts that the
effects, lr-control, steepness, summary and label-free sections already
computed: `reports.build` passes their data objects in, so nothing here fits a
model or runs a test, a change to those statistics changes these answers with
them, and no answer is stated more strongly than its section (an effect that
is not detectable is reported with the size the seeds could have detected,
never as "no effect"). Each answer links to the section it summarises.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import pandas as pd

from reports.render.labels import fmt_p
from reports.render.section import Section
from reports.render.verdicts import baseline_sentence, cell_label, steepness_direction
from reports.sections.effects import EffectsData, comparison_label, model_frame
from reports.sections.labelfree import LabelFreeData
from reports.sections.lr_control import LrControlData
from reports.sections.steepness import SteepnessData
from reports.sections.summary import SummaryData
from reports.source.extract import Study
from reports.stats.aggregate import fmt_factor
from reports.stats.effects import partners, setting_of
from study.selection import TRIAL_METRICS

MAX_LISTED = 3  # settings named per sentence; the rest are counted
PROBLEMS = ("diverged", "collapsed", "failed")


@dataclass(frozen=True)
class Answer:
    """One plain sentence (or a few) and the section whose numbers it states."""

    key: str  # amplification-<optimizer>, beyond-lr-<optimizer>, steepness, model, next
    question: str
    text: str
    section: str  # anchor key of the section it summarises


@dataclass(frozen=True)
class AnswersData:
    """The answers in reading order."""

    answers: list[Answer]


NO_TRIALS = Answer(
    "none", "Answers:", "the study has no trials yet, so there is nothing to answer.", "summary"
)


def extract_answers(
    study: Study,
    summary: SummaryData,
    effects: EffectsData,
    lr: LrControlData,
    steepness: SteepnessData,
    label_free: LabelFreeData | None,
) -> AnswersData:
    """The answers of one study from its sections' data (see the module docstring)."""
    answers = _amplification(effects) + _beyond_lr(lr) + [_steepness(steepness)]
    answers += [_model(study, summary, effects, label_free), _next(study, effects, summary)]
    return AnswersData(answers)


def answers_section(data: AnswersData) -> Section:
    """A list of question → answer, each linking to its section (escaped HTML, no figure)."""
    items = "".join(
        f"<li><b>{html.escape(a.question)}</b> {html.escape(a.text)} "
        f"<a href='#sec-{html.escape(a.section)}'>(details)</a></li>"
        for a in data.answers
    )
    return Section("answers", "Answers", [], preamble_html=f"<ul class='answers'>{items}</ul>")


def _listed(rows: pd.DataFrame) -> str:
    """The first MAX_LISTED comparisons with estimate and interval, then how many more."""
    parts = [
        f"{cell_label(r, optimizer=False)} · {r['amplification']} λ={r['factor']:g} "
        f"{r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        for _, r in rows.head(MAX_LISTED).iterrows()
    ]
    more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return "; ".join(parts) + more


def _detectable_range(rows: pd.DataFrame) -> str:
    low, high = float(rows["detectable"].min()), float(rows["detectable"].max())
    return f"{low:.3f}" if math.isclose(low, high, rel_tol=0.05) else f"{low:.3f} to {high:.3f}"


def _amplification(effects: EffectsData) -> list[Answer]:
    """Per optimizer: the gain comparisons (amplified − baseline) by verdict."""
    rows = effects.effects
    if rows.empty:
        text = (
            "No comparison could be estimated: the study needs an un-amplified baseline (linear, λ = 1) "
            "and at least 2 seeds per setting."
        )
        return [Answer("amplification", "Does amplification help?", text, "effects")]
    out = []
    for optimizer, mine in rows[rows["kind"] == "gain"].groupby("optimizer", sort=True):
        gains = mine[mine["verdict"] == "gain"].sort_values("estimate", ascending=False)
        harms = mine[mine["verdict"] == "harm"].sort_values("estimate")
        unknown = mine[mine["verdict"] == "not detectable"]
        parts = []
        if len(gains):
            parts.append(f"helps in {len(gains)} of {len(mine)} settings ({_listed(gains)})")
        if len(harms):
            none = "" if len(gains) else f"helps in none of {len(mine)} settings and "
            parts.append(f"{none}hurts in {len(harms)} of {len(mine)} ({_listed(harms)})")
        head = (
            f"amplification {' and '.join(parts)}"
            if parts
            else f"no amplified setting differs detectably from its baseline ({len(mine)} settings)"
        )
        tail = (
            f"; in {len(unknown)} setting(s) the difference is not detectable — these seeds would detect "
            f"an effect of {_detectable_range(unknown)}, so smaller effects are not ruled out"
            if len(unknown)
            else ""
        )
        text = f"Under {optimizer}, {head}{tail} (Holm-corrected, α = {effects.alpha})."
        out.append(
            Answer(
                f"amplification-{optimizer}", f"Does amplification help under {optimizer}?", text, "effects"
            )
        )
    return out


def _beyond_lr(lr: LrControlData) -> list[Answer]:
    """Per scale-sensitive optimizer: amplified − lr twin by verdict; Adam-like optimizers need no twin."""
    out = []
    for optimizer in sorted({c.optimizer for c in lr.comparisons}):
        rows = pd.DataFrame([c.vs_twin for c in lr.comparisons if c.optimizer == optimizer])
        more = rows[rows["verdict"] == "gain"].sort_values("estimate", ascending=False)
        worse = rows[rows["verdict"] == "harm"]
        unknown = rows[rows["verdict"] == "not detectable"]
        parts = []
        if len(more):
            parts.append(
                f"does more than its lr-matched twin in {len(more)} of {len(rows)} ({_listed(more)})"
            )
        if len(worse):
            parts.append(f"does worse than its twin in {len(worse)} of {len(rows)}")
        if len(unknown):
            widest = float(((unknown["ci_high"] - unknown["ci_low"]) / 2).max())
            parts.append(
                f"cannot be told from a larger learning rate in {len(unknown)} of {len(rows)} (intervals up to "
                f"±{widest:.3f}; not evidence that they are the same)"
            )
        text = f"Under {optimizer}, amplification {'; '.join(parts)}."
        out.append(
            Answer(
                f"beyond-lr-{optimizer}", f"Beyond a larger learning rate ({optimizer})?", text, "lr-control"
            )
        )
    if lr.needs_twins and not lr.comparisons:
        text = (
            "Not answerable: the scale-sensitive optimizer has no matching lr twins, so an amplification "
            "gain cannot be told from a larger learning rate."
        )
        out.append(Answer("beyond-lr", "Beyond a larger learning rate?", text, "lr-control"))
    if lr.scale_free:
        text = (
            f"Under {', '.join(lr.scale_free)} the update ignores gradient scale, so the un-amplified baseline "
            "already is the learning-rate-matched control: the answer above is the answer beyond the learning rate."
        )
        out.append(
            Answer("beyond-lr-scale-free", "Beyond a larger learning rate (Adam-like)?", text, "lr-control")
        )
    return out


def _steepness(data: SteepnessData) -> Answer:
    """The stratified correlation of each steepness measure with detection, with its test's verdict."""
    question = "Does a steeper minimum go with better detection?"
    if not data.correlations:
        return Answer("steepness", question, "No finished trial logged a steepness measure.", "steepness")
    parts = []
    for c in data.correlations:
        st = c.result
        if not math.isfinite(st.combined_rho):
            parts.append(f"{c.measure}: no stratum has 4 or more trials, so there is no estimate")
            continue
        direction = steepness_direction(st)
        said = (
            f"steeper detects {direction} within strata"
            if direction
            else "not shown either way (not significant)"
        )
        parts.append(f"{c.measure}: {said} (combined ρ = {st.combined_rho:+.2f}, {fmt_p(st.combined_p)})")
    text = (
        f"Within metric × optimizer × architecture strata, against {data.detection}: "
        + "; ".join(parts)
        + ". A pooled correlation across strata is not evidence."
    )
    return Answer("steepness", question, text, "steepness")


def _model(
    study: Study, summary: SummaryData, effects: EffectsData, label_free: LabelFreeData | None
) -> Answer:
    """The recommended trial: how it was selected, its test value beside the baselines, its setting's verdict."""
    question = "Which model should I deploy, and how sure is that?"
    if summary.best_trial_id is None:
        return Answer("model", question, "No finished trial has an objective value yet.", "summary")
    key = study.selection_metric
    if study.objective in TRIAL_METRICS:
        how = f"picked without labels by {study.objective}" + _regret(label_free)
    elif key.startswith("val_"):
        how = f"selected on the validation part ({key}), so its test value did not choose it"
    else:
        how = f"ranked by {key} itself (no validation value was logged, so that value is optimistic)"
    parts = [f"Trial {summary.best_trial_id} ({summary.best_setting}), {how}."]
    if summary.best_auroc is not None and summary.baselines:
        name, top = max(summary.baselines.items(), key=lambda kv: kv[1])
        short = name.removeprefix("baseline_").removesuffix("_auroc")
        parts.append(baseline_sentence(summary.best_auroc, short, top, bool(summary.best_beats_baselines)))
    elif summary.best_auroc is not None:
        parts.append(f"Its test AUROC is {summary.best_auroc:.4f} (no model-free baseline was logged).")
    parts.append(_best_setting_verdict(study, effects))
    return Answer("model", question, " ".join(p for p in parts if p), "summary")


def _regret(label_free: LabelFreeData | None) -> str:
    """The chosen label-free selector's expected regret (its benchmark record) and its regret here."""
    if label_free is None:
        return ""
    mine = next((s for s in label_free.scores if s.name == label_free.chosen), None)
    here = (
        f"; on this study it costs {mine.regret:.4f} {label_free.detection} against the labelled best"
        if mine
        else ""
    )
    record = label_free.record
    if record is None:
        return f"{here} (the regret benchmark has no record of it)"
    expected = record["selector"]["median_regret"]
    return f" (expected regret over {record['n_tasks']} benchmark tasks: median {expected:.4f}){here}"


def _best_setting_verdict(study: Study, effects: EffectsData) -> str:
    """How sure: the verdict of the best trial's setting against its baseline (effects section)."""
    best = study.best()
    frame, extra = model_frame(study)
    if best is None or effects.effects.empty or frame.empty:
        return ""
    twin = float(best.get("twin_of", 0.0) or 0.0)
    if twin > 0:
        return f"Its setting is an lr twin (linear, λ = 1 at lr × {twin:g}): a larger learning rate, not amplification."
    if str(best.get("amplification")) == "linear" and float(best.get("factor", 1.0)) == 1.0:
        return "Its setting is the un-amplified baseline."
    key = setting_of(best, extra)
    for _, row in effects.effects[effects.effects["kind"] == "gain"].iterrows():
        if partners(row)[0] == key:
            return (
                f"Its setting ({comparison_label(row)}) against the baseline: {row['estimate']:+.3f} "
                f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], {row['verdict']}."
            )
    return ""


def _next(study: Study, effects: EffectsData, summary: SummaryData) -> Answer:
    """More seeds where an estimate would become detectable; cells whose trials did not finish."""
    parts = []
    rows = effects.effects
    if not rows.empty:
        open_rows = rows[(rows["verdict"] == "not detectable") & rows["seeds_needed"].map(math.isfinite)]
        open_rows = open_rows.sort_values("seeds_needed", kind="mergesort")
        if len(open_rows):
            named = "; ".join(
                f"{comparison_label(r)} under {r['optimizer']}: {int(r['seeds_needed'])} seeds (has {int(r['n_seeds'])})"
                for _, r in open_rows.head(MAX_LISTED).iterrows()
            )
            parts.append(
                f"{len(open_rows)} undetected comparison(s) would become detectable if their estimate held, "
                f"with more seeds, fewest first: {named}"
            )
    unstable = _unstable_cells(study)
    if unstable:
        parts.append(f"cells whose trials did not all finish (unstable): {unstable}")
    if summary.status == "running":
        parts.append("the study is still running, so every answer above will change")
    text = "; ".join(parts) + "." if parts else "Nothing stands out: every comparison is detectable."
    return Answer(
        "next", "What would make this study more conclusive?", text[0].upper() + text[1:], "effects"
    )


def _unstable_cells(study: Study) -> str:
    """Cells (metric · optimizer · arch · form λ) with diverged, collapsed or failed trials, most first."""
    trials = study.trials
    labels = [c for c in ("metric", "optimizer", "arch", "amplification") if c in trials]
    bad = trials["status"].isin(PROBLEMS)
    if not labels or not bad.any():
        return ""
    keyed = trials[labels[0]].astype(str)
    for c in labels[1:]:
        keyed = keyed + " · " + trials[c].astype(str)  # vectorised: a 13,000-trial study stays fast
    if "factor" in trials:
        keyed = keyed + trials["factor"].map(lambda f: f" λ={fmt_factor(float(f))}")
    if "twin_of" in trials:  # an lr twin is its own cell, not its baseline's
        twin = trials["twin_of"].fillna(0.0).astype(float)
        keyed = keyed.where(twin <= 0, keyed + twin.map(lambda f: f" (lr twin of λ={fmt_factor(f)})"))
    counts = pd.DataFrame({"cell": keyed, "bad": bad}).groupby("cell")["bad"].agg(["sum", "size"])
    counts = counts[counts["sum"] > 0].sort_values(["sum", "size"], ascending=[False, True], kind="mergesort")
    shown = [
        f"{cell} ({int(r['sum'])} of {int(r['size'])})" for cell, r in counts.head(MAX_LISTED).iterrows()
    ]
    more = f" and {len(counts) - MAX_LISTED} more" if len(counts) > MAX_LISTED else ""
    return ", ".join(shown) + more
