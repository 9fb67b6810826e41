"""Synthetic-anomaly families: seeded corruptions of normal images with a severity in [0, 1].

A trial's synthetic AUROC per family (normal held-out images against their
corrupted copies) is a label-free estimate of how well its anomaly score finds
anomalies *of that kind*. One family alone saturates or misleads on some data
(issue 12: CutDiff patches gave AUROC ~0.99 on every trial of a defect set), so
several kinds are scored and their ranks combined across trials
(study/selection/rules.py). Each family maps severity 0 to a barely visible change and
1 to a gross one; study/labelfree/calibration.py picks the severity per study.

Contract of a family function: `fn(x, severity, generator) -> x_aug` with x
[N, C, H, W] in [0, 1] on any device, the result of the same shape in [0, 1];
every random choice comes from the CPU `generator`, so the same seed gives the
same corruption on every device and for every trial of a study.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from study.labelfree.perlin import fractal_noise, perlin_noise
from study.labelfree.stssad import STRENGTH_RANGE, PatchDraw, cutdiff

Tensor = torch.Tensor
FamilyFn = Callable[[Tensor, float, torch.Generator], Tensor]


@dataclass(frozen=True)
class Family:
    """One kind of synthetic anomaly."""

    name: str
    fn: FamilyFn
    what: str  # one line for reports and docs
    # fn(x, s) == x + s * (fn(x, 1) - x) for the same generator state: the calibration then draws once
    linear: bool = False


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _sign(n: int, gen: torch.Generator) -> Tensor:
    return torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1


def _cutdiff(x: Tensor, severity: float, gen: torch.Generator) -> Tensor:
    """ST-SSAD's soft patch; severity is the patch area (0.02 to 0.3 of the image)."""
    lo, hi = STRENGTH_RANGE
    draw = PatchDraw(torch.rand(len(x), 2, generator=gen, dtype=torch.float64), _uniform(len(x), lo, hi, gen))
    a = torch.tensor([severity, 0.5], device=x.device, dtype=x.dtype)
    return cutdiff(x, a, draw)


def _cutpaste(x: Tensor, severity: float, gen: torch.Generator) -> Tensor:
    """CutPaste (Li et al. 2021): a rectangle of the image copied elsewhere; severity is its area (1-25%)."""
    n, _, h, w = x.shape
    area = 0.01 + 0.24 * severity
    aspect = torch.exp(_uniform(n, math.log(0.5), math.log(2.0), gen))
    out = x.clone()
    u = torch.rand(n, 4, generator=gen)
    for i in range(n):
        ph = max(1, min(h, round(math.sqrt(area * float(aspect[i])) * h)))
        pw = max(1, min(w, round(math.sqrt(area / float(aspect[i])) * w)))
        sy, sx, dy, dx = (
            int(u[i, k] * (side - p + 1)) for k, side, p in ((0, h, ph), (1, w, pw), (2, h, ph), (3, w, pw))
        )
        out[i, :, dy : dy + ph, dx : dx + pw] = x[i, :, sy : sy + ph, sx : sx + pw]
    return out


def _perlin(x: Tensor, severity: float, gen: torch.Generator) -> Tensor:
    """DRAEM-style: a thresholded Perlin mask (10-30% of the image) blended with a noise texture.

    Severity is the blend opacity. DRAEM takes its textures from DTD; a fractal
    Perlin texture needs no download.
    """
    n, _, h, w = x.shape
    res = max(1, min(4, min(h, w) // 4))
    mask_noise = perlin_noise(n, h, w, res, gen).flatten(1)
    coverage = _uniform(n, 0.1, 0.3, gen)
    rank = ((1 - coverage) * (h * w - 1)).long()[:, None]
    threshold = mask_noise.sort(1).values.gather(1, rank)  # per-image quantile: the covered share
    mask = (mask_noise > threshold).float().view(n, 1, h, w)
    texture = fractal_noise(n, h, w, res, gen).flatten(1)
    lo, hi = texture.amin(1, keepdim=True), texture.amax(1, keepdim=True)
    texture = ((texture - lo) / (hi - lo).clamp_min(1e-8)).view(n, 1, h, w)
    beta = severity * mask.to(x.device, x.dtype)
    return x * (1 - beta) + beta * texture.to(x.device, x.dtype)


def _intensity(x: Tensor, severity: float, gen: torch.Generator) -> Tensor:
    """A local brightness and contrast change under a Gaussian blob (sigma 10-25% of the side)."""
    n, _, h, w = x.shape
    centre = torch.rand(n, 2, generator=gen)
    sigma = _uniform(n, 0.1, 0.25, gen)
    shift = 0.5 * _sign(n, gen)
    contrast = _uniform(n, -1.0, 1.0, gen)
    ys = (torch.arange(h) + 0.5) / h
    xs = (torch.arange(w) + 0.5) / w
    d2 = (ys[None, :, None] - centre[:, 0, None, None]) ** 2 + (
        xs[None, None, :] - centre[:, 1, None, None]
    ) ** 2
    blob = torch.exp(-d2 / (2 * sigma[:, None, None] ** 2))[:, None].to(x.device, x.dtype)
    change = shift.view(n, 1, 1, 1).to(x) + contrast.view(n, 1, 1, 1).to(x) * (x - 0.5)
    return (x + severity * blob * change).clamp(0, 1)


def _rotate(x: Tensor, severity: float, gen: torch.Generator) -> Tensor:
    """Semantic: the whole image rotated by up to severity x 180 degrees.

    Anomalous only where orientation is part of normality (digits, garments,
    aligned parts); on isotropic textures it is not an anomaly, and the
    calibration then finds no severity that the model-free reference notices.
    """
    n = len(x)
    angle = _sign(n, gen) * severity * math.pi * _uniform(n, 0.75, 1.0, gen)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp(0, 1)


def _mix(x: Tensor, severity: float, gen: torch.Generator) -> Tensor:
    """Semantic: a blend with another normal image (weight up to severity / 2), a ghosted double."""
    n = len(x)
    if n == 1:
        partner = x.flip(-1)
    else:
        perm = torch.randperm(n, generator=gen)
        index = torch.empty(n, dtype=torch.long)
        index[perm] = perm.roll(1)  # a derangement: nobody is mixed with itself
        partner = x[index.to(x.device)]
    alpha = (0.5 * severity * _uniform(n, 0.75, 1.0, gen)).view(n, 1, 1, 1).to(x)
    return (1 - alpha) * x + alpha * partner


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("cutdiff", _cutdiff, "soft patch moved toward the image's negative (ST-SSAD)"),
        Family("cutpaste", _cutpaste, "a rectangle of the image pasted elsewhere (CutPaste)"),
        Family(
            "perlin", _perlin, "Perlin-noise-shaped region replaced by a noise texture (DRAEM)", linear=True
        ),
        Family("intensity", _intensity, "local brightness and contrast change under a soft blob"),
        Family("rotate", _rotate, "the whole image rotated (semantic; for oriented data)"),
        Family("mix", _mix, "blend with another normal image (semantic)", linear=True),
    )
}


def get_family(name: str) -> Family:
    """Look up a synthetic-anomaly family; the error lists what exists."""
    if name not in FAMILIES:
        raise KeyError(f"unknown synthetic-anomaly family {name!r}; available: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def corrupt(name: str, x: Tensor, severity: float, seed: int) -> Tensor:
    """x corrupted by family `name` at `severity` in [0, 1], seeded (same seed, same corruption)."""
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"corrupt: severity={severity} for family {name!r} must lie in [0, 1]")
    return get_family(name).fn(x, float(severity), torch.Generator().manual_seed(seed))
