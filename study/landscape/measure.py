"""Loss-landscape steepness of a trained autoencoder around its final parameters.

The LAMP claim is that an amplified reconstruction loss steepens the landscape.
This module measures steepness of any scalar objective `loss_fn(model(x), x)`
on a fixed batch `x`, as a function of the model parameters:

- `sharpness`: the largest Hessian eigenvalue (the top *positive* curvature,
  not the largest magnitude), by Lanczos on Hessian-vector products (double
  backward, as in PyHessian), stopped at a relative Ritz residual. Its
  iterations, residual and a converged flag are always reported; an
  unconverged estimate is not reported as `sharpness`.
- `hessian_trace`: Hutchinson's estimate E[v^T H v] with Rademacher (+-1)
  probes; every per-probe sample is kept so a report can show the spread.
- `loss_1d` / `loss_2d`: the loss along filter-normalised random directions
  (Li et al., NeurIPS 2018), alpha in [-1, 1], evaluated in batches of
  perturbed parameter sets with `torch.func.functional_call` + `vmap`.
- `slice_curvature`: second derivative at alpha = 0 of the least-squares
  parabola through the 1-D slice (`quadratic_curvature`). Unlike `sharpness`
  (infinitesimal, worst direction) it is a large-scale steepness along one
  random, scale-free direction, in loss units per (filter norm)^2.

Contract: everything is measured with the model in eval mode (BatchNorm uses
its running statistics, so the objective is a deterministic function of the
parameters and matches how the model scores samples). The model's parameters,
their `.grad` and every module's train/eval flag are left as they were. All
randomness comes from `seed` through CPU generators, so results do not depend
on the device. An objective g(L) of the batch-mean base loss L (an amplified
loss) is measured from L's own forward passes and HVPs, exactly: g of L's
slices, and g'(L) H + g''(L) grad grad^T for its Hessian (`measure_steepness`).
For `linear` amplification with factor lambda, sharpness, trace samples and
slices are exactly lambda times the base ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from study.landscape.hessian import (
    Params,
    RankOneUpdate,
    Tensor,
    flat,
    flat_matvec,
    hessian_at,
    hutchinson_samples,
    lanczos_top_eigenvalues,
)
from study.landscape.slices import LossFn, loss_slices, quadratic_curvature, seeded_generators


@dataclass
class SteepnessResult:
    """Scalars for MLflow metrics and arrays for the `landscape.npz` artifact.

    Keys carry the caller's `prefix` verbatim (e.g. "amp_"). A measure whose
    count is 0 is absent. `loss_2d[i, j]` is the loss at `alphas_2d[i]` along
    the first direction and `alphas_2d[j]` along the second; the first 2-D
    direction is the 1-D direction.
    """

    metrics: dict[str, float]  # sharpness, hessian_trace, slice_curvature, loss_at_minimum
    # alphas_1d [n], loss_1d [n], alphas_2d [m], loss_2d [m, m], trace_samples [k]
    arrays: dict[str, np.ndarray]


Transform = Callable[[Tensor], Tensor]  # g: base loss L (0-dim) -> objective g(L)


def measure_steepness(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    *,
    transforms: Mapping[str, Transform] | None = None,
    seed: int = 0,
    power_iters: int = 20,
    hutchinson_probes: int = 16,
    grid_1d: int = 21,
    grid_2d: int = 5,
    prefix: str = "",
    power_tol: float = 1e-3,
    chunk_size: int | None = None,
) -> SteepnessResult:
    """All steepness measures of L = `loss_fn(model(x), x)`, and of g(L) for each transform, at the model's parameters.

    Every g(L) measure is derived exactly from L's: its slices are g of L's
    slices, its Hessian is g'(L) H + g''(L) grad grad^T, so its trace samples
    follow from the same probes and its top eigenvalue from the same Lanczos
    run, started at grad L (see `RankOneUpdate`). Measuring g(L) costs no
    forward pass and no HVP beyond L's.

    `sharpness` is the largest Hessian eigenvalue (the top positive curvature
    at a minimum); it is present only when Lanczos converged to `power_tol`.
    `sharpness_iters`, `sharpness_residual` and `sharpness_converged` (0 or 1)
    are always there when power_iters > 0.

    Args:
        model: maps x to a reconstruction of the same shape; restored afterwards.
        x: [B, C, H, W] fixed batch on the model's device.
        loss_fn: scalar base objective.
        transforms: prefix -> g, e.g. {"amp_": lambda L: amplify(L, factor)}.
        seed: one seed for probes and directions (and the Lanczos start if the gradient is 0).
        power_iters: maximum Lanczos HVPs (0 skips sharpness).
        hutchinson_probes: Rademacher probes (0 skips the trace).
        grid_1d: alphas in [-1, 1] for the 1-D slice (0 skips it and slice_curvature; else >= 3).
        grid_2d: side of the 2-D grid (0 skips it; else >= 2).
        prefix: prepended to every key of L's measures.
        power_tol: relative residual at which Lanczos stops and counts as converged.
        chunk_size: perturbed parameter sets per vmapped forward and probes per batched HVP
            (None: `default_chunk_size`).
    """
    _check_grids(grid_1d, grid_2d)
    x = x.detach()
    transforms = {prefix: _identity, **(transforms or {})}
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        metrics, arrays, base_loss = _curvature(
            model, x, loss_fn, transforms, seed, power_iters, hutchinson_probes, power_tol, chunk_size
        )
        if grid_1d > 0 or grid_2d > 0:
            slices = loss_slices(model, x, loss_fn, base_loss, seed, grid_1d, grid_2d, chunk_size)
            _add_slices(slices, transforms, metrics, arrays)
    finally:
        for module, training in modes.items():
            module.training = training
    return SteepnessResult(metrics=metrics, arrays=arrays)


def _check_grids(grid_1d: int, grid_2d: int) -> None:
    if 0 < grid_1d < 3:
        raise ValueError(f"grid_1d={grid_1d}: a curvature fit needs at least 3 points; use 0 to skip")
    if 0 < grid_2d < 2:
        raise ValueError(f"grid_2d={grid_2d}: a 2-D grid needs at least 2 points per side; use 0 to skip")


def _add_slices(
    slices: dict[str, np.ndarray],
    transforms: Mapping[str, Transform],
    metrics: dict[str, float],
    arrays: dict[str, np.ndarray],
) -> None:
    """g of L's slices for every transform, and each 1-D slice's curvature."""
    for p, g in transforms.items():
        for key, value in slices.items():
            arrays[p + key] = value if key.startswith("alphas") else _apply(g, value)
        if "loss_1d" in slices:
            metrics[p + "slice_curvature"] = quadratic_curvature(
                arrays[p + "alphas_1d"], arrays[p + "loss_1d"]
            )


def _identity(loss: Tensor) -> Tensor:
    return loss


def _apply(g: Transform, values: np.ndarray) -> np.ndarray:
    if g is _identity:
        return values
    return g(torch.from_numpy(values)).numpy()


def _derivatives(g: Transform, loss: float) -> tuple[float, float, float]:
    """g(L), g'(L), g''(L) in float64 by autograd (0 for a term that does not depend on L)."""
    at = torch.tensor(loss, dtype=torch.float64, requires_grad=True)
    value = g(at)
    (d1,) = torch.autograd.grad(value, at, create_graph=True, materialize_grads=True)
    d2 = torch.autograd.grad(d1, at, materialize_grads=True)[0] if d1.requires_grad else torch.zeros(())
    return value.item(), d1.item(), d2.item()


def _curvature(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    transforms: Mapping[str, Transform],
    seed: int,
    power_iters: int,
    probes: int,
    power_tol: float,
    chunk_size: int | None,
) -> tuple[dict[str, float], dict[str, np.ndarray], float]:
    """loss_at_minimum, sharpness (+ convergence), hessian_trace and trace_samples per transform."""
    power_gen, probe_gen, _ = seeded_generators(seed, 3)
    variables = {name: p for name, p in model.named_parameters() if p.requires_grad}
    constants = {
        name: t.detach()
        for name, t in [*model.named_parameters(), *model.named_buffers()]
        if name not in variables
    }

    def loss_of(params: Params) -> Tensor:
        return loss_fn(functional_call(model, {**constants, **params}, (x,)), x)

    if power_iters == 0 and probes == 0:
        with torch.inference_mode():
            loss = float(loss_of({n: p.detach() for n, p in variables.items()}))
        metrics = {p + "loss_at_minimum": _derivatives(g, loss)[0] for p, g in transforms.items()}
        return metrics, {}, loss
    hessian = hessian_at(loss_of, variables)
    derivs = {p: _derivatives(g, hessian.loss) for p, g in transforms.items()}
    metrics = {p + "loss_at_minimum": d[0] for p, d in derivs.items()}
    arrays: dict[str, np.ndarray] = {}
    if power_iters > 0:
        grad = flat(hessian.grads)
        grad_sq = float(grad @ grad)
        if grad_sq == 0.0:  # no rank-one term; any start vector spans the same information
            grad = flat([torch.randn(p.shape, generator=power_gen) for p in hessian.params])
        operators = [RankOneUpdate(d[1], d[2] * grad_sq) for d in derivs.values()]
        eigens = lanczos_top_eigenvalues(
            flat_matvec(hessian), grad, iters=power_iters, tol=power_tol, operators=operators
        )
        for p, eig in zip(derivs, eigens, strict=True):
            metrics |= {
                p + "sharpness_iters": float(eig.iters),
                p + "sharpness_residual": eig.residual,
                p + "sharpness_converged": float(eig.converged),
            }
            if eig.converged:
                metrics[p + "sharpness"] = eig.value
    if probes > 0:
        samples, projections = hutchinson_samples(hessian, probes, probe_gen, chunk_size)
        for p, (_, d1, d2) in derivs.items():
            arrays[p + "trace_samples"] = d1 * samples + d2 * projections**2
            metrics[p + "hessian_trace"] = float(arrays[p + "trace_samples"].mean())
    return metrics, arrays, hessian.loss
