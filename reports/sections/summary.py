"""Summary section: the spec, trial counts by status, the best configuration, wall time, problem trials."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from reports.render.labels import CORE_PARAMS, describe
from reports.render.section import Link, Panel, html_table
from reports.render.verdicts import baseline_sentence
from reports.source.extract import STATUSES, ArtifactLoader, Study
from study.core.outcome import study_outcome
from study.core.vocab import VAR_RATIO_MIN
from study.selection.degeneracy import DegeneracyCheck
from study.tracking.meta import run_url

MAX_PROBLEM_ROWS = 100  # diverged/failed trials listed individually; the rest are counted
STATUS_COLOURS = {
    "finished": "#2ca02c",
    "collapsed": "#9467bd",
    "degenerate": "#bcbd22",
    "diverged": "#ff7f0e",
    "failed": "#d62728",
    "pruned": "#7f7f7f",
    "running": "#1f77b4",
}
_SHOWN_METRICS = (
    "auroc",
    "ap",
    "sharpness",
    "hessian_trace",
    "slice_curvature",
    "synthetic_auroc",
    "synthetic_auroc_tuned",
    "alignment_loss",
    "alignment_loss_tuned",
    "train_time_s",
)


@dataclass(frozen=True)
class ProblemTrial:
    """A trial that did not finish, with what went wrong."""

    trial_id: str
    run_id: str
    status: str
    error: str | None
    diverged_epoch: float | None
    epochs_run: float | None
    setting: str
    run: Link  # the trial's MLflow run (a link on a tracking server)


@dataclass(frozen=True)
class SummaryData:
    """Numbers and text of the summary section."""

    study_name: str
    status: str  # the parent's lamp.status
    search: str | None
    n_trials: int
    n_planned: int | None
    counts: dict[str, int]  # status -> number of trials (every status seen)
    objective: str
    mode: str
    best_trial_id: str | None
    best_setting_note: str | None  # the best setting's seed-mean, interval, and whether it is distinguishable
    best_setting: str | None
    best_run: Link | None  # the best trial's MLflow run
    best_params: dict[str, str]
    best_metrics: dict[str, float]
    wall_time_s: float | None
    wall_time_note: str  # where the wall time comes from
    spec_text: str | None
    problems: list[ProblemTrial]  # at most MAX_PROBLEM_ROWS
    n_problems: int
    notes: list[str]
    baselines: dict[
        str, float
    ]  # model-free AUROCs on the test part (study/trial/baselines.py), from the parent run
    best_auroc: float | None  # the best trial's test-part auroc, set beside the baselines
    best_beats_baselines: bool | None  # None without a best trial, baselines or auroc


def extract_summary(study: Study, artifacts: ArtifactLoader) -> SummaryData:
    """Counts, best trial and spec of a study (the spec is the parent's `spec.yaml`)."""
    trials, parent, best = study.trials, study.parent, study.best()
    choice = study.best_setting()
    planned = parent.tags.get("lamp.n_trials_planned") if parent else None
    best_params, best_metrics = _best_tables(study, best)
    problems_frame = trials[trials["status"].isin(["collapsed", "degenerate", "diverged", "failed"])]
    wall, wall_note = _wall_time(study)
    baselines = {
        k: float(v)
        for k, v in sorted((parent.metrics if parent else {}).items())
        if k.startswith("baseline_")
    }
    best_auroc = _opt(best, "auroc") if best is not None else None
    return SummaryData(
        study_name=study.name,
        status=study.status,
        search=parent.tags.get("lamp.search") if parent else None,
        n_trials=len(trials),
        n_planned=int(planned) if planned and planned.isdigit() else None,
        counts=_ordered_counts(trials),
        objective=study.objective,
        mode=study.mode,
        best_trial_id=None if best is None else str(best["trial_id"]),
        best_setting_note=None if choice is None else choice.sentence(study.selection_metric, _labels(study)),
        best_setting=None if best is None else describe(best),
        best_run=None if best is None else run_link(study, str(best["run_id"])),
        best_params=best_params,
        best_metrics=best_metrics,
        wall_time_s=wall,
        wall_time_note=wall_note,
        spec_text=artifacts.text(parent.run_id, "spec.yaml") if parent else None,
        problems=_problems(study, problems_frame.head(MAX_PROBLEM_ROWS)),
        n_problems=len(problems_frame),
        notes=list(study.notes),
        baselines=baselines,
        best_auroc=best_auroc,
        best_beats_baselines=(
            None if best_auroc is None or not baselines else best_auroc > max(baselines.values())
        ),
    )


def _ordered_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials per status: known statuses in lifecycle order, then any other, alphabetically."""
    counts = trials["status"].value_counts().to_dict()
    ordered = {s: int(counts.pop(s)) for s in STATUSES if s in counts}
    ordered.update({str(s): int(n) for s, n in sorted(counts.items())})
    return ordered


def _best_tables(study: Study, best: pd.Series | None) -> tuple[dict[str, str], dict[str, float]]:
    """The best trial's core and varied params, and its objective and shown final metrics."""
    if best is None:
        return {}, {}
    trials = study.trials
    varied = [p for p in study.param_columns if trials[p].nunique(dropna=False) > 1]
    shown = [p for p in CORE_PARAMS if p in study.param_columns] + [p for p in varied if p not in CORE_PARAMS]
    metrics: dict[str, float] = {}
    for m in (study.objective, *_SHOWN_METRICS):
        if m in best and pd.notna(best[m]) and m not in metrics:
            metrics[m] = float(best[m])
    return {p: str(best[p]) for p in shown}, metrics


def run_link(study: Study, run_id: str) -> Link:
    """A trial's run id, linked to its page when the study lives on a tracking server."""
    return Link(run_id, run_url(study.tracking_uri, study.experiment_id, run_id))


def _problems(study: Study, frame: pd.DataFrame) -> list[ProblemTrial]:
    """Collapsed, diverged and failed trials with what went wrong."""
    return [
        ProblemTrial(
            trial_id=str(row["trial_id"]),
            run_id=str(row["run_id"]),
            status=str(row["status"]),
            error=row["error"] if isinstance(row["error"], str) else _collapse_note(row),
            diverged_epoch=_opt(row, "diverged_epoch"),
            epochs_run=_opt(row, "epochs_run"),
            setting=describe(row),
            run=run_link(study, str(row["run_id"])),
        )
        for _, row in frame.iterrows()
    ]


def draw_summary(data: SummaryData) -> list[Panel]:
    """Status counts as bars, the best configuration and the problem trials as tables."""
    panels = [Panel("counts", _counts_caption(data), _counts_figure(data) if data.n_trials else None)]
    if data.best_trial_id is not None:
        rows = [(k, v) for k, v in data.best_params.items()] + [(k, v) for k, v in data.best_metrics.items()]
        rows.append(("MLflow run", data.best_run))
        panels.append(
            Panel(
                "best",
                f"Best finished trial by the study objective ({data.objective}, {data.mode}): "
                f"{data.best_trial_id} — {data.best_setting}: the best seed of the {data.best_setting_note}. "
                "Its parameters, then its final metrics:",
                table_html=html_table(["parameter / metric", "value"], rows, css_class="kv"),
            )
        )
    if data.baselines:
        panels.append(
            Panel(
                "baselines",
                _baselines_caption(data),
                table_html=html_table(
                    ["score (no model)", "test AUROC"],
                    [
                        (k.removeprefix("baseline_").removesuffix("_auroc"), f"{v:.4f}")
                        for k, v in data.baselines.items()
                    ]
                    + ([("best trial", f"{data.best_auroc:.4f}")] if data.best_auroc is not None else []),
                    css_class="kv",
                ),
            )
        )
    if data.n_problems:
        rows = [
            (p.trial_id, p.status, p.setting, p.diverged_epoch, p.epochs_run, p.error, p.run)
            for p in data.problems
        ]
        shown = (
            ""
            if data.n_problems <= len(rows)
            else f" (the first {len(rows)} of {data.n_problems} are listed)"
        )
        panels.append(
            Panel(
                "problems",
                f"{data.n_problems} trial(s) did not finish{shown}: diverged trials stopped when their loss "
                "became non-finite; failed trials raised the error shown; collapsed trials output nearly "
                "the same image for every input (their reconstructions keep under "
                f"{VAR_RATIO_MIN:.0%} of the inputs' variance), so their AUROC is that of a fixed image, "
                "not of a model; degenerate trials do not beat the model-free baselines on the validation "
                "part and score like the identity (chance), the mean image (mean_like) or reconstruct held-out "
                "normals worse than the mean image (worse_than_mean). They are excluded from every figure below and from the best trial, "
                "but counted here.",
                table_html=html_table(
                    ["trial", "status", "setting", "diverged at epoch", "epochs run", "error", "MLflow run"],
                    rows,
                ),
            )
        )
    return panels


def spec_html(data: SummaryData) -> str:
    """The search-space file as given, escaped, or a note that it is missing."""
    if data.spec_text is None:
        return "<p class='missing'>The parent run has no <code>spec.yaml</code> artifact.</p>"
    return f"<details><summary>Search space (spec.yaml)</summary><pre>{html.escape(data.spec_text)}</pre></details>"


def banner_html(data: SummaryData) -> str:
    """A warning banner for running studies and other caveats (empty string when none)."""
    lines = []
    if data.status == "running":
        so_far = f"{data.n_trials} of {data.n_planned}" if data.n_planned else f"{data.n_trials}"
        lines.append(
            f"This study is still running: {so_far} trials recorded so far. Every number in this report "
            "will change; rebuild it when the study ends."
        )
    elif data.status in ("interrupted", "failed"):
        lines.append(
            f"This study ended early (status: {data.status}); the report covers the trials it recorded."
        )
    if data.n_trials == 0:
        lines.append(
            f"The study {data.study_name!r} has no trials recorded yet, so there is nothing to plot. "
            "Run it (lamp-study run) or check that its trials were logged to this tracking URI."
        )
    if outcome := study_outcome(data.counts):
        lines.append(f"Warning: {outcome.message()}.")
    lines += [f"Note: {n}." for n in data.notes]
    return "".join(f"<p class='banner'>{html.escape(line)}</p>" for line in lines)


def _counts_caption(data: SummaryData) -> str:
    if not data.n_trials:
        return f"The study {data.study_name!r} has no trials recorded yet."
    parts = ", ".join(f"{n} {s}" for s, n in data.counts.items())
    search = f"{data.search} search, " if data.search else ""
    planned = f" of {data.n_planned} planned" if data.n_planned else ""
    wall = (
        f" in {_duration(data.wall_time_s)} of wall time ({data.wall_time_note})" if data.wall_time_s else ""
    )
    text = (
        f"Trials by final status. The study {data.study_name!r} ({search}objective {data.objective}, "
        f"{data.mode}) recorded {data.n_trials} trials{planned}: {parts}{wall}."
    )
    if data.best_trial_id is not None:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in list(data.best_metrics.items())[:3])
        text += f" The best finished trial is {data.best_setting} with {metrics}; {data.best_setting_note}."
    elif outcome := study_outcome(data.counts):
        text += f" There is no best configuration: {outcome.sentence}. To fix it: {outcome.hint}."
    else:
        still = " yet" if data.status == "running" else ""
        text += (
            f" No finished trial has a value of {data.objective}{still}, so there is no best configuration."
        )
    return text


def _counts_figure(data: SummaryData) -> go.Figure:
    statuses = list(data.counts)
    fig = go.Figure(
        go.Bar(
            x=statuses,
            y=[data.counts[s] for s in statuses],
            text=[data.counts[s] for s in statuses],
            marker_color=[STATUS_COLOURS.get(s, "#8c564b") for s in statuses],
            name="trials",
        )
    )
    fig.update_layout(height=260, yaxis_title="trials", xaxis_title="status", margin={"t": 20})
    return fig


def _wall_time(study: Study) -> tuple[float | None, str]:
    parent = study.parent
    if parent is None:
        return None, "no study run"
    if "wall_time_s" in parent.metrics:
        return float(parent.metrics["wall_time_s"]), "logged by the study"
    if parent.start_time and parent.end_time:
        return (parent.end_time - parent.start_time) / 1000.0, "from the study run's start and end"
    if parent.start_time:
        return time.time() - parent.start_time / 1000.0, "so far"
    return None, "unknown"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown time"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _baselines_caption(data: SummaryData) -> str:
    """What the model-free scores say about the best trial; every number is in `data`."""
    name, top = max(data.baselines.items(), key=lambda kv: kv[1])
    head = (
        "Model-free baselines on the same test part: distance to the mean training image under each "
        "metric, and the unsigned deviation of mean intensity (its sign is not chosen, since choosing "
        "it would use the test labels). "
    )
    if data.best_beats_baselines is None:
        return head + "There is no best trial with a test AUROC to compare."
    return head + baseline_sentence(
        data.best_auroc, name.removeprefix("baseline_").removesuffix("_auroc"), top, data.best_beats_baselines
    )


def _collapse_note(row: pd.Series) -> str | None:
    """The collapse measures of a collapsed trial, or the signs of a degenerate one, as the table's error text."""
    if row["status"] == "degenerate":
        return _degenerate_note(row)
    if row["status"] != "collapsed":
        return None
    var, loss = _opt(row, "collapse_var_ratio"), _opt(row, "collapse_loss_ratio")
    parts = []
    if var is not None:
        parts.append(f"reconstruction/input variance {var:.4f} (< {VAR_RATIO_MIN})")
    if loss is not None:
        parts.append(f"loss / mean-image loss {loss:.2f}")
    return "collapsed: " + ", ".join(parts) if parts else "collapsed"


def _labels(study: Study) -> dict[str, str]:
    """A readable label per setting (`group`): its trial's description without the seed."""
    done = study.finished()
    return {
        str(g): describe(row.drop("seed", errors="ignore"))
        for g, row in done.groupby("group").first().iterrows()
    }


def _degenerate_note(row: pd.Series) -> str:
    """Which trivial model a degenerate trial scores like (study/selection/degeneracy.py), from its logged measures."""
    needed = (
        "val_auroc",
        "beats_baseline_p",
        "below_baseline_p",
        "chance_p",
        "mean_rank_corr",
        "collapse_loss_ratio",
    )
    if any(_opt(row, k) is None for k in needed):
        return "degenerate"
    free = _opt(row, "model_free_auroc")
    check = DegeneracyCheck(
        float(row["val_auroc"]),
        float("nan") if free is None else free,
        *(float(row[k]) for k in needed[1:]),
    )
    return (
        f"degenerate ({', '.join(check.reasons)}): validation AUROC {check.val_auroc:.3f} vs model-free "
        f"{check.baseline_auroc:.3f}, rank corr. with the mean-image distance {check.mean_rank_corr:.2f}, "
        f"loss / mean-image loss {check.loss_ratio:.2f}"
    )


def _opt(row: pd.Series, key: str) -> float | None:
    return float(row[key]) if key in row and pd.notna(row[key]) else None
