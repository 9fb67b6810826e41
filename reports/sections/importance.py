"""Which parameters matter: fANOVA importance and parallel coordinates of the finished trials.

Part of the sensitivity section. Importance ranks the varied hyperparameters by
the share of the detection metric's variance they explain (optuna.importance on
an in-memory Optuna study of the runs); it says nothing about direction or
significance, and its caption says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import FanovaImportanceEvaluator, get_param_importances

from reports.render.section import Panel
from reports.stats.aggregate import scatter_points

LOG_PARAMS = ("factor", "lr")  # continuous params drawn and modelled on a log scale
MIN_IMPORTANCE_TRIALS = 4
MAX_PARCOORDS_PARAMS = 10
# fANOVA's cost grows with its rows (~6 s for 1,500 on one core): beyond this many trials it fits setting
# medians, which also takes the seed noise out of what the forest must explain.
MAX_IMPORTANCE_ROWS = 1_000


@dataclass(frozen=True)
class ParcoordsDim:
    """One parallel-coordinates axis; categorical params carry tick labels."""

    name: str
    label: str
    values: list[float]
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None


@dataclass(frozen=True)
class ImportanceData:
    """Importance of each varied hyperparameter and the parallel-coordinates axes."""

    detection: str
    importance: dict[str, float]
    importance_note: str  # why importance is missing, or which evaluator
    parcoords: list[ParcoordsDim]
    parcoords_colour: list[float]
    parcoords_lines: str  # what one line is: a trial, or a setting's median in large studies


def extract_importance(frame: pd.DataFrame, params: list[str], y: str) -> ImportanceData:
    """fANOVA importance and parcoords axes of `params` for `y` over the finished trials in `frame`."""
    importance, note = _importance(frame, params, y)
    lines = scatter_points(frame, [y], y, keep=params[:MAX_PARCOORDS_PARAMS])
    dims, colour = _parcoords(lines.frame, params[:MAX_PARCOORDS_PARAMS], y)
    return ImportanceData(
        y, importance, note, dims, colour, lines.what(f"one finished trial ({lines.n_trials})")
    )


def draw_importance(data: ImportanceData) -> list[Panel]:
    """Importance bars (or why they are skipped) and parallel coordinates."""
    if data.importance:
        panels = [Panel("importance", _importance_caption(data), _importance_figure(data))]
    else:
        panels = [Panel("importance", f"Parameter importance is skipped: {data.importance_note}.")]
    if data.parcoords:
        panels.append(Panel("parcoords", _parcoords_caption(data), _parcoords_figure(data)))
    return panels


def _distribution(name: str, values: pd.Series) -> tuple[BaseDistribution, pd.Series]:
    """An Optuna distribution for observed values, and the values in the form it accepts."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        x = values.astype(float)
        lo, hi = float(x.min()), float(x.max())
        if name in LOG_PARAMS and lo > 0:
            return FloatDistribution(lo, hi, log=True), x
        if values.nunique() > 8:
            if pd.api.types.is_integer_dtype(values):
                return IntDistribution(int(lo), int(hi)), values.astype(int)
            return FloatDistribution(lo, hi), x
        choices = tuple(sorted(x.unique().tolist()))
        return CategoricalDistribution(choices), x
    text = values.astype(str)
    return CategoricalDistribution(tuple(sorted(text.unique()))), text


def _importance(frame: pd.DataFrame, params: list[str], y: str) -> tuple[dict[str, float], str]:
    """fANOVA importance of the varied params for the detection metric (in-memory Optuna study)."""
    if len(params) < 2:
        return (
            {},
            f"it needs at least 2 varied parameters and the study varies {len(params)} ({', '.join(params) or 'none'})",
        )
    if len(frame) < MIN_IMPORTANCE_TRIALS:
        return {}, f"it needs at least {MIN_IMPORTANCE_TRIALS} finished trials and there are {len(frame)}"
    rows = scatter_points(frame, [y], y, keep=params, max_points=MAX_IMPORTANCE_ROWS)
    fitted = rows.frame
    if fitted[y].nunique() < 2:  # fANOVA cannot split a constant (e.g. every trial at AUROC 1)
        return (
            {},
            f"every finished trial has the same {y} ({float(fitted[y].iloc[0]):.4g}): nothing to explain",
        )
    dists, values = {}, {}
    for p in params:
        dists[p], column = _distribution(p, fitted[p])
        values[p] = [_plain(v) for v in column]
    trials = [
        optuna.trial.create_trial(
            params={p: values[p][i] for p in params}, distributions=dists, value=float(value)
        )
        for i, value in enumerate(fitted[y])
    ]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction="maximize")
            study.add_trials(trials)
            scores = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)
    on = f"{len(frame)} finished trials"
    if rows.per_setting:
        of = f"{len(fitted)} of the {rows.n_settings}" if rows.sampled else f"{len(fitted)}"
        on = f"{of} setting medians of {len(frame)} finished trials"
        on += f", evenly spaced in {y}" if rows.sampled else ""
    return {k: float(v) for k, v in scores.items()}, f"fANOVA on {on}"


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _parcoords(frame: pd.DataFrame, params: list[str], y: str) -> tuple[list[ParcoordsDim], list[float]]:
    """Axes for the varied params (categoricals as codes with tick labels; factor and lr in log10) + y."""
    if frame.empty:
        return [], []
    dims = []
    for p in params:
        values = frame[p]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and p in LOG_PARAMS and (values > 0).all():
            dims.append(ParcoordsDim(p, f"log10 {p}", np.log10(values.astype(float)).tolist()))
        elif numeric and values.nunique() > 8:
            dims.append(ParcoordsDim(p, p, values.astype(float).tolist()))
        else:
            labels = sorted(values.astype(str).unique(), key=lambda s: (_num(s), s))
            code = {v: i for i, v in enumerate(labels)}
            dims.append(
                ParcoordsDim(
                    p,
                    p,
                    [float(code[v]) for v in values.astype(str)],
                    list(map(float, range(len(labels)))),
                    labels,
                )
            )
    colour = frame[y].astype(float).tolist()
    dims.append(ParcoordsDim(y, y, colour))
    return dims, colour


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


def _importance_figure(data: ImportanceData) -> go.Figure:
    names = sorted(data.importance, key=data.importance.get)
    fig = go.Figure(
        go.Bar(x=[data.importance[n] for n in names], y=names, orientation="h", name="importance")
    )
    fig.update_layout(
        height=120 + 28 * len(names), xaxis_title="importance (share of variance)", margin={"t": 20}
    )
    return fig


def _parcoords_figure(data: ImportanceData) -> go.Figure:
    dims = []
    for d in data.parcoords:
        dim = {"label": d.label, "values": np.array(d.values)}
        if d.tickvals is not None:
            dim |= {"tickvals": d.tickvals, "ticktext": d.ticktext, "range": [-0.5, len(d.tickvals) - 0.5]}
        dims.append(dim)
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": np.array(data.parcoords_colour),
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": {"text": data.detection}},
            },
            dimensions=dims,
        )
    )
    fig.update_layout(height=420, margin={"l": 80, "r": 80, "t": 60})
    return fig


def _importance_caption(data: ImportanceData) -> str:
    ranked = sorted(data.importance.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{k} {v:.2f}" for k, v in ranked)
    return (
        f"Share of the variance of {data.detection} explained by each varied parameter ({data.importance_note}, "
        f"via optuna.importance; seed and twin_of excluded): {listed}. The most important is {ranked[0][0]}. "
        "Importance ranks parameters; it does not say in which direction they help."
    )


def _parcoords_caption(data: ImportanceData) -> str:
    y = np.array(data.parcoords_colour)
    axes = ", ".join(d.label for d in data.parcoords[:-1]) or "none"
    return (
        f"Each line is {data.parcoords_lines}, coloured by {data.detection} (axes: {axes}; "
        "categorical params spread over their values). "
        f"{data.detection} ranges from {y.min():.4f} to {y.max():.4f} (median {np.median(y):.4f}); drag along an "
        "axis to filter."
    )
