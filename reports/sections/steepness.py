"""Landscape-steepness section: does amplification steepen the base loss, and does steepness track detection?

Tests the LAMP claim on the user's data, stratum by stratum: the loss metric
and the optimizer shift both steepness and detection, so a ρ pooled over them
measures the strata, not the claim (Simpson's paradox). Hence:

- steepness against λ: medians with their IQR (values can be <= 0, so no
  means of logs), one line per metric · architecture, one row per optimizer;
- steepness against detection: Spearman ρ of setting means (over seeds) within
  every metric × optimizer × architecture stratum, combined and tested by
  permuting settings within strata (`reports.stats.rank`), Holm-corrected over the
  measures tested; the sentence from `reports.render.verdicts`;
- the measured loss slices of the baseline and the best trials (`reports.sections.slices`).

Finished trials only: collapsed, diverged and failed trials never enter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reports.render.section import Panel, html_table
from reports.render.verdicts import steepness_sentence
from reports.sections.effects import model_frame
from reports.sections.slices import SliceData, draw_slices, extract_slices
from reports.source.extract import ArtifactLoader, Study
from reports.stats.aggregate import Points, factor_levels, fmt_factor, scatter_points
from reports.stats.effects import STRATUM
from reports.stats.multiplicity import holm
from reports.stats.pairing import is_twin
from reports.stats.rank import StratifiedRho, stratified_spearman

MEASURES = ("sharpness", "hessian_trace", "slice_curvature")
COLOURS = qualitative.Plotly


@dataclass(frozen=True)
class SteepnessLine:
    """Median and IQR of one measure at each factor level, for one optimizer and one metric · arch line."""

    measure: str
    optimizer: str
    label: str  # "metric · arch", plus " · form" when forms vary
    factors: list[float]
    medians: list[float]
    q1: list[float]
    q3: list[float]
    counts: list[int]  # trials behind each median


@dataclass(frozen=True)
class Correlation:
    """A steepness measure against the detection metric, within strata and combined."""

    measure: str
    x: list[float]
    y: list[float]
    trial_ids: list[str]
    strata: list[str]  # "metric · optimizer · arch" of each point
    result: StratifiedRho
    p_holm: float  # the permutation p, Holm-adjusted over every measure correlated
    points: Points  # what the scatter draws (columns: the measure, the detection metric, "stratum")


@dataclass(frozen=True)
class SteepnessData:
    """Everything the steepness figures and captions show."""

    detection: str
    measures: list[str]  # measures some finished trial logged
    optimizers: list[str]
    lines: list[SteepnessLine]
    log_x: bool
    correlations: list[Correlation]
    landscape: SliceData


def extract_steepness(study: Study, artifacts: ArtifactLoader) -> SteepnessData:
    """Medians per stratum and level, stratified correlations, and the shown trials' landscapes."""
    y = study.detection
    done = study.finished().copy()
    for col in (*STRATUM, "amplification"):
        done[col] = done[col].astype(str) if col in done else "all"
    measures = [m for m in MEASURES if m in done and done[m].notna().any()]
    frame = done[~is_twin(done)].copy()
    factors = frame["factor"].astype(float) if "factor" in frame else pd.Series(1.0, index=frame.index)
    frame["_level"], _ = factor_levels(factors)
    form = " · " + frame["amplification"] if frame["amplification"].nunique() > 1 else ""
    frame["_label"] = frame["metric"] + " · " + frame["arch"] + form
    lines = [line for m in measures for line in _lines(frame, m)]
    extra = model_frame(study)[1]
    correlations = _holm([_correlation(done, m, y, extra) for m in measures] if y in done else [])
    return SteepnessData(
        detection=y,
        measures=measures,
        optimizers=sorted(frame["optimizer"].unique()),
        lines=lines,
        log_x=bool((factors > 0).all()),
        correlations=correlations,
        landscape=extract_slices(study, artifacts),
    )


def draw_steepness(data: SteepnessData) -> list[Panel]:
    """Steepness vs λ, steepness vs detection (stratified), 1-D slices and 2-D surfaces."""
    if data.lines:
        panels = [Panel("vs-factor", _factor_caption(data), _factor_figure(data))]
    else:
        panels = [
            Panel(
                "vs-factor",
                "No finished trial logged a steepness measure (sharpness, hessian_trace, slice_curvature).",
            )
        ]
    if data.correlations:
        panels.append(
            Panel(
                "vs-detection",
                _correlation_caption(data),
                _correlation_figure(data),
                table_html=_strata_table(data),
            )
        )
    return panels + draw_slices(data.landscape)


def _lines(frame: pd.DataFrame, measure: str) -> list[SteepnessLine]:
    """One line per (optimizer, label): median and IQR over the trials at each level."""
    values = frame[frame[measure].notna()]
    cells = values.groupby(["optimizer", "_label", "_level"], sort=True)[measure]
    q = cells.quantile([0.5, 0.25, 0.75]).unstack()
    q["n"] = cells.size()
    out = []
    for (opt, label), line in q.groupby(level=[0, 1], sort=True):
        out.append(
            SteepnessLine(
                measure,
                str(opt),
                str(label),
                [float(f) for f in line.index.get_level_values(2)],
                line[0.5].astype(float).tolist(),
                line[0.25].astype(float).tolist(),
                line[0.75].astype(float).tolist(),
                line["n"].astype(int).tolist(),
            )
        )
    return out


def _correlation(done: pd.DataFrame, measure: str, y: str, extra: tuple[str, ...]) -> Correlation:
    both = done[done[measure].notna() & done[y].notna()]
    strata = both["metric"] + " · " + both["optimizer"] + " · " + both["arch"]
    return Correlation(
        measure,
        both[measure].astype(float).tolist(),
        both[y].astype(float).tolist(),
        both["trial_id"].astype(str).tolist(),
        strata.tolist(),
        stratified_spearman(both.assign(twin_of=both.get("twin_of", 0.0)), measure, y, extra=extra),
        float("nan"),
        scatter_points(both.assign(stratum=strata), [measure, y], y, keep=["stratum"]),
    )


def _holm(correlations: list[Correlation]) -> list[Correlation]:
    """The measures are one family: each combined p Holm-adjusted over those with a p."""
    tested = [i for i, c in enumerate(correlations) if np.isfinite(c.result.combined_p)]
    if not tested:
        return correlations
    adjusted = holm(np.array([correlations[i].result.combined_p for i in tested]))
    out = list(correlations)
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = replace(out[i], p_holm=float(p))
    return out


def rises(line: SteepnessLine) -> bool | None:
    """Whether the median at the largest λ exceeds the one at the smallest (None with one level)."""
    if len(line.factors) < 2:
        return None
    return line.medians[-1] > line.medians[0]


def _factor_figure(data: SteepnessData) -> go.Figure:
    rows, cols = data.optimizers, data.measures
    fig = make_subplots(
        rows=len(rows),
        cols=len(cols),
        subplot_titles=[f"{o} · {m}" for o in rows for m in cols],
        horizontal_spacing=0.08,
        vertical_spacing=0.15 if len(rows) > 1 else 0.0,
    )
    labels = sorted({ln.label for ln in data.lines})
    colour = {lab: COLOURS[i % len(COLOURS)] for i, lab in enumerate(labels)}
    legend_done: set[str] = set()
    for line in data.lines:
        med, q1, q3 = np.array(line.medians), np.array(line.q1), np.array(line.q3)
        fig.add_trace(
            go.Scatter(
                x=np.array(line.factors),
                y=med,
                error_y={"type": "data", "symmetric": False, "array": q3 - med, "arrayminus": med - q1},
                mode="lines+markers",
                name=line.label,
                legendgroup=line.label,
                showlegend=line.label not in legend_done,
                line={"color": colour[line.label]},
                customdata=np.array(line.counts),
                hovertemplate=f"{line.label}<br>λ=%{{x:.3g}}<br>median %{{y:.3g}} (n=%{{customdata}})<extra></extra>",
                meta="median",
            ),
            row=rows.index(line.optimizer) + 1,
            col=cols.index(line.measure) + 1,
        )
        legend_done.add(line.label)
    fig.update_xaxes(type="log" if data.log_x else "linear", title_text="λ")
    fig.update_layout(height=max(360, 300 * len(rows)), legend_title_text="metric · arch", margin={"t": 40})
    return fig


def _correlation_figure(data: SteepnessData) -> go.Figure:
    titles = [f"{c.measure}: stratified ρ = {c.result.combined_rho:+.2f}" for c in data.correlations]
    fig = make_subplots(rows=1, cols=len(data.correlations), subplot_titles=titles, shared_yaxes=True)
    labels = sorted({s for c in data.correlations for s in c.strata})
    colour = {lab: COLOURS[i % len(COLOURS)] for i, lab in enumerate(labels)}
    for i, c in enumerate(data.correlations, start=1):
        points = c.points.frame
        for label in sorted(set(c.strata)):
            shown = points[points["stratum"] == label]
            fig.add_trace(
                go.Scatter(
                    x=shown[c.measure].to_numpy(float),
                    y=shown[data.detection].to_numpy(float),
                    mode="markers",
                    name=label,
                    legendgroup=label,
                    showlegend=i == 1,
                    text=shown["label"].to_numpy(object),
                    marker={"size": 6, "opacity": 0.7, "color": colour[label]},
                    hovertemplate=f"%{{text}}<br>{c.measure}=%{{x:.3g}}<br>{data.detection}=%{{y:.4f}}<extra>{label}</extra>",
                ),
                row=1,
                col=i,
            )
        positive = all(v > 0 for v in c.x)
        fig.update_xaxes(type="log" if positive else "linear", title_text=c.measure, row=1, col=i)
    fig.update_yaxes(title_text=data.detection, row=1, col=1)
    fig.update_layout(height=380, legend_title_text="metric · optimizer · arch", margin={"t": 40})
    return fig


def _strata_table(data: SteepnessData) -> str:
    return html_table(
        ["measure", "metric", "optimizer", "arch", "settings", "trials", "ρ", "p (unadjusted)"],
        [
            (
                c.measure,
                r["metric"],
                r["optimizer"],
                r["arch"],
                int(r["n"]),
                int(r["trials"]),
                f"{r['rho']:+.2f}",
                f"{r['p']:.2g}",
            )
            for c in data.correlations
            for _, r in c.result.per_stratum.iterrows()
        ],
    )


def _factor_caption(data: SteepnessData) -> str:
    parts = []
    for m in data.measures:
        judged = [r for r in (rises(ln) for ln in data.lines if ln.measure == m) if r is not None]
        if judged:
            parts.append(f"{m} in {sum(judged)} of {len(judged)}")
    low, high = (
        (min(ln.factors[0] for ln in data.lines), max(ln.factors[-1] for ln in data.lines))
        if data.lines
        else (1.0, 1.0)
    )
    text = (
        "Steepness of the base loss at the end of training against λ: the median over the finished trials "
        "at each λ (seeds and other params) with its interquartile range as the bar, one line per "
        "metric · architecture, one row per optimizer (twins and collapsed trials excluded). Medians, not "
        "means: curvature values can be ≤ 0 and a few steep trials would drive a mean."
    )
    if parts:
        text += (
            f" The median at the largest λ exceeds the one at the smallest (λ={fmt_factor(low)} … "
            f"{fmt_factor(high)}) for {'; '.join(parts)} lines — a description, not a test."
        )
    return text


def _correlation_caption(data: SteepnessData) -> str:
    tested = sum(np.isfinite(c.p_holm) for c in data.correlations)
    sentences = "; ".join(
        steepness_sentence(c.measure, data.detection, c.result, c.p_holm, tested) for c in data.correlations
    )
    point = data.correlations[0].points.what() if data.correlations else "one finished trial"
    return (
        f"Each point is {point} (collapsed excluded), coloured by its metric · optimizer · "
        f"architecture stratum. LAMP's claim is that a steeper landscape detects anomalies better (ρ > 0) "
        "within a setting, so ρ is computed within each stratum (table) and combined; its unit is the setting "
        f"(the mean over its seeds), since seeds of one setting are not independent evidence. {sentences}."
    )
