"""One LAMP trial end to end: data, model, training, detection, steepness, label-free.

`run_trial(config) -> TrialResult` is the unit of work of a study. It knows
nothing of Ray or MLflow: Ray Tune is one executor of it (study/runner/), a
plain loop is another (bench/), and the `lamp-study trial` command a third.

Contract of a result: `status` is `finished`, `collapsed`, `degenerate` or
`diverged`; a finished, collapsed or degenerate trial has detection metrics (auroc, ap, ... on the test
part; val_auroc, val_ap on the validation part), collapse measures, steepness
metrics and, when enabled, label-free metrics in `metrics`; a collapsed one is a
finished one whose output barely depends on its input (study/trial/collapse.py), a
degenerate one a finished one that scores like a trivial model and no better than
the model-free baselines on the validation part (study/selection/degeneracy.py). A
diverged one has `diverged_epoch`, `diverged_value` and the history up to the
divergence. Exceptions other than divergence propagate: the executor records
them as a failed trial.

Selection never sees the numbers it reports: the dataset's test split is cut
once (seeded by `data.split_seed`, stratified by label) into a labelled
validation part (`VAL_FRACTION`), which gives `val_auroc`/`val_ap` for pruning,
the searcher, "best" and `register`, and a disjoint test part, which gives the
reported `auroc`/`ap` and `scores.npz`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from study.core.config import TrialConfig
from study.core.vocab import LANDSCAPE_FILE, MODEL_FILE, RESULT_FILE, SCORES_FILE, TrialStatus
from study.data import OneClassData, load_dataset
from study.labelfree import label_free_metrics
from study.labelfree.pool import score_pool as unlabelled_pool
from study.landscape.steepness import trial_steepness
from study.selection.degeneracy import check_degeneracy
from study.training.evaluate import anomaly_scores, defect_aurocs, detection_metrics, stratified_subset
from study.training.losses import get_metric
from study.training.models import build_model
from study.training.train import TrainState, resolve_device, train
from study.trial.collapse import measure_collapse
from study.trial.degenerate import model_free_scores

# Per-epoch hook of an executor: (epoch, metrics, snapshot) -> None.
Reporter = Callable[[int, dict[str, float], Callable[[], TrainState]], None]

VAL_FRACTION = 0.25  # share of the test split held out, stratified, for selection


@dataclass
class TrialResult:
    """What one trial produced; `save`/`load` move it between a trial and the driver."""

    config: TrialConfig
    status: str  # finished | collapsed | degenerate | diverged
    metrics: dict[str, float]
    history: list[dict[str, float]]
    # scores, labels of the whole test split; test_part marks the reported (non-validation) part
    scores: dict[str, np.ndarray] = field(default_factory=dict)
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
    eval_idx, _ = evaluation_split(data, cfg)
    eval_x, eval_y = data.test[torch.from_numpy(eval_idx)], data.test_labels.numpy()[eval_idx]

    def on_epoch(epoch: int, stats: dict[str, float], snapshot: Callable[[], TrainState]) -> None:
        metrics = dict(stats)
        metrics["val_base_loss"] = float(anomaly_scores(model, val_x, metric).mean())
        if epoch == cfg.epochs or (cfg.eval_every and epoch % cfg.eval_every == 0):  # 0 = only at the end
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
    if trained.status == TrialStatus.DIVERGED:
        metrics |= diverged_metrics(trained.diverged_epoch, trained.diverged_value)
        return TrialResult(cfg, TrialStatus.DIVERGED, metrics, trained.history, model_meta=meta)
    return measure_trained(model, data, cfg, device, metrics, trained.history)


def diverged_metrics(epoch: int, value: float) -> dict[str, float]:
    """Where and how a trial diverged, as MLflow can store it: finite numbers only (+-inf becomes
    +-float max; NaN is flagged apart)."""
    value = float(value)
    return {
        "diverged_epoch": float(epoch),
        "diverged_value": float(np.nan_to_num(value, nan=0.0)),
        "diverged_is_nan": float(np.isnan(value)),
    }


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
    epochs_run = int(metrics["epochs_run"])
    eval_idx, test_idx = evaluation_split(data, cfg)
    all_scores = anomaly_scores(model, data.test, metric)
    all_labels = data.test_labels.numpy()
    val = detection_metrics(all_scores[eval_idx], all_labels[eval_idx])  # = the last epoch's
    metrics = metrics | {"val_auroc": val["auroc"], "val_ap": val["ap"]}
    metrics |= detection_metrics(all_scores[test_idx], all_labels[test_idx])
    if data.test_groups is not None:  # MVTec-style folders: one AUROC per defect type, test part only
        groups = [data.test_groups[i] for i in test_idx]
        metrics |= defect_aurocs(all_scores[test_idx], all_labels[test_idx], groups)
    test_part = np.zeros(len(all_labels), dtype=bool)
    test_part[test_idx] = True
    check = measure_collapse(model, data.val, data.train.mean(0), metric)
    metrics |= check.metrics
    free = model_free_scores(data.test[torch.from_numpy(eval_idx)], data.train, metric)
    degeneracy = check_degeneracy(all_scores[eval_idx], all_labels[eval_idx], free, check.loss_ratio)
    metrics |= degeneracy.metrics
    landscape, steep = trial_steepness(model, data, cfg, device, epochs_run)
    metrics |= steep
    scores = {"scores": all_scores, "labels": all_labels, "test_part": test_part}
    if cfg.label_free.enabled:
        lf_metrics, lf_scores = _label_free(model, data, cfg, device, epochs_run, all_scores)
        metrics |= lf_metrics
        scores |= lf_scores
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrialResult(
        cfg,
        _status(check.collapsed, degeneracy.degenerate),
        metrics,
        history,
        scores=scores,
        landscape=landscape,
        model_state=state_dict,
        model_meta=model_meta(cfg, data),
    )


def _label_free(
    model: nn.Module,
    data: OneClassData,
    cfg: TrialConfig,
    device: torch.device,
    epochs_run: int,
    all_scores: np.ndarray,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Label-free metrics, and the per-image scores the paired comparison between trials needs
    (held-out normals, pool: study/selection/paired.py). The pool is `data.unlabelled`, else the
    part of the test split a labelled selection would use (its labels unread)."""
    pool, pool_scores, pool_metrics = unlabelled_pool(model, data, cfg, epochs_run * len(data.train))
    if pool is None:
        part = torch.from_numpy(selection_split(data.test_labels.numpy(), cfg.data.split_seed)[0])
        pool, pool_scores = data.test[part], all_scores[part.numpy()]
    normal_scores = anomaly_scores(model, data.val, get_metric(cfg.metric))
    metrics = pool_metrics | label_free_metrics(
        model,
        data,
        cfg,
        device,
        train_samples=epochs_run * len(data.train),
        pool=pool,
        pool_scores=pool_scores,
        normal_scores=normal_scores,
    )
    return metrics, {
        "unlabelled_normals": normal_scores.astype(np.float32),
        "unlabelled_pool": np.asarray(pool_scores, np.float32),
    }


def _status(collapsed: bool, degenerate: bool) -> TrialStatus:
    """A trained trial's status: collapse first (its output ignores the input), then degeneracy."""
    if collapsed:
        return TrialStatus.COLLAPSED
    return TrialStatus.DEGENERATE if degenerate else TrialStatus.FINISHED


def evaluation_split(data: OneClassData, cfg: TrialConfig) -> tuple[np.ndarray, np.ndarray]:
    """(eval, test) indices: `eval_limit` samples of the validation part, stratified, and the test part."""
    val_idx, test_idx = selection_split(data.test_labels.numpy(), cfg.data.split_seed)
    eval_idx = val_idx[
        stratified_subset(data.test_labels[val_idx], cfg.eval_limit, cfg.data.split_seed).numpy()
    ]
    return eval_idx, test_idx


def selection_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) indices of the test split: seeded, stratified by label, disjoint, sorted.

    Every trial of a study cuts the same way (the seed is the data's
    `split_seed`), so trials are selected on the same samples and reported on
    the same others.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    val, test = train_test_split(idx, test_size=1 - VAL_FRACTION, random_state=seed, stratify=labels)
    return np.sort(val), np.sort(test)
