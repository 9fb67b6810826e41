"""Optimisers over stacked parameters, one member per leading index (a registry).

A packed model holds each parameter as one tensor of shape [K, ...]; member
k's slice must move exactly as torch.optim would move a solo model's
parameter with member k's learning rate, momentum and weight decay. These
steps replay torch.optim's single-tensor update (torch 2.x `_single_tensor_adam`
/ `_single_tensor_sgd`, default betas/eps, no amsgrad/nesterov/dampening) with
the per-member hyperparameters as [K, 1, ...] tensors. Scalars that torch.optim
computes in Python doubles (bias corrections, lr / bias correction, 1 - lr*wd)
are computed in float64 here too and only then cast, so the per-member values
are the ones a solo optimiser would use. A zero hyperparameter gives the same
update as torch.optim's skipped branch (g + 0*p == g; 0*buf + g == g).

Adding an optimiser: one class with `step(params)` and `keep(index)`, and one
`STACKED_OPTIMIZERS` entry under the name study.training.train.OPTIMIZERS uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from study.training.train import OPTIMIZERS

Tensor = torch.Tensor

# torch.optim.Adam/AdamW defaults, which study.training.train.OPTIMIZERS keeps.
BETAS = (0.9, 0.999)
EPS = 1e-8


class StackedOptimizer(Protocol):
    """Steps stacked parameters in place from their `.grad`; `keep` drops members."""

    def step(self, params: dict[str, Tensor]) -> None: ...

    def keep(self, index: Tensor) -> None: ...


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """[K] per-member values as a [K, 1, ...] view broadcasting over `like` ([K, ...])."""
    return values.view(-1, *[1] * (like.dim() - 1))


class _Hyper:
    """Per-member hyperparameters as float64 [K] tensors on the parameters' device.

    Kept on the device so a step copies nothing from the host: on CUDA a
    host-to-device copy from pageable memory would wait for the queued kernels
    and stall the pipeline every step.
    """

    def __init__(self, device: torch.device, **values: Tensor) -> None:
        self.values = {k: v.to(device=device, dtype=torch.float64) for k, v in values.items()}
        self.nonzero = {k: bool((v != 0).any()) for k, v in values.items()}

    def __getitem__(self, name: str) -> Tensor:
        return self.values[name]

    def keep(self, index: Tensor) -> None:
        self.values = {k: v[index] for k, v in self.values.items()}


class StackedAdam:
    """Adam (L2 weight decay added to the gradient) or AdamW (decoupled decay) per member."""

    def __init__(self, hyper: _Hyper, *, decoupled: bool) -> None:
        self.hyper = hyper
        self.decoupled = decoupled
        self.steps = 0
        self.exp_avg: dict[str, Tensor] = {}
        self.exp_avg_sq: dict[str, Tensor] = {}

    @torch.no_grad()
    def step(self, params: dict[str, Tensor]) -> None:
        beta1, beta2 = BETAS
        self.steps += 1
        bias1 = 1 - beta1 ** float(self.steps)
        bias2_sqrt = (1 - beta2 ** float(self.steps)) ** 0.5
        dtype = next(iter(params.values())).dtype
        lr, wd = self.hyper["lr"], self.hyper["weight_decay"]
        neg_step = (-(lr / bias1)).to(dtype)  # float64 like torch's Python scalars, then cast
        use_decay = self.hyper.nonzero["weight_decay"]
        decay = (1 - lr * wd).to(dtype) if use_decay and self.decoupled else None
        wd = wd.to(dtype)
        for name, p in params.items():
            grad = p.grad
            if decay is not None:
                p.mul_(_per_member(decay, p))
            elif use_decay:
                grad = torch.addcmul(grad, p, _per_member(wd, p))
            if name not in self.exp_avg:
                self.exp_avg[name] = torch.zeros_like(p)
                self.exp_avg_sq[name] = torch.zeros_like(p)
            exp_avg, exp_avg_sq = self.exp_avg[name], self.exp_avg_sq[name]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(EPS)
            # torch: p + (-step_size * exp_avg) / denom, the same order of operations
            p.addcdiv_(exp_avg * _per_member(neg_step, p), denom)

    def keep(self, index: Tensor) -> None:
        self.hyper.keep(index)
        self.exp_avg = {k: v[index] for k, v in self.exp_avg.items()}
        self.exp_avg_sq = {k: v[index] for k, v in self.exp_avg_sq.items()}


class StackedSGD:
    """SGD with per-member momentum (0 = plain SGD) and L2 weight decay."""

    def __init__(self, hyper: _Hyper) -> None:
        self.hyper = hyper
        self.buffers: dict[str, Tensor] = {}

    @torch.no_grad()
    def step(self, params: dict[str, Tensor]) -> None:
        dtype = next(iter(params.values())).dtype
        neg_lr = (-self.hyper["lr"]).to(dtype)
        momentum = self.hyper["momentum"].to(dtype)
        wd = self.hyper["weight_decay"].to(dtype)
        for name, p in params.items():
            grad = p.grad
            if self.hyper.nonzero["weight_decay"]:
                grad = torch.addcmul(grad, p, _per_member(wd, p))
            if self.hyper.nonzero["momentum"]:
                if name not in self.buffers:
                    self.buffers[name] = grad.detach().clone()
                else:
                    self.buffers[name].mul_(_per_member(momentum, p)).add_(grad)
                grad = self.buffers[name]
            p.addcmul_(grad, _per_member(neg_lr, p))

    def keep(self, index: Tensor) -> None:
        self.hyper.keep(index)
        self.buffers = {k: v[index] for k, v in self.buffers.items()}


STACKED_OPTIMIZERS: dict[str, Callable[[_Hyper], StackedOptimizer]] = {
    "adam": lambda hyper: StackedAdam(hyper, decoupled=False),
    "adamw": lambda hyper: StackedAdam(hyper, decoupled=True),
    "sgd": StackedSGD,
}


def build_stacked_optimizer(
    name: str, device: torch.device, *, lr: Tensor, momentum: Tensor, weight_decay: Tensor
) -> StackedOptimizer:
    """The stacked counterpart of study.training.train.build_optimizer; the error says what exists."""
    if name not in STACKED_OPTIMIZERS:
        solo_only = sorted(set(OPTIMIZERS) - set(STACKED_OPTIMIZERS))
        hint = f" ({', '.join(solo_only)} can only run solo: set packing off)" if solo_only else ""
        msg = (
            f"optimizer {name!r} has no packed version; packed: {', '.join(sorted(STACKED_OPTIMIZERS))}{hint}"
        )
        raise KeyError(msg)
    hyper = _Hyper(device, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return STACKED_OPTIMIZERS[name](hyper)
