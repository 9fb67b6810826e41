"""Live progress: the states the driver emits (fake trial lists: the counting is under test, not Tune),
and how the command line renders them: lines in a log, one updating bar on a terminal (a real pty)."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import select
import struct
import sys
import termios

import pytest

from study.cli.progress import ProgressHandler, progress_output
from study.runner import OBJECTIVE_KEY, PROGRESS_LOGGER, STATUS_KEY, Progress, ProgressState
from study.runner._callbacks import _ACTIVE
from study.spec import load_spec
from tests.conftest import SPECS


class _Trial:
    def __init__(
        self, trial_id: str, status: str, result: dict | None = None, config: dict | None = None
    ) -> None:
        self.trial_id, self.status, self.last_result = trial_id, status, result or {}
        self.config = config or {"trial": {}}


@pytest.fixture
def progress() -> Progress:
    spec = load_spec(SPECS / "tiny.yaml")  # 8 trials, auroc to maximise
    _ACTIVE[spec.name] = (None, spec)  # type: ignore[assignment]
    yield Progress(spec.name)
    _ACTIVE.pop(spec.name, None)


def _states(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[ProgressState]:
    states = [r.lamp_progress for r in caplog.records if r.name == PROGRESS_LOGGER and r.levelno >= level]
    caplog.clear()
    return states


def test_progress_counts_every_running_trial_and_gives_an_eta(
    progress: Progress, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=PROGRESS_LOGGER)
    a, b = _Trial("a", "RUNNING"), _Trial("b", "RUNNING")
    progress.on_trial_start(0, [a, b], b)
    progress.on_step_end(0, [a, b])
    (state,) = _states(caplog)  # the first start is an event a log shows
    assert (state.done, state.total, state.running) == (0, 8, 2)
    # "best" is the selection value (validation part), never the reported test auroc
    a.last_result = {STATUS_KEY: "finished", "auroc": 0.99, OBJECTIVE_KEY: 0.9}
    a.status = "TERMINATED"
    c = _Trial("c", "TERMINATED", {STATUS_KEY: "diverged"})
    d = _Trial("d", "TERMINATED", {STATUS_KEY: "collapsed", "auroc": 0.95, OBJECTIVE_KEY: 0.95})
    progress.on_trial_complete(0, [a, b, c, d], a)
    progress.on_step_end(1, [a, b, c, d])
    (state,) = _states(caplog)
    assert (
        "3/8 trials done, 1 running, 1 collapsed, 0 degenerate, 1 diverged, 0 failed, 0 pruned"
        in state.line()
    )
    assert state.best == 0.9 and "best auroc (validation) 0.9000" in state.line()  # collapsed is never best
    assert state.eta_s is not None and state.eta_s >= 0  # one trial ended in this session: a pace exists


def test_progress_counts_the_members_of_packs(progress: Progress, caplog: pytest.LogCaptureFixture) -> None:
    from study.runner._packed import MEMBERS_KEY

    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    a = _Trial("a", "RUNNING", config={"pack": {"pack_id": "p", "members": [{}, {}, {}]}})
    progress.on_trial_start(0, [a], a)
    progress.on_step_end(0, [a])
    assert _states(caplog)[0].running == 3
    outcomes = [["finished", 0.7], ["diverged", None], ["collapsed", 0.99]]
    a.last_result = {STATUS_KEY: "finished", MEMBERS_KEY: json.dumps(outcomes), OBJECTIVE_KEY: 0.99}
    a.status = "TERMINATED"
    progress.on_trial_complete(0, [a], a)
    progress.on_step_end(1, [a])
    (state,) = _states(caplog)
    assert "3/8 trials done, 0 running, 1 collapsed, 0 degenerate, 1 diverged" in state.line()
    assert state.best == 0.7  # a collapsed member is never best
    assert state.eta_s is not None  # three trials ended in this session: a pace exists


def _drive(progress: Progress, n: int) -> None:
    """n trials, one at a time, as Tune's loop reports them: each end and the next start share a step,
    and two steps without an event come between (a long trial; TICK_S is 0 in these tests)."""
    trials = [
        _Trial(str(i), "PENDING", {STATUS_KEY: "finished", OBJECTIVE_KEY: 0.5 + i / 100}) for i in range(n)
    ]
    for i, t in enumerate(trials):
        t.status = "RUNNING"
        progress.on_trial_start(i, trials, t)
        for _ in range(3):
            progress.on_step_end(i, trials)
        t.status = "TERMINATED"
        progress.on_trial_complete(i, trials, t)
    progress.on_experiment_end(trials)


@pytest.fixture(autouse=True)
def _every_step_refreshes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("study.runner._progress.TICK_S", 0.0)


def test_a_log_gets_one_line_per_event_and_never_two_alike(progress: Progress) -> None:
    out = io.StringIO()
    with progress_output(out):
        _drive(progress, 4)
    lines = out.getvalue().splitlines()
    # the first start, then each end (which shares its step with the next start): 1 + 4 lines
    assert len(lines) == 5
    without_time = [line.split("; ")[0] + line.split("; ")[1] for line in lines]
    assert len(set(without_time)) == len(lines)
    assert [re.search(r"(\d+)/8 trials done", line).group(1) for line in lines] == ["0", "1", "2", "3", "4"]
    assert "best auroc (validation) 0.5300" in lines[-1]
    assert not logging.getLogger(PROGRESS_LOGGER).handlers  # the handler leaves with the study


@pytest.mark.parametrize("size", [(40, 200), (0, 0)])  # a terminal, and a pty that reports no size
def test_a_terminal_gets_one_bar_redrawn_in_place_also_between_events(
    progress: Progress, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    stream = os.fdopen(slave, "w")
    monkeypatch.setattr(sys, "stderr", stream)  # the command line's stream: tqdm asks its size
    try:
        with progress_output() as handler:
            assert handler.tty  # a real pty, detected as a terminal
            _drive(progress, 3)
        stream.flush()
        chunks = []
        while select.select([master], [], [], 0.5)[0]:
            data = os.read(master, 65536)
            if not data:
                break
            chunks.append(data)
        text = b"".join(chunks).decode(errors="replace")
    finally:
        stream.close()
        os.close(master)
    frames = [f for f in text.split("\r") if f.strip()]
    # one frame per record (events and refreshes between them), all on one line until the bar closes
    assert len(frames) >= 3 + 2 * 3 and text.count("\n") <= 1
    last = frames[-1]
    assert "3/8" in last and "0 running" in last and "best auroc (validation) 0.5200" in last
    assert "ETA" in last and "[tiny] trials" in last


def test_a_library_caller_sees_the_lines_through_logging(
    progress: Progress, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    _drive(progress, 2)
    lines = [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER]
    assert len(lines) == 3 and lines[-1].startswith("[tiny] 2/8 trials done")


def test_a_log_handler_ignores_records_that_are_not_progress() -> None:
    out = io.StringIO()
    handler = ProgressHandler(out, tty=False)
    handler.emit(logging.makeLogRecord({"msg": "other", "levelno": logging.INFO}))
    assert out.getvalue() == ""
