"""The driver's decisions as pure functions: a trial's outcome from its last result, the study's final status.

The end-to-end tests (tests/test_study.py, tests/test_faults.py) strike real
faults; these pin each rule alone, without Ray or MLflow.
"""

from __future__ import annotations

import json

import pytest

from study.core.outcome import study_status
from study.runner._callbacks import trial_outcomes
from study.runner._keys import OBJECTIVE_KEY, STATUS_KEY
from study.runner._packed import MEMBERS_KEY

SOLO = {"trial": {}}


@pytest.mark.parametrize(
    ("ended", "planned", "statuses", "expected"),
    [
        (4, 4, ["finished"] * 4, "finished"),
        (4, 4, ["failed", "failed", "diverged", "failed"], "finished"),  # a diverged trial is an outcome
        (4, 4, ["collapsed"] + ["failed"] * 3, "finished"),
        (4, 4, ["pruned"] + ["failed"] * 3, "finished"),
        (4, 4, ["degenerate"] + ["failed"] * 3, "finished"),  # it trained: an outcome, like collapsed
        (4, 4, ["failed"] * 4, "failed"),
        (4, 4, ["failed", "retried", "failed", "failed"], "failed"),
        (3, 4, ["finished"] * 3, "interrupted"),  # Ctrl-C: Tune never created the 4th trial
        (0, 4, [], "interrupted"),
        (3, 4, ["failed"] * 3, "interrupted"),  # unfinished first: resume may still succeed
    ],
)
def test_study_status(ended: int, planned: int, statuses: list[str], expected: str) -> None:
    assert study_status(ended, planned, statuses) == expected


def test_a_finished_trial_carries_its_selection_value_and_no_other_status_does() -> None:
    result = {STATUS_KEY: "finished", OBJECTIVE_KEY: 0.8, "auroc": 0.9}
    assert trial_outcomes(result, SOLO, can_prune=False) == [("finished", 0.8)]
    assert trial_outcomes({STATUS_KEY: "collapsed", OBJECTIVE_KEY: 0.99}, SOLO, False) == [
        ("collapsed", None)
    ]
    assert trial_outcomes({STATUS_KEY: "diverged"}, SOLO, False) == [("diverged", None)]


@pytest.mark.parametrize(("can_prune", "expected"), [(True, "pruned"), (False, "interrupted")])
def test_a_trial_stopped_while_running_was_pruned_only_when_a_scheduler_can_prune(
    can_prune: bool, expected: str
) -> None:
    for result in ({STATUS_KEY: "running", OBJECTIVE_KEY: 0.5}, {}):
        assert trial_outcomes(result, SOLO, can_prune) == [(expected, None)]


def test_a_trial_that_raised_failed_whatever_it_reported() -> None:
    result = {STATUS_KEY: "finished", OBJECTIVE_KEY: 0.8}
    assert trial_outcomes(result, SOLO, can_prune=True, errored=True) == [("failed", None)]


def test_a_pack_reports_one_outcome_per_member() -> None:
    pack = {"pack": {"pack_id": "p", "members": [{}, {}, {}]}}
    members = [["finished", 0.7], ["diverged", None], ["collapsed", 0.99]]
    result = {STATUS_KEY: "finished", MEMBERS_KEY: json.dumps(members)}
    assert trial_outcomes(result, pack, can_prune=False) == [tuple(m) for m in members]
    # a pack cut before its final report: every member shares the pack's status
    outcomes = trial_outcomes({STATUS_KEY: "running"}, pack, can_prune=False)
    assert outcomes == [("interrupted", None)] * 3
