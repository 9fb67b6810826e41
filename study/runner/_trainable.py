"""The trial side: the Tune function trainable around `run_trial`, and what it reads from a Tune config."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from study.config import TrialConfig
from study.gate import Gate
from study.runner._keys import (
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

    A report is a round trip to the driver, so epochs are batched: every
    epoch's metrics travel (as JSON under `EPOCHS_KEY`) with the next report,
    which goes out every epoch only when a scheduler needs it (ASHA), else at
    most every `report_interval` seconds, carrying a checkpoint of the
    training state that a restored trial starts from (the driver snapshots
    the experiment as often, see `_init_ray`). The last epoch
    goes out with the final metrics and the result files, so a scheduler that
    stops at `max_t = epochs` never cuts the final evaluation. Every report
    names the Ray node the trial runs on (`NODE_KEY`). A `gate` (fault tests
    only, see study/gate.py) pauses one trial after a checkpointed report.
    """
    import ray
    import torch
    from ray import tune

    from study.train import TrainState
    from study.trial import run_trial

    cfg = trial_config(config, spec)
    objective, mode = spec.objective.metric, spec.objective.mode
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            if (Path(d) / TRAIN_STATE_FILE).exists():
                state = TrainState(**torch.load(Path(d) / TRAIN_STATE_FILE, weights_only=True))
    every_epoch = spec.early_stopping is not None
    es_known: dict[str, float] = {}  # the scheduler's metric must be in every report Tune sees
    if spec.early_stopping is not None:
        es_known[spec.early_stopping.metric] = _worst(spec.early_stopping.mode)

    node = ray.get_runtime_context().get_node_id()

    def with_es(row: dict[str, Any]) -> dict[str, Any]:
        for key in es_known:
            es_known[key] = row.get(key, es_known[key])  # last known value (eval_every may skip epochs)
        return {**es_known, **row, NODE_KEY: node}

    pending: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    last_sent = time.monotonic()

    def reporter(epoch: int, metrics: dict[str, float], snapshot: Any) -> None:
        nonlocal last, last_sent
        row = with_es(
            {**metrics, "epoch": epoch, STATUS_KEY: "running", OBJECTIVE_KEY: _proxy(metrics, objective)}
        )
        pending.append({"epoch": epoch, **metrics})
        last = row
        paused = gate is not None and gate.stops(cfg, epoch)
        due = paused or time.monotonic() - last_sent >= report_interval
        if epoch == cfg.epochs or not (every_epoch or due):
            return
        payload = {**row, EPOCHS_KEY: json.dumps(pending)}
        pending.clear()
        if due:
            with tempfile.TemporaryDirectory() as d:
                torch.save(vars(snapshot()), Path(d) / TRAIN_STATE_FILE)
                tune.report(payload, checkpoint=tune.Checkpoint.from_directory(d))
            last_sent = time.monotonic()
            if paused:
                gate.hold(
                    {
                        "trial_id": tune.get_context().get_trial_id(),
                        "node_id": node,
                        "pid": os.getpid(),
                        "epoch": epoch,
                    }
                )
        else:
            tune.report(payload)

    try:
        result = run_trial(cfg, reporter=reporter, state=state)
    except Exception as err:  # recorded as a failed trial; the study goes on
        error = f"{type(err).__name__}: {err}"
        tune.report(
            with_es(
                {
                    **last,
                    STATUS_KEY: "failed",
                    ERROR_KEY: error,
                    OBJECTIVE_KEY: _worst(mode),
                    EPOCHS_KEY: json.dumps(pending),
                }
            )
        )
        return
    final = with_es({**last, **result.metrics, STATUS_KEY: result.status, EPOCHS_KEY: json.dumps(pending)})
    value = result.metrics.get(f"val_{objective}", result.metrics.get(objective))  # select on validation
    final[OBJECTIVE_KEY] = value if value is not None and math.isfinite(value) else _worst(mode)
    with tempfile.TemporaryDirectory() as d:
        result.save(d)
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(d))


def report_interval_s() -> float:
    """Seconds between a trial's reports without a scheduler ($LAMP_REPORT_INTERVAL_S on the driver, default 10)."""
    return float(os.environ.get("LAMP_REPORT_INTERVAL_S", "10"))


def trial_config(config: dict[str, Any], spec: StudySpec) -> TrialConfig:
    """A Tune config -> TrialConfig: a full config (grid/random) or flat dotted values (tpe)."""
    if "trial" in config:
        return TrialConfig.from_dict(config["trial"])
    return spec.trial_config(config, spec.seeds[0])


def _proxy(metrics: dict[str, float], objective: str) -> float:
    """Per-epoch stand-in of the objective for the searcher (never the amplified loss)."""
    return metrics.get(f"val_{objective}", float("nan"))


def _worst(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf
