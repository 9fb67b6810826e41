"""`lamp-study export`, and the options that turn a study's results into decisions (threshold, report).

Kept beside study/cli.py so the command table there stays one block per command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Command = Callable[..., argparse.ArgumentParser]


def cmd_export(args: argparse.Namespace) -> int:
    from reports.export import export_trials

    print(export_trials(args.name, tracking_uri=args.tracking_uri, out=args.out))
    return 0


def add_export(sub: Any, command: Command, add_tracking: Callable[[argparse.ArgumentParser], None]) -> None:
    """The `export` command: one row per trial (params, status, final metrics, run id) to parquet or CSV."""
    p = command(
        sub,
        "export",
        "write a study's trials as a table, one row per trial: params, status, final metrics, MLflow run id",
        "lamp-study export quickstart --out trials.parquet",
        cmd_export,
    )
    p.add_argument("name", help="the study's name")
    p.add_argument("--out", required=True, help="file to write: .parquet or .csv (by its suffix)")
    add_tracking(p)


def add_no_report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-report",
        action="store_true",
        help="do not build the HTML report when the study ends (default: build it and log it on the study's run)",
    )


def report_after_run(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    """The study's report, written and logged on its parent run, unless --no-report or nothing ran."""
    import os
    import sys

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or summary.get("tracking_uri", "")
    if getattr(args, "no_report", False) or not summary.get("trials") or "***@" in uri:
        return
    from reports.build import build_report

    path = build_report(summary["study"], tracking_uri=uri)
    print(
        f"[{summary['study']}] report: {path} (also the study run's artifact report/report.html)",
        file=sys.stderr,
    )
