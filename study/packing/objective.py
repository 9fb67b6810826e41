"""Per-member base metric and amplified objective of a pack.

Members may use different base metrics and amplification forms: each
registered function runs once on the members that use it (a metric on their
[K_m * B] samples at once, a form on their [K_f] losses with per-member
factors), and the results are put back in member order. The registries of
study.training.losses are used as they are: a form's `apply(loss, factor, upper)` is
elementwise, so a factor tensor works where a solo trial passes a float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from study.training.losses import get_amplification, get_metric

Tensor = torch.Tensor


@dataclass(frozen=True)
class Grouping:
    """Members grouped by a name: `groups` (name, member indices) and the order that undoes the grouping."""

    groups: tuple[tuple[str, Tensor], ...]
    restore: Tensor  # cat(per-group values)[restore] is in member order

    @classmethod
    def of(cls, names: Sequence[str], device: torch.device) -> Grouping:
        groups = []
        for name in dict.fromkeys(names):  # first-seen order
            groups.append((name, torch.tensor([i for i, n in enumerate(names) if n == name], device=device)))
        order = torch.cat([idx for _, idx in groups])
        return cls(tuple(groups), torch.argsort(order))

    def apply(self, fn: Callable[[str, Tensor], Tensor]) -> Tensor:
        """Stack fn(name, member indices) -> [K_g, ...] over groups, back in member order."""
        return torch.cat([fn(name, idx) for name, idx in self.groups])[self.restore]


class PackObjective:
    """Base loss L_k and objective g_k(L_k; factor_k) of every member, as [K] tensors."""

    def __init__(self, metrics: Sequence[str], forms: Sequence[str], factors: Tensor) -> None:
        self.metric_names = list(metrics)
        self.form_names = list(forms)
        self.factors = factors
        device = factors.device
        # each member's metric range, so a bounded form (log) matches its solo trial's
        self.uppers = torch.tensor([get_metric(m).upper for m in self.metric_names], device=device)
        self.by_metric = Grouping.of(self.metric_names, device)
        self.by_form = Grouping.of(self.form_names, device)

    def scores(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Per-sample scores [K, N] of member reconstructions x_hat [K, N, ...] of x ([K, N, ...] or shared [N, ...])."""
        k, n = x_hat.shape[:2]
        x = x.expand_as(x_hat)

        def score(name: str, idx: Tensor) -> Tensor:
            return get_metric(name).score(x_hat[idx].flatten(0, 1), x[idx].flatten(0, 1)).view(len(idx), n)

        return self.by_metric.apply(score)

    def __call__(self, x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """(base [K], objective [K]) of reconstructions x_hat [K, B, ...] of x [K, B, ...]."""
        base = self.scores(x_hat, x).mean(1)
        objective = self.by_form.apply(
            lambda name, idx: get_amplification(name).apply(base[idx], self.factors[idx], self.uppers[idx])
        )
        return base, objective

    def keep(self, index: Tensor) -> PackObjective:
        """The objective of the members at `index`."""
        at = index.tolist()
        return PackObjective(
            [self.metric_names[i] for i in at], [self.form_names[i] for i in at], self.factors[index]
        )
