"""`lamp-study serve`: MLflow's model server for a registered scorer, in this environment.

`mlflow models serve --env-manager local` starts `uvicorn` by name, so it fails
(`exec: uvicorn: not found`) unless the environment's `bin` is on PATH. This
builds the command and environment that work from any shell: this Python's
`bin` first on PATH and the tracking URI set, bound to 127.0.0.1 by default.

Request: `POST /invocations` with `{"inputs": [[[[...]]]]}`, float32 images
[N, C, H, W] in [0, 1] at the model's size; response `{"predictions": [score, ...]}`.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from study.core.errors import LampError


class ServeError(LampError):
    """The model to serve cannot be found, or is not a servable model."""


def check_model(model_uri: str, tracking_uri: str) -> None:
    """Fail fast (exit 2) on a trial's run, or a registered model, alias or version that does not exist.

    A trial's run holds weights, not a servable model (study/serving/scorer.py): `register` builds that.
    """
    if model_uri.startswith("runs:/"):
        raise ServeError(
            f"{model_uri!r} is a trial's run: it holds weights, not a servable model; "
            "`lamp-study register STUDY` builds and registers one (then serve models:/NAME@champion), "
            "or `lamp-study score` scores with the run directly"
        )
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", model_uri)
    if match is None:
        return  # models:/<model_id>, a local path, ...: MLflow itself reports those
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, version = match.groups()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if alias:
            client.get_model_version_by_alias(name, alias)
        else:
            client.get_model_version(name, version)
    except MlflowException as err:
        raise ServeError(
            f"no model {model_uri!r} in {tracking_uri}: {err.message}; register one first"
        ) from None


def serve_command(
    model_uri: str, host: str, port: int, tracking_uri: str
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of `mlflow models serve` for `model_uri`, runnable without an activated venv."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_REGISTRY_URI": tracking_uri,
    }
    argv = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
        "--env-manager", "local", "--host", host, "--port", str(port),
    ]  # fmt: skip
    return argv, env
