"""The `report` and `compare` commands: HTML reports of one study (once or while it runs) and of several side by side."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from study.core.errors import LampError

EXIT_OK = 0


class ReportUsageError(LampError, ValueError):
    """A report option out of range (e.g. a non-positive --every)."""


def cmd_report(args: argparse.Namespace) -> int:
    from reports.build import build_report
    from reports.watch import watch_report

    trials = tuple(args.trials or ())
    if not args.watch:
        print(build_report(args.name, tracking_uri=args.tracking_uri, out=args.out, trials=trials))
        return EXIT_OK
    if args.every <= 0 or (args.max_rebuilds is not None and args.max_rebuilds < 1):
        raise ReportUsageError(
            f"--every must be > 0 seconds and --max-rebuilds >= 1, got {args.every} and {args.max_rebuilds}"
        )

    def built(path: Any, running: bool) -> None:
        state = f"study running; next build in {args.every:g} s" if running else "study ended: final report"
        print(f"{path} ({state})", flush=True)

    watch_report(
        args.name,
        tracking_uri=args.tracking_uri,
        out=args.out,
        trials=trials,
        every_s=args.every,
        max_rebuilds=args.max_rebuilds,
        on_build=built,
    )
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from reports.compare import parse_refs
    from reports.compare_html import build_compare

    uris = args.tracking_uri or [args.default_tracking_uri]
    path, text = build_compare(parse_refs(args.studies, uris), out=args.out)
    print(text)
    print(path, file=sys.stderr)
    return EXIT_OK


def add_report_commands(
    sub: Any,
    command: Callable[..., argparse.ArgumentParser],
    add_tracking: Callable[[argparse.ArgumentParser], None],
    default_uri: str,
) -> None:
    """Register `report` and `compare` on the CLI's subparsers (`command` is cli._command)."""
    p = command(
        sub,
        "report",
        "write the HTML report of a study, from MLflow alone, and log it on the study's run",
        "lamp-study report quickstart --out reports_out/quickstart.html",
        cmd_report,
    )
    p.add_argument("name", help="the study's name")
    p.add_argument("--out", default=None, help="HTML file to write (default reports_out/<name>.html)")
    p.add_argument(
        "--trials",
        nargs="+",
        default=None,
        metavar="ID",
        help="trial ids (or run ids) whose learning curves and scores the drill-down adds",
    )
    p.add_argument(
        "--watch", action="store_true", help="rebuild the report while the study runs, until it ends"
    )
    p.add_argument("--every", type=float, default=60.0, help="seconds between --watch builds (default 60)")
    p.add_argument("--max-rebuilds", type=int, default=None, help="stop --watch after this many builds")
    add_tracking(p)

    p = command(
        sub,
        "compare",
        "compare studies cell by cell (same grid on two data sets, or before/after --extend): HTML + text",
        "lamp-study compare digits-grid fashion-grid   |   lamp-study compare grid@seeds=0,1 grid",
        cmd_compare,
    )
    p.add_argument(
        "studies", nargs="+", metavar="STUDY", help="study names; NAME@seeds=0,1 keeps only those seeds"
    )
    p.add_argument("--out", default=None, help="HTML file (default reports_out/compare-<A>-vs-<B>.html)")
    p.add_argument(
        "--tracking-uri",
        action="append",
        default=None,
        help=f"MLflow tracking URI: once for all studies, or once per study in order (default {default_uri})",
    )
    p.set_defaults(default_tracking_uri=default_uri)
