"""Connecting to Ray, and checking before `fit()` that the cluster can host a trial at all."""

from __future__ import annotations

import os

from study.core.errors import LampError
from study.spec import StudySpec


class ClusterError(LampError):
    """The Ray cluster cannot run the study as specified."""


def _init_ray(address: str | None) -> None:
    import ray

    # Driver-side Tune settings, read when the Tuner is built (so set even if Ray is already up).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our Progress callback reports; no Tune tables
    # Tune's CSV/JSON/TensorBoard loggers write files per trial that nothing reads (MLflow holds the results)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address is None:
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    else:
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ClusterError(
                f"cannot connect to the Ray cluster at {address!r} ({err}); start one with `ray start --head` "
                f"or drop --address to run locally; clients of a token-auth cluster need RAY_AUTH_TOKEN"
            ) from None


def check_resources(spec: StudySpec) -> None:
    """Fail before `fit()` when no node can ever host one trial (Tune would wait forever)."""
    import ray

    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    if gpu > 0 and total.get("GPU", 0) == 0:
        raise ClusterError(
            f"study {spec.name!r} asks for {gpu:g} GPU per trial but the Ray cluster has no GPU; "
            f"set `resources: {{gpu: 0}}` in the spec to run on CPU, or join a cluster with GPUs"
        )
    if not any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in nodes):
        biggest = max((n.get("CPU", 0) for n in nodes), default=0)
        raise ClusterError(
            f"study {spec.name!r} asks for {cpu:g} CPU and {gpu:g} GPU per trial, but no node has that much "
            f"(largest node: {biggest:g} CPU); lower `resources` in the spec"
        )
