"""Model-free baselines: distance to the mean training image and unsigned intensity deviation."""

from __future__ import annotations

import pytest
import torch

from study.data import OneClassData
from study.trial.baselines import baseline_aurocs


def _data(shift: float) -> OneClassData:
    g = torch.Generator().manual_seed(0)
    normal = 0.5 + 0.05 * torch.randn(200, 1, 8, 8, generator=g)
    anomalous = 0.5 + shift + 0.05 * torch.randn(200, 1, 8, 8, generator=g)
    test = torch.cat([normal[100:], anomalous]).clamp(0, 1)
    labels = torch.cat([torch.zeros(100), torch.ones(200)]).long()
    return OneClassData(normal[:80].clamp(0, 1), normal[80:100].clamp(0, 1), test, labels, 1, 8)


@pytest.mark.parametrize("shift", [0.3, -0.3])
def test_intensity_baseline_needs_no_sign_and_mean_distance_sees_the_shift(shift: float) -> None:
    """Brighter or darker anomalies: the unsigned deviation finds both without looking at labels."""
    out = baseline_aurocs(_data(shift), ["mse", "ssim", "mse"], split_seed=0)
    assert set(out) == {"baseline_mse_auroc", "baseline_ssim_auroc", "baseline_intensity_auroc"}
    assert out["baseline_intensity_auroc"] > 0.99
    assert out["baseline_mse_auroc"] > 0.99


def test_without_a_difference_the_baselines_are_near_chance() -> None:
    out = baseline_aurocs(_data(0.0), ["mse"], split_seed=0)
    assert abs(out["baseline_intensity_auroc"] - 0.5) < 0.15
    assert abs(out["baseline_mse_auroc"] - 0.5) < 0.15
