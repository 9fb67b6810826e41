"""K copies of one architecture as one model: stacked weights, one vmapped forward.

Why torch.func (`stack_module_state` + `vmap(functional_call)`) rather than
hand-written grouped convolutions (HFTA): it packs every registered
architecture unchanged, and vmap's batching rule for a convolution whose
input and weight are both batched already lowers it to one grouped
convolution (HFTA's fused kernel), and a batched Linear to one batched matmul.
One kernel per layer for all K members is what keeps a GPU busy.

BatchNorm: conv_ae and unet_ae use BatchNorm2d. Its running statistics are
buffers, stacked like the weights ([K, C]) and passed to `functional_call`
under vmap, so in train mode each member normalises with its own batch
statistics and updates its own running mean/var and counter in place — the
per-member statistics a solo model keeps. `replace_all_batch_norm_modules_`
is not used: it drops running statistics, which would change eval-mode
scores. Members never mix: every op is per member, so a member gone NaN
cannot leak into another.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

Tensor = torch.Tensor

# Member-samples per chunk of a no-grad (evaluation) forward: bounds activation memory at large K.
EVAL_MEMBER_SAMPLES = 16384


@dataclass
class StackedModel:
    """Stacked parameters ([K, ...] leaves) and buffers of K members of one architecture."""

    skeleton: nn.Module  # the architecture on the meta device: holds no weights of its own
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    # Evaluate members one by one instead of vmapped; None = on a CPU (see _reconstruct_shared).
    loop_eval: bool | None = None

    @classmethod
    def from_modules(cls, models: list[nn.Module], device: torch.device) -> StackedModel:
        """Stack `models` (same architecture) onto `device`; each keeps its own initial weights."""
        params, buffers = stack_module_state([m.to(device) for m in models])
        params = {k: v.detach().requires_grad_() for k, v in params.items()}
        buffers = {k: v.detach() for k, v in buffers.items()}
        return cls(copy.deepcopy(models[0]).to("meta"), params, buffers)

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def train(self, mode: bool = True) -> None:
        self.skeleton.train(mode)

    def __call__(self, x: Tensor) -> Tensor:
        """Member k reconstructs x[k]: [K, B, C, H, W] -> [K, B, C, H, W]."""
        return vmap(self._forward)(self.params, self.buffers, x)

    @torch.no_grad()
    def score_shared(self, x: Tensor, score: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Every member scores the same x in eval mode: `score(x_hat [K, n, ...], x [n, ...]) -> [K, n]`.

        Chunks of x keep activation memory bounded for any K; returns [K, N].
        """
        was_training = self.skeleton.training
        self.skeleton.eval()
        chunk = max(1, EVAL_MEMBER_SAMPLES // len(self))
        out = []
        for start in range(0, len(x), chunk):
            xb = x[start : start + chunk]
            out.append(score(self._reconstruct_shared(xb), xb))
        self.skeleton.train(was_training)
        return torch.cat(out, 1)

    def _reconstruct_shared(self, x: Tensor) -> Tensor:
        if self.loop_eval or (self.loop_eval is None and x.device.type == "cpu"):
            # On a CPU one grouped conv is slower than K plain ones on a large batch (0.82 s vs 0.23 s,
            # 8 conv_ae members on 900 images): without kernel launches to save, loop over members.
            return torch.stack([self._forward(*self._member(k), x) for k in range(len(self))])
        return vmap(self._forward, in_dims=(0, 0, None))(self.params, self.buffers, x)

    def _member(self, k: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return {n: v[k] for n, v in self.params.items()}, {n: v[k] for n, v in self.buffers.items()}

    def _forward(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.skeleton, (params, buffers), (x,))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def keep(self, index: Tensor) -> None:
        """Keep only the members at `index` (a LongTensor), e.g. to drop diverged ones."""
        self.params = {k: v.detach()[index].requires_grad_() for k, v in self.params.items()}
        self.buffers = {k: v[index] for k, v in self.buffers.items()}

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's state dict (a solo model's `load_state_dict` accepts it)."""
        params, buffers = self._member(k)
        return {name: v.detach() for name, v in (params | buffers).items()}
