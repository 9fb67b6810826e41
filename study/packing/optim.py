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
`STACKED_OPTIMIZERS` entry under the name study.train.OPTIMIZERS uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from study.train import OPTIMIZERS

Tensor = torch.Tensor

# torch.optim.Adam/AdamW defaults, which study.train.OPTIMIZERS keeps.
BETAS = (0.9, 0.999)
EPS = 1e-8


class StackedOptimizer(Protocol):
    """Steps stacked parameters in place from their `.grad`; `keep` drops members."""

    def step(self, params: dict[str, Tensor]) -> None: ...

    def keep(self, index: Tensor) -> None: ...


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """[K] float64 hyperparameters as a [K, 1, ...] tensor broadcasting over `like` ([K, ...])."""
    return values.to(device=like.device, dtype=like.dtype).view(-1, *[1] * (like.dim() - 1))


class StackedAdam:
    """Adam (L2 weight decay added to the gradient) or AdamW (decoupled decay) per member."""

    def __init__(self, lr: Tensor, weight_decay: Tensor, *, decoupled: bool) -> None:
        self.lr = lr.double().cpu()
        self.weight_decay = weight_decay.double().cpu()
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
        neg_step = -(self.lr / bias1)
        decay = 1 - self.lr * self.weight_decay
        use_decay = bool((self.weight_decay != 0).any())
        for name, p in params.items():
            grad = p.grad
            if use_decay and self.decoupled:
                p.mul_(_per_member(decay, p))
            elif use_decay:
                grad = torch.addcmul(grad, p, _per_member(self.weight_decay, p))
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
        self.lr, self.weight_decay = self.lr[index.cpu()], self.weight_decay[index.cpu()]
        self.exp_avg = {k: v[index] for k, v in self.exp_avg.items()}
        self.exp_avg_sq = {k: v[index] for k, v in self.exp_avg_sq.items()}


class StackedSGD:
    """SGD with per-member momentum (0 = plain SGD) and L2 weight decay."""

    def __init__(self, lr: Tensor, momentum: Tensor, weight_decay: Tensor) -> None:
        self.lr = lr.double().cpu()
        self.momentum = momentum.double().cpu()
        self.weight_decay = weight_decay.double().cpu()
        self.buffers: dict[str, Tensor] = {}

    @torch.no_grad()
    def step(self, params: dict[str, Tensor]) -> None:
        use_decay = bool((self.weight_decay != 0).any())
        use_momentum = bool((self.momentum != 0).any())
        for name, p in params.items():
            grad = p.grad
            if use_decay:
                grad = torch.addcmul(grad, p, _per_member(self.weight_decay, p))
            if use_momentum:
                if name not in self.buffers:
                    self.buffers[name] = grad.detach().clone()
                else:
                    self.buffers[name].mul_(_per_member(self.momentum, p)).add_(grad)
                grad = self.buffers[name]
            p.addcmul_(grad, _per_member(-self.lr, p))

    def keep(self, index: Tensor) -> None:
        cpu = index.cpu()
        self.lr, self.momentum, self.weight_decay = self.lr[cpu], self.momentum[cpu], self.weight_decay[cpu]
        self.buffers = {k: v[index] for k, v in self.buffers.items()}


# name -> factory(lr, momentum, weight_decay), each a [K] tensor
StackedFactory = Callable[[Tensor, Tensor, Tensor], StackedOptimizer]

STACKED_OPTIMIZERS: dict[str, StackedFactory] = {
    "adam": lambda lr, momentum, wd: StackedAdam(lr, wd, decoupled=False),
    "adamw": lambda lr, momentum, wd: StackedAdam(lr, wd, decoupled=True),
    "sgd": lambda lr, momentum, wd: StackedSGD(lr, momentum, wd),
}


def build_stacked_optimizer(
    name: str, lr: Tensor, momentum: Tensor, weight_decay: Tensor
) -> StackedOptimizer:
    """The stacked counterpart of study.train.build_optimizer; the error says what exists."""
    if name not in STACKED_OPTIMIZERS:
        solo_only = sorted(set(OPTIMIZERS) - set(STACKED_OPTIMIZERS))
        hint = f" ({', '.join(solo_only)} can only run solo: set packing off)" if solo_only else ""
        msg = (
            f"optimizer {name!r} has no packed version; packed: {', '.join(sorted(STACKED_OPTIMIZERS))}{hint}"
        )
        raise KeyError(msg)
    return STACKED_OPTIMIZERS[name](lr, momentum, weight_decay)
