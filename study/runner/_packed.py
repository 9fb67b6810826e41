"""Packed trials in Tune: one Tune trial trains a pack (study.packing); each member is a trial to the user.

The trial side (`pack_trainable`) reports every member's per-epoch metrics in
one row and ends with one checkpoint holding each member's result files in its
own folder (`member_<k>`). The driver side reads them back: a member's MLflow
run is keyed by `member_id(tune trial id, k)` and ends with the member's own
status, metrics and files, as a solo trial's run does, plus the tag `PACK_TAG`.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from study.core.config import TrialConfig
from study.packing.plan import BATCHABLE, pack_key_fields
from study.runner._keys import EPOCHS_KEY, ERROR_KEY, NODE_KEY, OBJECTIVE_KEY, STATUS_KEY
from study.runner._trainable import _worst, selection_value

# Tune config key of a pack: {"pack_id", "shared": the pack key's fields (nested TrialConfig dict),
# "members": [each member's batchable fields]}. Tune keeps every trial's config in its experiment
# state and writes it at every snapshot: the shared part once per pack keeps that small.
PACK_KEY = "pack"
MEMBERS_KEY = "lamp_members"  # final report: JSON list of [status, selection value] per member
MEMBER_KEY = "member"  # per-epoch row: which member the row belongs to
PACK_TAG = "lamp.pack_id"


def is_pack(config: dict[str, Any]) -> bool:
    return PACK_KEY in config


def member_id(trial_id: str, k: int) -> str:
    """The trial id a pack member is tracked under (its run's `lamp.trial_id` tag)."""
    return f"{trial_id}-m{k}"


def member_configs(config: dict[str, Any]) -> list[TrialConfig]:
    """The TrialConfig of every member of a pack's Tune config, in order."""
    pack = config[PACK_KEY]
    return [TrialConfig.from_dict({**pack["shared"], **m}) for m in pack["members"]]


def members(trial_id: str, config: dict[str, Any]) -> list[tuple[str, TrialConfig]]:
    """(member trial id, config) of every member of a pack's Tune config."""
    return [(member_id(trial_id, k), cfg) for k, cfg in enumerate(member_configs(config))]


def pack_config(pack: Any) -> dict[str, Any]:
    """The Tune config of a `study.packing.Pack`."""
    shared = pack_key_fields(pack.configs[0])
    batchable = [{name: c.to_dict()[name] for name in BATCHABLE} for c in pack.configs]
    return {"pack_id": pack.pack_id, "shared": shared, "members": batchable}


def member_dir(checkpoint_dir: str | Path, k: int) -> Path:
    return Path(checkpoint_dir) / f"member_{k}"


def member_outcomes(
    result: dict[str, Any], n_members: int, pack_status: str
) -> list[tuple[str, float | None]]:
    """(status, selection value) per member from a pack's last result; every member shares a status
    the pack ended with before its final report (failed, interrupted, pruned)."""
    if MEMBERS_KEY in result:
        return [(s, v) for s, v in json.loads(result[MEMBERS_KEY])]
    return [(pack_status, None)] * n_members


def pack_trainable(config: dict[str, Any], objective: str, mode: str, report_interval: float) -> None:
    """Train and measure one pack; a pack that raises is reported `failed` with its error (every member)."""
    import ray
    from ray import tune

    from study.packing import run_pack

    cfgs = member_configs(config)
    node = ray.get_runtime_context().get_node_id()
    reporter = _PackReporter(cfgs[0].epochs, report_interval, node)
    try:
        results = run_pack(cfgs, reporter=reporter)
    except Exception as err:  # recorded as failed trials; the study goes on
        failed = {
            STATUS_KEY: "failed",
            ERROR_KEY: f"{type(err).__name__}: {err}",
            OBJECTIVE_KEY: _worst(mode),
        }
        tune.report({**failed, EPOCHS_KEY: json.dumps(reporter.pending), NODE_KEY: node})
        return
    outcomes = [(r.status, selection_value(r.metrics, objective)) for r in results]
    values = [v for s, v in outcomes if s == "finished" and v is not None]
    best = (max if mode == "max" else min)(values, default=_worst(mode))
    final = {
        STATUS_KEY: "finished",
        MEMBERS_KEY: json.dumps(outcomes),
        OBJECTIVE_KEY: best,
        EPOCHS_KEY: json.dumps(reporter.pending),
        NODE_KEY: node,
    }
    with tempfile.TemporaryDirectory() as d:
        for k, result in enumerate(results):
            result.save(member_dir(d, k))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(d))


class _PackReporter:
    """`run_pack`'s per-epoch hook: every member's rows, sent at most every `interval` seconds.

    A pack keeps no training checkpoint (a cut pack restarts from epoch 1, and
    the driver logs each epoch once), so these reports carry metrics only; the
    last epoch goes out with the final report.
    """

    def __init__(self, epochs: int, interval: float, node: str) -> None:
        self.epochs, self.interval, self.node = epochs, interval, node
        self.pending: list[dict[str, Any]] = []
        self.last_sent = time.monotonic()

    def __call__(self, epoch: int, rows: dict[int, dict[str, float]]) -> None:
        from ray import tune

        self.pending += [{MEMBER_KEY: k, "epoch": epoch, **m} for k, m in rows.items()]
        if epoch == self.epochs or time.monotonic() - self.last_sent < self.interval:
            return
        tune.report(
            {STATUS_KEY: "running", "epoch": epoch, EPOCHS_KEY: json.dumps(self.pending), NODE_KEY: self.node}
        )
        self.pending = []
        self.last_sent = time.monotonic()
