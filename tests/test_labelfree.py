"""Label-free selection (ST-SSAD): augmentation, normalisation, alignment loss, self-tuning."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from study import labelfree
from study.labelfree import (
    alignment_loss,
    cutdiff,
    draw_patches,
    label_free_scores,
    normalise_embeddings,
    patch_shape,
    soft_patch_mask,
)
from study.training.losses import get_metric
from study.training.models import build_model

MSE = get_metric("mse").score
SIDE = 16


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids OpenMP oversubscription on shared cores (about 10x faster here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Projection(nn.Module):
    """Linear autoencoder that projects onto a few smooth images.

    Its reconstruction error is exactly the part of an image outside that
    subspace, so a patch shows up as error where it is: the pseudo-anomaly's
    size is visible in the embedding. The unused parameter lets tests check
    that tuning never writes a gradient into the model.
    """

    def __init__(self, basis: torch.Tensor) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(basis.flatten(1).T)  # [H*W, k], orthonormal columns
        self.register_buffer("q", q)
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return (flat @ self.q @ self.q.T).view_as(x) + 0 * self.unused


def _smooth_basis() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, SIDE), torch.linspace(0, 1, SIDE), indexing="ij")
    return torch.stack(
        [
            torch.ones(SIDE, SIDE),
            torch.sin(math.pi * yy),
            torch.sin(math.pi * xx),
            torch.cos(math.pi * (yy + xx)),
        ]
    )


def _smooth_images(n: int, seed: int) -> torch.Tensor:
    """Normal data: random smooth images from the basis span plus a little pixel noise, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    basis = _smooth_basis()
    c = torch.rand(n, 4, generator=g)
    x = 0.2 + 0.3 * c[:, :1, None] + 0.15 * torch.einsum("nk,khw->nhw", c[:, 1:] - 0.5, basis[1:])
    x = x + 0.02 * torch.randn(n, SIDE, SIDE, generator=g)
    return x.clamp(0, 1)[:, None]


def _random_sets(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(20, 5, generator=g, dtype=torch.float64),
        torch.randn(20, 5, generator=g, dtype=torch.float64) + 1.0,
        torch.randn(30, 5, generator=g, dtype=torch.float64) * 2.0,
    )


def test_normalised_set_has_unit_mean_squared_distance_to_centroid() -> None:
    z = torch.cat(_random_sets()) * 7.0 + 3.0
    zn = normalise_embeddings(z)
    n = len(z)
    assert torch.allclose(zn.mean(0), torch.zeros(5, dtype=z.dtype), atol=1e-12)
    assert zn.pow(2).sum(1).mean().item() == pytest.approx(1.0, rel=1e-12)
    # Equivalently the total pairwise squared distance over ordered pairs is 2 N^2.
    total = torch.cdist(zn, zn).pow(2).sum().item()
    assert total == pytest.approx(2 * n**2, rel=1e-10)


def test_alignment_loss_invariant_to_joint_translation_and_scaling() -> None:
    z_trn, z_aug, z_test = _random_sets()
    base = alignment_loss(z_trn, z_aug, z_test).item()
    shift = torch.tensor([5.0, -3.0, 100.0, 0.5, -7.0], dtype=torch.float64)
    for scale in (1e-3, 0.5, 40.0):
        moved = alignment_loss(scale * z_trn + shift, scale * z_aug + shift, scale * z_test + shift).item()
        assert moved == pytest.approx(base, rel=1e-10)
    # Moving one set alone is not a symmetry: the loss sees where the pseudo-anomalies are.
    assert alignment_loss(z_trn, z_aug + shift, z_test).item() != pytest.approx(base, rel=1e-3)


def test_alignment_loss_is_zero_when_both_centroids_sit_on_a_single_test_point() -> None:
    point = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    z_trn = point + torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    z_aug = point + torch.tensor([[0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    assert alignment_loss(z_trn, z_aug, point).item() == pytest.approx(0.0, abs=1e-12)


def test_cutdiff_gradient_matches_central_finite_differences() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 12, 10, generator=g, dtype=torch.float64)
    draw = draw_patches(3, seed=1)
    for a0 in ([0.3, 0.6], [0.9, 0.1]):
        a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a: cutdiff(x, a, draw), (a,), eps=1e-6, atol=1e-7, rtol=1e-4)
        (grad,) = torch.autograd.grad(cutdiff(x, a, draw).pow(2).sum(), a)
        assert (grad.abs() > 1e-6).all()  # both parameters change the image


def test_alignment_loss_gradient_matches_central_finite_differences() -> None:
    z_trn, z_aug, z_test = _random_sets()
    z_aug = z_aug.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda za: alignment_loss(z_trn, za, z_test), (z_aug,), eps=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("a", [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0), (1.0, 0.0), (0.25, 0.8)])
def test_soft_patch_covers_the_requested_area_ratio(a: tuple[float, float]) -> None:
    at = torch.tensor(a, dtype=torch.float64)
    area, aspect = patch_shape(at)
    mask = soft_patch_mask(at, draw_patches(4, seed=0), 96, 96)
    assert mask.min() >= 0 and mask.max() <= 1
    covered = mask.mean(dim=(1, 2, 3))
    assert torch.allclose(covered, area.expand(4), rtol=0.05)
    # The box keeps its shape: height / width of the covered extent follows the aspect ratio.
    height = mask[:, 0].amax(2).sum(1)
    width = mask[:, 0].amax(1).sum(1)
    assert torch.allclose(height / width, aspect.expand(4), rtol=0.1)


def test_cutdiff_stays_in_unit_range_and_only_changes_the_patch() -> None:
    x = torch.cat([torch.zeros(2, 1, SIDE, SIDE), torch.ones(2, 1, SIDE, SIDE), torch.rand(2, 1, SIDE, SIDE)])
    draw = draw_patches(len(x), seed=3)
    for a0 in ([0.0, 0.5], [1.0, 0.0], [1.0, 1.0]):
        a = torch.tensor(a0)
        out = cutdiff(x, a, draw)
        assert out.min() >= 0 and out.max() <= 1
        mask = soft_patch_mask(a, draw, SIDE, SIDE)
        assert torch.allclose(
            (out - x).abs(),
            mask * draw.strength.float()[:, None, None, None] * (2 * x - 1).abs(),
            atol=1e-6,
        )


def test_synthetic_auroc_separates_patched_images_and_is_chance_for_a_constant_score() -> None:
    normal = 0.25 + 0.05 * (torch.rand(64, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) - 0.5)
    a = torch.tensor([0.2, 0.5])

    def far_from_normal(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.25).abs().flatten(1).amax(1) * 1e3  # huge on patched pixels, small on normal ones

    def constant(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(x))

    pool = normal[:16]

    def auroc(score: object) -> float:
        result = label_free_scores(
            nn.Identity(), score, normal, pool, steps=0, area=float(a[0]), aspect=float(a[1])
        )
        return result.metrics["synthetic_auroc"]

    assert auroc(far_from_normal) > 0.99
    assert auroc(constant) == pytest.approx(0.5)


def test_no_public_function_accepts_labels() -> None:
    forbidden = ("label", "target", "truth")
    modules = [
        labelfree.stssad,
        labelfree.families,
        labelfree.calibration,
        labelfree.trial_scores,
        labelfree.perlin,
    ]
    public = [
        obj
        for module in modules
        for name, obj in vars(module).items()
        if not name.startswith("_") and callable(obj) and getattr(obj, "__module__", "") == module.__name__
    ]
    assert label_free_scores in public and labelfree.label_free_metrics in public
    for fn in public:
        for param in inspect.signature(fn).parameters:
            low = param.lower()
            assert low not in ("y", "y_true", "is_anomaly", "anomalous"), (fn.__name__, param)
            assert not any(word in low for word in forbidden if not low.startswith("target_auroc")), (
                fn.__name__,
                param,
            )


@pytest.mark.parametrize(("a_star", "a_start"), [(0.8, 0.2), (0.1, 0.8)])
def test_self_tuning_moves_area_toward_the_pool_anomalies(a_star: float, a_start: float) -> None:
    # A half-anomalous pool whose anomalies are CutDiff patches of a known area (another draw than tuning's).
    model = _Projection(_smooth_basis())
    normal = _smooth_images(200, seed=0)
    pool = _smooth_images(200, seed=1)
    pool[:100] = cutdiff(pool[:100], torch.tensor([a_star, 0.5]), draw_patches(100, seed=123))
    result = label_free_scores(model, MSE, normal, pool, area=a_start, steps=30, lr=0.2, seed=0)
    m = result.metrics
    assert abs(m["aug_area"] - a_star) < 0.5 * abs(a_start - a_star)
    assert m["alignment_loss_tuned"] < m["alignment_loss"]
    assert 0 < m["aug_aspect"] < 1
    assert model.unused.grad is None


def test_same_seed_same_result_and_model_left_untouched() -> None:
    torch.manual_seed(0)
    model = build_model("conv_ae", 1, 28, 16, 8)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    normal = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    pool = torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    kw = {"steps": 3, "batch_size": 16, "tune_batch": 16}
    first = label_free_scores(model, MSE, normal, pool, seed=5, **kw).metrics
    second = label_free_scores(model, MSE, normal, pool, seed=5, **kw).metrics
    other = label_free_scores(model, MSE, normal, pool, seed=6, **kw).metrics
    assert first == second
    assert first != other
    assert set(first) == {
        "synthetic_auroc",
        "alignment_loss",
        "synthetic_auroc_tuned",
        "alignment_loss_tuned",
        "aug_area",
        "aug_aspect",
    }
    assert all(math.isfinite(v) for v in first.values())
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # eval mode: BatchNorm statistics untouched


def test_rejects_bad_inputs_with_a_message() -> None:
    model = _Projection(_smooth_basis())
    normal = _smooth_images(8, seed=0)
    with pytest.raises(ValueError, match="area"):
        label_free_scores(model, MSE, normal, normal, area=1.5)
    with pytest.raises(ValueError, match="image shape"):
        label_free_scores(model, MSE, normal, torch.rand(8, 1, SIDE + 1, SIDE))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_model_device() -> None:
    model = build_model("conv_ae", 1, 28, 16, 8).cuda()
    normal = torch.rand(32, 1, 28, 28)
    pool = torch.rand(32, 1, 28, 28)
    m = label_free_scores(model, MSE, normal, pool, steps=2, tune_batch=16).metrics
    assert all(math.isfinite(v) for v in m.values())
