"""Effective-learning-rate control: is an amplification gain more than a larger step size?

Under a scale-sensitive optimizer (SGD) linear amplification *is* a larger
learning rate (DESIGN fact 1), so every amplified setting has an lr-matched
twin (linear, λ = 1, lr × λ) and the test is amplified − twin. Those contrasts
are rows of the effects model (`reports.stats.effects`, one Holm family with the
gains); the twin's own gain over the baseline is a contrast of the same model,
shown beside the amplified gain as a picture, not tested. One panel per
optimizer; under Adam-like optimizers the baseline is the control and the
effects section's gains are the test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.render.section import Panel
from reports.render.verdicts import cell_label, lr_control_caption, scale_free_sentence
from reports.sections.effects import model_frame, study_effects
from reports.source.extract import Study
from reports.stats.effects import fit_settings, partners
from reports.stats.pairing import is_twin
from study.core.vocab import SCALE_SENSITIVE_OPTIMIZERS


@dataclass(frozen=True)
class TwinComparison:
    """One amplified setting of a scale-sensitive optimizer against its baseline and its lr twin."""

    optimizer: str
    label: str  # metric · arch · form λ
    gain: dict[str, float]  # amplified − baseline: estimate, unadjusted ci_low, ci_high (model contrast)
    twin_gain: dict[str, float]  # twin − baseline, same model (shown, not tested)
    vs_twin: pd.Series  # the Holm-tested amplified − twin row of amplification_effects


@dataclass(frozen=True)
class LrControlData:
    """The twin comparisons of every scale-sensitive optimizer, and which optimizers need none."""

    detection: str
    n_twins: int  # finished twin trials in the study
    comparisons: list[TwinComparison]
    scale_free: list[str]  # optimizers of the study whose baseline is the lr control
    needs_twins: bool  # the study has a scale-sensitive optimizer (SGD)
    alpha: float = 0.05


def extract_lr_control(study: Study, *, alpha: float = 0.05) -> LrControlData:
    """Amplified − twin rows of the effects model, with both gains over the baseline for the bars."""
    y = study.detection
    frame, extra = model_frame(study)
    optimizers = sorted(frame["optimizer"].astype(str).unique()) if "optimizer" in frame else []
    scale_free = [o for o in optimizers if o not in SCALE_SENSITIVE_OPTIMIZERS]
    n_twins = int(is_twin(frame).sum())
    needs_twins = len(scale_free) < len(optimizers)
    model = fit_settings(frame, y, extra) if not frame.empty else None
    if model is None:
        return LrControlData(y, n_twins, [], scale_free, needs_twins, alpha)
    effects = study_effects(study, alpha)
    comparisons = []
    for _, row in effects[effects["kind"] == "vs_twin"].iterrows():
        amplified, base, twin = partners(row)
        if base not in model.settings:
            continue
        comparisons.append(
            TwinComparison(
                optimizer=str(row["optimizer"]),
                label=f"{cell_label(row, optimizer=False)} · {row['amplification']} λ={row['factor']:g}",
                gain=model.contrast(amplified, base, alpha=alpha),
                twin_gain=model.contrast(twin, base, alpha=alpha),
                vs_twin=row,
            )
        )
    return LrControlData(y, n_twins, comparisons, scale_free, needs_twins, alpha)


def draw_lr_control(data: LrControlData) -> list[Panel]:
    """Per scale-sensitive optimizer: grouped bars (amplified gain beside twin gain), verdicts in the caption."""
    free = scale_free_sentence(data.scale_free)
    if not data.comparisons and not data.needs_twins and free:
        return [Panel("twins", free)]
    if not data.comparisons:
        if data.n_twins == 0:
            why = (
                "the study has no effective-learning-rate twins (twin_of > 0) for a scale-sensitive optimizer; "
                "enable the twins to tell an amplification gain from a learning-rate change"
            )
        else:
            why = f"none of its {data.n_twins} finished twins matches a finished amplified trial and baseline"
        return [Panel("twins", f"No effective-learning-rate comparison: {why}. {free}".strip())]
    panels = []
    for optimizer in sorted({c.optimizer for c in data.comparisons}):
        mine = [c for c in data.comparisons if c.optimizer == optimizer]
        rows = pd.DataFrame([c.vs_twin for c in mine])
        caption = lr_control_caption(optimizer, rows, data.detection, data.alpha)
        name = "twins" if len(panels) == 0 else f"twins-{optimizer}"
        panels.append(Panel(name, f"{caption} {free}".strip(), _bars(mine, data.detection)))
    return panels


def _bars(comparisons: list[TwinComparison], detection: str) -> go.Figure:
    labels = [c.label for c in comparisons]
    fig = go.Figure()
    for name, attr, colour in (("amplified", "gain", "#1f77b4"), ("lr-matched twin", "twin_gain", "#ff7f0e")):
        est = [getattr(c, attr) for c in comparisons]
        fig.add_trace(
            go.Bar(
                x=labels,
                y=np.array([e["estimate"] for e in est]),
                name=name,
                marker_color=colour,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": np.array([e["ci_high"] - e["estimate"] for e in est]),
                    "arrayminus": np.array([e["estimate"] - e["ci_low"] for e in est]),
                    "visible": True,
                },
                hovertemplate=f"%{{x}}<br>{name}: %{{y:+.4f}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        height=420,
        yaxis_title=f"Δ {detection} over baseline",
        xaxis={"title": "metric · arch · amplification", "tickangle": -30},
        margin={"t": 20, "b": 140},
    )
    return fig
