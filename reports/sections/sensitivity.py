"""Sensitivity section: detection vs amplification factor per architecture × optimizer, and which params matter.

Only finished, non-twin trials enter (twins belong to the effective-learning-rate
section; collapsed, diverged and failed trials are listed in the summary). Each
line is one loss metric in one architecture × optimizer panel, averaged within
each seed over the params not shown (e.g. lr, width), then summarised over
seeds (`reports.stats.aggregate`): a picture of the data. Whether a gain over the
baseline is real is the effects section's test (`reports.sections.effects`), never read
off these lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reports.render.section import Panel
from reports.sections.importance import ImportanceData, draw_importance, extract_importance
from reports.source.extract import Study
from reports.stats.aggregate import Estimate, factor_levels, fmt_factor, seed_estimates
from reports.stats.pairing import is_twin

FACETS = ("arch", "optimizer")  # subplot rows, columns
_NOT_HYPERPARAMS = ("seed", "twin_of")  # replication and the lr control, not search dimensions
_SHOWN = {"arch", "optimizer", "metric", "amplification", "factor", "seed", "twin_of"}
COLOURS = qualitative.Plotly


@dataclass(frozen=True)
class Line:
    """Mean detection metric over seeds at each factor level, for one panel and one loss metric."""

    arch: str
    optimizer: str
    label: str  # loss metric, or "metric · amplification" when forms vary
    factors: list[float]
    estimates: list[Estimate]


@dataclass(frozen=True)
class SensitivityData:
    """Everything the sensitivity figures and captions show."""

    detection: str
    n_trials: int  # finished non-twin trials with a detection value
    archs: list[str]
    optimizers: list[str]
    lines: list[Line]
    averaged_over: list[str]  # varied params neither faceted, drawn as lines, nor on the x axis
    binned: bool  # factors were binned into log-spaced levels
    log_x: bool
    diverged: dict[float, tuple[int, int]]  # factor level -> (diverged, ended) among non-twin trials
    params: ImportanceData


def extract_sensitivity(study: Study) -> SensitivityData:
    """Aggregate the finished non-twin trials of a study by facet, loss metric and factor level."""
    y = study.detection
    done = study.finished()
    frame = (done[~is_twin(done) & done[y].notna()] if y in done else done.iloc[:0]).copy()
    for col, default in (
        ("arch", "all"),
        ("optimizer", "all"),
        ("metric", "all"),
        ("amplification", "linear"),
    ):
        frame[col] = frame[col].astype(str) if col in frame else default
    factors = frame["factor"].astype(float) if "factor" in frame else pd.Series(1.0, index=frame.index)
    frame["_level"], binned = factor_levels(factors)
    several_forms = frame["amplification"].nunique() > 1
    frame["_label"] = frame["metric"] + (" · " + frame["amplification"] if several_forms else "")
    lines = []
    for (arch, opt, label), cells in _group(
        seed_estimates(frame, y, ["arch", "optimizer", "_label", "_level"])
    ):
        levels = sorted(cells)
        lines.append(Line(arch, opt, label, levels, [cells[f] for f in levels]))
    varied = [p for p in study.param_columns if p in frame and frame[p].nunique(dropna=False) > 1]
    return SensitivityData(
        detection=y,
        n_trials=len(frame),
        archs=sorted(frame["arch"].unique()),
        optimizers=sorted(frame["optimizer"].unique()),
        lines=lines,
        averaged_over=[p for p in varied if p not in _SHOWN],
        binned=binned,
        log_x=bool((factors > 0).all()),
        diverged=_diverged(study.trials),
        params=extract_importance(frame, [p for p in varied if p not in _NOT_HYPERPARAMS], y),
    )


def draw_sensitivity(data: SensitivityData) -> list[Panel]:
    """Faceted lines, importance bars and parallel coordinates, each with its caption."""
    if not data.n_trials:
        return [Panel("lines", f"No finished trial has a value of {data.detection} yet: nothing to plot.")]
    return [Panel("lines", _lines_caption(data), _lines_figure(data)), *draw_importance(data.params)]


def _diverged(trials: pd.DataFrame) -> dict[float, tuple[int, int]]:
    """Per factor level: (diverged, ended) among non-twin trials that ended."""
    ended = trials[
        trials["status"].isin(["finished", "collapsed", "degenerate", "diverged", "failed"])
        & ~is_twin(trials)
    ]
    if "factor" not in ended:
        return {}
    levels, _ = factor_levels(ended["factor"].astype(float))
    out = {}
    for level, statuses in ended["status"].groupby(levels):
        if (statuses == "diverged").any():
            out[float(level)] = (int((statuses == "diverged").sum()), len(statuses))
    return out


def _group(cells: dict[tuple, Estimate]) -> list[tuple[tuple, dict[float, Estimate]]]:
    grouped: dict[tuple, dict[float, Estimate]] = {}
    for key, est in cells.items():
        grouped.setdefault(tuple(key[:-1]), {})[float(key[-1])] = est
    return sorted(grouped.items())


def _lines_figure(data: SensitivityData) -> go.Figure:
    rows, cols = data.archs, data.optimizers
    fig = make_subplots(
        rows=len(rows),
        cols=len(cols),
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=[f"{a} · {o}" for a in rows for o in cols],
        vertical_spacing=0.12 if len(rows) > 1 else 0.0,
    )
    labels = sorted({line.label for line in data.lines})
    colour = {lab: COLOURS[i % len(COLOURS)] for i, lab in enumerate(labels)}
    legend_done: set[str] = set()
    for line in data.lines:
        r, c = rows.index(line.arch) + 1, cols.index(line.optimizer) + 1
        mean = np.array([e.mean for e in line.estimates])
        if any(e.has_interval for e in line.estimates):
            lo = np.array([e.lo if e.has_interval else e.mean for e in line.estimates])
            hi = np.array([e.hi if e.has_interval else e.mean for e in line.estimates])
            band_x = np.concatenate([line.factors, line.factors[::-1]])
            fig.add_trace(
                go.Scatter(
                    x=band_x,
                    y=np.concatenate([hi, lo[::-1]]),
                    fill="toself",
                    mode="lines",
                    fillcolor=_alpha(colour[line.label], 0.18),
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=line.label,
                    name=f"{line.label} 95% CI",
                    meta="band",
                ),
                row=r,
                col=c,
            )
        fig.add_trace(
            go.Scatter(
                x=np.array(line.factors),
                y=mean,
                mode="lines+markers",
                name=line.label,
                legendgroup=line.label,
                showlegend=line.label not in legend_done,
                line={"color": colour[line.label]},
                customdata=np.array([e.n for e in line.estimates]),
                hovertemplate=f"{line.label}<br>λ=%{{x:.3g}}<br>{data.detection}=%{{y:.4f}}<br>seeds=%{{customdata}}<extra></extra>",
                meta="mean",
            ),
            row=r,
            col=c,
        )
        legend_done.add(line.label)
    fig.update_xaxes(type="log" if data.log_x else "linear")
    fig.update_xaxes(title_text="amplification factor λ", row=len(rows))
    fig.update_yaxes(title_text=data.detection, col=1)
    fig.update_layout(height=max(320, 280 * len(rows)), legend_title_text="loss metric", margin={"t": 40})
    return fig


def _lines_caption(data: SensitivityData) -> str:
    best = max(
        ((line, f, e) for line in data.lines for f, e in zip(line.factors, line.estimates, strict=True)),
        key=lambda t: t[2].mean,
    )
    line, factor, est = best
    text = (
        f"{data.detection} against the amplification factor λ ({'log' if data.log_x else 'linear'} axis) for "
        f"{data.n_trials} finished trials (twins excluded), one panel per architecture × optimizer and one line "
        f"per loss metric{' · amplification form' if any('·' in ln.label for ln in data.lines) else ''}. "
        "Each point is the mean over replicate seeds; the band is its 95% t-interval (no band where one seed "
        "finished), a description of the points: whether a gain over the baseline is real is tested in the "
        "effects section (one linear model, Holm-corrected)."
    )
    if data.averaged_over:
        text += f" Averaged within each seed over: {', '.join(data.averaged_over)}."
    if data.binned:
        text += " λ is binned into log-spaced levels (too many distinct values to plot each)."
    text += (
        f" The highest mean {data.detection} is {est.mean:.4f}"
        f"{f' ± {est.half_width:.4f}' if est.has_interval else ''} ({line.label}, {line.arch} · {line.optimizer}, "
        f"λ={fmt_factor(factor)})."
    )
    if data.diverged:
        parts = [f"{d} of {n} at λ={fmt_factor(f)}" for f, (d, n) in sorted(data.diverged.items())]
        text += f" Diverged trials (not plotted): {'; '.join(parts)}."
    return text


def _alpha(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
