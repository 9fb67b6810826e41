"""Effects section: every amplified setting against its baseline (and lr twin), one panel per optimizer.

The numbers are `reports.stats.effects.amplification_effects` rows (one linear model,
Holm-corrected); the captions are `reports.render.verdicts` sentences of the same
rows. Nothing is averaged over the optimizer, the metric or the architecture.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.render.section import Panel, html_table
from reports.render.verdicts import cell_label, effects_caption, instability_caption
from reports.source.extract import Study
from reports.stats.baseline_settings import BaselineCount, count_settings
from reports.stats.effects import STRATUM, amplification_effects, setting_keys
from reports.stats.survival import LOST, instability_table

VERDICT_COLOURS = {"gain": "#2ca02c", "harm": "#d62728", "not detectable": "#7f7f7f"}
NEEDED = {*STRATUM, "amplification", "factor", "seed"}
_NOT_OTHER = ("amplification", "factor", "seed", "twin_of")  # the comparison itself and the replicate


@dataclass(frozen=True)
class EffectsData:
    """The comparisons of a study and what they were computed on."""

    value: str  # the detection metric compared (test part)
    effects: pd.DataFrame  # amplification_effects(...) rows
    n_trials: int  # finished trials in the model (collapsed, degenerate, diverged, failed excluded)
    alpha: float
    baseline: BaselineCount  # how many settings beat the best model-free baseline (validation part)
    instability: pd.DataFrame  # survival.instability_table: settings that lost trials, with rates
    n_settings: int  # settings with an ended trial (finished or lost)


def model_frame(study: Study) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The finished trials the linear model uses (with `twin_of`) and the other params they vary.

    An lr varied only by the twins (lr x twin_of) is not "other": the twin's setting carries it.
    """
    frame = study.finished()
    if not NEEDED | {study.detection} <= set(frame.columns):
        return frame.iloc[:0], ()
    frame = frame[frame[study.detection].notna()]
    frame = frame.assign(twin_of=frame.get("twin_of", 0.0))
    twin = frame["twin_of"].astype(float) > 0
    extra = []
    for p in study.param_columns:
        if p in (*STRATUM, *_NOT_OTHER) or p not in frame:
            continue
        values = frame[p] / frame["twin_of"].where(twin, 1.0) if p == "lr" else frame[p]
        if values.map(lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)).nunique() > 1:
            extra.append(p)
    return frame, tuple(extra)


def lost_frame(study: Study) -> pd.DataFrame:
    """The trials that started and gave no value (diverged, collapsed, failed), keyed like `model_frame`."""
    trials = study.trials
    if not set(trials.columns) >= NEEDED:
        return trials.iloc[:0]
    lost = trials[trials["status"].isin(LOST)]
    return lost.assign(twin_of=lost.get("twin_of", 0.0))


_LAST: dict[tuple[int, float], tuple[weakref.ref, pd.DataFrame]] = {}  # one study's effects, per alpha


def study_effects(study: Study, alpha: float) -> pd.DataFrame:
    """`amplification_effects` of the study's finished trials, computed once per study object.

    The effects and lr-control sections both need it, and at 13,000 trials it costs seconds.
    """
    key = (id(study), alpha)
    hit = _LAST.get(key)
    if hit is not None and hit[0]() is study:
        return hit[1]
    frame, extra = model_frame(study)
    effects = amplification_effects(frame, study.detection, alpha=alpha, extra=extra, lost=lost_frame(study))
    _LAST.clear()
    _LAST[key] = (weakref.ref(study), effects)
    return effects


def extract_effects(study: Study, *, alpha: float = 0.05) -> EffectsData:
    """Effects on the test-part detection metric of the study's finished trials, and what was lost."""
    frame, extra = model_frame(study)
    baseline = count_settings(study.trials)
    lost = lost_frame(study)
    ended = pd.concat([frame.assign(status="finished"), lost], ignore_index=True)
    keys = setting_keys(ended, extra)
    instability = instability_table(keys, ended) if len(ended) else pd.DataFrame()
    if frame.empty:
        return EffectsData(study.detection, pd.DataFrame(), 0, alpha, baseline, instability, keys.nunique())
    effects = study_effects(study, alpha)
    return EffectsData(study.detection, effects, len(frame), alpha, baseline, instability, keys.nunique())


def draw_effects(data: EffectsData) -> list[Panel]:
    """The settings against the model-free baselines, then one panel per optimizer (intervals as a
    forest plot, each comparison's sentence, the table), then instability."""
    head = [Panel("baselines", data.baseline.sentence())]
    unstable = (
        [
            Panel(
                "instability",
                instability_caption(data.instability, data.n_settings),
                table_html=_unstable(data),
            )
        ]
        if len(data.instability)
        else []
    )
    if data.effects.empty:
        return head + [
            Panel(
                "none",
                "No comparison could be estimated: the study needs an un-amplified baseline (linear, λ = 1) "
                "and more trials than settings + seeds (at least 2 seeds per setting).",
            ),
            *unstable,
        ]
    return (
        head
        + [
            Panel(
                str(optimizer),
                effects_caption(optimizer, rows, data.value, data.n_trials, data.alpha),
                _forest(rows, data.value),
                table_html=_table(rows),
            )
            for optimizer, rows in data.effects.groupby("optimizer", sort=True)
        ]
        + unstable
    )


def _unstable(data: EffectsData) -> str:
    return html_table(
        ["setting", "trials", *LOST, "lost rate"],
        [
            (
                r["setting"].replace("|", " · "),
                int(r["trials"]),
                *(int(r[s]) for s in LOST),
                f"{r['rate']:.0%}",
            )
            for _, r in data.instability.iterrows()
        ],
    )


def comparison_label(row: pd.Series) -> str:
    """`mse · conv_ae · exp λ=10 vs baseline` (the optimizer is the panel)."""
    versus = "vs baseline" if row["kind"] == "gain" else "vs lr twin"
    return f"{cell_label(row, optimizer=False)} · {row['amplification']} λ={row['factor']:g} {versus}"


def _forest(rows: pd.DataFrame, value: str) -> go.Figure:
    labels = [comparison_label(r) for _, r in rows.iterrows()]
    fig = go.Figure()
    for verdict, colour in VERDICT_COLOURS.items():
        sel = (rows["verdict"] == verdict).to_numpy()
        if not sel.any():
            continue
        part = rows[sel]
        fig.add_trace(
            go.Scatter(
                x=part["estimate"].to_numpy(float),
                y=np.array(labels, dtype=object)[sel],
                mode="markers",
                name=verdict,
                marker={"color": colour, "size": 8},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": (part["ci_high"] - part["estimate"]).to_numpy(float),
                    "arrayminus": (part["estimate"] - part["ci_low"]).to_numpy(float),
                },
                hovertemplate="%{y}: %{x:+.4f}<extra>" + verdict + "</extra>",
            )
        )
    fig.add_vline(x=0.0, line_dash="dot")
    fig.update_layout(
        height=120 + 22 * len(rows),
        xaxis_title=f"Δ {value} (family-wise interval, Bonferroni over the Holm family)",
        yaxis={"autorange": "reversed"},
        margin={"t": 20, "l": 260},
    )
    return fig


def _table(rows: pd.DataFrame) -> str:
    return html_table(
        [
            "metric",
            "arch",
            "other params",
            "comparison",
            "form",
            "λ",
            "estimate",
            "family-wise interval",
            "unadjusted 95%",
            "Holm p",
            "verdict",
            "seeds lost",
        ],
        [
            (
                r["metric"],
                r["arch"],
                r["other"].replace("|", ", "),
                "vs baseline" if r["kind"] == "gain" else "vs lr twin",
                r["amplification"],
                f"{r['factor']:g}",
                f"{r['estimate']:+.4f}",
                f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
                f"[{r['ci_unadj_low']:+.4f}, {r['ci_unadj_high']:+.4f}]",
                f"{r['p_holm']:.2g}",
                r["verdict"],
                r["lost"],
            )
            for _, r in rows.iterrows()
        ],
    )
