"""`lamp-study init`: a study file for a folder of normal images and a folder of defects.

The file is a small, complete LAMP study (the `images` dataset, two metrics,
the linear form and a non-linear one (exp) at three factors, Adam and SGD with
learning-rate twins, two seeds), written as YAML the user can read and edit
before `lamp-study run`. It is written only once it loads and its data opens:
a failed `init` leaves nothing behind to block the retry.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

TEMPLATE = """\
# Written by `lamp-study init`; edit freely, then `lamp-study validate {out}`.
name: {name}
description: LAMP on my own images, normal vs anomalous folders

dataset:
  name: images                 # a folder of normal images and a folder of anomalous ones
  path: {normal}
  anomalous_path: {anomalous}
  image_size: {image_size}               # every image is resized to a square of this side
{unlabelled}
fixed:
  epochs: {epochs}
  batch_size: 32
  lr: 0.005
  arch: conv_ae

dimensions:
  metric: {{grid: [mse, ssim]}}
  # linear (lambda*L) alone is a learning-rate change in disguise; exp (exp(lambda*L) - 1) is not
  amplification: {{grid: [linear, exp]}}
  factor: {{grid: [1, 10, 100]}}   # lambda; linear at 1 is the plain loss
  optimizer: {{grid: [adam, sgd]}}

seeds: [0, 1]                  # two seeds give the report a noise estimate
objective: {{metric: auroc}}
lr_control: true               # SGD trials get an effective-learning-rate twin
max_concurrent: 2
"""


def write_starter(
    name: str,
    normal: str,
    anomalous: str,
    *,
    out: str | None,
    image_size: int,
    epochs: int,
    unlabelled: str | None = None,
) -> Path:
    """Write the study file (default `<name>.yaml`) once it loads and its data opens; never overwrite.

    Raises:
        LampError: the file exists, or the study would not load (bad folders, no images): nothing is written.
    """
    from study.core.errors import LampError

    path = Path(out or f"{name}.yaml")
    if path.exists():
        raise LampError(f"{path} already exists; pass --out to write elsewhere or remove it")
    normal_dir, anomalous_dir = Path(normal).expanduser().resolve(), Path(anomalous).expanduser().resolve()
    text = TEMPLATE.format(
        name=name,
        normal=json.dumps(str(normal_dir)),  # a JSON string is valid YAML whatever the path holds
        anomalous=json.dumps(str(anomalous_dir)),
        image_size=image_size,
        epochs=epochs,
        out=path,
        unlabelled=(
            f"  unlabelled: {json.dumps(str(Path(unlabelled).expanduser().resolve()))}"
            "   # no labels read: every trial scores it for label-free selection\n"
            if unlabelled
            else "  # unlabelled: path/to/unlabelled   # e.g. last week's production, for label-free selection\n"
        ),
    )
    _check(text, path.name)
    path.write_text(text, encoding="utf-8")
    return path


def _check(text: str, filename: str) -> None:
    """Load the study from a scratch copy and open each of its datasets (errors name the problem)."""
    from study.data import load_dataset
    from study.spec import load_spec

    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d) / filename
        scratch.write_text(text, encoding="utf-8")
        spec = load_spec(scratch)
    for cfg in spec.data_configs():
        load_dataset(cfg)
