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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

Tensor = torch.Tensor
Params = dict[str, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (x_hat, x) -> scalar


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


@dataclass
class Hessian:
    """Hessian-vector products at fixed parameters, reusing one gradient graph.

    Built by `hessian_at`; vectors are lists of tensors aligned with `params`.
    """

    loss: float  # the objective at the parameters
    params: list[Tensor]  # leaves the gradient graph was built on
    grads: list[Tensor]  # d loss / d params, with create_graph=True

    def matvec(self, v: Sequence[Tensor]) -> list[Tensor]:
        """H v."""
        return hessian_vector_product(self.grads, self.params, v)


def hessian_at(loss_of: Callable[[Params], Tensor], params: Params) -> Hessian:
    """Build the gradient graph of `loss_of` at `params` once, for many HVPs.

    Args:
        loss_of: scalar function of a name -> tensor mapping.
        params: the point; tensors are detached copies, the originals are untouched.
    """
    leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    with torch.enable_grad():
        loss = loss_of(leaves)
        if loss.dim() != 0:
            raise ValueError(f"the objective must be a scalar, got shape {tuple(loss.shape)}")
        grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True, materialize_grads=True)
    return Hessian(loss=float(loss.detach()), params=list(leaves.values()), grads=list(grads))


def hessian_vector_product(
    grads: Sequence[Tensor], params: Sequence[Tensor], v: Sequence[Tensor], *, batched: bool = False
) -> list[Tensor]:
    """H v by differentiating g . v, where g = grad(loss) was built with create_graph=True.

    With `batched`, every tensor of v has a leading dimension K and the K
    products run in one vmapped backward (`is_grads_batched`). A gradient that
    does not depend on the parameters (a term linear in them) contributes a
    zero row block, which autograd would otherwise reject.
    """
    live = [i for i, g in enumerate(grads) if g.requires_grad]
    if not live:
        return [torch.zeros_like(t) for t in v]
    hv = torch.autograd.grad(
        [grads[i] for i in live],
        list(params),
        grad_outputs=[v[i] for i in live],
        retain_graph=True,
        materialize_grads=True,
        is_grads_batched=batched,
    )
    return [h.detach() for h in hv]


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    return float(sum((x.detach().double() * y.detach().double()).sum() for x, y in zip(a, b, strict=True)))


def _flat(v: Sequence[Tensor]) -> Tensor:
    """One float64 vector from a list of tensors (Lanczos keeps its basis in float64)."""
    return torch.cat([t.detach().double().flatten().cpu() for t in v])


def _unflat(v: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    sizes = [t.numel() for t in like]
    return [part.view(t.shape).to(t) for part, t in zip(v.split(sizes), like, strict=True)]


@dataclass(frozen=True)
class Eigen:
    """The top eigenvalue estimate of one operator and how far it is from an exact eigenpair.

    `residual` is ||A y - value y|| / max|Ritz value| for the unit Ritz vector y:
    some eigenvalue of A lies within residual * scale of `value`, and `converged`
    says whether it is below the requested tolerance. `iters` counts HVPs.
    """

    value: float
    residual: float
    iters: int
    converged: bool


@dataclass(frozen=True)
class RankOneUpdate:
    """The operator a * H + c * q1 q1^T, where q1 is the Lanczos start vector.

    The Hessian of g(L) is g'(L) H + g''(L) grad(L) grad(L)^T, so with the
    Lanczos run started at grad(L): a = g'(L), c = g''(L) ||grad(L)||^2. Both
    operators have the same Krylov space, so one run measures both.
    """

    a: float = 1.0
    c: float = 0.0


def lanczos_top_eigenvalues(
    matvec: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    iters: int,
    tol: float,
    operators: Sequence[RankOneUpdate] = (RankOneUpdate(),),
) -> list[Eigen]:
    """Largest (algebraic) eigenvalue of each operator by Lanczos with full reorthogonalisation.

    Why Lanczos and not power iteration: power iteration converges to the
    eigenvalue of largest *magnitude*, which away from a clean minimum can be a
    negative one; shifting by it (H - lambda_neg I) converges at the ratio
    (lambda_2 - lambda_neg) / (lambda_max - lambda_neg), close to 1 when the
    negative end dominates. Lanczos gets both ends of the spectrum from one
    Krylov space, converges faster per HVP, and gives each Ritz pair's residual
    for free (beta_k * |last component of its eigenvector in T_k|).

    Stops after `iters` HVPs, when every operator's relative residual is at most
    `tol`, or when the Krylov space is invariant (then the Ritz values are exact).

    Args:
        matvec: H v on flat float64 vectors.
        start: nonzero start vector (normalised here).
        operators: which a * H + c * q1 q1^T to report, q1 = start / ||start||.
    """
    q = start / start.norm()
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    results: list[Eigen] = []
    for step in range(1, iters + 1):
        w = matvec(q)
        alpha = float(q @ w)
        alphas.append(alpha)
        for _ in range(2):  # full reorthogonalisation, twice is enough (Parlett)
            stacked = torch.stack(basis)  # [k, n]
            w = w - stacked.T @ (stacked @ w)
        beta = float(w.norm())
        tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            tri += torch.diag(off, 1) + torch.diag(off, -1)
        results = []
        for op in operators:
            m = op.a * tri
            m[0, 0] += op.c
            values, vectors = torch.linalg.eigh(m)
            scale = float(values.abs().max())
            residual = abs(op.a) * beta * float(vectors[-1, -1].abs())
            relative = residual / scale if scale > 0 else 0.0
            results.append(Eigen(float(values[-1]), relative, step, relative <= tol))
        if all(r.converged for r in results) or beta <= 1e-12 * max(abs(a) for a in alphas + [1e-300]):
            break
        betas.append(beta)
        q = w / beta
        basis.append(q)
    return results


def top_eigenvalue(hessian: Hessian, *, iters: int, generator: torch.Generator, tol: float = 1e-3) -> Eigen:
    """Largest Hessian eigenvalue (the top positive curvature at a minimum), by Lanczos.

    Starts from the gradient, or from a seeded Gaussian vector when the
    gradient is zero: near a minimum the gradient H (theta - theta*) leans
    towards the top eigenvectors, and the same run then measures g(L) too
    (`RankOneUpdate`). Like any Krylov method it misses an eigenvector the start
    has no component along (probability zero for a generic start).
    """
    start = _flat(hessian.grads)
    if not bool(start.any()):
        start = _flat([torch.randn(p.shape, generator=generator) for p in hessian.params])
    (eig,) = lanczos_top_eigenvalues(_flat_matvec(hessian), start, iters=iters, tol=tol)
    return eig


def _flat_matvec(hessian: Hessian) -> Callable[[Tensor], Tensor]:
    return lambda v: _flat(hessian.matvec(_unflat(v, hessian.params)))


def hutchinson_trace(hessian: Hessian, *, probes: int, generator: torch.Generator) -> np.ndarray:
    """Per-probe samples v^T H v with Rademacher v; their mean estimates tr(H).

    Rademacher probes make each sample exact for a diagonal H and give the
    smallest variance among i.i.d. probes: 2 * sum_{i != j} H_ij^2.
    """
    return _hutchinson(hessian, probes, generator)[0]


def _hutchinson(
    hessian: Hessian, probes: int, generator: torch.Generator, chunk_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Samples v^T H v and the gradient's projections grad . v of the same probes.

    Probes run `chunk_size` at a time in one batched HVP (None: `default_chunk_size`).

    The projections turn the samples into those of g(L) for free:
    v^T H_g v = g'(L) v^T H v + g''(L) (grad . v)^2.
    """
    vs = [
        [(torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(p) for p in hessian.params]
        for _ in range(probes)
    ]
    chunk = chunk_size or default_chunk_size(hessian.params[0].device)
    samples = []
    for start in range(0, probes, chunk):
        group = vs[start : start + chunk]
        if len(group) == 1:
            samples.append(_dot(group[0], hessian.matvec(group[0])))
            continue
        stacked = [torch.stack(ts) for ts in zip(*group, strict=True)]  # per parameter: [K, ...]
        hv = hessian_vector_product(hessian.grads, hessian.params, stacked, batched=True)
        samples += [_dot([t[k] for t in stacked], [h[k] for h in hv]) for k in range(len(group))]
    projections = [_dot(v, hessian.grads) for v in vs]
    return np.asarray(samples, dtype=np.float64), np.asarray(projections, dtype=np.float64)


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


def default_chunk_size(device: torch.device) -> int:
    """Perturbed parameter sets per vmapped forward, and probes per batched HVP: 8 on accelerators, 1 on CPU.

    vmap turns a batch of weight sets into grouped convolutions; on a CPU these
    ran about 2x slower per set than one set at a time (conv_ae, batch 256, one
    thread), and 8 batched HVPs cost 1.1-1.7x the time of 8 single ones
    (conv_ae, batch 32, 28 and 64 px); on a GPU batching saves launches and
    fills the device.
    """
    return 1 if device.type == "cpu" else 8


def quadratic_curvature(alphas: np.ndarray, losses: np.ndarray) -> float:
    """2a of the least-squares fit a*alpha^2 + b*alpha + c: the fitted second derivative at 0."""
    a, _, _ = np.polyfit(np.asarray(alphas, dtype=np.float64), np.asarray(losses, dtype=np.float64), 2)
    return float(2.0 * a)


def _generators(seed: int, n: int) -> list[torch.Generator]:
    """Independent CPU streams, so changing one measure's count leaves the others' draws alone."""
    states = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]
    return [torch.Generator().manual_seed(state) for state in states]


def slice_directions(params: Params, seed: int) -> tuple[Params, Params]:
    """The two filter-normalised directions `measure_steepness` uses for a seed (the first is the 1-D one)."""
    generator = _generators(seed, 3)[2]
    return filter_normalised_direction(params, generator), filter_normalised_direction(params, generator)


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
    if 0 < grid_1d < 3:
        raise ValueError(f"grid_1d={grid_1d}: a curvature fit needs at least 3 points; use 0 to skip")
    if 0 < grid_2d < 2:
        raise ValueError(f"grid_2d={grid_2d}: a 2-D grid needs at least 2 points per side; use 0 to skip")
    x = x.detach()
    transforms = {prefix: _identity, **(transforms or {})}
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        metrics, arrays, base_loss = _curvature(
            model, x, loss_fn, transforms, seed, power_iters, hutchinson_probes, power_tol, chunk_size
        )
        if grid_1d > 0 or grid_2d > 0:
            slices = _slices(model, x, loss_fn, base_loss, seed, grid_1d, grid_2d, chunk_size)
            for p, g in transforms.items():
                for key, value in slices.items():
                    arrays[p + key] = value if key.startswith("alphas") else _apply(g, value)
                if grid_1d > 0:
                    metrics[p + "slice_curvature"] = quadratic_curvature(
                        arrays[p + "alphas_1d"], arrays[p + "loss_1d"]
                    )
    finally:
        for module, training in modes.items():
            module.training = training
    return SteepnessResult(metrics=metrics, arrays=arrays)


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


def _slices(
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
    power_gen, probe_gen, _ = _generators(seed, 3)
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
        grad = _flat(hessian.grads)
        grad_sq = float(grad @ grad)
        if grad_sq == 0.0:  # no rank-one term; any start vector spans the same information
            grad = _flat([torch.randn(p.shape, generator=power_gen) for p in hessian.params])
        operators = [RankOneUpdate(d[1], d[2] * grad_sq) for d in derivs.values()]
        eigens = lanczos_top_eigenvalues(
            _flat_matvec(hessian), grad, iters=power_iters, tol=power_tol, operators=operators
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
        samples, projections = _hutchinson(hessian, probes, probe_gen, chunk_size)
        for p, (_, d1, d2) in derivs.items():
            arrays[p + "trace_samples"] = d1 * samples + d2 * projections**2
            metrics[p + "hessian_trace"] = float(arrays[p + "trace_samples"].mean())
    return metrics, arrays, hessian.loss
