"""Training invariants that pin the science of amplification."""

from __future__ import annotations

import copy

import pytest
import torch

from study.core.config import TrialConfig
from study.training.models import build_model
from study.training.train import TrainState, train

CPU = torch.device("cpu")


def _data(n: int = 96) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(3))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("conv_ae", 1, 28, latent_dim=8, width=4)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _trained(**overrides: object) -> tuple[torch.nn.Module, object]:
    cfg = TrialConfig(epochs=2, batch_size=32, **overrides)
    model = _model()
    return model, train(model, _data(), cfg, CPU)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_linear_factor_equals_scaled_learning_rate(momentum: float) -> None:
    """Without weight decay, SGD on λ·L at lr η takes exactly the steps of L at lr η·λ."""
    lam, lr = 10.0, 0.01
    amplified, _ = _trained(optimizer="sgd", momentum=momentum, lr=lr, amplification="linear", factor=lam)
    scaled, _ = _trained(optimizer="sgd", momentum=momentum, lr=lr * lam, amplification="linear", factor=1.0)
    plain, _ = _trained(optimizer="sgd", momentum=momentum, lr=lr, amplification="linear", factor=1.0)
    assert torch.allclose(_flat(amplified), _flat(scaled), rtol=1e-4, atol=1e-6)
    # and the factor really changed something (the comparison is not vacuous)
    assert not torch.allclose(_flat(amplified), _flat(plain), rtol=1e-3, atol=1e-5)


def test_adam_is_nearly_invariant_to_linear_factor() -> None:
    """Adam normalises gradient scale: λ = 1 and λ = 100 move the weights almost identically
    (up to ε), while the same λ changes SGD's trajectory completely."""
    init = _flat(_model())

    def relative_gap(**kw: object) -> float:
        one, _ = _trained(factor=1.0, **kw)
        hundred, _ = _trained(factor=100.0, **kw)
        return float((_flat(one) - _flat(hundred)).norm() / (_flat(one) - init).norm())

    adam = relative_gap(optimizer="adam", lr=1e-3)
    sgd = relative_gap(optimizer="sgd", lr=1e-3, momentum=0.9)
    assert adam < 0.1
    assert sgd > 10 * adam


def test_both_losses_are_logged_per_epoch() -> None:
    _, result = _trained(amplification="exp", factor=3.0)
    assert result.status == "finished" and len(result.history) == 2
    for row in result.history:
        assert row["train_amp_loss"] > row["train_base_loss"] > 0  # expm1(3L) > L for L > 0


def test_huge_exp_factor_diverges_without_raising() -> None:
    _, result = _trained(amplification="exp", factor=1e5, optimizer="sgd", lr=0.1)
    assert result.status == "diverged"
    assert result.diverged_epoch == 1
    assert not torch.isfinite(torch.tensor(result.diverged_value))


def test_resume_from_snapshot_matches_uninterrupted_training() -> None:
    cfg = TrialConfig(epochs=3, batch_size=32, optimizer="sgd", lr=0.05)
    snapshots: dict[int, TrainState] = {}
    full = _model()
    uncut = train(
        full, _data(), cfg, CPU, on_epoch=lambda e, s, snap: snapshots.__setitem__(e, copy.deepcopy(snap()))
    )
    resumed = _model()
    result = train(resumed, _data(), cfg, CPU, state=snapshots[1])
    # the resumed run keeps epoch 1 from the snapshot and trains epochs 2 and 3 itself
    assert len(result.history) == 3 and result.history[0] == uncut.history[0]
    assert result.history[2]["train_base_loss"] == pytest.approx(
        uncut.history[2]["train_base_loss"], rel=1e-5
    )
    assert torch.allclose(_flat(full), _flat(resumed), atol=1e-6)
