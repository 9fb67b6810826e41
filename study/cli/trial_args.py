"""The flags of `lamp-study trial`: one per trial parameter, checked exactly like a spec's values."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import yaml

from study.core.config import TrialConfig, nest
from study.core.errors import LampError


class UserError(LampError):
    """A malformed command line."""


_TRIAL_FLAGS = {  # flag -> dotted TrialConfig key, for the data block
    "dataset": "data.name",
    "data_path": "data.path",
    "normal_class": "data.normal_classes",
    "category": "data.category",
    "image_size": "data.image_size",
    "train_limit": "data.train_limit",
    "test_limit": "data.test_limit",
}
_HELP = {
    "arch": "architecture: conv_ae, mlp_ae or unet_ae",
    "latent_dim": "size of the bottleneck",
    "width": "channels of the first conv layer (hidden units scale)",
    "metric": "base reconstruction metric and anomaly score: mse, mae, ssim, huber",
    "amplification": "amplification form g(L; λ): linear, exp, log, ...",
    "factor": "amplification factor λ (> 0; linear with 1 is the plain loss)",
    "optimizer": "adam, adamw or sgd",
    "lr": "learning rate (> 0)",
    "momentum": "SGD momentum, 0 <= m < 1",
    "weight_decay": "weight decay (>= 0)",
    "epochs": "training epochs (>= 1)",
    "batch_size": "training batch size",
    "seed": "random seed of the trial",
    "device": "auto, cpu, cuda or cuda:N",
    "bf16": "bf16 autocast on CUDA (true/false)",
    "eval_every": "epochs between validation metrics (0: only at the end)",
    "eval_limit": "test samples for the per-epoch validation metrics",
    "twin_of": "marks an lr twin of the trial with this λ (set by studies; 0 = not a twin)",
    "dataset": "dataset: fashion_mnist, mnist, digits, mvtec, npz or images",
    "data_path": "where the dataset is (file or folder); default: the loader's search order",
    "normal_class": "normal class (or a list, e.g. [0,6]); every other class is an anomaly",
    "category": "mvtec: the category folder",
    "image_size": "resize images to this square side",
    "train_limit": "cap on normal training samples",
    "test_limit": "cap on test samples (stratified)",
}


def add_trial_args(p: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(TrialConfig):
        if f.name in ("data", "landscape", "label_free"):
            continue
        default = f"default: {f.default}" if f.default is not dataclasses.MISSING else ""
        text = _HELP.get(f.name, f"trial parameter {f.name} (see study/core/config.py)")
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=yaml.safe_load,
            default=None,
            metavar="V",
            help=f"{text} ({default})" if default else text,
        )
    for flag in _TRIAL_FLAGS:
        p.add_argument(
            f"--{flag.replace('_', '-')}",
            dest=flag,
            type=yaml.safe_load,
            default=None,
            metavar="V",
            help=_HELP[flag],
        )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other parameter, dotted (e.g. landscape.power_iters=10); repeatable",
    )
    p.add_argument("--out", help="directory to save the result (model, scores, landscape)")


def trial_config_from_args(args: argparse.Namespace) -> TrialConfig:
    """The trial the flags describe, checked like a spec's values (every problem listed, one per line)."""
    from study.spec import check_value, param_types

    flat: dict[str, tuple[str, Any]] = {}  # dotted key -> (flag as typed, value)
    for f in dataclasses.fields(TrialConfig):
        if getattr(args, f.name, None) is not None:
            flat[f.name] = (f"--{f.name.replace('_', '-')}", getattr(args, f.name))
    for flag, key in _TRIAL_FLAGS.items():
        if getattr(args, flag) is not None:
            flat[key] = (f"--{flag.replace('_', '-')}", getattr(args, flag))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. landscape.power_iters=10")
        flat[key] = (f"--set {key}", yaml.safe_load(value))
    problems, values = [], {}
    allowed = list(param_types())
    for key, (flag, value) in flat.items():
        if key not in allowed:
            problems.append(f"{flag}: unknown trial parameter {key!r}; allowed: {', '.join(allowed)}")
            continue
        values[key], problem = check_value(key, value)
        if problem:
            problems.append(f"{flag}: {problem}")
    if problems:
        raise UserError("\n".join(problems))
    return TrialConfig.from_dict(nest(values))
