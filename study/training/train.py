"""Training an autoencoder on an amplified reconstruction loss.

The data stay as one tensor on the device and are batched by index: for
MNIST-sized images a DataLoader costs more than the model. Both the base loss
L and the amplified objective g(L) are recorded per epoch; only g(L) is
optimised. A non-finite objective ends training as `diverged` (the epoch and the
value are kept) instead of raising, so a study over large factors completes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from study.core.config import TrialConfig
from study.core.errors import LampError
from study.training.losses import get_amplification, get_metric

Tensor = torch.Tensor

OptimizerFactory = Callable[[list[nn.Parameter], TrialConfig], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda p, c: torch.optim.AdamW(p, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
}


def build_optimizer(params: list[nn.Parameter], cfg: TrialConfig) -> torch.optim.Optimizer:
    """Instantiate the configured optimiser; the error lists what exists."""
    if cfg.optimizer not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {cfg.optimizer!r}; available: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[cfg.optimizer](params, cfg)


class DeviceError(LampError):
    """The trial asks for a device this process cannot see."""


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else CPU; an explicit CUDA device must be visible."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {name!r}, but this process sees no CUDA GPU (torch {torch.__version__}, "
            "torch.cuda.is_available() is False); allowed: device auto or cpu, or run where a GPU is "
            "visible (in a study: resources.gpu > 0)"
        )
    return device


def batches(
    n: int, batch_size: int, generator: torch.Generator | None, device: torch.device
) -> Iterator[Tensor]:
    """Index batches over n samples, shuffled when a generator is given (the last batch may be short)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@dataclass
class TrainState:
    """What a resumed trial needs besides the config."""

    epoch: int = 0  # epochs completed
    model: dict = field(default_factory=dict)
    optimizer: dict = field(default_factory=dict)
    rng: Tensor | None = None  # shuffling generator state
    history: list[dict[str, float]] = field(default_factory=list)  # one row per completed epoch


@dataclass
class TrainResult:
    """Outcome of training; `history` has one dict per completed epoch."""

    status: str  # finished | diverged
    history: list[dict[str, float]]
    epochs_run: int
    train_time_s: float
    diverged_epoch: int | None = None
    diverged_value: float | None = None


EpochHook = Callable[[int, dict[str, float], Callable[[], TrainState]], None]


def train(
    model: nn.Module,
    train_x: Tensor,
    cfg: TrialConfig,
    device: torch.device,
    *,
    on_epoch: EpochHook | None = None,
    state: TrainState | None = None,
) -> TrainResult:
    """Train `model` in place on `train_x` (already on `device`).

    `on_epoch(epoch, stats, snapshot)` runs after every epoch with the base and
    amplified training loss; `snapshot()` returns a `TrainState` for a
    checkpoint. Passing `state` resumes after `state.epoch` epochs.
    """
    metric = get_metric(cfg.metric)
    amplify = get_amplification(cfg.amplification).apply
    optimizer = build_optimizer(list(model.parameters()), cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, history = _restore(state, model, optimizer, gen)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cfg.bf16 and device.type == "cuda"
        else contextlib.nullcontext()
    )
    t0 = time.perf_counter()
    model.train()
    for epoch in range(start + 1, cfg.epochs + 1):
        base_sum = torch.zeros((), device=device)
        amp_sum = torch.zeros((), device=device)
        n_batches = 0
        for idx in batches(len(train_x), cfg.batch_size, gen, device):
            x = train_x[idx]
            with autocast:
                x_hat = model(x)
            base = metric.loss(x_hat.float(), x)
            objective = amplify(base, cfg.factor, metric.upper)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            base_sum += base.detach()
            amp_sum += objective.detach()
            n_batches += 1
        stats = {"train_base_loss": base_sum.item() / n_batches, "train_amp_loss": amp_sum.item() / n_batches}
        if not all(math.isfinite(v) for v in stats.values()):
            bad = (
                stats["train_amp_loss"]
                if not math.isfinite(stats["train_amp_loss"])
                else stats["train_base_loss"]
            )
            return TrainResult("diverged", history, epoch, time.perf_counter() - t0, epoch, bad)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(epoch, stats, lambda e=epoch: _snapshot(e, model, optimizer, gen, history))
            model.train()
    return TrainResult("finished", history, cfg.epochs, time.perf_counter() - t0)


def _restore(
    state: TrainState | None, model: nn.Module, optimizer: torch.optim.Optimizer, gen: torch.Generator
) -> tuple[int, list[dict[str, float]]]:
    """Load a checkpointed state: (epochs already done, their history); (0, []) for a fresh start."""
    if state is None:
        return 0, []
    model.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    if state.rng is not None:
        gen.set_state(state.rng)
    return state.epoch, [dict(row) for row in state.history]  # a resumed trial keeps the epochs before


def _snapshot(
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    history: list[dict[str, float]],
) -> TrainState:
    return TrainState(
        epoch, model.state_dict(), optimizer.state_dict(), gen.get_state(), [dict(r) for r in history]
    )
