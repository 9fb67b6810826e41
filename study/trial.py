"""One LAMP trial end to end: data, model, training, detection, steepness, label-free.

`run_trial(config) -> TrialResult` is the unit of work of a study. It knows
nothing of Ray or MLflow: Ray Tune is one executor of it (study/runner.py), a
plain loop is another (bench/), and the `lamp-study trial` command a third.

Contract of a result: `status` is `finished` or `diverged`; a finished trial
has detection metrics (auroc, ap, ...), steepness metrics and, when enabled,
label-free metrics in `metrics`; a diverged one has `diverged_epoch`,
`diverged_value` and the history up to the divergence. Exceptions other than
divergence propagate: the executor records them as a failed trial.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from study.config import TrialConfig
from study.data import OneClassData, load_dataset
from study.evaluate import anomaly_scores, detection_metrics
from study.labelfree import label_free_scores
from study.landscape import measure_steepness, quadratic_curvature
from study.losses import get_amplification, get_metric
from study.models import build_model
from study.train import TrainState, resolve_device, train

# Per-epoch hook of an executor: (epoch, metrics, snapshot) -> None.
Reporter = Callable[[int, dict[str, float], Callable[[], TrainState]], None]

MODEL_FILE = "model.pt"
SCORES_FILE = "scores.npz"
LANDSCAPE_FILE = "landscape.npz"
RESULT_FILE = "result.json"


@dataclass
class TrialResult:
    """What one trial produced; `save`/`load` move it between a trial and the driver."""

    config: TrialConfig
    status: str  # finished | diverged
    metrics: dict[str, float]
    history: list[dict[str, float]]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # scores, labels (test set)
    landscape: dict[str, np.ndarray] = field(default_factory=dict)  # slices, trace samples
    model_state: dict[str, torch.Tensor] | None = None  # CPU state dict of the trained model
    model_meta: dict[str, Any] = field(default_factory=dict)  # what rebuilds the model

    def save(self, directory: str | Path) -> Path:
        """Write the result as files (JSON, npz, torch state dict) into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        summary = {
            "config": self.config.to_dict(),
            "status": self.status,
            "metrics": self.metrics,
            "history": self.history,
            "model_meta": self.model_meta,
        }
        (d / RESULT_FILE).write_text(json.dumps(summary, indent=1))
        if self.scores:
            np.savez_compressed(d / SCORES_FILE, **self.scores)
        if self.landscape:
            np.savez_compressed(d / LANDSCAPE_FILE, **self.landscape)
        if self.model_state is not None:
            torch.save(self.model_state, d / MODEL_FILE)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> TrialResult:
        """Read a result written by `save`."""
        d = Path(directory)
        summary = json.loads((d / RESULT_FILE).read_text())

        def npz(name: str) -> dict[str, np.ndarray]:
            if not (d / name).exists():
                return {}
            with np.load(d / name) as f:
                return {k: f[k] for k in f.files}

        state = torch.load(d / MODEL_FILE, map_location="cpu") if (d / MODEL_FILE).exists() else None
        return cls(
            config=TrialConfig.from_dict(summary["config"]),
            status=summary["status"],
            metrics=summary["metrics"],
            history=summary["history"],
            scores=npz(SCORES_FILE),
            landscape=npz(LANDSCAPE_FILE),
            model_state=state,
            model_meta=summary["model_meta"],
        )

    def build_model(self) -> nn.Module:
        """The trained model, rebuilt from `model_meta` and `model_state`, in eval mode."""
        if self.model_state is None:
            raise ValueError(f"trial ended {self.status} and has no model")
        model = build_model(**self.model_meta)
        model.load_state_dict(self.model_state)
        return model.eval()


def run_trial(
    config: TrialConfig | dict[str, Any],
    *,
    reporter: Reporter | None = None,
    state: TrainState | None = None,
) -> TrialResult:
    """Train and measure one configuration.

    Args:
        config: the trial's parameters (a TrialConfig or its nested dict form).
        reporter: called after every epoch with training and validation metrics.
        state: resume training from a checkpointed state.
    """
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.data)
    metric = get_metric(cfg.metric)
    meta = model_meta(cfg, data)
    model = build_model(**meta).to(device)
    train_x = data.train.to(device)
    val_x = data.val.to(device)
    eval_idx = _subset(len(data.test), cfg.eval_limit, cfg.data.split_seed)
    eval_x, eval_y = data.test[eval_idx], data.test_labels[eval_idx].numpy()

    def on_epoch(epoch: int, stats: dict[str, float], snapshot: Callable[[], TrainState]) -> None:
        metrics = dict(stats)
        metrics["val_base_loss"] = float(anomaly_scores(model, val_x, metric).mean())
        if cfg.eval_every and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            val = detection_metrics(anomaly_scores(model, eval_x, metric), eval_y)
            metrics |= {"val_auroc": val["auroc"], "val_ap": val["ap"]}
        stats.update(metrics)
        if reporter is not None:
            reporter(epoch, metrics, snapshot)

    trained = train(model, train_x, cfg, device, on_epoch=on_epoch, state=state)
    metrics: dict[str, float] = {
        "epochs_run": float(trained.epochs_run),
        "train_time_s": trained.train_time_s,
    }
    if trained.status == "diverged":
        metrics |= {
            "diverged_epoch": float(trained.diverged_epoch),
            "diverged_value": float(trained.diverged_value),
        }
        return TrialResult(cfg, "diverged", metrics, trained.history, model_meta=meta)
    return measure_trained(model, data, cfg, device, metrics, trained.history)


def model_meta(cfg: TrialConfig, data: OneClassData) -> dict[str, Any]:
    """The `build_model` arguments of a trial: what rebuilds its model."""
    return {
        "arch": cfg.arch,
        "in_channels": data.in_channels,
        "image_size": data.image_size,
        "latent_dim": cfg.latent_dim,
        "width": cfg.width,
    }


def measure_trained(
    model: nn.Module,
    data: OneClassData,
    cfg: TrialConfig,
    device: torch.device,
    metrics: dict[str, float],
    history: list[dict[str, float]],
) -> TrialResult:
    """Detection, steepness and label-free scores of a trained model: the end of a finished trial.

    Shared by solo trials and packed ones (study.packing), so a pack member is measured exactly as
    a solo trial is. `metrics` holds what training recorded (epochs_run, train_time_s).
    """
    metric = get_metric(cfg.metric)
    scores = anomaly_scores(model, data.test, metric)
    labels = data.test_labels.numpy()
    metrics = metrics | detection_metrics(scores, labels)
    landscape, steep = _steepness(model, data, cfg, device)
    metrics |= steep
    if cfg.label_free.enabled:
        metrics |= _label_free(model, data, cfg, device)
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrialResult(
        cfg,
        "finished",
        metrics,
        history,
        scores={"scores": scores, "labels": labels},
        landscape=landscape,
        model_state=state_dict,
        model_meta=model_meta(cfg, data),
    )


def _subset(n: int, limit: int, seed: int) -> torch.Tensor:
    """A seeded subset of at most `limit` indices of range(n), sorted."""
    if limit <= 0 or limit >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def _steepness(
    model: nn.Module, data: OneClassData, cfg: TrialConfig, device: torch.device
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Steepness of the base loss and of the amplified objective on a fixed held-out batch.

    The objective is g(L) of the same batch-mean base loss L, so its loss
    slices are g applied to the base slices: exact, and no extra forward pass.
    Only its Hessian measures (sharpness, trace) need their own products.
    """
    t0 = time.perf_counter()
    lc = cfg.landscape
    x = data.val[_subset(len(data.val), lc.batch_size, cfg.seed)].to(device)
    metric = get_metric(cfg.metric)
    amplify = get_amplification(cfg.amplification).apply
    options = dict(seed=cfg.seed, power_iters=lc.power_iters, hutchinson_probes=lc.hutchinson_probes)
    base = measure_steepness(model, x, metric.loss, grid_1d=lc.grid_1d, grid_2d=lc.grid_2d, **options)
    arrays, metrics = dict(base.arrays), dict(base.metrics)
    if lc.amplified and cfg.amplification == "linear":
        # lambda * L has exactly lambda times every Hessian measure and slice of L (tested in test_landscape).
        lam = cfg.factor
        arrays |= {
            f"amp_{k}": v * lam
            for k, v in base.arrays.items()
            if k in ("loss_1d", "loss_2d", "trace_samples")
        }
        metrics |= {f"amp_{k}": v * lam for k, v in base.metrics.items()}
    elif lc.amplified:
        amp = measure_steepness(
            model,
            x,
            lambda x_hat, y: amplify(metric.loss(x_hat, y), cfg.factor),
            grid_1d=0,
            grid_2d=0,
            prefix="amp_",
            **options,
        )
        arrays |= amp.arrays
        metrics |= amp.metrics
        for key in ("loss_1d", "loss_2d"):
            if key in arrays:
                arrays[f"amp_{key}"] = amplify(torch.from_numpy(arrays[key]), cfg.factor).numpy()
        if "amp_loss_1d" in arrays:
            metrics["amp_slice_curvature"] = quadratic_curvature(arrays["alphas_1d"], arrays["amp_loss_1d"])
    metrics["steepness_time_s"] = time.perf_counter() - t0
    return arrays, metrics


def _label_free(
    model: nn.Module, data: OneClassData, cfg: TrialConfig, device: torch.device
) -> dict[str, float]:
    """Label-free scores; the test pool is passed without its labels."""
    t0 = time.perf_counter()
    lf = cfg.label_free
    pool = data.test[_subset(len(data.test), lf.pool_size, cfg.data.split_seed + 1)].to(device)
    result = label_free_scores(
        model,
        get_metric(cfg.metric).score,
        data.val.to(device),
        pool,
        seed=cfg.seed,
        steps=lf.tune_steps,
        lr=lf.tune_lr,
        area=lf.area,
        aspect=lf.aspect,
    )
    return result.metrics | {"labelfree_time_s": time.perf_counter() - t0}
