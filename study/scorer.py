"""A trained autoencoder packaged as an MLflow pyfunc anomaly scorer.

`predict(images)` returns one anomaly score per sample (the trial's base
metric), so a registered model is usable by any MLflow consumer
(`mlflow.pyfunc.load_model`, `mlflow models serve`) without lamp-study's CLI.
The model directory carries the `study` package source (`code_paths`) and
pins its requirements explicitly, so logging needs no environment inference.
It is a "model from code" (`scorer_model.py`), not a pickled object: loading
it runs reviewed source, never deserialises arbitrary objects.
"""

from __future__ import annotations

import json
import shutil
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

_PACKAGE_DIR = Path(__file__).resolve().parent
_REQUIREMENTS = ("torch", "numpy", "pytorch-msssim")


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


class AnomalyScorer(mlflow.pyfunc.PythonModel):
    """Scores images [N, C, H, W] in [0, 1] (float32) by reconstruction error."""

    def load_context(self, context: Any) -> None:
        import torch

        from study.losses import get_metric
        from study.models import build_model

        info = json.loads(Path(context.artifacts["meta"]).read_text())
        self.meta = info["model_meta"]
        self.metric = get_metric(info["metric"])
        self.model = build_model(**self.meta)
        self.model.load_state_dict(torch.load(context.artifacts["state"], map_location="cpu"))
        self.model.eval()

    # `np.ndarray` is a hint MLflow derives no schema from (the signature is explicit, see save_scorer);
    # any hint at all keeps MLflow from warning "Add type hints to the `predict` method" at class creation.
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Scores [N] (float64) of images [N, C, H, W]."""
        import torch

        from study.evaluate import anomaly_scores

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        return anomaly_scores(self.model, x, self.metric)


def save_scorer(path: Path, state_file: Path, model_meta: dict[str, Any], metric: str) -> Path:
    """Write an MLflow pyfunc model directory for a trained trial to `path`."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    staging = path.parent / "scorer_inputs"
    staging.mkdir(parents=True, exist_ok=True)
    meta_file = staging / "meta.json"
    meta_file.write_text(json.dumps({"model_meta": model_meta, "metric": metric}))
    shutil.copy(state_file, staging / "model.pt")
    c, s = model_meta["in_channels"], model_meta["image_size"]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, c, s, s))]),
        outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]),
    )
    with warnings.catch_warnings():
        # MLflow nags about type hints and input examples; the signature is explicit and exact.
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(_PACKAGE_DIR / "scorer_model.py"),
            artifacts={"meta": str(meta_file), "state": str(staging / "model.pt")},
            code_paths=[str(_PACKAGE_DIR)],
            pip_requirements=pip_requirements(),
            signature=signature,
            metadata={"lamp_metric": metric, **{f"lamp_{k}": v for k, v in model_meta.items()}},
        )
    return path
