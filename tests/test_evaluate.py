"""Scoring in batches: the batch size sets the speed, never the scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from study.training.evaluate import CPU_BATCH_PIXELS, anomaly_scores, eval_batch_size
from study.training.losses import get_metric
from study.training.models import build_model


@pytest.mark.parametrize("arch", ["conv_ae", "unet_ae"])
def test_scores_do_not_depend_on_the_batch_size(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch=arch, in_channels=1, image_size=28, latent_dim=8, width=4)
    model.train()  # BatchNorm must use its running statistics while scoring, whatever the mode was
    x = torch.rand(50, 1, 28, 28)
    metric = get_metric("ssim")
    one = anomaly_scores(model, x, metric, batch_size=1)
    np.testing.assert_allclose(anomaly_scores(model, x, metric), one, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(anomaly_scores(model, x, metric, batch_size=1024), one, rtol=1e-5, atol=1e-7)
    assert model.training  # the mode is given back


def test_cpu_batches_hold_a_fixed_number_of_pixels() -> None:
    cpu = torch.device("cpu")
    for shape in [(1, 28, 28), (3, 64, 64), (1, 128, 128), (3, 512, 512)]:
        n = eval_batch_size(torch.zeros(shape), cpu)
        assert n >= 1 and (n * int(np.prod(shape)) <= CPU_BATCH_PIXELS or n == 1)
        assert (n + 1) * int(np.prod(shape)) > CPU_BATCH_PIXELS
