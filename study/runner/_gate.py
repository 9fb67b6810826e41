"""A pause point for fault tests: one chosen trial stops at a chosen epoch until released.

A fault test (kill the driver, lose a node, stop the tracking server) must
strike while a known trial is at a known point, not when a timer guesses so.
When $LAMP_TEST_GATE names a directory holding `gate.json`
(`{"match": {"factor": "10.0"}, "epoch": 3}`, keys and values as in a child
run's params), the driver hands a `Gate` to its trials; the matching trial
sends a checkpointed report at that epoch, writes `ready` (its trial id and
Ray node id) and waits until the file `release` exists. Without the variable
the trainable receives `None` and pays one comparison per epoch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.core.config import TrialConfig
from study.core.errors import LampError

GATE_ENV = "LAMP_TEST_GATE"
GATE_FILE = "gate.json"
READY = "ready"
RELEASE = "release"


@dataclass(frozen=True)
class Gate:
    """Which trial pauses (`match` on its params), after which epoch, and where it signals."""

    directory: str
    match: dict[str, str]
    epoch: int

    @classmethod
    def from_env(cls) -> Gate | None:
        """The gate $LAMP_TEST_GATE describes, or None (production)."""
        directory = os.environ.get(GATE_ENV)
        if not directory:
            return None
        path = Path(directory) / GATE_FILE
        try:
            raw = json.loads(path.read_text())
            return cls(
                str(Path(directory).resolve()),
                {k: str(v) for k, v in raw["match"].items()},
                int(raw["epoch"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LampError(
                f"${GATE_ENV}={directory}: cannot read {path} ({err}); it must hold "
                f'{{"match": {{PARAM: VALUE}}, "epoch": N}}, or unset {GATE_ENV}'
            ) from None

    def stops(self, cfg: TrialConfig, epoch: int) -> bool:
        """Whether this trial pauses after this epoch (never again once released)."""
        if epoch != self.epoch or (Path(self.directory) / RELEASE).exists():
            return False
        params = cfg.to_params()
        return all(params.get(k) == v for k, v in self.match.items())

    def hold(self, info: dict[str, Any]) -> None:
        """Signal `ready` with `info`, then wait for `release` (a test's event, polled)."""
        d = Path(self.directory)
        tmp = d / f".{READY}.{os.getpid()}"
        tmp.write_text(json.dumps(info))
        tmp.replace(d / READY)  # atomic: a reader never sees half a file
        while not (d / RELEASE).exists():
            time.sleep(0.05)
