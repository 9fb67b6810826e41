"""The live progress line counts what Tune's trial list holds (fake trials: the line is under test, not Tune)."""

from __future__ import annotations

import pytest

from study.runner import OBJECTIVE_KEY, STATUS_KEY, Progress
from study.runner._callbacks import _ACTIVE
from study.spec import load_spec
from tests.conftest import SPECS


class _Trial:
    def __init__(
        self, trial_id: str, status: str, result: dict | None = None, config: dict | None = None
    ) -> None:
        self.trial_id, self.status, self.last_result = trial_id, status, result or {}
        self.config = config or {"trial": {}}


def test_progress_counts_every_running_trial_and_gives_an_eta(capsys: pytest.CaptureFixture) -> None:
    spec = load_spec(SPECS / "tiny.yaml")  # 8 trials, auroc to maximise
    _ACTIVE[spec.name] = (None, spec)
    try:
        progress = Progress(spec.name)
        progress.setup()
        a = _Trial("a", "RUNNING")
        b = _Trial("b", "PENDING")
        progress.on_trial_start(0, [a, b], b)  # b starts while a runs
        assert "0/8 trials done, 2 running" in capsys.readouterr().err
        # "best" is the selection value (validation part), never the reported test auroc
        a.last_result = {STATUS_KEY: "finished", "auroc": 0.99, OBJECTIVE_KEY: 0.9}
        c = _Trial("c", "TERMINATED", {STATUS_KEY: "diverged"})
        d = _Trial("d", "TERMINATED", {STATUS_KEY: "collapsed", "auroc": 0.95, OBJECTIVE_KEY: 0.95})
        b.status = "RUNNING"
        progress.on_trial_complete(0, [a, b, c, d], a)
        line = capsys.readouterr().err
        assert "3/8 trials done, 1 running, 1 collapsed, 1 diverged, 0 failed, 0 pruned" in line
        assert "best auroc (validation) 0.9000" in line  # the collapsed trial is never best
        eta = line.split("ETA ")[1].strip()
        assert eta.endswith("s") and eta != "?"  # one trial ended in this session: a pace exists
    finally:
        _ACTIVE.pop(spec.name, None)


def test_progress_counts_the_members_of_packs(capsys: pytest.CaptureFixture) -> None:
    import json

    from study.runner._packed import MEMBERS_KEY

    spec = load_spec(SPECS / "tiny.yaml")  # 8 trials
    _ACTIVE[spec.name] = (None, spec)
    pack = {"pack": {"pack_id": "p", "members": [{}, {}, {}]}}
    try:
        progress = Progress(spec.name)
        progress.setup()
        a = _Trial("a", "PENDING", config=pack)
        progress.on_trial_start(0, [a], a)
        assert "0/8 trials done, 3 running" in capsys.readouterr().err
        outcomes = [["finished", 0.7], ["diverged", None], ["collapsed", 0.99]]
        a.last_result = {STATUS_KEY: "finished", MEMBERS_KEY: json.dumps(outcomes), OBJECTIVE_KEY: 0.99}
        progress.on_trial_complete(0, [a], a)
        line = capsys.readouterr().err
        assert "3/8 trials done, 0 running, 1 collapsed, 1 diverged" in line
        assert "best auroc (validation) 0.7000" in line  # a collapsed member is never best
        assert line.split("ETA ")[1].strip() != "?"  # three trials ended in this session: a pace exists
    finally:
        _ACTIVE.pop(spec.name, None)
