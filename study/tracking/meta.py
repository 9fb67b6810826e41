"""MLflow's own conventions on a study's runs: standard tags, the dataset input, run names and links.

MLflow's UI and search know a few reserved tags (`mlflow.user`,
`mlflow.source.*`) and a run's dataset inputs (`mlflow.log_input`); a study
that sets them reads like any other MLflow project there. Written by the
driver only (study/runner/), like everything in study/tracking/.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from study.core.config import DataConfig, TrialConfig

DATASET_CONTEXT = "train"  # mlflow.data.context of the study's dataset input
NORMAL_CLASSES_TAG = "lamp.normal_classes"  # input tag: the classes the dataset treats as normal
# Fields every run name already shows (tracking_runs.run_name); other varied dimensions are appended.
NAMED_FIELDS = ("arch", "metric", "amplification", "factor", "optimizer", "seed", "twin_of")


def standard_tags(commit: str | None) -> dict[str, str]:
    """`mlflow.user`, `mlflow.source.name`/`type` and, in a git checkout, `mlflow.source.git.commit`."""
    from mlflow.utils.mlflow_tags import (
        MLFLOW_GIT_COMMIT,
        MLFLOW_SOURCE_NAME,
        MLFLOW_SOURCE_TYPE,
        MLFLOW_USER,
    )

    tags = {
        MLFLOW_USER: _user(),
        MLFLOW_SOURCE_NAME: str(Path(sys.argv[0]).resolve()) if sys.argv and sys.argv[0] else "python",
        MLFLOW_SOURCE_TYPE: "LOCAL",
    }
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
    return tags


def _user() -> str:
    """The user MLflow would record: the login name, else $USER, else 'unknown' (a container without one)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def run_name(cfg: TrialConfig, varied: Iterable[str] = ()) -> str:
    """`conv_ae-ssim-exp10-sgd-s0`, then `-<dim>=<value>` for every other varied dimension.

    Two trials of one study differ in some varied dimension, so their names differ too
    (lamp_grid's ten normal classes each get `-normal_classes=<k>`).
    """
    name = f"{cfg.arch}-{cfg.metric}-{cfg.amplification}{cfg.factor:g}-{cfg.optimizer}-s{cfg.seed}"
    name += f"-twin{cfg.twin_of:g}" if cfg.twin_of else ""
    params = cfg.to_params()
    for dim in varied:
        if dim not in NAMED_FIELDS and dim in params:
            name += f"-{dim.rpartition('.')[2]}={params[dim]}"
    return name


def dataset_digest(data: Any) -> str:
    """sha256 (first 16 hex digits) of every array the trials see: train, held-out and test images and labels."""
    h = hashlib.sha256()
    for tensor in (data.train, data.val, data.test, data.test_labels):
        array = tensor.numpy()
        h.update(str((array.dtype, array.shape)).encode())
        h.update(array.tobytes())
    return h.hexdigest()[:16]


def log_dataset(client: Any, run_id: str, cfg: DataConfig, data: Any) -> None:
    """The study's dataset as an MLflow dataset input of `run_id`: source, digest, shapes, normal classes."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    if cfg.path:  # a folder or file: MLflow's local source (its classes are registered, not importable)
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "can be interpreted in multiple ways": all local
            source: Any = resolve_dataset_source(str(Path(cfg.path).expanduser().resolve()))
    else:
        source = CodeDatasetSource({"lamp.loader": cfg.name})
    classes = ",".join(str(c) for c in cfg.normal_classes) if cfg.name != "images" else "normal folder"
    features = {"train": data.train.numpy(), "val": data.val.numpy(), "test": data.test.numpy()}
    dataset = from_numpy(
        features,
        source=source,
        targets=data.test_labels.numpy(),
        name=f"{cfg.name}[normal={classes}]",
        digest=dataset_digest(data),
    )
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT), InputTag(NORMAL_CLASSES_TAG, classes)]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page on an MLflow tracking server, or None for a local store (no server to link to)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")  # never the credentials
    base = urllib.parse.urlunsplit(parts._replace(netloc=host)).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
