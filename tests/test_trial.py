"""One trial end to end (no Ray, no MLflow): the unit of work of every study."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from study.core.config import TrialConfig
from study.trial import TrialResult, run_trial

TINY = {
    "data": {"name": "digits", "normal_classes": [0]},
    "arch": "conv_ae",
    "latent_dim": 8,
    "width": 4,
    "epochs": 2,
    "batch_size": 32,
    "lr": 0.03,  # at the default 1e-3 two epochs leave this tiny model collapsed (constant output)
    "eval_limit": 200,
    "landscape": {"batch_size": 32, "power_iters": 20, "hutchinson_probes": 4, "grid_1d": 5, "grid_2d": 3},
    "label_free": {"pool_size": 100, "tune_steps": 3},
}


@pytest.fixture(scope="module")
def finished() -> TrialResult:
    return run_trial(TrialConfig.from_dict(TINY))


def test_trial_reports_detection_steepness_and_label_free(finished: TrialResult) -> None:
    m = finished.metrics
    assert finished.status == "finished"
    for key in (
        "auroc",
        "ap",
        "sharpness",
        "hessian_trace",
        "slice_curvature",
        "amp_sharpness",
        "synthetic_auroc",
        "alignment_loss",
        "synthetic_auroc_tuned",
        "train_time_s",
    ):
        assert key in m and np.isfinite(m[key]), key
    assert 0.0 <= m["auroc"] <= 1.0
    # linear lambda = 1: the amplified objective is the base loss, so its steepness is the same
    assert m["amp_sharpness"] == pytest.approx(m["sharpness"], rel=1e-4)
    assert len(finished.history) == 2
    assert {"train_base_loss", "train_amp_loss", "val_auroc"} <= set(finished.history[0])


def test_scores_cover_the_test_set_and_reproduce_the_auroc(finished: TrialResult) -> None:
    from sklearn.metrics import roc_auc_score

    scores, labels = finished.scores["scores"], finished.scores["labels"]
    part = finished.scores["test_part"]
    assert scores.shape == labels.shape == part.shape and set(np.unique(labels)) == {0, 1}
    assert roc_auc_score(labels[part], scores[part]) == pytest.approx(finished.metrics["auroc"])


def test_validation_and_test_parts_are_disjoint_stratified_and_seeded() -> None:
    from study.trial import VAL_FRACTION, selection_split

    labels = np.array([0] * 300 + [1] * 700)
    val, test = selection_split(labels, seed=3)
    assert not set(val) & set(test) and len(val) + len(test) == len(labels)
    assert labels[val].mean() == pytest.approx(labels.mean(), abs=0.01)  # stratified
    assert len(val) == pytest.approx(VAL_FRACTION * len(labels), abs=1)
    again, _ = selection_split(labels, seed=3)
    other, _ = selection_split(labels, seed=4)
    np.testing.assert_array_equal(val, again)
    assert not np.array_equal(val, other)


def test_a_trained_model_is_not_collapsed(finished: TrialResult) -> None:
    from study.trial.collapse import VAR_RATIO_MIN

    assert finished.metrics["collapsed"] == 0.0
    assert finished.metrics["collapse_var_ratio"] >= VAR_RATIO_MIN


def test_exp_at_a_large_factor_under_sgd_collapses() -> None:
    """Constant output: the reconstructions keep almost none of the inputs' variance."""
    cfg = TrialConfig.from_dict(
        {**TINY, "optimizer": "sgd", "lr": 0.01, "amplification": "exp", "factor": 100.0, "batch_size": 64}
        | {"label_free": {"enabled": False}}
    )
    result = run_trial(cfg)
    assert result.status == "collapsed"
    assert result.metrics["collapsed"] == 1.0
    assert result.metrics["collapse_var_ratio"] < 0.01
    assert result.model_state is not None and "auroc" in result.metrics


def test_saved_result_files_are_what_the_driver_logs_and_scores_with(
    finished: TrialResult, tmp_path: Path
) -> None:
    """`save` writes the files the MLflow callback reads; the scorer rebuilt from the weights folder
    the driver logs scores images as the trial's own model does."""
    from study.core.vocab import RESULT_FILE, SCORES_FILE
    from study.serving.scorer import load_scorer, write_weights
    from study.training.evaluate import anomaly_scores
    from study.training.losses import get_metric

    finished.save(tmp_path)
    summary = json.loads((tmp_path / RESULT_FILE).read_text())
    assert (
        TrialConfig.from_dict(summary["config"]) == finished.config and summary["metrics"] == finished.metrics
    )
    with np.load(tmp_path / SCORES_FILE) as f:
        np.testing.assert_array_equal(f["scores"], finished.scores["scores"])
    scorer = load_scorer(write_weights(tmp_path, tmp_path / "weights"))
    x = torch.rand(3, 1, 8, 8)
    expected = anomaly_scores(finished.build_model(), x, get_metric(finished.config.metric))
    np.testing.assert_allclose(scorer.predict(x.numpy()), expected, rtol=1e-5, atol=1e-8)


def test_same_seed_same_result() -> None:
    cfg = TrialConfig.from_dict({**TINY, "label_free": {"enabled": False}, "epochs": 1})
    a, b = run_trial(cfg), run_trial(cfg)
    assert a.metrics["auroc"] == b.metrics["auroc"]
    assert a.metrics["sharpness"] == b.metrics["sharpness"]


def test_huge_exp_factor_gives_a_diverged_result_not_a_crash() -> None:
    cfg = TrialConfig.from_dict(
        {**TINY, "amplification": "exp", "factor": 1e6, "optimizer": "sgd", "lr": 0.1}
    )
    result = run_trial(cfg)
    assert result.status == "diverged"
    assert result.metrics["diverged_epoch"] == 1
    assert np.isfinite(result.metrics["diverged_value"])  # MLflow keeps finite numbers only
    assert "auroc" not in result.metrics and result.model_state is None


def test_trial_command_prints_json_and_exits_zero(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "study.cli",
            "trial",
            "--dataset",
            "digits",
            "--normal-class",
            "1",
            "--epochs",
            "2",
            "--width",
            "4",
            "--latent-dim",
            "8",
            "--set",
            "landscape.power_iters=3",
            "--set",
            "landscape.grid_2d=3",
            "--set",
            "label_free.enabled=false",
            "--set",
            "lr=0.03",  # the default 1e-3 (or one epoch) leaves this tiny model collapsed
            "--set",
            "batch_size=32",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["status"] == "finished" and payload["config"]["data"]["normal_classes"] == [1]
    assert (tmp_path / "r" / "model.pt").exists()
    assert "AUROC" in out.stderr


def test_missing_dataset_is_a_clear_error_with_exit_2(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "study.cli",
            "trial",
            "--dataset",
            "fashion_mnist",
            "--data-path",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "dataset-fashion-mnist" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_fashion_mnist_conv_ae_reaches_the_reference_auroc() -> None:
    """DESIGN's probe: class 0 normal, conv_ae, mse, Adam, 5 epochs -> AUROC >= 0.88."""
    cfg = TrialConfig.from_dict(
        {
            "data": {"name": "fashion_mnist", "normal_classes": [0]},
            "arch": "conv_ae",
            "metric": "mse",
            "optimizer": "adam",
            "epochs": 5,
            "eval_every": 0,
            "landscape": {"power_iters": 0, "hutchinson_probes": 0, "grid_1d": 0, "grid_2d": 0},
            "label_free": {"enabled": False},
        }
    )
    result = run_trial(cfg)
    assert result.status == "finished"
    assert result.metrics["auroc"] >= 0.88


def test_amplified_slices_from_base_slices_equal_direct_measurement() -> None:
    """The trial derives g(L) slices from the base slices; measuring g(L) directly must agree."""
    from study.landscape import measure_steepness
    from study.training.losses import get_amplification, get_metric
    from study.training.models import build_model

    torch.manual_seed(0)
    model = build_model("conv_ae", 1, 8, latent_dim=4, width=4).eval()
    x = torch.rand(16, 1, 8, 8)
    mse, exp = get_metric("mse"), get_amplification("exp")
    opts = dict(seed=0, power_iters=0, hutchinson_probes=0, grid_1d=5, grid_2d=3)
    base = measure_steepness(model, x, mse.loss, **opts)
    direct = measure_steepness(model, x, lambda xh, y: exp.apply(mse.loss(xh, y), 30.0), **opts)
    for key in ("loss_1d", "loss_2d"):
        derived = exp.apply(torch.from_numpy(base.arrays[key]), 30.0).numpy()
        np.testing.assert_allclose(derived, direct.arrays[key], rtol=1e-5)
