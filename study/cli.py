"""`lamp-study` command line: trial, validate, run, resume, register, score, report.

Heavy imports (torch, ray, mlflow) happen inside the commands so `--help` and
spec validation answer at once. Expected failures (bad spec, missing dataset,
unreachable tracking server, unknown study) print one message and exit 2; a
traceback means a bug.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from typing import Any

import yaml

from study.config import TrialConfig, nest
from study.errors import LampError
from study.tracking import set_quiet_mlflow_env

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXIT_USAGE = 2


class UserError(LampError):
    """A malformed command line."""


def _tracking_default() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def _add_tracking(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri",
        default=_tracking_default(),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )


# ---------------------------------------------------------------- trial
_TRIAL_FLAGS = {  # flag -> dotted TrialConfig key, for the data block
    "dataset": "data.name",
    "data_path": "data.path",
    "normal_class": "data.normal_classes",
    "category": "data.category",
    "image_size": "data.image_size",
    "train_limit": "data.train_limit",
    "test_limit": "data.test_limit",
}


def _add_trial_args(p: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(TrialConfig):
        if f.name in ("data", "landscape", "label_free"):
            continue
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=yaml.safe_load, default=None)
    for flag in _TRIAL_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=yaml.safe_load, default=None)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other parameter, dotted (e.g. landscape.power_iters=10)",
    )
    p.add_argument("--out", help="directory to save the result (model, scores, landscape)")


def _trial_config_from_args(args: argparse.Namespace) -> TrialConfig:
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(TrialConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            flat[f.name] = value
    for flag, key in _TRIAL_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            flat[key] = value
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. landscape.power_iters=10")
        flat[key] = yaml.safe_load(value)
    try:
        return TrialConfig.from_dict(nest(flat))
    except (TypeError, ValueError) as err:
        raise UserError(f"trial parameters: {err}") from None


def cmd_trial(args: argparse.Namespace) -> int:
    from study.trial import run_trial

    cfg = _trial_config_from_args(args)

    def report(epoch: int, metrics: dict[str, float], _snapshot: Any) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"epoch {epoch}/{cfg.epochs} {shown}", file=sys.stderr)

    result = run_trial(cfg, reporter=report)
    if args.out:
        result.save(args.out)
    print(json.dumps({"status": result.status, "metrics": result.metrics, "config": cfg.to_dict()}, indent=1))
    m = result.metrics
    if result.status == "finished":
        summary = (
            f"{cfg.arch} {cfg.metric} {cfg.amplification}(λ={cfg.factor:g}) {cfg.optimizer} lr={cfg.lr:g}: "
            f"AUROC {m['auroc']:.4f}, AP {m['ap']:.4f}, sharpness {m.get('sharpness', float('nan')):.4g}, "
            f"train {m['train_time_s']:.1f}s"
        )
    else:
        summary = f"diverged at epoch {m['diverged_epoch']:.0f} (objective {m['diverged_value']:.3g})"
    print(summary, file=sys.stderr)
    return 0


# ---------------------------------------------------------------- studies
def cmd_validate(args: argparse.Namespace) -> int:
    from study.spec import load_spec

    spec = load_spec(args.spec)
    n = spec.n_trials
    print(f"{args.spec}: ok, study {spec.name!r}, {n if n is not None else 'open-ended'} trials")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from study.runner import run_study
    from study.spec import load_spec

    spec = load_spec(args.spec)
    summary = run_study(
        spec,
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage_path=args.storage_path,
        name=args.name,
    )
    print(json.dumps(summary, indent=1))
    return 0 if summary.get("status") == "finished" else 1


def cmd_resume(args: argparse.Namespace) -> int:
    from study.runner import resume_study

    summary = resume_study(
        args.name, address=args.address, tracking_uri=args.tracking_uri, storage_path=args.storage_path
    )
    print(json.dumps(summary, indent=1))
    return 0 if summary.get("status") == "finished" else 1


def cmd_register(args: argparse.Namespace) -> int:
    from study.registry import register_best

    info = register_best(
        args.name,
        tracking_uri=args.tracking_uri,
        metric=args.metric,
        mode=args.mode,
        model_name=args.model_name,
        alias=args.alias,
    )
    print(json.dumps(info, indent=1))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from study.registry import score_model

    path = score_model(args.model_uri, args.data, out=args.out, tracking_uri=args.tracking_uri)
    print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports.build import build_report

    path = build_report(args.name, tracking_uri=args.tracking_uri, out=args.out)
    print(path)
    return 0


def _add_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster: none starts a local Ray in-process; 'auto' or ray://host:10001 joins one",
    )
    p.add_argument(
        "--storage-path",
        default=None,
        help="where Tune keeps trial state (default ./lamp_storage; a shared path or s3:// on a cluster)",
    )
    _add_tracking(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamp-study", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("trial", help="run one trial and print its result as JSON")
    _add_trial_args(p)
    p.set_defaults(func=cmd_trial)

    p = sub.add_parser("validate", help="check a search-space file")
    p.add_argument("spec")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a study from a search-space file on Ray Tune")
    p.add_argument("spec")
    p.add_argument("--name", default=None, help="study name (default: the spec's name)")
    _add_cluster(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="continue an interrupted study")
    p.add_argument("name")
    _add_cluster(p)
    p.set_defaults(tracking_uri=None)  # default: $MLFLOW_TRACKING_URI, else the store the study started with
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("register", help="register the best finished trial's model")
    p.add_argument("name")
    p.add_argument(
        "--metric",
        "--by",
        dest="metric",
        default=None,
        help="ranking metric or label-free selector (borda, rra, or label-free = the default selector); "
        "default: the study objective, or the default selector when the objective is label-free",
    )
    p.add_argument("--mode", choices=["max", "min"], default=None)
    p.add_argument("--model-name", default=None, help="registered model name (default: lamp-<study>)")
    p.add_argument("--alias", default="champion")
    _add_tracking(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("score", help="score samples with a registered model, one CSV row per sample")
    p.add_argument("model_uri", help="e.g. models:/lamp-quickstart@champion")
    p.add_argument("--data", required=True, help="dataset name, .npz, IDX .gz or image folder")
    p.add_argument("--out", required=True, help="CSV file to write")
    _add_tracking(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("report", help="write the HTML report of a study from MLflow")
    p.add_argument("name")
    p.add_argument("--out", default=None)
    _add_tracking(p)
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_quiet_mlflow_env()
    # Raised while MLflow imports (its own PythonModel subclasses), so it must be filtered before that.
    warnings.filterwarnings(
        "ignore", message=".*Add type hints to the `predict` method", category=UserWarning
    )
    try:
        return args.func(args)
    except LampError as err:
        print(f"lamp-study {args.command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lamp-study {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
