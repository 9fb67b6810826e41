"""Loss slices along filter-normalised random directions (Li et al., NeurIPS 2018).

Perturbed parameter sets are evaluated in batched `functional_call` + `vmap`
calls; each distinct grid point once, the centre from the known loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from study.landscape.hessian import Params, Tensor, default_chunk_size

LossFn = Callable[[Tensor, Tensor], Tensor]  # (x_hat, x) -> scalar


def filter_normalised_direction(params: Params, generator: torch.Generator) -> Params:
    """A Gaussian direction rescaled filter by filter to the weights' norms (Li et al. 2018).

    For a tensor with dim > 1, each slice along dim 0 (a conv filter, a linear
    unit's weights) gets the norm of the same slice of the weight, which makes
    the direction invariant to the per-filter scale that BatchNorm and ReLU-like
    activations leave free. 1-D tensors (biases, norm affine) get zeros.
    """
    out: Params = {}
    for name, p in params.items():
        if p.dim() <= 1:
            out[name] = torch.zeros_like(p)
            continue
        d = torch.randn(p.shape, generator=generator)
        w = p.detach().cpu().float()
        scale = w.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)
        out[name] = (d * scale.view(-1, *[1] * (p.dim() - 1))).to(p)
    return out


def evaluate_along(
    model: nn.Module,
    x: Tensor,
    loss_fns: Sequence[LossFn],
    directions: Sequence[Params],
    coords: Tensor,
    *,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Every objective at params + sum_k coords[g, k] * directions[k], for every grid point g.

    Perturbed parameter sets are evaluated `chunk_size` at a time (None:
    `default_chunk_size(x.device)`) in one vmapped `functional_call`, with
    buffers shared (un-batched), so memory stays bounded; all objectives share
    each reconstruction. The model is used as is: put it in eval mode first so
    BatchNorm uses running statistics rather than batch statistics.

    Args:
        coords: [G, K] with K = len(directions).

    Returns:
        [len(loss_fns), G] float64 losses.
    """
    if coords.dim() != 2 or coords.shape[1] != len(directions):
        raise ValueError(f"coords must be [G, {len(directions)}], got {tuple(coords.shape)}")
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    # Tensors no direction moves stay un-batched: cheaper, and BatchNorm keeps plain affine params.
    moved = [name for name in params if any(bool(d[name].any()) for d in directions)]
    fixed = {name: p for name, p in params.items() if name not in moved}

    def losses_at(c: Tensor) -> Tensor:  # c: [K] -> [L]
        perturbed = {
            name: params[name] + sum(c[k] * d[name] for k, d in enumerate(directions)) for name in moved
        }
        x_hat = functional_call(model, ({**fixed, **perturbed}, buffers), (x,))
        return torch.stack([loss_fn(x_hat, x) for loss_fn in loss_fns])

    batched = vmap(losses_at)
    chunk_size = chunk_size or default_chunk_size(x.device)
    coords = coords.to(device=x.device, dtype=x.dtype)
    with torch.inference_mode():
        losses = torch.cat([batched(chunk) for chunk in coords.split(chunk_size)])  # [G, L]
    return losses.T.double().cpu().numpy()


def quadratic_curvature(alphas: np.ndarray, losses: np.ndarray) -> float:
    """2a of the least-squares fit a*alpha^2 + b*alpha + c: the fitted second derivative at 0."""
    a, _, _ = np.polyfit(np.asarray(alphas, dtype=np.float64), np.asarray(losses, dtype=np.float64), 2)
    return float(2.0 * a)


def seeded_generators(seed: int, n: int) -> list[torch.Generator]:
    """Independent CPU streams, so changing one measure's count leaves the others' draws alone."""
    states = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]
    return [torch.Generator().manual_seed(state) for state in states]


def slice_directions(params: Params, seed: int) -> tuple[Params, Params]:
    """The two filter-normalised directions `measure_steepness` uses for a seed (the first is the 1-D one)."""
    generator = seeded_generators(seed, 3)[2]
    return filter_normalised_direction(params, generator), filter_normalised_direction(params, generator)


def loss_slices(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    base_loss: float,
    seed: int,
    grid_1d: int,
    grid_2d: int,
    chunk_size: int | None,
) -> dict[str, np.ndarray]:
    """L along the 1-D and 2-D filter-normalised slices; each distinct point is evaluated once.

    The centre is the already-known base loss, and 2-D points on the first
    axis (beta = 0) that the 1-D grid holds are taken from it.
    """
    d1, d2 = slice_directions(dict(model.named_parameters()), seed)
    a1, a2, points = _grid(grid_1d, grid_2d)  # [i * m + j] of the 2-D part = (a2[i], a2[j])
    known = {(0.0, 0.0): base_loss}
    todo = sorted(set(points) - set(known))
    if todo:
        coords = torch.tensor(todo, dtype=torch.float64)
        losses = evaluate_along(model, x, [loss_fn], [d1, d2], coords, chunk_size=chunk_size)[0]
        known |= dict(zip(todo, losses.tolist(), strict=True))
    values = np.array([known[p] for p in points], dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    if grid_1d > 0:
        out["alphas_1d"], out["loss_1d"] = a1, values[:grid_1d]
    if grid_2d > 0:
        out["alphas_2d"], out["loss_2d"] = a2, values[grid_1d:].reshape(grid_2d, grid_2d)
    return out


def _grid(grid_1d: int, grid_2d: int) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """The slices' alphas and their (alpha, beta) points: 1-D ones, then the 2-D grid row-major.

    Coordinates are rounded so that equal alphas of different grids coincide.
    """
    a1 = np.linspace(-1.0, 1.0, grid_1d) if grid_1d > 0 else np.zeros(0)
    a2 = np.linspace(-1.0, 1.0, grid_2d) if grid_2d > 0 else np.zeros(0)
    key = lambda a, b: (round(float(a), 9) + 0.0, round(float(b), 9) + 0.0)  # noqa: E731  (+0.0: no -0.0)
    return a1, a2, [key(a, 0.0) for a in a1] + [key(a, b) for a in a2 for b in a2]


def slice_forwards(grid_1d: int, grid_2d: int) -> int:
    """Perturbed forward passes the slices cost: distinct grid points other than the centre."""
    return len(set(_grid(grid_1d, grid_2d)[2]) - {(0.0, 0.0)})
