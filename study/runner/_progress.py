"""The live progress of a study, as log records the caller renders (study/cli/progress.py: a bar or lines).

The driver emits events; it never writes to the terminal. Each record of this
module's logger carries a `ProgressState` in `record.lamp_progress`:

- INFO when a trial (or a pack) ended, and when the first trial started: one
  line each, so a log shows one line per event;
- DEBUG when trials only started, and at most once a second otherwise (`tick`),
  so a terminal bar stays current during long trials and packs.

What changed within one step of Tune's loop is emitted once, at its end: a
trial that ends and the next one that starts make one record, not two.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback

from study.core.vocab import TrialStatus
from study.runner._callbacks import _ACTIVE, _size, trial_outcomes

logger = logging.getLogger(__name__)
PROGRESS_LOGGER = __name__  # the logger a front end attaches its handler to
# outcomes every line counts, zeros included (a degenerate trial is not counted as a model either)
KINDS = tuple(
    str(s)
    for s in (
        TrialStatus.COLLAPSED,
        TrialStatus.DEGENERATE,
        TrialStatus.DIVERGED,
        TrialStatus.FAILED,
        TrialStatus.PRUNED,
    )
)
TICK_S = 1.0  # least time between two refreshes of a bar


@dataclass(frozen=True)
class ProgressState:
    """Where a study stands: trials ended by status, running, best validation value, pace."""

    study: str
    done: int
    total: int | None  # None: open-ended (tpe without a count)
    running: int
    counts: dict[str, int] = field(default_factory=dict)  # lamp status -> trials ended with it
    metric: str = "auroc"
    best: float | None = None  # best finished trial's selection value (validation part)
    elapsed_s: float = 0.0
    eta_s: float | None = None  # None: nothing ended here yet to measure the pace, or open-ended

    def outcomes(self) -> str:
        return ", ".join(f"{self.counts.get(k, 0)} {k}" for k in KINDS)

    def best_text(self) -> str:
        shown = f"{self.best:.4f}" if self.best is not None else "-"
        return f"best {self.metric} (validation) {shown}"

    def eta_text(self) -> str:
        return "?" if self.eta_s is None else f"{self.eta_s:.0f}s"

    def line(self) -> str:
        """The one-line form a log gets."""
        return (
            f"[{self.study}] {self.done}/{self.total or '?'} trials done, {self.running} running, "
            f"{self.outcomes()}; {self.best_text()}; {self.elapsed_s:.0f}s elapsed, ETA {self.eta_text()}"
        )


class Progress(Callback):
    """Turns Tune's trial list into `ProgressState` records (see the module docstring).

    Counts come from Tune's trial list, not from state of its own, so they stay
    right after a resume; the ETA uses only trials ended since this driver
    started (a resumed study's earlier trials say nothing about its pace).
    """

    def __init__(self, study: str) -> None:
        self.study = study
        self.setup()

    def setup(self, **info: Any) -> None:
        self.t0 = time.time()
        self.ended_here: dict[str, int] = {}  # Tune trial id -> trials it held (a pack holds several)
        self._ended = self._started = self._announced = False
        self._last_emit = 0.0

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started = True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended_here[trial.trial_id] = _size(trial.config)
        self._ended = True

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_trial_complete(iteration, trials, trial)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """One record for whatever changed in this step; else a tick for a bar, at most once a second."""
        now = time.time()
        if self._ended or (self._started and not self._announced):
            level = logging.INFO
        elif self._started or now - self._last_emit >= TICK_S:
            level = logging.DEBUG
        else:
            return
        self._announced |= self._started
        self._ended = self._started = False
        self._last_emit = now
        if logger.isEnabledFor(level):
            state = self.state(trials)
            logger.log(level, state.line(), extra={"lamp_progress": state})

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._ended:  # an end in the last step, not yet emitted
            self.on_step_end(0, trials)

    def state(self, trials: list) -> ProgressState:
        """The study's state from Tune's trial list."""
        spec = _ACTIVE[self.study][1]
        can_prune = spec.early_stopping is not None
        counts: dict[str, int] = {}
        running = 0
        best: float | None = None
        for t in trials:
            running += _size(t.config) * (t.status == "RUNNING")
            if t.status not in ("TERMINATED", "ERROR"):
                continue
            for status, value in trial_outcomes(
                t.last_result or {}, t.config, can_prune, t.status == "ERROR"
            ):
                counts[status] = counts.get(status, 0) + 1
                if status == "finished" and value is not None and math.isfinite(value):
                    better = best is None or (value > best if spec.objective.mode == "max" else value < best)
                    best = value if better else best
        done, total = sum(counts.values()), spec.n_trials
        elapsed = time.time() - self.t0
        eta = None
        if total is not None and done >= total:
            eta = 0.0
        elif total is not None and self.ended_here:
            eta = elapsed * (total - done) / sum(self.ended_here.values())
        return ProgressState(
            self.study, done, total, running, counts, spec.objective.metric, best, elapsed, eta
        )
