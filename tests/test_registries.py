"""Contract tests every registry entry must pass (one parametrised test per contract)."""

from __future__ import annotations

import pytest
import torch

from study.training.losses import AMPLIFICATIONS, METRICS, get_amplification, get_metric
from study.training.models import MODELS, build_model


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_model_round_trips_shape_into_unit_range(arch: str, channels: int, size: int) -> None:
    model = build_model(arch, channels, size, latent_dim=8, width=4)
    x = torch.rand(2, channels, size, size)
    y = model(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_model_handles_large_images(arch: str) -> None:
    model = build_model(arch, 3, 256, latent_dim=8, width=4)
    assert model(torch.rand(1, 3, 256, 256)).shape == (1, 3, 256, 256)


def test_unknown_names_list_what_exists() -> None:
    with pytest.raises(KeyError, match="conv_ae"):
        build_model("vae", 1, 28)
    with pytest.raises(KeyError, match="ssim"):
        get_metric("psnr")
    with pytest.raises(KeyError, match="linear"):
        get_amplification("cubic")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_scores_identical_images_zero_and_different_positive(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=gen)
    metric = METRICS[name]
    assert torch.allclose(metric.score(x, x), torch.zeros(4), atol=1e-6)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert bool((metric.score(noisy, x) > 1e-3).all())
    assert metric.score(x, x).shape == (4,)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_is_differentiable(name: str) -> None:
    x = torch.rand(2, 3, 32, 32)
    x_hat = torch.rand(2, 3, 32, 32, requires_grad=True)
    METRICS[name].loss(x_hat, x).backward()
    assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all()


def test_metrics_order_noise_levels() -> None:
    """More corruption scores higher under every metric (the score is an error, not a similarity)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 28, 28, generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    for metric in METRICS.values():
        low = metric.score((x + 0.05 * noise).clamp(0, 1), x)
        high = metric.score((x + 0.4 * noise).clamp(0, 1), x)
        assert bool((high > low).all()), metric.name


@pytest.mark.parametrize("name", sorted(AMPLIFICATIONS))
def test_amplification_zero_at_zero_increasing_and_slope_factor(name: str) -> None:
    amp = AMPLIFICATIONS[name]
    lam = 7.0
    losses = torch.linspace(0.0, 0.2, 21, dtype=torch.float64)
    out = amp.apply(losses, lam)
    assert float(out[0]) == 0.0
    assert bool((out.diff() > 0).all())
    zero = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(amp.apply(zero, lam), zero)
    assert float(grad) == pytest.approx(lam)  # what the effective-learning-rate twin matches


def test_linear_factor_one_is_the_plain_loss() -> None:
    loss = torch.tensor(0.123)
    assert float(AMPLIFICATIONS["linear"].apply(loss, 1.0)) == pytest.approx(0.123)


def test_exp_and_log_follow_their_definitions() -> None:
    loss = torch.tensor(0.3, dtype=torch.float64)
    assert float(AMPLIFICATIONS["exp"].apply(loss, 2.0)) == pytest.approx(
        torch.exp(torch.tensor(0.6)).item() - 1
    )
    u = 1.0 + 1e-3  # log's pole sits just above the metric's upper bound (1 by default)
    assert float(AMPLIFICATIONS["log"].apply(loss, 2.0)) == pytest.approx(
        -2.0 * u * torch.log(torch.tensor(1 - 0.3 / u, dtype=torch.float64)).item()
    )


@pytest.mark.parametrize("amp_name", sorted(AMPLIFICATIONS))
@pytest.mark.parametrize("metric_name", sorted(METRICS))
def test_amplification_is_finite_and_increasing_over_the_metric_range(
    amp_name: str, metric_name: str
) -> None:
    """1 - SSIM reaches 2: every form must stay defined and increasing up to each metric's upper bound."""
    upper = METRICS[metric_name].upper
    losses = torch.linspace(0.0, upper, 201, dtype=torch.float64)
    out = AMPLIFICATIONS[amp_name].apply(losses, 3.0, upper)
    assert bool(torch.isfinite(out).all())
    assert bool((out.diff() > 0).all())


def test_metric_upper_bounds_hold_on_extreme_images() -> None:
    x = torch.zeros(4, 1, 16, 16)
    x[:, :, ::2] = 1.0  # stripes: the extreme pair is this image and its inverse
    for metric in METRICS.values():
        assert float(metric.score(1.0 - x, x).max()) <= metric.upper + 1e-6, metric.name
