"""MLflow -> plain data: one study's parent run and its trials as a typed table.

The input contract is `docs/mlflow_schema.md`: one experiment per study, a
parent run tagged `lamp.role=study`, one child run per trial. Everything a
report shows comes from the `Study` built here (one sweep over the experiment's
runs) plus the few artifacts `ArtifactLoader` fetches for the runs a figure
shows (`reports.source.runs` reads the runs); nothing else talks to MLflow.

`Study.trials` holds one row per child run with these columns:
`run_id, trial_id, status, error, group, start_time` (ms since epoch), then one
column per trial param parsed to its `TrialConfig` type (float, int, bool, str;
"None" becomes None), then one float column per final metric (NaN when absent).
Statuses are `lamp.status` (running, finished, collapsed, degenerate, diverged,
failed, pruned); runs without the tag take theirs from the MLflow run status. Only
`finished` trials enter "best", gains, correlations and landscape figures: a
collapsed trial's output does not depend on its input (study/trial/collapse.py), a
degenerate one scores like a trivial model (study/selection/degeneracy.py).
"Best" is a setting, chosen by its seed-mean validation value (`val_auroc` for
a detection objective, study/selection/best_setting.py), then its best seed; the
test-part `auroc` the report states did not also choose the trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from reports.source.runs import RunRecord, read_runs
from study.core.config import trial_fields
from study.core.errors import LampError
from study.core.metrics import mode_of
from study.core.vocab import ERROR_TAG, GROUP_TAG, REPORTED, ROLE_TAG, STATUS_TAG, TRIAL_ID_TAG
from study.selection.best_setting import SettingChoice, choose_setting

DETECTION_METRICS = ("auroc", "ap")  # label-based detection metrics, higher is better
FIXED_COLUMNS = ("run_id", "trial_id", "status", "error", "group", "start_time")
STATUSES = REPORTED  # the statuses a report lists, in order
# Final metrics of the schema; each gets a column (NaN when no trial logged it) so sections can rely on it.
KNOWN_METRICS = (
    "auroc",
    "ap",
    "sharpness",
    "hessian_trace",
    "slice_curvature",
    "synthetic_auroc",
    "synthetic_auroc_tuned",
    "alignment_loss",
    "alignment_loss_tuned",
    "diverged_epoch",
    "epochs_run",
)
_MLFLOW_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed", "RUNNING": "running"}


class StudyNotFoundError(LampError, LookupError):
    """No MLflow experiment carries the requested study name."""


@dataclass(frozen=True)
class ParentRun:
    """The study-level run: spec, objective, status and end-of-study counts."""

    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    start_time: int | None  # ms since epoch
    end_time: int | None


@dataclass
class Study:
    """One study as plain data; see the module docstring for the `trials` columns."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent: ParentRun | None
    n_parent_runs: int
    trials: pd.DataFrame
    param_columns: list[str]
    metric_columns: list[str]
    objective: str  # metric that ranks trials ("best"), never an amplified training loss
    mode: str  # max | min
    detection: str  # label-based metric the sensitivity figures plot
    notes: list[str] = field(default_factory=list)  # caveats the summary shows

    @property
    def status(self) -> str:
        """The parent's `lamp.status` ("unknown" without a parent run)."""
        return self.parent.tags.get(STATUS_TAG, "unknown") if self.parent else "unknown"

    def finished(self) -> pd.DataFrame:
        """Finished trials only (the ones with final metrics)."""
        return self.trials[self.trials["status"] == "finished"]

    def ranked(self, frame: pd.DataFrame | None = None) -> pd.DataFrame:
        """Finished trials with an objective value, best first (ties by trial id)."""
        frame = self.finished() if frame is None else frame
        key = self.selection_metric
        if key not in frame:
            return frame.iloc[:0]
        frame = frame[frame[key].notna()]
        return frame.sort_values([key, "trial_id"], ascending=[self.mode == "min", True], kind="mergesort")

    @property
    def selection_metric(self) -> str:
        """What ranks trials: `val_<objective>` for a detection objective when logged, else the objective."""
        val = f"val_{self.objective}"
        if self.objective in DETECTION_METRICS and val in self.trials and self.trials[val].notna().any():
            return val
        return self.objective

    def best_setting(self) -> SettingChoice | None:
        """The best setting of the finished trials by its seed-mean objective (study/selection/best_setting.py), or None.

        `register` applies the same rule to the same trials, so both name the same trial.
        """
        key = self.selection_metric
        frame = self.finished()
        if key not in frame or frame.empty:
            return None
        params = [p for p in self.param_columns if p != "seed"]
        keys = ["|".join(map(str, row)) for row in frame[params].itertuples(index=False)]
        fallback = pd.Series(keys, index=frame.index) if params else frame["run_id"]
        frame = frame.assign(group=frame["group"].where(frame["group"].notna(), fallback))
        return choose_setting(frame[["run_id", "trial_id", "group", key]], key, self.mode)

    def best(self) -> pd.Series | None:
        """The trial to show as best: the best setting's best seed (`best_setting`), or None."""
        choice = self.best_setting()
        if choice is None:
            return None
        return self.trials[self.trials["run_id"] == choice.run_id].iloc[0]


class ArtifactLoader:
    """Fetches `.npz` / text artifacts of single runs on demand, and remembers what was missing."""

    def __init__(self, client: MlflowClient, cache_dir: str | Path):
        self._client = client
        self._dir = Path(cache_dir)
        self.downloads = 0  # artifact downloads attempted (tests bound it)
        self._arrays: dict[tuple[str, str], dict[str, np.ndarray] | None] = {}

    @property
    def client(self) -> MlflowClient:
        """The client artifacts are fetched with (the drill-down reads per-epoch metrics with it too)."""
        return self._client

    def path(self, run_id: str, name: str) -> Path | None:
        """Local copy of one artifact, or None when the run does not have it."""
        self.downloads += 1
        dst = self._dir / run_id
        dst.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self._client.download_artifacts(run_id, name, str(dst)))
        except (MlflowException, OSError):
            return None

    def npz(self, run_id: str, name: str) -> dict[str, np.ndarray] | None:
        """Arrays of an `.npz` artifact (fetched once per run), or None when missing or unreadable."""
        key = (run_id, name)
        if key not in self._arrays:
            self._arrays[key] = self._read_npz(run_id, name)
        return self._arrays[key]

    def _read_npz(self, run_id: str, name: str) -> dict[str, np.ndarray] | None:
        path = self.path(run_id, name)
        if path is None:
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            return None

    def text(self, run_id: str, name: str) -> str | None:
        """Content of a text artifact, or None."""
        path = self.path(run_id, name)
        return None if path is None else path.read_text(errors="replace")


def load_study(name: str, *, tracking_uri: str, client: MlflowClient | None = None) -> Study:
    """Read one study from MLflow.

    Raises:
        StudyNotFoundError: no experiment is named `name`; the message lists the existing ones.
    """
    client = client or MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        existing = sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL))
        listed = ", ".join(repr(e) for e in existing) if existing else "(none)"
        msg = (
            f"no study named {name!r} in the MLflow store {tracking_uri!r}; existing studies: {listed}. "
            "Pass one of these names, or point --tracking-uri at the store the study was run with."
        )
        raise StudyNotFoundError(msg)
    runs = read_runs(client, experiment.experiment_id)
    parents = [r for r in runs if r.tags.get(ROLE_TAG) == "study"]
    parents.sort(key=lambda r: r.start_time or 0)
    parent = _parent(parents[-1]) if parents else None
    children = [r for r in runs if _is_trial(r, parent)]
    trials, params, metrics = _trials_frame(children)
    objective, mode, notes = _objective(parent, metrics)
    for m in (*KNOWN_METRICS, objective):
        if m not in trials:
            trials[m] = np.nan
    if len(parents) > 1:
        notes.append(f"the experiment holds {len(parents)} study runs; this report shows the latest one")
    detection = objective if objective in DETECTION_METRICS else "auroc"
    no_detection = detection not in trials or trials[detection].isna().all()
    if no_detection and objective != detection and objective in trials and trials[objective].notna().any():
        notes.append(f"no trial logged {detection!r}; figures plot the objective {objective!r} instead")
        detection = objective
    return Study(
        name=name,
        tracking_uri=tracking_uri,
        experiment_id=experiment.experiment_id,
        parent=parent,
        n_parent_runs=len(parents),
        trials=trials,
        param_columns=params,
        metric_columns=metrics,
        objective=objective,
        mode=mode,
        detection=detection,
        notes=notes,
    )


def _parent(run: RunRecord) -> ParentRun:
    return ParentRun(
        run_id=run.run_id,
        tags=run.tags,
        params=run.params,
        metrics=run.metrics,
        start_time=run.start_time,
        end_time=run.end_time,
    )


def _is_trial(run: RunRecord, parent: ParentRun | None) -> bool:
    tags = run.tags
    if tags.get(ROLE_TAG) == "study":
        return False
    if parent is None:
        return tags.get(ROLE_TAG) == "trial"
    return tags.get("mlflow.parentRunId") == parent.run_id


def _trials_frame(runs: list[RunRecord]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """One typed row per run; returns (frame, param columns, metric columns)."""
    declared = {k: str(v) for k, v in trial_fields().items()}
    param_names = sorted({k for r in runs for k in r.params})
    metric_names = sorted({k for r in runs for k in r.metrics})
    taken = set(FIXED_COLUMNS) | set(param_names)
    metric_cols = {m: (m if m not in taken else f"metric.{m}") for m in metric_names}
    rows: list[dict[str, Any]] = []
    for r in runs:
        tags = r.tags
        status = tags.get(STATUS_TAG) or _MLFLOW_STATUS.get(r.status, r.status.lower())
        row: dict[str, Any] = {
            "run_id": r.run_id,
            "trial_id": tags.get(TRIAL_ID_TAG, r.run_name or r.run_id),
            "status": status.lower(),
            "error": tags.get(ERROR_TAG),
            "group": tags.get(GROUP_TAG),
            "start_time": r.start_time,
        }
        row.update(r.params)
        for m, v in r.metrics.items():
            row[metric_cols[m]] = v
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*FIXED_COLUMNS, *param_names, *metric_cols.values()])
    parsed = {p: _parse_param(frame[p], declared.get(p)) for p in param_names}
    parsed |= {m: pd.to_numeric(frame[m], errors="coerce").astype(float) for m in metric_cols.values()}
    # one concat, not a column at a time: a frame built column by column is fragmented (slow to extend)
    frame = pd.concat([frame[list(FIXED_COLUMNS)], pd.DataFrame(parsed, index=frame.index)], axis=1)
    frame = frame.sort_values(["start_time", "trial_id"], kind="mergesort").reset_index(drop=True)
    return frame, param_names, list(metric_cols.values())


def _parse_param(values: pd.Series, declared: str | None) -> pd.Series:
    """Strings from MLflow back to the declared `TrialConfig` type (numbers guessed for unknown params)."""
    text = values.astype(object).where(values.notna(), None)
    text = text.map(lambda v: None if v in (None, "None") else v)
    kind = (declared or "").replace(" | None", "")
    if kind == "bool":
        return text.map(lambda v: None if v is None else v.lower() == "true").astype(object)
    if kind in ("float", "int") or declared is None:
        numbers = pd.to_numeric(text, errors="coerce")
        if declared is None and (numbers.isna() & text.notna()).any():
            return text  # not numeric after all: keep the strings
        if kind == "int" and numbers.notna().all() and (numbers % 1 == 0).all():
            return numbers.astype("int64")
        return numbers.astype(float)
    return text


def _objective(parent: ParentRun | None, metrics: list[str]) -> tuple[str, str, list[str]]:
    """The ranking metric and mode from the parent's tags; amplified losses are refused (DESIGN fact 2)."""
    notes: list[str] = []
    tags = parent.tags if parent else {}
    params = parent.params if parent else {}
    objective = tags.get("lamp.objective_metric") or params.get("objective.metric") or "auroc"
    mode = (tags.get("lamp.objective_mode") or params.get("objective.mode") or "").lower()
    if objective.startswith(("train_amp", "amp_")) or objective == "train_amp_loss":
        notes.append(
            f"the study objective {objective!r} is an amplified training loss, which is not comparable "
            "across trials; the report ranks trials by auroc instead"
        )
        objective, mode = "auroc", "max"
    if mode not in ("max", "min"):
        mode = mode_of(objective)
    return objective, mode, notes
