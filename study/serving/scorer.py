"""A trial's trained autoencoder as an anomaly scorer: its weights, in memory, and as an MLflow model.

Per trial the driver logs only what rebuilds the model (artifact `model/`:
`model.pt`, the state dict, and `meta.json`, the builder's arguments and the
base metric): a few KB to a few hundred KB, no copied code, no pyfunc, so a
study of thousands of trials stays cheap to log. `score` rebuilds the scorer
from those files in memory (`load_scorer`); `register` packages the one chosen
trial as an MLflow pyfunc LoggedModel (`log_scorer`), so a registered model is
usable by any MLflow consumer (`mlflow.pyfunc.load_model`, `mlflow models
serve`) without lamp-study's CLI. That model carries the `study` package
source (`code_paths`) and pins its requirements explicitly, so logging needs no
environment inference; it is a "model from code" (`scorer_model.py`), not a
pickled object: loading it runs reviewed source, never deserialises arbitrary
objects. `predict(images)` returns one anomaly score per sample (the trial's
base metric).
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

from study.core.vocab import META_FILE, MODEL_FILE, RESULT_FILE

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # study/: the scorer's code_paths
_REQUIREMENTS = ("torch", "numpy", "pytorch-msssim")
WEIGHTS_FILE = MODEL_FILE  # a weights folder holds the trial's model file and META_FILE
LOGGED_MODEL_NAME = "scorer"  # name of the LoggedModel that `register` creates


def pip_requirements() -> list[str]:
    """Exact versions of what the scorer imports, read from this environment."""
    reqs = []
    for name in _REQUIREMENTS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            reqs.append(name)
            continue
        reqs.append(f"{name}=={version.split('+')[0]}")
    return reqs


def write_weights(result_dir: Path, dest: Path) -> Path:
    """The weights folder of a trial's result files (`TrialResult.save`): `dest` with weights and meta."""

    summary = json.loads((result_dir / RESULT_FILE).read_text())
    dest.mkdir(parents=True, exist_ok=True)
    meta = {"model_meta": summary["model_meta"], "metric": summary["config"]["metric"]}
    (dest / META_FILE).write_text(json.dumps(meta))
    shutil.copyfile(result_dir / MODEL_FILE, dest / WEIGHTS_FILE)
    return dest


@dataclass
class Scorer:
    """A trained model and its base metric: scores images [N, C, H, W] in [0, 1] by reconstruction error."""

    model: Any  # torch.nn.Module in eval mode, on the CPU
    metric: str
    model_meta: dict[str, Any]

    @property
    def in_channels(self) -> int:
        return int(self.model_meta["in_channels"])

    @property
    def image_size(self) -> int:
        return int(self.model_meta["image_size"])

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Scores [N] (float64) of images [N, C, H, W]."""
        import torch

        from study.training.evaluate import anomaly_scores
        from study.training.losses import get_metric

        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        return anomaly_scores(self.model, x, get_metric(self.metric))


def load_scorer(weights_dir: Path) -> Scorer:
    """Rebuild the scorer from a weights folder (`write_weights`' layout), in memory."""
    import torch

    from study.training.models import build_model

    info = json.loads((weights_dir / META_FILE).read_text())
    model = build_model(**info["model_meta"])
    model.load_state_dict(torch.load(weights_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return Scorer(model.eval(), info["metric"], info["model_meta"])


class AnomalyScorer(mlflow.pyfunc.PythonModel):
    """The pyfunc face of `Scorer`: its weights folder travels as the artifact `weights`."""

    def load_context(self, context: Any) -> None:
        self.scorer = load_scorer(Path(context.artifacts["weights"]))

    # `np.ndarray` is a hint MLflow derives no schema from (the signature is explicit, see log_scorer);
    # any hint at all keeps MLflow from warning "Add type hints to the `predict` method" at class creation.
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Scores [N] (float64) of images [N, C, H, W]."""
        return self.scorer.predict(model_input)


def pyfunc_arguments(weights_dir: Path) -> dict[str, Any]:
    """The pyfunc scorer of a weights folder, as `mlflow.pyfunc.save_model`/`log_model` arguments."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    info = json.loads((weights_dir / META_FILE).read_text())  # no need to build the model here
    c, s = info["model_meta"]["in_channels"], info["model_meta"]["image_size"]
    return {
        "python_model": str(Path(__file__).with_name("scorer_model.py")),
        "artifacts": {"weights": str(weights_dir)},
        "code_paths": [str(_PACKAGE_DIR)],
        "pip_requirements": pip_requirements(),
        "signature": ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, c, s, s))]),
            outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]),
        ),
        "metadata": {
            "lamp_metric": info["metric"],
            **{f"lamp_{k}": v for k, v in info["model_meta"].items()},
        },
    }


def log_scorer(
    weights_dir: Path, *, experiment_id: str, run_id: str, params: dict[str, str], tags: dict[str, str]
) -> str:
    """Log the pyfunc scorer of a weights folder as an MLflow LoggedModel of run `run_id`; its model id.

    The LoggedModel is created with `source_run_id` and listed in the run's outputs, without reopening the
    run: a trial's run stays as the study ended it (status, end time).
    """
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelOutput

    arguments = pyfunc_arguments(weights_dir)
    _, c, s, _ = arguments["signature"].inputs.inputs[0].shape  # [N, C, H, W] the model takes
    client = MlflowClient()
    logged = client.create_logged_model(
        experiment_id, name=LOGGED_MODEL_NAME, source_run_id=run_id, params=params, tags=tags
    )
    with warnings.catch_warnings():
        # MLflow nags about type hints; the signature is explicit and exact.
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.log_model(
            model_id=logged.model_id,
            input_example=np.full((1, c, s, s), 0.5, dtype=np.float32),  # one mid-grey image
            **arguments,
        )
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id
