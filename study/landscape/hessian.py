"""Curvature of a scalar objective from Hessian-vector products: top eigenvalue and trace.

Lanczos (top positive eigenvalue, with its residual and convergence) and
Hutchinson (trace, every probe kept) only need `Hessian.matvec`, one double
backward through a gradient graph built once, as in PyHessian. The amplified
objective g(L) reuses L's products through `RankOneUpdate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

Tensor = torch.Tensor
Params = dict[str, Tensor]


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


def flat(v: Sequence[Tensor]) -> Tensor:
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
    start = flat(hessian.grads)
    if not bool(start.any()):
        start = flat([torch.randn(p.shape, generator=generator) for p in hessian.params])
    (eig,) = lanczos_top_eigenvalues(flat_matvec(hessian), start, iters=iters, tol=tol)
    return eig


def flat_matvec(hessian: Hessian) -> Callable[[Tensor], Tensor]:
    return lambda v: flat(hessian.matvec(_unflat(v, hessian.params)))


def hutchinson_trace(hessian: Hessian, *, probes: int, generator: torch.Generator) -> np.ndarray:
    """Per-probe samples v^T H v with Rademacher v; their mean estimates tr(H).

    Rademacher probes make each sample exact for a diagonal H and give the
    smallest variance among i.i.d. probes: 2 * sum_{i != j} H_ij^2.
    """
    return hutchinson_samples(hessian, probes, generator)[0]


def hutchinson_samples(
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


def default_chunk_size(device: torch.device) -> int:
    """Perturbed parameter sets per vmapped forward, and probes per batched HVP: 8 on accelerators, 1 on CPU.

    vmap turns a batch of weight sets into grouped convolutions; on a CPU these
    ran about 2x slower per set than one set at a time (conv_ae, batch 256, one
    thread), and 8 batched HVPs cost 1.1-1.7x the time of 8 single ones
    (conv_ae, batch 32, 28 and 64 px); on a GPU batching saves launches and
    fills the device.
    """
    return 1 if device.type == "cpu" else 8
