"""`lamp-study` command line: init, validate, run, resume, register, score, serve, report, export, trial.

Heavy imports (torch, ray, mlflow) happen inside the commands so `--help`
answers at once. Expected failures (bad spec or data, unreachable tracking
server, unknown study) print one message and exit 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from typing import Any

from study.cli.log import log_to_stderr
from study.cli.progress import progress_output
from study.cli.report import add_report_commands
from study.cli.results import (
    add_export,
    add_no_report,
    add_register_options,
    add_threshold_option,
    cmd_register,
    cmd_score,
    report_after_run,
)
from study.cli.trial_args import add_trial_args, trial_config_from_args
from study.core.errors import LampError
from study.core.vocab import TrialStatus
from study.tracking import set_quiet_mlflow_env

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXIT_OK, EXIT_NOT_FINISHED, EXIT_USAGE, EXIT_CTRL_C = 0, 1, 2, 130
EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success (a study: every trial ended)
  {EXIT_NOT_FINISHED}    a study stopped before all its trials ended (resume it to finish)
  {EXIT_USAGE}    bad input: command line, spec, data, tracking URI, unknown study or model
  {EXIT_CTRL_C}  interrupted with Ctrl-C"""
_RAW = argparse.RawDescriptionHelpFormatter


def _tracking_default() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def _add_tracking(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri",
        default=_tracking_default(),
        help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})",
    )


# ---------------------------------------------------------------- commands
def cmd_trial(args: argparse.Namespace) -> int:
    cfg = trial_config_from_args(args)
    from study.trial import run_trial

    def report(epoch: int, metrics: dict[str, float], _snapshot: Any) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"epoch {epoch}/{cfg.epochs} {shown}", file=sys.stderr)

    result = run_trial(cfg, reporter=report)
    if args.out:
        result.save(args.out)
    print(json.dumps({"status": result.status, "metrics": result.metrics, "config": cfg.to_dict()}, indent=1))
    m = result.metrics
    if result.status in (TrialStatus.FINISHED, TrialStatus.COLLAPSED, TrialStatus.DEGENERATE):
        summary = (
            f"{result.status}: {cfg.arch} {cfg.metric} {cfg.amplification}(λ={cfg.factor:g}) {cfg.optimizer} lr={cfg.lr:g}: "
            f"AUROC {m['auroc']:.4f}, AP {m['ap']:.4f}, sharpness {m.get('sharpness', float('nan')):.4g}, "
            f"train {m['train_time_s']:.1f}s"
        )
    else:
        summary = f"{result.status} at epoch {m.get('diverged_epoch', float('nan')):.0f}"
    print(summary, file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- studies
def cmd_validate(args: argparse.Namespace) -> int:
    from study.cli.validate import print_validation

    print_validation(
        args.spec,
        no_data=args.no_data,
        calibrate=getattr(args, "calibrate", False),
        address=getattr(args, "address", None),
    )
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from study.cli.starter import write_starter

    path = write_starter(
        args.name,
        args.normal,
        args.anomalous,
        out=args.out,
        image_size=args.image_size,
        epochs=args.epochs,
        unlabelled=args.unlabelled,
    )
    print(f"wrote {path}")
    code = cmd_validate(argparse.Namespace(spec=str(path), no_data=False))
    print(f"next: lamp-study run {path} && lamp-study report {args.name}")
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from study.runner import run_study
    from study.spec import load_spec

    spec = load_spec(args.spec)
    with progress_output():
        summary = run_study(
            spec,
            address=args.address,
            tracking_uri=args.tracking_uri,
            storage_path=args.storage_path,
            name=args.name,
            extend=args.extend,
            optuna_storage=args.optuna_storage,
        )
    print(json.dumps(summary, indent=1))
    report_after_run(args, summary)
    return EXIT_OK if summary.get("status") == TrialStatus.FINISHED else EXIT_NOT_FINISHED


def cmd_resume(args: argparse.Namespace) -> int:
    from study.runner import resume_study

    with progress_output():
        summary = resume_study(
            args.name,
            address=args.address,
            tracking_uri=args.tracking_uri,
            storage_path=args.storage_path,
            retry_failed=args.retry_failed,
        )
    print(json.dumps(summary, indent=1))
    report_after_run(args, summary)
    return EXIT_OK if summary.get("status") == TrialStatus.FINISHED else EXIT_NOT_FINISHED


def cmd_serve(args: argparse.Namespace) -> int:
    from study.serving.serve import check_model, serve_command

    check_model(args.model_uri, args.tracking_uri)
    argv, env = serve_command(args.model_uri, args.host, args.port, args.tracking_uri)
    print(
        f"serving {args.model_uri} at http://{args.host}:{args.port}/invocations (Ctrl-C stops)",
        file=sys.stderr,
    )
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # the server replaces this process: signals reach it directly
    return EXIT_OK  # not reached


def _add_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster: none starts a local Ray in-process; 'auto' or ray://host:10001 joins one",
    )
    p.add_argument(
        "--storage-path",
        default=None,
        help="where the study and Tune keep their state (default ./lamp_storage): a folder, shared on a cluster, "
        "or an object-store URI (s3://bucket/prefix, gs://, abfs://; credentials from the environment)",
    )


def _command(sub: Any, name: str, help: str, example: str, func: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {example}", formatter_class=_RAW
    )
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:  # one block per command: long, but flat and read top to bottom
    parser = argparse.ArgumentParser(
        prog="lamp-study",
        description=__doc__.splitlines()[0],
        epilog=f"{EXIT_CODES}\n\nexample:\n  lamp-study validate search_spaces/quickstart.yaml",
        formatter_class=_RAW,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub,
        "init",
        "write a study file for a folder of normal images and a folder of anomalous ones, then validate it",
        "lamp-study init my_parts --normal data/good --anomalous data/defects",
        cmd_init,
    )
    p.add_argument("name", help="study name (the MLflow experiment); the file is <name>.yaml")
    p.add_argument("--normal", required=True, help="folder of normal images (searched recursively)")
    p.add_argument("--anomalous", required=True, help="folder of anomalous images (searched recursively)")
    p.add_argument(
        "--image-size", type=int, default=64, help="square side images are resized to (default 64)"
    )
    p.add_argument("--epochs", type=int, default=10, help="training epochs per trial (default 10)")
    p.add_argument(
        "--unlabelled",
        default=None,
        help="folder (or .npz) of unlabelled images, e.g. last week's production, for label-free selection",
    )
    p.add_argument("--out", default=None, help="where to write the study file (default <name>.yaml)")

    p = _command(
        sub,
        "validate",
        "check a search-space file and open its data (no training, no Ray unless --calibrate): a one-screen "
        "summary with the pack plan",
        "lamp-study validate search_spaces/quickstart.yaml --calibrate",
        cmd_validate,
    )
    p.add_argument("spec", help="the study's YAML file")
    p.add_argument("--no-data", action="store_true", help="check the file only, do not open the dataset")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="run one pack of each kind for two epochs on the cluster and estimate the study's wall time and GPU-hours",
    )
    p.add_argument("--address", default=None, help="Ray cluster for --calibrate (default: a local Ray)")

    p = _command(
        sub,
        "run",
        "run a study from a search-space file on Ray Tune, logging every trial to MLflow",
        "lamp-study run search_spaces/quickstart.yaml --tracking-uri sqlite:///mlflow.db",
        cmd_run,
    )
    p.add_argument("spec", help="the study's YAML file")
    p.add_argument("--name", default=None, help="study name (default: the spec's name)")
    p.add_argument(
        "--extend",
        action="store_true",
        help="add the spec's new trials (more seeds, a new factor) to an existing study; existing trials are kept",
    )
    add_no_report(p)
    p.add_argument(
        "--optuna-storage",
        default=None,
        help="tpe: Optuna RDB storage URL of the study (default sqlite optuna.db beside a sqlite MLflow store, "
        "else in the working directory); `optuna-dashboard URL` shows it",
    )
    _add_cluster(p)
    _add_tracking(p)

    p = _command(
        sub,
        "resume",
        "continue an interrupted study from its Tune state",
        "lamp-study resume quickstart",
        cmd_resume,
    )
    p.add_argument("name", help="the study's name")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="run failed and interrupted trials again from scratch, each in a new MLflow run",
    )
    add_no_report(p)
    _add_cluster(p)
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the store the study was started with)",
    )

    p = _command(
        sub,
        "register",
        "register the best finished trial's model in the MLflow Model Registry (once per trial run)",
        "lamp-study register quickstart --alias champion",
        cmd_register,
    )
    p.add_argument("name", help="the study's name")
    p.add_argument(
        "--metric",
        "--by",
        dest="metric",
        default=None,
        help="ranking metric or label-free selector (borda, rra, or label-free = the default selector); "
        "default: the study objective, or the default selector when the objective is label-free",
    )
    p.add_argument(
        "--mode",
        choices=["max", "min"],
        default=None,
        help="whether higher or lower is better (default: the metric's)",
    )
    p.add_argument("--model-name", default=None, help="registered model name (default: lamp-<study>)")
    p.add_argument(
        "--alias",
        default="champion",
        help="alias moved to the trial's version, new or existing (default: champion)",
    )
    p.add_argument(
        "--allow-collapsed",
        action="store_true",
        help="also consider trials flagged collapsed (reconstructions that ignore their input)",
    )
    add_register_options(p)
    _add_tracking(p)

    p = _command(
        sub,
        "score",
        "score samples with a registered model or any trial's run, one CSV row per sample",
        "lamp-study score models:/lamp-quickstart@champion --data ./images --out scores.csv\n"
        "  lamp-study score runs:/<run_id> --data ./images --out scores.csv",
        cmd_score,
    )
    p.add_argument(
        "model_uri",
        help="a registered model (models:/lamp-quickstart@champion) or a trial's run (runs:/<run_id>, "
        "or the bare run id): a run is scored from its weights, registered or not",
    )
    p.add_argument("--data", required=True, help="dataset name, .npz, IDX .gz or image folder")
    p.add_argument("--out", required=True, help="CSV file to write")
    add_threshold_option(p)
    _add_tracking(p)

    p = _command(
        sub,
        "serve",
        "serve a registered model over HTTP with MLflow (POST /invocations, inputs [N,C,H,W] floats)",
        "lamp-study serve models:/lamp-quickstart@champion --port 5001",
        cmd_serve,
    )
    p.add_argument("model_uri", help="e.g. models:/lamp-quickstart@champion")
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=5001, help="port to listen on (default 5001)")
    _add_tracking(p)

    add_report_commands(sub, _command, _add_tracking, _tracking_default())

    add_export(sub, _command, _add_tracking)

    p = _command(
        sub,
        "trial",
        "run one trial (no Ray, no MLflow) and print its result as JSON",
        "lamp-study trial --dataset digits --metric ssim --factor 10 --optimizer sgd --epochs 3",
        cmd_trial,
    )
    add_trial_args(p)
    return parser


def _version() -> str:
    try:
        return metadata.version("lamp-study")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    set_quiet_mlflow_env()  # before anything imports mlflow: its logging level is read at import
    args = build_parser().parse_args(argv)
    log_to_stderr()
    try:
        return args.func(args)
    except LampError as err:
        print(f"lamp-study {args.command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lamp-study {args.command}: interrupted", file=sys.stderr)
        return EXIT_CTRL_C
