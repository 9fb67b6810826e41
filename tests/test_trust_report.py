"""What a report concludes, checked against planted truths in synthetic studies (data, not pixels).

Each study is written straight to MLflow by `tests._synthetic_study` with a known
truth; the report's extract functions read it back and their data must state
that truth, and the captions drawn from the data must not claim more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from scipy.stats import spearmanr

from reports.sections.effects import draw_effects, extract_effects
from reports.sections.labelfree import extract_label_free
from reports.sections.lr_control import draw_lr_control, extract_lr_control
from reports.sections.sensitivity import extract_sensitivity
from reports.sections.steepness import draw_steepness, extract_steepness
from reports.sections.summary import extract_summary
from reports.source.extract import ArtifactLoader, load_study
from tests._synthetic_study import Planted, SyntheticGrid, write_synthetic_study

ONE_ARCH = SyntheticGrid(archs=("conv_ae",), seeds=(0, 1, 2))
# Cells are (metric, optimizer, form, factor); "twin" keys an lr twin by the factor it matches.
GAIN = ("mse", "sgd", "exp", 10.0)  # +0.05 in one SGD cell, its twin gets nothing: more than an lr change
INTERACTION = ("mse", "adam", "exp", 10.0)  # the same cell under Adam: -0.07 (averaged: -0.01)
PURE_LR = [("ssim", "sgd", "exp", 10.0), ("ssim", "sgd", "linear", 10.0), ("ssim", "sgd", "twin", 10.0)]
PLANTED = Planted(shifts={GAIN: 0.05, INTERACTION: -0.07, **dict.fromkeys(PURE_LR, 0.05)}, sigma=0.01)
OVERCLAIMS = ("no more than", "beyond seed noise", "within seed noise", "no effect")


@pytest.fixture(scope="module")
def store():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="lamp-trust-", dir=base))
    yield root, f"sqlite:///{root / 'mlflow.db'}"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def planted(store):
    """One study holding the effect truths in separate cells; every other cell has no effect."""
    root, uri = store
    logged = write_synthetic_study(
        uri, "planted", root / "art-planted", grid=ONE_ARCH, planted=PLANTED, artifacts="none", n_failed=0
    )
    return logged, load_study("planted", tracking_uri=uri)


def _verdicts(effects) -> dict[tuple, str]:
    return {
        (r.metric, r.optimizer, r.amplification, r.factor, r.kind): r.verdict for r in effects.itertuples()
    }


def _logged_mean(logged, metric: str, optimizer: str, form: str, factor: float) -> float:
    twin = form == "twin"
    values = [
        t.metrics["auroc"]
        for t in logged.by_status("finished")
        if (t.config.metric, t.config.optimizer) == (metric, optimizer)
        and (
            t.config.twin_of == factor
            if twin
            else (t.config.amplification, t.config.factor) == (form, factor)
        )
        and (twin or t.config.twin_of == 0.0)
    ]
    return float(np.mean(values))


def test_planted_gain_in_one_sgd_cell_is_found_and_nothing_else_is(planted) -> None:
    logged, study = planted
    data = extract_effects(study)
    verdicts = _verdicts(data.effects)
    expected_gain = {
        (*GAIN, "gain"),
        (*GAIN, "vs_twin"),
        (*PURE_LR[0], "gain"),
        (*PURE_LR[1], "gain"),
    }
    assert {k for k, v in verdicts.items() if v == "gain"} == expected_gain
    assert {k for k, v in verdicts.items() if v == "harm"} == {(*INTERACTION, "gain")}
    row = data.effects[
        (data.effects.metric == "mse")
        & (data.effects.optimizer == "sgd")
        & (data.effects.kind == "gain")
        & (data.effects.amplification == "exp")
        & (data.effects.factor == 10.0)
    ].iloc[0]
    assert row.ci_low < 0.05 < row.ci_high
    # balanced cells (every seed finished): the model's contrast is the difference of the logged means
    assert row.estimate == pytest.approx(
        _logged_mean(logged, *GAIN) - _logged_mean(logged, "mse", "sgd", "linear", 1.0)
    )
    panels = {p.name: p for p in draw_effects(data)}
    assert f"gain over the un-amplified baseline {row.estimate:+.3f}" in panels["sgd"].caption


def test_a_pure_learning_rate_effect_is_not_credited_to_amplification(planted) -> None:
    _, study = planted
    verdicts = _verdicts(extract_effects(study).effects)
    assert verdicts[(*PURE_LR[0], "vs_twin")] == "not detectable"
    assert verdicts[(*PURE_LR[1], "vs_twin")] == "not detectable"
    lr = extract_lr_control(study)
    (cmp,) = [c for c in lr.comparisons if c.label == "ssim · conv_ae · exp λ=10"]
    # the twin gained what the amplified setting gained: both about +0.05, their difference inside its interval
    assert cmp.gain["ci_low"] < 0.05 < cmp.gain["ci_high"]
    assert cmp.twin_gain["ci_low"] < 0.05 < cmp.twin_gain["ci_high"]
    assert cmp.vs_twin.ci_low < cmp.gain["estimate"] - cmp.twin_gain["estimate"] < cmp.vs_twin.ci_high
    assert cmp.vs_twin.estimate == pytest.approx(cmp.gain["estimate"] - cmp.twin_gain["estimate"])
    (panel,) = draw_lr_control(lr)
    assert "cannot tell amplification from a larger learning rate there" in panel.caption
    assert not any(claim in panel.caption for claim in OVERCLAIMS)
    assert {c.optimizer for c in lr.comparisons} == {"sgd"}  # Adam's control is its baseline
    assert "Under adam the update ignores gradient scale" in panel.caption


def test_an_optimizer_interaction_is_shown_per_optimizer_never_averaged(planted) -> None:
    _, study = planted
    data = extract_effects(study)
    verdicts = _verdicts(data.effects)
    assert verdicts[(*GAIN, "gain")] == "gain" and verdicts[(*INTERACTION, "gain")] == "harm"
    assert set(data.effects["optimizer"]) == {"adam", "sgd"}  # no pooled "all" row
    panels = {p.name: p for p in draw_effects(data)}
    assert set(panels) == {"baselines", "adam", "sgd"}  # the model-free comparison, then one per optimizer
    assert (
        "mse · adam · conv_ae · exp λ=10: gain over the un-amplified baseline -0.0" in panels["adam"].caption
    )
    assert "— harm." in panels["adam"].caption and "adam" not in panels["sgd"].caption
    lines = extract_sensitivity(study).lines
    assert {ln.optimizer for ln in lines} == {"adam", "sgd"}  # a line never mixes optimizers
    at = {
        (ln.optimizer, f): e.mean
        for ln in lines
        if ln.label == "mse · exp"
        for f, e in zip(ln.factors, ln.estimates, strict=True)
    }
    assert at[("sgd", 10.0)] > at[("sgd", 1.0)] and at[("adam", 10.0)] < at[("adam", 1.0)]


def test_simpson_steepness_confound_is_undone_by_strata(store, tmp_path) -> None:
    root, uri = store
    grid = SyntheticGrid(archs=("conv_ae",))
    logged = write_synthetic_study(
        uri,
        "simpson",
        root / "art-simpson",
        grid=grid,
        planted=Planted(simpson=True),
        artifacts="none",
        n_failed=0,
        label_free=False,
    )
    study = load_study("simpson", tracking_uri=uri)
    data = extract_steepness(study, ArtifactLoader(MlflowClient(tracking_uri=uri), tmp_path))
    sharp = next(c for c in data.correlations if c.measure == "sharpness")
    done = logged.by_status("finished")
    pooled = spearmanr([t.metrics["sharpness"] for t in done], [t.metrics["auroc"] for t in done]).statistic
    assert pooled > 0.5 and sharp.result.pooled_rho == pytest.approx(pooled)
    for r in sharp.result.per_stratum.itertuples():
        cell = [t for t in done if (t.config.metric, t.config.optimizer) == (r.metric, r.optimizer)]
        rho = spearmanr([t.metrics["sharpness"] for t in cell], [t.metrics["auroc"] for t in cell]).statistic
        assert r.rho == pytest.approx(rho) and rho < -0.8 and r.n == len(cell)
    assert len(sharp.result.per_stratum) == 4  # 2 metrics x 2 optimizers x 1 arch
    assert sharp.result.combined_rho < -0.8 and sharp.result.combined_p < 0.01
    caption = next(p for p in draw_steepness(data) if p.name == "vs-detection").caption
    assert "sharpness vs auroc: combined stratified ρ = " in caption
    assert "steeper minima detect worse" in caption and "detect better" not in caption
    # medians, not means: each point is the median of the logged values at its level
    line = next(
        ln
        for ln in data.lines
        if (ln.measure, ln.optimizer, ln.label) == ("sharpness", "sgd", "ssim · conv_ae · exp")
    )
    cell = [
        t.metrics["sharpness"]
        for t in done
        if (t.config.metric, t.config.optimizer, t.config.amplification, t.config.factor, t.config.twin_of)
        == ("ssim", "sgd", "exp", 10.0, 0.0)
    ]
    assert line.medians[line.factors.index(10.0)] == pytest.approx(np.median(cell))


def test_collapsed_champion_is_listed_not_crowned_and_baselines_call_out_the_best(store, tmp_path) -> None:
    root, uri = store
    logged = write_synthetic_study(
        uri,
        "collapsed_champion",
        root / "art",
        collapsed_champion=True,
        baselines={"baseline_mse_auroc": 0.95, "baseline_intensity_auroc": 0.6},
        n_failed=0,
        artifacts="none",
    )
    study = load_study("collapsed_champion", tracking_uri=uri)
    loader = ArtifactLoader(MlflowClient(tracking_uri=uri), tmp_path)
    data = extract_summary(study, loader)
    (champ,) = logged.by_status("collapsed")
    # listed, with its measure, and counted
    assert data.counts["collapsed"] == 1
    listed = {p.trial_id: p for p in data.problems}
    assert "0.0020" in listed[champ.trial_id].error
    # never "best", although its validation and test AUROC are the highest of the study
    finished = logged.by_status("finished")
    expected = max(finished, key=lambda t: (t.history["val_auroc"][-1], -t.index))
    assert data.best_trial_id == expected.trial_id != champ.trial_id
    # the best trial (auroc < 0.95 in this generative model) does not beat the distance to the mean image
    assert data.baselines == {"baseline_intensity_auroc": 0.6, "baseline_mse_auroc": 0.95}
    assert data.best_auroc == pytest.approx(expected.metrics["auroc"])
    assert data.best_beats_baselines is False
    # and it enters no effect, correlation or label-free pick
    effects = extract_effects(study)
    assert effects.n_trials == len(finished)
    # two seeds per cell are enough for intervals: every comparison has one (a verdict with an interval)
    assert (
        effects.effects["n_seeds"].max() == 2
        and (effects.effects["ci_high"] > effects.effects["ci_low"]).all()
    )
    steep = extract_steepness(study, loader)
    assert all(champ.trial_id not in c.trial_ids for c in steep.correlations)
    assert sum(steep.correlations[0].result.per_stratum["n"]) == len(finished)  # each in its stratum
    label_free = extract_label_free(study)
    assert label_free is not None and label_free.oracle_trial != champ.trial_id
    assert all(
        s.picked_trial != champ.trial_id and champ.trial_id not in s.trial_ids for s in label_free.scores
    )
