"""Label-free selection scores after ST-SSAD (Yoo, Zhao, Akoglu: "Self-Tuning Self-Supervised Anomaly Detection").

A trial is judged without test labels by how its anomaly score treats
pseudo-anomalies D_aug = phi(D_trn; a) made from held-out normal images D_trn
by a differentiable CutDiff-style soft patch phi:

- `synthetic_auroc`: AUROC of the score separating D_trn from D_aug.
- `alignment_loss`: how well D_trn and D_aug explain the unlabelled test pool
  in a shared embedding of reconstruction errors (lower is better).
- self-tuning: gradient descent on the alignment loss w.r.t. the patch
  parameters a, the model fixed (ST-SSAD's end-to-end augmentation tuning).

Known limitation (measured on a constructed pool whose anomalies are CutDiff
patches of a known size): mean distances to centroids are minimised by a
geometric median of the pool, so the tuned area tracks the true one when the
pool is about half anomalous, shrinks toward "normal" when normal samples
dominate, and overshoots when anomalies dominate.

Contract: nothing here receives test labels. Every function takes the
unlabelled pool as a tensor of images only, so labels cannot leak by
construction (a test checks that no public function has a label parameter).
Images are NCHW in [0, 1]; the model maps them to reconstructions of the same
shape; `score(x_hat, x)` returns one anomaly score per sample (a
`study.training.losses.Metric.score`). All computation follows the device of the
model's parameters; results are deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from study.training.evaluate import eval_batch_size

Tensor = torch.Tensor
Score = Callable[[Tensor, Tensor], Tensor]

AREA_RANGE = (0.02, 0.3)  # patch area as a share of the image, mapped linearly from a[0]
ASPECT_RANGE = (0.3, 3.3)  # patch height / width, mapped log-uniformly from a[1] (a[1] = 0.5 -> ~1)
STRENGTH_RANGE = (0.5, 1.0)  # per-sample share of the way each patch pixel moves to its negative
SHARPNESS = 0.5  # soft-edge temperature of the patch, in pixels
GRID = 4  # the embedding pools squared errors over GRID x GRID regions
LOG_EPS = 1e-6  # keeps log(error) finite for perfect reconstructions


@dataclass(frozen=True)
class PatchDraw:
    """The random part of the augmentation, fixed per sample so phi is a deterministic function of a."""

    centre: Tensor  # [N, 2] in [0, 1]: where the patch sits within its free range (rows, cols)
    strength: Tensor  # [N] in STRENGTH_RANGE

    def __getitem__(self, index: Tensor | slice) -> PatchDraw:
        return PatchDraw(self.centre[index], self.strength[index])


@dataclass
class LabelFreeResult:
    """Label-free scores of one trial.

    `metrics` holds synthetic_auroc and alignment_loss at the initial
    augmentation parameters, synthetic_auroc_tuned and alignment_loss_tuned at
    the self-tuned ones, and aug_area, aug_aspect: the tuned parameters in [0, 1].
    """

    metrics: dict[str, float]
    normal_scores: Tensor | None = None  # [N] anomaly scores of the normal images, for reuse by callers


def draw_patches(n: int, seed: int) -> PatchDraw:
    """Seeded patch positions and strengths for n samples (CPU, float64; the same for the same n and seed)."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    lo, hi = STRENGTH_RANGE
    strength = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
    return PatchDraw(centre, strength)


def patch_shape(a: Tensor) -> tuple[Tensor, Tensor]:
    """Map parameters a = (area, aspect) in [0, 1] to the patch area ratio and height/width ratio."""
    lo, hi = AREA_RANGE
    area = lo + a[0] * (hi - lo)
    alo, ahi = ASPECT_RANGE
    aspect = alo * (ahi / alo) ** a[1]
    return area, aspect


def _soft_interval(coords: Tensor, centre: Tensor, half: Tensor, temperature: float) -> Tensor:
    """Smooth indicator of |coords - centre| < half: a product of two sigmoids. [N, L]."""
    d = coords[None, :] - centre[:, None]  # [N, L]
    return torch.sigmoid((d + half) / temperature) * torch.sigmoid((half - d) / temperature)


def soft_patch_mask(
    a: Tensor, draw: PatchDraw, height: int, width: int, sharpness: float = SHARPNESS
) -> Tensor:
    """Soft box masks [N, 1, H, W] in [0, 1] of area ~ area ratio * H * W, inside the image.

    The patch centre moves with its size (centre = half + u * (1 - 2 half)) so
    the box always fits and its area is the requested ratio, not less.
    """
    area, aspect = patch_shape(a)
    half_h = torch.sqrt(area * aspect) / 2  # fractions of the image side; < 0.5 by the ranges above
    half_w = torch.sqrt(area / aspect) / 2
    centre = draw.centre.to(device=a.device, dtype=a.dtype)
    cy = half_h + centre[:, 0] * (1 - 2 * half_h)
    cx = half_w + centre[:, 1] * (1 - 2 * half_w)
    ys = (torch.arange(height, device=a.device, dtype=a.dtype) + 0.5) / height
    xs = (torch.arange(width, device=a.device, dtype=a.dtype) + 0.5) / width
    rows = _soft_interval(ys, cy, half_h, sharpness / height)  # [N, H]
    cols = _soft_interval(xs, cx, half_w, sharpness / width)  # [N, W]
    return (rows[:, :, None] * cols[:, None, :])[:, None]


def cutdiff(x: Tensor, a: Tensor, draw: PatchDraw, sharpness: float = SHARPNESS) -> Tensor:
    """CutDiff-style pseudo-anomalies: subtract a soft patch from x, differentiable in a.

    x_aug = x - m * delta with delta = s * (2x - 1): inside the patch (mask m)
    each pixel moves a share s (per sample, from `draw`) of the way to its
    negative 1 - x. Dark pixels brighten and bright ones darken, so the patch
    shows on dark backgrounds and bright objects alike; x_aug is a convex
    combination of x and 1 - x, so it stays in [0, 1] without a clamp that
    would cut gradients.

    Args:
        x: images [N, C, H, W] in [0, 1].
        a: parameters (area, aspect) in [0, 1], shape [2]; may require grad.
        draw: per-sample randomness from `draw_patches(N, seed)`.
        sharpness: soft-edge temperature in pixels.
    """
    mask = soft_patch_mask(a.to(x.dtype), draw, x.shape[-2], x.shape[-1], sharpness)
    strength = draw.strength.to(device=x.device, dtype=x.dtype)[:, None, None, None]
    return x - mask * strength * (2 * x - 1)


def embed_errors(x_hat: Tensor, x: Tensor, score: Score, grid: int = GRID) -> Tensor:
    """Architecture-independent embedding [N, 1 + grid^2]: log score, then log squared error per region.

    The per-pixel squared error is averaged over channels and pooled over a
    fixed grid x grid partition, so every model and image size shares one space.
    """
    err = (x_hat - x).pow(2).mean(1, keepdim=True)  # [N, 1, H, W]
    regions = F.adaptive_avg_pool2d(err, grid).flatten(1)  # [N, grid^2]
    s = score(x_hat, x).to(regions.dtype)[:, None]
    return torch.log(torch.cat([s, regions], dim=1) + LOG_EPS)


def normalise_embeddings(z: Tensor) -> Tensor:
    """Centre all rows together and scale: Z~ = (Z - mu) / (||Z - mu||_F / sqrt(N)).

    This is PairNorm's scaling (Zhao and Akoglu, ICLR 2020) with s = 1: the mean
    squared distance to the centroid is 1, equivalently the mean over all N^2
    ordered pairs of ||z_i - z_j||^2 is 2, i.e. the total pairwise squared
    distance is 2 N^2 (what ST-SSAD calls "unit" up to that constant, which keeps
    the loss independent of N). The loss cannot fall by shrinking or moving the
    embedding cloud: it is invariant to z -> c z + b for c > 0.
    """
    centred = z - z.mean(0, keepdim=True)
    scale = torch.linalg.matrix_norm(centred) / math.sqrt(z.shape[0])
    return centred / scale.clamp_min(torch.finfo(z.dtype).tiny)


def alignment_loss(z_trn: Tensor, z_aug: Tensor, z_test: Tensor) -> Tensor:
    """ST-SSAD's unsupervised validation loss; lower means D_trn and D_aug explain the test pool better.

    L = 1/2 [mean_test ||z - mean(Z~_trn)|| + mean_test ||z - mean(Z~_aug)||],
    with all three sets normalised together by `normalise_embeddings`.
    """
    z = normalise_embeddings(torch.cat([z_trn, z_aug, z_test]))
    n_trn, n_aug = len(z_trn), len(z_aug)
    trn, aug, test = z[:n_trn], z[n_trn : n_trn + n_aug], z[n_trn + n_aug :]
    to_trn = torch.linalg.vector_norm(test - trn.mean(0), dim=1).mean()
    to_aug = torch.linalg.vector_norm(test - aug.mean(0), dim=1).mean()
    return 0.5 * (to_trn + to_aug)


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


@torch.no_grad()
def score_and_embed(
    model: nn.Module,
    score: Score,
    x: Tensor,
    *,
    a: Tensor | None = None,
    draw: PatchDraw | None = None,
    grid: int = GRID,
    batch_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Anomaly scores [N] and embeddings [N, 1 + grid^2] of x (or of cutdiff(x, a, draw)), in batches.

    Runs the model as it is (callers put it in eval mode); results live on the model's device.
    `batch_size` None: `study.training.evaluate.eval_batch_size`.
    """
    device, dtype = _device_dtype(model)
    batch_size = batch_size or (eval_batch_size(x[0], device) if len(x) else 1)
    scores, embeds = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device=device, dtype=dtype)
        if a is not None and draw is not None:
            xb = cutdiff(xb, a.to(device), draw[start : start + batch_size])
        x_hat = model(xb)
        scores.append(score(x_hat, xb).float())
        embeds.append(embed_errors(x_hat, xb, score, grid).float())
    return torch.cat(scores), torch.cat(embeds)


def separation_auroc(s_normal: Tensor, s_aug: Tensor) -> float:
    """AUROC of normal (negative) vs augmented (positive) scores; NaN when a score is not finite."""
    s = torch.cat([s_normal, s_aug]).double().cpu()
    if not torch.isfinite(s).all():
        return float("nan")
    is_aug = [0] * len(s_normal) + [1] * len(s_aug)
    return float(roc_auc_score(is_aug, s.numpy()))


def tune_augmentation(
    model: nn.Module,
    score: Score,
    normal: Tensor,
    z_trn: Tensor,
    z_pool: Tensor,
    a: Tensor,
    draw: PatchDraw,
    *,
    steps: int = 30,
    lr: float = 0.05,
    tune_batch: int = 64,
    grid: int = GRID,
    seed: int = 0,
) -> Tensor:
    """Self-tune a by Adam on the alignment loss, the model fixed; returns the tuned a in (0, 1).

    a is parametrised as sigmoid(theta) so it stays in (0, 1). Each step uses a
    seeded subset of at most `tune_batch` normal images (with their augmented
    copies, the same draw) and a pool subset in the same proportion as the full
    sets; z_trn and z_pool come precomputed from `score_and_embed`, so only the
    augmented images pass through the model. Gradients are taken with
    torch.autograd.grad w.r.t. theta only: the model's parameters never get .grad.
    """
    device, dtype = _device_dtype(model)
    eps = 1e-4
    theta = torch.logit(a.detach().double().clamp(eps, 1 - eps)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    n, m = len(normal), len(z_pool)
    b_n = min(n, tune_batch)
    b_p = max(1, min(m, round(b_n * m / n)))
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            idx_n = torch.randperm(n, generator=gen)[:b_n]
            idx_p = torch.randperm(m, generator=gen)[:b_p]
            xb = normal[idx_n].to(device=device, dtype=dtype)
            x_aug = cutdiff(xb, torch.sigmoid(theta), draw[idx_n])
            z_aug = embed_errors(model(x_aug), x_aug, score, grid).float()
            loss = alignment_loss(z_trn[idx_n.to(z_trn.device)], z_aug, z_pool[idx_p.to(z_pool.device)])
            (theta.grad,) = torch.autograd.grad(loss, theta)
            opt.step()
    finally:
        model.train(was_training)
    return torch.sigmoid(theta).detach()


def _check_inputs(normal: Tensor, pool: Tensor, area: float, aspect: float, tune_batch: int) -> None:
    problems = []
    if normal.ndim != 4 or pool.ndim != 4 or normal.shape[1:] != pool.shape[1:]:
        problems.append(
            f"normal {tuple(normal.shape)} and pool {tuple(pool.shape)} must be NCHW of one image shape"
        )
    if len(normal) < 1 or len(pool) < 1:
        problems.append(f"normal ({len(normal)}) and pool ({len(pool)}) must be non-empty")
    if not (0 <= area <= 1 and 0 <= aspect <= 1):
        problems.append(f"area={area} and aspect={aspect} must lie in [0, 1]")
    if tune_batch < 1:
        problems.append(f"tune_batch={tune_batch} must be at least 1")
    if problems:
        raise ValueError("label_free_scores: " + "; ".join(problems))


def label_free_scores(
    model: nn.Module,
    score: Score,
    normal: Tensor,
    pool: Tensor,
    *,
    seed: int = 0,
    steps: int = 30,
    lr: float = 0.05,
    area: float = 0.5,
    aspect: float = 0.5,
    batch_size: int | None = None,
    tune_batch: int = 64,
    grid: int = GRID,
) -> LabelFreeResult:
    """All label-free scores of a trained model: before and after self-tuning the augmentation.

    Args:
        model: the trial's autoencoder (evaluated in eval mode; its mode is restored).
        score: per-sample anomaly score, score(x_hat, x) -> [N].
        normal: held-out normal images D_trn [N, C, H, W] in [0, 1].
        pool: the unlabelled test pool [M, C, H, W] in [0, 1].
        seed: fixes the patch draw and the tuning subsets.
        steps, lr: Adam steps and learning rate of the self-tuning (on the logit of a).
        area, aspect: initial augmentation parameters in [0, 1].
        batch_size: evaluation batch size.
        tune_batch: most normal images per tuning step (64 gave the same tuned area as 256
            on a constructed pool, at a quarter of the cost).
        grid: the embedding pools squared errors over grid x grid regions.
    """
    _check_inputs(normal, pool, area, aspect, tune_batch)
    device, dtype = _device_dtype(model)
    draw = draw_patches(len(normal), seed)
    a0 = torch.tensor([area, aspect], dtype=dtype, device=device)
    was_training = model.training
    model.eval()
    try:
        kw = {"grid": grid, "batch_size": batch_size}
        s_trn, z_trn = score_and_embed(model, score, normal, **kw)
        _, z_pool = score_and_embed(model, score, pool, **kw)
        s_aug, z_aug = score_and_embed(model, score, normal, a=a0, draw=draw, **kw)
        a1, s_aug1, z_aug1 = a0, s_aug, z_aug  # untuned: the augmentation is the initial one
        if steps > 0:
            tune = {"steps": steps, "lr": lr, "tune_batch": tune_batch, "grid": grid, "seed": seed}
            a1 = tune_augmentation(model, score, normal, z_trn, z_pool, a0, draw, **tune).to(dtype)
            s_aug1, z_aug1 = score_and_embed(model, score, normal, a=a1, draw=draw, **kw)
    finally:
        model.train(was_training)
    metrics = {
        "synthetic_auroc": separation_auroc(s_trn, s_aug),
        "alignment_loss": float(alignment_loss(z_trn, z_aug, z_pool)),
        "synthetic_auroc_tuned": separation_auroc(s_trn, s_aug1),
        "alignment_loss_tuned": float(alignment_loss(z_trn, z_aug1, z_pool)),
        "aug_area": float(a1[0]),
        "aug_aspect": float(a1[1]),
    }
    return LabelFreeResult(metrics, s_trn)
