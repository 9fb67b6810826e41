"""`lamp-study register`, `score` and `export`: the commands that turn a study's results into decisions.

Kept beside study/cli.py so the command table there stays one block per command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Command = Callable[..., argparse.ArgumentParser]


def cmd_register(args: argparse.Namespace) -> int:
    from study.serving.registry import register_best

    info = register_best(
        args.name,
        tracking_uri=args.tracking_uri,
        metric=args.metric,
        mode=args.mode,
        model_name=args.model_name,
        alias=args.alias,
        allow_collapsed=args.allow_collapsed,
        allow_degenerate=args.allow_degenerate,
        allow_running=args.allow_running,
        false_alarm=args.false_alarm,
    )
    if info["setting"] is not None:
        print(info["setting"]["note"], file=sys.stderr)
    if not info["new_version"]:
        print(
            f"run {info['run_id']} is already version {info['version']} of {info['model_name']}: "
            f"no new version, alias {info['alias']!r} now points at it",
            file=sys.stderr,
        )
    print(json.dumps(info, indent=1))
    if info["threshold"]:
        print(info["threshold"]["claim"], file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from study.serving.registry import score_model

    threshold = score_threshold(args)
    print(
        score_model(
            args.model_uri, args.data, out=args.out, tracking_uri=args.tracking_uri, threshold=threshold
        )
    )
    return 0


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

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or summary.get("tracking_uri", "")
    if getattr(args, "no_report", False) or not summary.get("trials") or "***@" in uri:
        return
    from reports.build import build_report

    path = build_report(summary["study"], tracking_uri=uri)
    print(
        f"[{summary['study']}] report: {path} (also the study run's artifact report/report.html)",
        file=sys.stderr,
    )


def add_register_options(p: argparse.ArgumentParser) -> None:
    from study.serving.threshold import DEFAULT_FALSE_ALARM

    p.add_argument(
        "--allow-degenerate",
        action="store_true",
        help="also consider trials flagged degenerate (score like the identity or the mean image, "
        "no better than the model-free baselines on the validation part)",
    )
    p.add_argument(
        "--allow-running",
        action="store_true",
        help="register even while the study is still running (its best so far may not be its best)",
    )
    p.add_argument(
        "--false-alarm",
        type=float,
        default=DEFAULT_FALSE_ALARM,
        help="share of normal images allowed to raise an alarm: sets the alarm threshold stored with the "
        f"model, from the trial's held-out normal scores (default {DEFAULT_FALSE_ALARM})",
    )


def add_threshold_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        nargs="?",
        const="stored",
        default=None,
        metavar="VALUE",
        help="add an `alarm` column (1: score above the threshold): the one stored at `register` "
        "(or set on a run's held-out normals) without VALUE, else VALUE",
    )


def score_threshold(args: argparse.Namespace) -> float | None:
    """The threshold `score` applies: none, the given number, or the stored one (its claim on stderr)."""
    from study.core.errors import LampError

    if args.threshold is None:
        return None
    if args.threshold != "stored":
        try:
            return float(args.threshold)
        except ValueError:
            raise LampError(
                f"--threshold {args.threshold!r}: a number, or no value for the stored one"
            ) from None
    from study.serving.registry import model_threshold

    found = model_threshold(args.model_uri, tracking_uri=args.tracking_uri)
    print(found.sentence(), file=sys.stderr)
    return found.value
