"""Effects section: every amplified setting against its baseline (and lr twin), one panel per optimizer.

The numbers are `reports.stats.effects.amplification_effects` rows (one linear model,
Holm-corrected); the captions are `reports.render.verdicts` sentences of the same
rows. Nothing is averaged over the optimizer, the metric or the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.render.section import Panel, html_table
from reports.render.verdicts import cell_label, effects_caption
from reports.source.extract import Study
from reports.stats.baseline_settings import BaselineCount, count_settings
from reports.stats.effects import STRATUM, amplification_effects

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


def extract_effects(study: Study, *, alpha: float = 0.05) -> EffectsData:
    """Effects on the test-part detection metric of the study's finished trials."""
    frame, extra = model_frame(study)
    baseline = count_settings(study.trials)
    if frame.empty:
        return EffectsData(study.detection, pd.DataFrame(), 0, alpha, baseline)
    effects = amplification_effects(frame, study.detection, alpha=alpha, extra=extra)
    return EffectsData(study.detection, effects, len(frame), alpha, baseline)


def draw_effects(data: EffectsData) -> list[Panel]:
    """The settings against the model-free baselines, then one panel per optimizer: intervals as a
    forest plot, each comparison's sentence, the table."""
    head = [Panel("baselines", data.baseline.sentence())]
    if data.effects.empty:
        return head + [
            Panel(
                "none",
                "No comparison could be estimated: the study needs an un-amplified baseline (linear, λ = 1) "
                "and more trials than settings + seeds (at least 2 seeds per setting).",
            )
        ]
    return head + [
        Panel(
            str(optimizer),
            effects_caption(optimizer, rows, data.value, data.n_trials, data.alpha),
            _forest(rows, data.value),
            table_html=_table(rows),
        )
        for optimizer, rows in data.effects.groupby("optimizer", sort=True)
    ]


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
        xaxis_title=f"Δ {value} (95% interval)",
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
            "95% CI",
            "Holm p",
            "verdict",
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
                f"{r['p_holm']:.2g}",
                r["verdict"],
            )
            for _, r in rows.iterrows()
        ],
    )
