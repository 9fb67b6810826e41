"""Per-trial drill-down (learning curves and scores of the named trials) and `report --watch`."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from reports.build import build_report
from reports.sections.drilldown import CURVES, UnknownTrialError, metric_histories
from reports.source.runs import sql_store
from reports.watch import watch_report
from study.cli.main import main
from tests._synthetic_study import SyntheticGrid, write_synthetic_study
from tests.test_reports import figure, parse, values

GRID = SyntheticGrid(archs=("conv_ae",), optimizers=("sgd",), metrics=("mse",), seeds=(0, 1), epochs=4)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("drill")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    logged = write_synthetic_study(uri, "drill", root / "art", grid=GRID, collapsed_champion=True)
    return root, uri, logged


def test_curves_are_the_logged_epochs_of_every_named_trial(study) -> None:
    root, uri, logged = study
    listed = logged.by_status("finished")[-1]
    page = build_report("drill", tracking_uri=uri, out=root / "d.html", trials=(listed.trial_id,)).read_text()
    traces = figure(page, "fig-trials-curves")["data"]
    by_id = {t.trial_id: t for t in logged.trials}
    names = {t["name"] for t in traces}
    roles = {name.split(": ")[0] for name in names}
    assert {"best", "baseline", "diverged", "collapsed", "listed"} <= roles
    keys = {1: CURVES[0], 2: CURVES[1], 3: CURVES[2]}
    for trace in traces:
        trial = by_id[trace["name"].split(": ")[1]]
        axis = int(trace.get("xaxis", "x").removeprefix("x") or 1)
        logged_values = np.array(trial.history[keys[axis]], dtype=float)
        shown = np.array([np.nan if v is None else v for v in values(trace["y"])], dtype=float)
        np.testing.assert_allclose(shown, logged_values, equal_nan=True)
        assert list(values(trace["x"])) == list(range(1, len(logged_values) + 1))
    # the listed trial's scores are drawn here (best and baseline are in the scores section); the
    # synthetic collapsed trial logged no scores.npz, which the caption says
    titles = {a["text"] for a in figure(page, "fig-trials-histograms")["layout"]["annotations"]}
    collapsed = logged.by_status("collapsed")[0]
    assert titles == {f"listed: {listed.trial_id}"}
    assert f"Missing artifacts: collapsed ({collapsed.trial_id}): scores.npz" in page
    assert "id='sec-trials'" in page


def test_histories_are_read_for_the_named_runs_only(study) -> None:
    _, uri, logged = study
    client = MlflowClient(tracking_uri=uri)
    assert sql_store(client) is not None
    runs = [t.run_id for t in logged.trials[:2]]
    got = metric_histories(client, runs, CURVES)
    assert set(got) == set(runs)
    for t in logged.trials[:2]:
        assert got[t.run_id]["val_auroc"].values == pytest.approx(t.history["val_auroc"])


def test_an_unknown_listed_trial_is_a_clear_error(study, capsys) -> None:
    root, uri, _ = study
    with pytest.raises(UnknownTrialError, match="has no trial 'nope'.*--trials"):
        build_report("drill", tracking_uri=uri, out=root / "x.html", trials=("nope",))
    assert (
        main(["report", "drill", "--tracking-uri", uri, "--trials", "nope", "--out", str(root / "x.html")])
        == 2
    )


def test_watch_rebuilds_until_the_study_ends(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    small = SyntheticGrid(archs=("conv_ae",), optimizers=("adam",), metrics=("mse",), twins=False)
    logged = write_synthetic_study(
        uri, "live", tmp_path / "art", grid=small, status="running", artifacts="none"
    )
    client = MlflowClient(tracking_uri=uri)
    seen: list[tuple[bool, bool]] = []

    def built(path: Path, running: bool) -> None:
        seen.append((running, "This study is still running" in path.read_text()))
        if len(seen) == 2:  # the study ends between the second and the third build
            client.set_tag(logged.parent_run_id, "lamp.status", "finished")
            client.set_terminated(logged.parent_run_id, "FINISHED")

    builds = watch_report("live", tracking_uri=uri, out=tmp_path / "w.html", every_s=0.0, on_build=built)
    assert builds == 3 and seen == [(True, True), (True, True), (False, False)]
    # bounded: an ended study builds once; a stop event or max_rebuilds ends a running one
    assert watch_report("live", tracking_uri=uri, out=tmp_path / "w.html", every_s=0.0) == 1
    client.set_tag(logged.parent_run_id, "lamp.status", "running")
    client.update_run(logged.parent_run_id, "RUNNING")
    stop = threading.Event()
    stop.set()
    assert watch_report("live", tracking_uri=uri, out=tmp_path / "w.html", every_s=60.0, stop=stop) == 1
    assert watch_report("live", tracking_uri=uri, out=tmp_path / "w.html", every_s=0.0, max_rebuilds=2) == 2
    assert main(["report", "live", "--tracking-uri", uri, "--watch", "--every", "0"]) == 2
    assert parse((tmp_path / "w.html").read_text()).sections[0] == "sec-answers"
