"""The trial side: the Tune function trainable around `run_trial`, and what it reads from a Tune config."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from study.core.config import TrialConfig
from study.runner._gate import Gate
from study.runner._keys import (
    CHECKPOINTED_KEY,
    EPOCHS_KEY,
    ERROR_KEY,
    NODE_KEY,
    OBJECTIVE_KEY,
    STATUS_KEY,
    TRAIN_STATE_FILE,
)
from study.spec import StudySpec


def trainable(
    config: dict[str, Any], spec: StudySpec, report_interval: float, gate: Gate | None = None
) -> None:
    """The Tune function trainable: a thin wrapper of `run_trial`.

    A report is a round trip to the driver, so epochs are batched (`_Reporter`).
    The last epoch goes out with the final metrics and the result files, so a
    scheduler that stops at `max_t = epochs` never cuts the final evaluation.
    A trial that raises is reported `failed` with its error; the study goes on.
    """
    from ray import tune

    from study.trial import run_trial

    cfg = trial_config(config, spec)
    objective, mode = spec.objective.metric, spec.objective.mode
    reporter = _Reporter(cfg, spec, report_interval, gate)
    try:
        result = run_trial(cfg, reporter=reporter, state=_restored_state())
    except Exception as err:  # recorded as a failed trial; the study goes on
        failed = {
            STATUS_KEY: "failed",
            ERROR_KEY: f"{type(err).__name__}: {err}",
            OBJECTIVE_KEY: _worst(mode),
        }
        tune.report(reporter.row({**reporter.last, **failed, EPOCHS_KEY: reporter.epochs()}))
        return
    # The final metrics travel in the checkpoint's result.json, not in the row: Tune keeps statistics
    # of every number of every row of every trial in its experiment state, which each snapshot writes.
    final = reporter.row({**reporter.last, STATUS_KEY: result.status, EPOCHS_KEY: reporter.epochs()})
    value = selection_value(result.metrics, objective)
    final[OBJECTIVE_KEY] = value if value is not None else _worst(mode)
    with tempfile.TemporaryDirectory() as d:
        result.save(d)
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(d))


def _restored_state() -> Any:
    """The TrainState of the trial's Tune checkpoint, or None for a fresh start."""
    import torch
    from ray import tune

    from study.training.train import TrainState

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        path = Path(d) / TRAIN_STATE_FILE
        return TrainState(**torch.load(path, weights_only=True)) if path.exists() else None


class _Reporter:
    """`run_trial`'s per-epoch hook: batches epochs into Tune reports.

    Every epoch's metrics travel (as JSON under `EPOCHS_KEY`) with the next
    report, which goes out every epoch only when a scheduler needs it (ASHA),
    else at most every `report_interval` seconds, carrying a checkpoint of the
    training state that a restored trial starts from (the driver snapshots the
    experiment as often, see `_init_ray`). Every report names the Ray node the
    trial runs on (`NODE_KEY`). A `gate` (fault tests only, study/runner/_gate.py)
    pauses one trial after a checkpointed report.
    """

    def __init__(self, cfg: TrialConfig, spec: StudySpec, report_interval: float, gate: Gate | None) -> None:
        import ray

        self.cfg, self.gate, self.report_interval = cfg, gate, report_interval
        self.objective = spec.objective.metric
        self.every_epoch = spec.early_stopping is not None
        # the scheduler's metric must be in every report Tune sees
        es = spec.early_stopping
        self.es_known: dict[str, float] = {es.metric: _worst(es.mode)} if es is not None else {}
        self.node = ray.get_runtime_context().get_node_id()
        self.pending: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}
        self.last_sent = time.monotonic()

    def row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A report row with the scheduler's metric (last known value: eval_every may skip epochs) and the node."""
        for key in self.es_known:
            self.es_known[key] = row.get(key, self.es_known[key])
        return {**self.es_known, **row, NODE_KEY: self.node}

    def epochs(self) -> str:
        return json.dumps(self.pending)

    def __call__(self, epoch: int, metrics: dict[str, float], snapshot: Any) -> None:
        import torch
        from ray import tune

        row = {
            **metrics,
            "epoch": epoch,
            STATUS_KEY: "running",
            OBJECTIVE_KEY: _proxy(metrics, self.objective),
        }
        self.last = self.row(row)
        self.pending.append({"epoch": epoch, **metrics})
        paused = self.gate is not None and self.gate.stops(self.cfg, epoch)
        due = paused or time.monotonic() - self.last_sent >= self.report_interval
        if epoch == self.cfg.epochs or not (self.every_epoch or due):
            return
        payload = {**self.last, EPOCHS_KEY: self.epochs()}
        self.pending.clear()
        if not due:
            tune.report(payload)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(vars(snapshot()), Path(d) / TRAIN_STATE_FILE)
            tune.report({**payload, CHECKPOINTED_KEY: 1}, checkpoint=tune.Checkpoint.from_directory(d))
        self.last_sent = time.monotonic()
        if paused:
            context = tune.get_context()
            self.gate.hold(
                {"trial_id": context.get_trial_id(), "node_id": self.node, "pid": os.getpid(), "epoch": epoch}
            )


def report_interval_s() -> float:
    """Seconds between a trial's reports without a scheduler ($LAMP_REPORT_INTERVAL_S on the driver, default 10)."""
    return float(os.environ.get("LAMP_REPORT_INTERVAL_S", "10"))


def trial_config(config: dict[str, Any], spec: StudySpec) -> TrialConfig:
    """A Tune config -> TrialConfig: a full config (grid/random) or flat dotted values (tpe)."""
    if "trial" in config:
        return TrialConfig.from_dict(config["trial"])
    return spec.trial_config(config, spec.seeds[0])


def selection_value(metrics: dict[str, float], objective: str) -> float | None:
    """What selects trials: the objective on the validation part (label-free objectives have no val_ form)."""
    value = metrics.get(f"val_{objective}", metrics.get(objective))
    return value if value is not None and math.isfinite(value) else None


def _proxy(metrics: dict[str, float], objective: str) -> float:
    """Per-epoch stand-in of the objective for the searcher (never the amplified loss)."""
    return metrics.get(f"val_{objective}", float("nan"))


def _worst(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf
