"""Autoencoder architectures (a registry).

Contract: a model maps x of shape [N, C, H, W] in [0, 1] to a reconstruction of
the same shape in [0, 1] (sigmoid output). Every model is built by
`build_model(arch, in_channels, image_size, latent_dim, width)`; it works for
1 or 3 channels and square images from 28 to 256 pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Tensor = torch.Tensor


def _down_sizes(image_size: int, min_size: int = 4) -> list[int]:
    """Spatial sizes after each stride-2 conv, stopping before going under `min_size`."""
    sizes = [image_size]
    while (sizes[-1] + 1) // 2 >= min_size and len(sizes) < 6:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class ConvAE(nn.Module):
    """Strided-conv encoder to a dense latent, mirrored upsampling decoder."""

    def __init__(self, in_channels: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.sizes = _down_sizes(image_size)  # e.g. 28 -> [28, 14, 7]
        chans = [width * 2**i for i in range(len(self.sizes) - 1)]
        enc: list[nn.Module] = []
        c = in_channels
        for ch in chans:
            enc.append(_conv_block(c, ch, 2))
            c = ch
        self.encoder = nn.Sequential(*enc)
        self.bottom = (c, self.sizes[-1])
        flat = c * self.sizes[-1] ** 2
        self.to_latent = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)
        dec: list[nn.Module] = []
        for i in reversed(range(len(chans))):
            c_out = chans[i - 1] if i > 0 else width
            dec += [nn.Upsample(size=self.sizes[i]), _conv_block(c, c_out, 1)]
            c = c_out
        dec += [nn.Conv2d(c, in_channels, 3, 1, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(x)  # [N, c, s, s]
        z = self.to_latent(h.flatten(1))  # [N, latent]
        c, s = self.bottom
        return self.decoder(self.from_latent(z).view(-1, c, s, s))


class MlpAE(nn.Module):
    """Fully connected autoencoder on flattened pixels."""

    def __init__(self, in_channels: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.shape = (in_channels, image_size, image_size)
        d = in_channels * image_size * image_size
        hidden = width * 8
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(d, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, latent_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(latent_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, d),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(-1, *self.shape)


class UNetAE(nn.Module):
    """U-Net with skip connections around a dense bottleneck.

    Skips make reconstruction easy, anomalies included; it is here because
    users ask whether LAMP changes that.
    """

    def __init__(self, in_channels: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.sizes = _down_sizes(image_size)
        chans = [width * 2**i for i in range(len(self.sizes) - 1)]
        self.stem = _conv_block(in_channels, width, 1)
        self.downs = nn.ModuleList()
        c = width
        for ch in chans:
            self.downs.append(_conv_block(c, ch, 2))
            c = ch
        self.bottom = (c, self.sizes[-1])
        flat = c * self.sizes[-1] ** 2
        self.bottleneck = nn.Sequential(
            nn.Linear(flat, latent_dim), nn.LeakyReLU(0.2), nn.Linear(latent_dim, flat)
        )
        self.ups = nn.ModuleList()
        for i in reversed(range(len(chans))):
            skip = chans[i - 1] if i > 0 else width
            self.ups.append(
                nn.ModuleDict({"up": nn.Upsample(size=self.sizes[i]), "conv": _conv_block(c + skip, skip, 1)})
            )
            c = skip
        self.head = nn.Sequential(nn.Conv2d(c, in_channels, 3, 1, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        skips = [h]
        for down in self.downs:
            h = down(h)
            skips.append(h)
        c, s = self.bottom
        h = self.bottleneck(h.flatten(1)).view(-1, c, s, s)
        skips.pop()  # the bottom feature map went through the bottleneck
        for up in self.ups:
            h = up["conv"](torch.cat([up["up"](h), skips.pop()], dim=1))
        return self.head(h)


ModelFactory = Callable[[int, int, int, int], nn.Module]

MODELS: dict[str, ModelFactory] = {
    "conv_ae": ConvAE,
    "mlp_ae": MlpAE,
    "unet_ae": UNetAE,
}


def build_model(
    arch: str, in_channels: int, image_size: int, latent_dim: int = 32, width: int = 32
) -> nn.Module:
    """Instantiate a registered architecture; the error lists what exists."""
    if arch not in MODELS:
        raise KeyError(f"unknown architecture {arch!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[arch](in_channels, image_size, latent_dim, width)
