"""Rebuild a study's report while it runs (`lamp-study report NAME --watch`).

The study's state is read before each build: once the parent run has ended
(its `lamp.status` is no longer `running`, or MLflow marks the run terminated),
the build that follows reads every trial the study recorded and is the last.
The loop is bounded (`max_rebuilds`) and waits on an event, so a caller (or a
test) can stop it at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient

from reports.build import build_report
from reports.source.extract import StudyNotFoundError

log = logging.getLogger(__name__)


def study_running(name: str, tracking_uri: str, client: MlflowClient | None = None) -> bool:
    """Whether the study's latest parent run is still running (False once it ended, or without one)."""
    client = client or MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise StudyNotFoundError(
            f"no study named {name!r} in {tracking_uri!r}; start it first, then watch it"
        )
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`lamp.role` = 'study'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return False
    run = runs[0]
    return run.data.tags.get("lamp.status") == "running" and run.info.status == "RUNNING"


def watch_report(
    name: str,
    *,
    tracking_uri: str,
    out: str | Path | None = None,
    trials: tuple[str, ...] = (),
    every_s: float = 60.0,
    max_rebuilds: int | None = None,
    stop: threading.Event | None = None,
    on_build: Callable[[Path, bool], None] | None = None,
) -> int:
    """Build the report every `every_s` seconds until the study ends; return how many builds were made.

    Args:
        every_s: seconds between builds (waited on `stop`, so setting it ends the loop at once).
        max_rebuilds: stop after this many builds even if the study still runs (None: until it ends).
        on_build: called after each build with the path and whether the study was still running.
    """
    stop = stop or threading.Event()
    client = MlflowClient(tracking_uri=tracking_uri)
    builds = 0
    while True:
        running = study_running(name, tracking_uri, client)  # read first: an ended study's build is final
        path = build_report(name, tracking_uri=tracking_uri, out=out, trials=trials)
        builds += 1
        log.info("report %s rebuilt (%d), study %s", path, builds, "running" if running else "ended")
        if on_build is not None:
            on_build(path, running)
        if not running or (max_rebuilds is not None and builds >= max_rebuilds) or stop.wait(every_s):
            return builds
