"""Base reconstruction metrics and loss amplification forms (two registries).

Contract of a metric: inputs are reconstructions and targets in [0, 1], NCHW,
same shape. `score(x_hat, x)` returns one non-negative value per sample (the
anomaly score, 0 for identical images); `loss` is its batch mean. Metrics are
differentiable in `x_hat`.

Contract of an amplification form: `apply(loss, factor)` maps the batch-mean
base loss L >= 0 to the training objective; g(0) = 0, g is increasing, and its
slope at L = 0 is `factor` for every form, and it is defined and increasing over
the metric's whole range [0, metric.upper] (pass `upper`), which is what the
effective-learning-rate control matches (a twin trains with lambda = 1 at lr
eta * factor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim

Tensor = torch.Tensor


@dataclass(frozen=True)
class Metric:
    """A per-sample reconstruction error; lower is more normal."""

    name: str
    score: Callable[[Tensor, Tensor], Tensor]  # (x_hat, x) -> [N]
    upper: float  # largest per-sample value for inputs in [0, 1] (1 - SSIM reaches 2)

    def loss(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Batch mean of the per-sample score (the base loss L)."""
        return self.score(x_hat, x).mean()


def _mse(x_hat: Tensor, x: Tensor) -> Tensor:
    return (x_hat - x).pow(2).flatten(1).mean(1)


def _mae(x_hat: Tensor, x: Tensor) -> Tensor:
    return (x_hat - x).abs().flatten(1).mean(1)


def _huber(x_hat: Tensor, x: Tensor) -> Tensor:
    return F.smooth_l1_loss(x_hat, x, reduction="none", beta=0.1).flatten(1).mean(1)


def _ssim_dissimilarity(x_hat: Tensor, x: Tensor) -> Tensor:
    # pytorch-msssim needs both sides in float32 and a window no larger than the image.
    win = min(11, x.shape[-1], x.shape[-2])
    win -= 1 - win % 2  # odd window
    sim = _ssim(x_hat.float(), x.float(), data_range=1.0, size_average=False, win_size=win)
    return (1.0 - sim).clamp_min(0.0)


METRICS: dict[str, Metric] = {
    "mse": Metric("mse", _mse, 1.0),
    "mae": Metric("mae", _mae, 1.0),
    "huber": Metric("huber", _huber, 0.95),  # |d| = 1 with beta 0.1: 1 - beta / 2
    "ssim": Metric("ssim", _ssim_dissimilarity, 2.0),
}


def get_metric(name: str) -> Metric:
    """Look up a base metric; the error lists what exists."""
    if name not in METRICS:
        raise KeyError(f"unknown loss metric {name!r}; available: {', '.join(sorted(METRICS))}")
    return METRICS[name]


@dataclass(frozen=True)
class Amplification:
    """A training objective g(L; factor) built from the base loss L."""

    name: str
    apply: Callable[..., Tensor]  # (loss, factor, upper=1.0) -> objective


def _log(loss: Tensor, lam: float, upper: float = 1.0) -> Tensor:
    """-lambda * u * log(1 - L / u) with u = a little above the metric's upper bound.

    Slope lambda at L = 0 like every form, finite and increasing on the whole
    range [0, upper] of the metric (1 - SSIM reaches 2, so a fixed clamp at 1
    would flatten it above L = 1).
    """
    u = upper * (1.0 + 1e-3)
    return -lam * u * torch.log1p(-loss / u)


AMPLIFICATIONS: dict[str, Amplification] = {
    "linear": Amplification("linear", lambda loss, lam, upper=1.0: lam * loss),
    "exp": Amplification("exp", lambda loss, lam, upper=1.0: torch.expm1(lam * loss)),
    "log": Amplification("log", _log),
}


def get_amplification(name: str) -> Amplification:
    """Look up an amplification form; the error lists what exists."""
    if name not in AMPLIFICATIONS:
        raise KeyError(f"unknown amplification {name!r}; available: {', '.join(sorted(AMPLIFICATIONS))}")
    return AMPLIFICATIONS[name]
