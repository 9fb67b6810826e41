"""Seeded 2-D Perlin gradient noise in torch (for DRAEM-style texture anomalies; nothing to download).

Perlin noise puts a random unit gradient on every corner of a `res x res`
lattice over the image and blends the four corner ramps with the quintic fade
6t^5 - 15t^4 + 10t^3, so the field is smooth, zero at lattice corners and has
blobs about one cell wide. DRAEM thresholds it to get irregular anomaly masks.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _fade(t: Tensor) -> Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(n: int, height: int, width: int, res: int, generator: torch.Generator) -> Tensor:
    """n fields [n, height, width] of Perlin noise with `res` lattice cells per side (float32, CPU).

    Values lie in about [-0.7, 0.7]; the same generator state gives the same fields.
    """
    if res < 1 or height < 1 or width < 1:
        raise ValueError(f"perlin_noise: res={res}, height={height}, width={width} must all be >= 1")
    angles = 2 * math.pi * torch.rand(n, res + 1, res + 1, generator=generator)
    grads = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)  # [n, res+1, res+1, 2]
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * res
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * res
    iy, ix = ys.floor().long(), xs.floor().long()
    ty, tx = ys - iy, xs - ix  # position inside the cell, [H], [W]

    def corner(dy: int, dx: int) -> Tensor:
        g = grads[:, iy + dy][:, :, ix + dx]  # [n, H, W, 2]
        return g[..., 0] * (ty - dy)[:, None] + g[..., 1] * (tx - dx)[None, :]

    fy, fx = _fade(ty)[:, None], _fade(tx)[None, :]
    top = corner(0, 0) * (1 - fx) + corner(0, 1) * fx
    bottom = corner(1, 0) * (1 - fx) + corner(1, 1) * fx
    return top * (1 - fy) + bottom * fy


def fractal_noise(
    n: int, height: int, width: int, res: int, generator: torch.Generator, octaves: int = 3
) -> Tensor:
    """Sum of `octaves` Perlin fields, each at twice the lattice resolution and half the amplitude."""
    out = torch.zeros(n, height, width)
    for k in range(octaves):
        out += perlin_noise(n, height, width, res * 2**k, generator) / 2**k
    return out
