"""Per-trial drill-down: learning curves, score distributions and per-defect AUROC of the trials the report names.

The named trials are the best and its baseline (`reports.sections.showcase`), the first
diverged and the first collapsed trial, and any the user lists (`report
--trials`). Their per-epoch metrics are read for those runs only (one SQL query
on a SQL store, `get_metric_history` otherwise), so the section costs the same
at 13,000 trials as at 100. Per-defect AUROCs (`auroc_defect_<type>`, logged by
trials on MVTec-style folders) are final metrics already in the study table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from mlflow import MlflowClient
from mlflow.store.tracking.dbmodels.models import SqlMetric
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from sqlalchemy import select

from reports.render.section import Panel, html_table
from reports.sections.scores import ScoresData, draw_scores, histograms_of
from reports.sections.showcase import Shown, as_shown, pick_baseline_and_best
from reports.source.extract import ArtifactLoader, Study
from reports.source.runs import sql_store
from study.core.errors import LampError
from study.core.metrics import DEFECT_PREFIX

CURVES = ("train_base_loss", "train_amp_loss", "val_auroc")  # per-epoch keys, step = epoch (>= 1)
TITLES = {
    "train_base_loss": "base training loss",
    "train_amp_loss": "amplified training loss",
    "val_auroc": "validation AUROC",
}
COLOURS = qualitative.Plotly
SCORED = ("finished", "collapsed")  # statuses whose trials log test scores


class UnknownTrialError(LampError, LookupError):
    """`report --trials` named a trial the study does not hold."""


@dataclass(frozen=True)
class Curve:
    """One trial's per-epoch values of one key."""

    key: str
    epochs: list[int]
    values: list[float]


@dataclass(frozen=True)
class TrialCurves:
    """A named trial with its status and per-epoch metrics."""

    shown: Shown
    status: str
    curves: dict[str, Curve]


@dataclass(frozen=True)
class DefectTable:
    """Per-defect-type test AUROC of the best trial and its baseline."""

    defects: list[str]
    best: list[float]
    baseline: list[float]  # NaN without a baseline
    best_id: str
    baseline_id: str | None


@dataclass(frozen=True)
class DrillDownData:
    """The named trials' curves and the per-defect table (None when no trial logged one)."""

    trials: list[TrialCurves]
    defects: DefectTable | None
    scores: ScoresData  # test-score histograms of the named trials other than the best and its baseline


def pick_named(study: Study, extra: tuple[str, ...] = ()) -> list[Shown]:
    """Best, baseline, the first diverged and collapsed trials, then the listed ones (by trial or run id).

    Raises:
        UnknownTrialError: a listed id is neither a trial id nor a run id of the study.
    """
    baseline, best = pick_baseline_and_best(study)
    named = [t for t in (best, baseline) if t is not None]
    trials = study.trials
    for status in ("diverged", "collapsed"):
        rows = trials[trials["status"] == status]
        if not rows.empty:
            named.append(as_shown(status, rows.iloc[0], study.objective))
    for wanted in extra:
        match = trials[(trials["trial_id"].astype(str) == wanted) | (trials["run_id"] == wanted)]
        if match.empty:
            some = ", ".join(trials["trial_id"].astype(str).head(5))
            raise UnknownTrialError(
                f"study {study.name!r} has no trial {wanted!r} (trial ids look like: {some}); "
                "pass trial ids (lamp.trial_id) or MLflow run ids of this study to --trials"
            )
        named.append(as_shown("listed", match.iloc[0], study.objective))
    unique: dict[str, Shown] = {}
    for t in named:
        unique.setdefault(t.run_id, t)
    return list(unique.values())


def extract_drilldown(study: Study, artifacts: ArtifactLoader, extra: tuple[str, ...] = ()) -> DrillDownData:
    """Per-epoch curves and score histograms of the named trials, per-defect AUROC of the best and baseline."""
    named = pick_named(study, extra)
    history = metric_histories(artifacts.client, [t.run_id for t in named], CURVES)
    status = dict(zip(study.trials["run_id"], study.trials["status"], strict=True))
    trials = [TrialCurves(t, str(status.get(t.run_id, "?")), history.get(t.run_id, {})) for t in named]
    shown = {t.run_id for t in pick_baseline_and_best(study) if t is not None}
    scored = [t.shown for t in trials if t.status in SCORED and t.shown.run_id not in shown]
    return DrillDownData(trials, _defects(study), histograms_of(scored, artifacts))


def metric_histories(
    client: MlflowClient, run_ids: list[str], keys: tuple[str, ...]
) -> dict[str, dict[str, Curve]]:
    """run id -> key -> per-epoch values (steps >= 1; step 0 holds final metrics), for these runs only."""
    rows: list[tuple[str, str, int, float]] = []
    store = sql_store(client)
    if store is not None:
        query = select(
            SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan
        ).where(SqlMetric.run_uuid.in_(run_ids), SqlMetric.key.in_(keys), SqlMetric.step >= 1)
        with store.ManagedSessionMaker() as session:  # MLflow stores NaN as 0 with is_nan set
            rows = [(r, k, s, math.nan if nan else v) for r, k, s, v, nan in session.execute(query)]
    else:
        for run_id in run_ids:
            for key in keys:
                rows += [
                    (run_id, key, m.step, m.value)
                    for m in client.get_metric_history(run_id, key)
                    if m.step >= 1
                ]
    frame = pd.DataFrame(rows, columns=["run", "key", "step", "value"])
    frame = frame.drop_duplicates(["run", "key", "step"], keep="last").sort_values(["run", "key", "step"])
    out: dict[str, dict[str, Curve]] = {}
    for (run, key), part in frame.groupby(["run", "key"], sort=False):
        out.setdefault(str(run), {})[str(key)] = Curve(
            str(key), part["step"].astype(int).tolist(), part["value"].astype(float).tolist()
        )
    return out


def _defects(study: Study) -> DefectTable | None:
    cols = sorted(c for c in study.trials.columns if c.startswith(DEFECT_PREFIX))
    baseline, best = pick_baseline_and_best(study)
    if not cols or best is None:
        return None
    by_run = study.trials.set_index("run_id")
    base_row = by_run.loc[baseline.run_id] if baseline is not None else None
    return DefectTable(
        defects=[c.removeprefix(DEFECT_PREFIX) for c in cols],
        best=[float(by_run.loc[best.run_id, c]) for c in cols],
        baseline=[float(base_row[c]) if base_row is not None else float("nan") for c in cols],
        best_id=best.trial_id,
        baseline_id=None if baseline is None else baseline.trial_id,
    )


def draw_drilldown(data: DrillDownData) -> list[Panel]:
    """Learning curves of the named trials (one column per key) and, when logged, per-defect AUROC bars."""
    panels = [Panel("curves", _curves_caption(data), _curves_figure(data) if _any_curve(data) else None)]
    if data.scores.histograms or data.scores.missing:
        panels += draw_scores(data.scores)
    if data.defects is not None:
        panels.append(_defect_panel(data.defects))
    return panels


def _any_curve(data: DrillDownData) -> bool:
    return any(t.curves for t in data.trials)


def _curves_figure(data: DrillDownData) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(CURVES), subplot_titles=[TITLES[k] for k in CURVES])
    for i, t in enumerate(data.trials):
        name = f"{t.shown.role}: {t.shown.trial_id}"
        for col, key in enumerate(CURVES, start=1):
            curve = t.curves.get(key)
            if curve is None:
                continue
            fig.add_trace(
                go.Scatter(
                    x=np.array(curve.epochs),
                    y=np.array(curve.values),
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1 or all(k not in t.curves for k in CURVES[: col - 1]),
                    line={"color": COLOURS[i % len(COLOURS)]},
                    hovertemplate=f"{name}<br>epoch %{{x}}<br>{key} %{{y:.4g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=380, margin={"t": 40}, legend_title_text="trial")
    return fig


def _curves_caption(data: DrillDownData) -> str:
    parts = []
    for t in data.trials:
        base = t.curves.get("train_base_loss")
        val = t.curves.get("val_auroc")
        facts = [f"{len(base.epochs)} epoch(s) logged" if base else "no per-epoch metrics logged"]
        if base and not np.isfinite(base.values[-1]):
            facts.append("its base loss became non-finite")
        elif base:
            facts.append(f"final base loss {base.values[-1]:.4g}")
        if val:
            facts.append(f"validation AUROC {val.values[0]:.3f} → {val.values[-1]:.3f}")
        parts.append(f"{t.shown.role} {t.shown.trial_id} ({t.shown.setting}, {t.status}): {', '.join(facts)}")
    return (
        "Learning curves of the trials this report names (best, its baseline, the first diverged and collapsed "
        "trial, and any listed with `lamp-study report --trials`): base training loss, amplified training loss "
        "(λ times larger for linear amplification, so compare its shape, not its level, across λ) and validation "
        f"AUROC per epoch. {'; '.join(parts)}."
    )


def _defect_panel(table: DefectTable) -> Panel:
    fig = go.Figure()
    for name, values, colour in (
        (f"best ({table.best_id})", table.best, "#1f77b4"),
        (f"baseline ({table.baseline_id})", table.baseline, "#7f7f7f"),
    ):
        if all(np.isnan(values)):
            continue
        fig.add_trace(go.Bar(x=table.defects, y=np.array(values), name=name, marker_color=colour))
    fig.update_layout(barmode="group", height=340, yaxis_title="test AUROC vs normal", margin={"t": 20})
    worst = table.defects[int(np.nanargmin(table.best))]
    caption = (
        f"Test AUROC of each defect type (its `test/<defect>` images against every normal test image) for the "
        f"best trial {table.best_id} and its baseline {table.baseline_id or '(none)'}. The best trial detects "
        f"{worst} least well ({np.nanmin(table.best):.3f}). Values of two trials on one test part, not a test."
    )
    rows = [
        (d, f"{b:.4f}", "–" if np.isnan(a) else f"{a:.4f}")
        for d, b, a in zip(table.defects, table.best, table.baseline, strict=True)
    ]
    return Panel("defects", caption, fig, table_html=html_table(["defect type", "best", "baseline"], rows))
