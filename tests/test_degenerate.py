"""Degenerate models (study/selection/degeneracy.py): trivial reconstructors built as torch modules are flagged
through the real evaluation code; a trained model is not; the DeLong tests hold their level."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from study.core.config import TrialConfig
from study.data import load_dataset
from study.selection.degeneracy import ALPHA, MEAN_RANK_CORR, delong, p_greater
from study.trial import TrialResult, measure_trained, run_trial
from tests.test_trial import TINY

CPU = torch.device("cpu")


def _config(**changes: object) -> TrialConfig:
    d = copy.deepcopy(TINY) | {"label_free": {"enabled": False}} | changes
    return TrialConfig.from_dict(d)


class Identity(nn.Module):
    """Output = input (one parameter, 1.0, so steepness has something to measure)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c * x


class ShrunkMean(nn.Module):
    """mean + c·(x − mean): follows its input a little, ranks samples as the mean image does."""

    def __init__(self, mean: torch.Tensor, c: float = 0.15) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c))
        self.register_buffer("mean", mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean + self.c * (x - self.mean)


def _measure(model: nn.Module, cfg: TrialConfig) -> TrialResult:
    data = load_dataset(cfg.data)
    return measure_trained(model, data, cfg, CPU, {"epochs_run": 1.0, "train_time_s": 0.0}, [])


@pytest.mark.parametrize("metric", ["mse", "ssim"])
def test_identity_and_shrunk_mean_models_are_degenerate(metric: str) -> None:
    cfg = _config(metric=metric)
    mean = load_dataset(cfg.data).train.mean(0)
    identity, shrunk = _measure(Identity(), cfg), _measure(ShrunkMean(mean), cfg)
    for result in (identity, shrunk):
        assert result.status == "degenerate"
        assert result.metrics["degenerate"] == 1.0 and result.metrics["beats_baseline"] == 0.0
        assert result.metrics["collapsed"] == 0.0  # the collapse rule alone lets both through
    assert identity.metrics["chance_p"] >= ALPHA  # anomalies reconstructed as well as normals
    assert identity.metrics["collapse_loss_ratio"] < 1.0  # far better than the mean image at reconstructing
    assert shrunk.metrics["mean_rank_corr"] >= MEAN_RANK_CORR  # its ranking is the mean image's
    assert shrunk.metrics["collapse_var_ratio"] > 0.01
    assert shrunk.metrics["val_auroc"] > 0.9  # a high AUROC, all of it the baseline's


def test_a_trained_model_is_not_degenerate() -> None:
    # adam, batch 8, 3 epochs: this small model reconstructs held-out normals better than the mean image
    result = run_trial(_config(batch_size=8, lr=0.01, epochs=3))
    assert result.status == "finished"
    m = result.metrics
    assert m["degenerate"] == 0.0 and m["collapse_loss_ratio"] < 1.0
    assert m["chance_p"] < ALPHA and m["mean_rank_corr"] < MEAN_RANK_CORR
    assert m["baseline_margin"] == pytest.approx(m["val_auroc"] - m["model_free_auroc"])


def test_delong_aurocs_match_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.normal(size=(3, 200)) + labels, 1)  # rounded: many ties
    aucs, cov = delong(scores, labels)
    for row, auc in zip(scores, aucs, strict=True):
        assert auc == pytest.approx(roc_auc_score(labels, row))
    assert np.all(np.linalg.eigvalsh(cov) > -1e-12)


def rejections(draw: Callable[[np.random.Generator], bool], n_sims: int, seed: int) -> float:
    """Share of `n_sims` seeded draws in which the test rejects (bench/degenerate_levels.py runs more)."""
    rng = np.random.default_rng(seed)
    return float(np.mean([draw(rng) for _ in range(n_sims)]))


def _paired_p(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> float:
    aucs, cov = delong(np.vstack([a, b]), labels)
    return p_greater(aucs[0] - aucs[1], cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def paired_null(rng: np.random.Generator) -> bool:
    """Two scores equal in AUROC by symmetry (same latent, iid Cauchy noise, rounded: heavy tails, ties)."""
    labels = np.r_[np.ones(25, bool), np.zeros(75, bool)]
    latent = rng.normal(size=100) + 0.8 * labels
    a, b = (np.round(latent + rng.standard_cauchy(100) * 0.3, 1) for _ in range(2))
    return _paired_p(a, b, labels) < ALPHA


def paired_gain(rng: np.random.Generator) -> bool:
    """The first score is better by about 0.1 of AUROC."""
    labels = np.r_[np.ones(25, bool), np.zeros(75, bool)]
    latent = rng.normal(size=100)
    a = latent + 1.6 * labels + rng.normal(size=100) * 0.5
    b = latent + 0.9 * labels + rng.normal(size=100) * 0.5
    return _paired_p(a, b, labels) < ALPHA


def chance_null(rng: np.random.Generator) -> bool:
    """Scores independent of the labels, on 4 values (heavy ties), 15 anomalies and 60 normals."""
    labels = np.r_[np.ones(15, bool), np.zeros(60, bool)]
    aucs, cov = delong(rng.integers(0, 4, size=75).astype(float), labels)
    return p_greater(aucs[0] - 0.5, cov[0, 0]) < ALPHA


def _bound(n: int) -> float:
    return ALPHA + 2.5 * np.sqrt(ALPHA * (1 - ALPHA) / n)


def test_paired_test_holds_its_level_with_heavy_tails_and_ties_and_sees_a_gain() -> None:
    assert rejections(paired_null, 600, 1) <= _bound(600)
    assert rejections(paired_gain, 200, 2) > 0.8


def test_chance_test_holds_its_level_with_discrete_scores() -> None:
    assert rejections(chance_null, 600, 3) <= _bound(600)


def test_delong_refuses_a_class_with_fewer_than_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2 samples of each class"):
        delong(np.arange(5.0), np.array([1, 0, 0, 0, 0]))


def test_a_validation_part_too_small_to_test_flags_nothing() -> None:
    """One validation anomaly (a tiny folder study): no DeLong variance, so no p-value and no flag,
    even for scores that rank exactly like the mean-image distance."""
    from study.selection.degeneracy import check_degeneracy

    labels = np.array([1, 0, 0, 0])
    mean_like = np.array([4.0, 1.0, 2.0, 3.0])
    check = check_degeneracy(mean_like, labels, {"mean_image": mean_like.copy()}, loss_ratio=2.0)
    assert not check.degenerate and check.reasons == ()
    assert np.isnan(check.beats_p) and np.isnan(check.chance_p) and check.metrics["degenerate"] == 0.0
    enough = np.array([1, 1, 0, 0, 0])
    flagged = check_degeneracy(
        np.array([5.0, 4, 1, 2, 3]), enough, {"mean_image": np.array([5.0, 4, 1, 2, 3])}, 2.0
    )
    assert np.isfinite(flagged.beats_p)  # the guard is the sample size, not the scores
