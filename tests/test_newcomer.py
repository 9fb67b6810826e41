"""The newcomer path: `init` leaves nothing behind when it fails, and a study whose trials did not train
says so, with the fix, in its summary and its report (a real sqlite store, written by the driver's tracker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.cli import EXIT_OK, EXIT_USAGE, main
from study.core.outcome import study_outcome
from tests.test_cli import _own_data


def test_a_failed_init_writes_nothing_and_the_retry_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from study.spec import load_spec

    good, bad = _own_data(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "mine.yaml"
    argv = ["init", "mine", "--normal", str(good), "--out", str(out), "--image-size", "16", "--anomalous"]
    assert main([*argv, str(empty)]) == EXIT_USAGE
    assert str(empty) in capsys.readouterr().err and not out.exists()
    assert main([*argv, str(bad)]) == EXIT_OK  # nothing left behind blocks the retry
    spec = load_spec(out)
    assert {"linear", "exp"} <= set(spec.dimensions["amplification"].values())  # a non-linear form too


@pytest.mark.parametrize(
    ("counts", "flagged", "words"),
    [
        ({"collapsed": 10}, True, ["all 10 trials did not train (10 collapsed)", "raise `epochs`"]),
        ({"diverged": 3, "finished": 1}, True, ["3 of 4 trials", "lower `lr`"]),
        ({"collapsed": 2, "diverged": 2, "finished": 4}, False, []),  # half is not most
        ({"finished": 5, "failed": 5}, False, []),  # failures have their own errors
        ({"running": 4}, False, []),
    ],
)
def test_the_outcome_flags_studies_where_most_trials_did_not_train(
    counts: dict[str, int], flagged: bool, words: list[str]
) -> None:
    outcome = study_outcome(counts)
    assert (outcome is not None) == flagged
    for w in words:
        assert w in outcome.message()


def test_a_report_of_a_study_where_every_trial_collapsed_says_what_happened(tmp_path: Path) -> None:
    from reports.build import build_report
    from study.core.config import TrialConfig
    from study.tracking import StudyTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = StudyTracker(uri, "flat")
    tracker.start_study("name: flat", "hash", {"lamp.objective_metric": "auroc"}, {})
    for i, (form, factor) in enumerate([("linear", 1.0), ("linear", 10.0), ("exp", 10.0)]):
        cfg = TrialConfig.from_dict({"amplification": form, "factor": factor, "seed": i})
        tracker.start_trial(f"t{i}", cfg, "hash")
        tracker.end_trial(f"t{i}", "collapsed", {"val_auroc": 0.9, "auroc": 0.7, "collapse_var_ratio": 0.001})
    tracker.end_study("finished", {})
    page = build_report("flat", tracking_uri=uri, out=tmp_path / "flat.html").read_text()
    assert "all 3 trials did not train (3 collapsed)" in page and "raise `epochs`" in page
    assert "has a value of auroc yet" not in page
    assert "un-amplified baseline (linear" not in page and "enable the twins" not in page


def test_a_study_that_did_not_train_ends_with_a_warning_in_its_summary_and_its_log(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import time

    from study.runner._driver import _summary
    from study.spec import load_spec
    from tests.conftest import SPECS

    spec = load_spec(SPECS / "tiny.yaml")
    caplog.set_level("WARNING")
    args = (spec, "finished", "run", "sqlite:///x.db", tmp_path, time.time())
    summary = _summary(*args, {"collapsed": 7, "finished": 1})
    assert "7 of 8 trials did not train" in summary["warning"] and "raise `epochs`" in summary["warning"]
    assert any("WARNING" in r.getMessage() and "7 of 8" in r.getMessage() for r in caplog.records)
    assert "warning" not in _summary(*args, {"finished": 8})
