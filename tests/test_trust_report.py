"""What a report concludes, checked against planted truths in synthetic studies (data, not pixels)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from reports.extract import ArtifactLoader, load_study
from reports.summary import extract_summary
from tests._synthetic_study import write_synthetic_study


@pytest.fixture(scope="module")
def store():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="lamp-trust-", dir=base))
    yield root, f"sqlite:///{root / 'mlflow.db'}"
    shutil.rmtree(root, ignore_errors=True)


def test_collapsed_champion_is_listed_not_crowned_and_baselines_call_out_the_best(store, tmp_path) -> None:
    root, uri = store
    logged = write_synthetic_study(
        uri,
        "collapsed_champion",
        root / "art",
        collapsed_champion=True,
        baselines={"baseline_mse_auroc": 0.95, "baseline_intensity_auroc": 0.6},
        n_failed=0,
    )
    study = load_study("collapsed_champion", tracking_uri=uri)
    data = extract_summary(study, ArtifactLoader(MlflowClient(tracking_uri=uri), tmp_path))
    (champ,) = logged.by_status("collapsed")
    # listed, with its measure, and counted
    assert data.counts["collapsed"] == 1
    listed = {p.trial_id: p for p in data.problems}
    assert "0.0020" in listed[champ.trial_id].error
    # never "best", although its validation and test AUROC are the highest of the study
    finished = logged.by_status("finished")
    expected = max(finished, key=lambda t: (t.history["val_auroc"][-1], -t.index))
    assert data.best_trial_id == expected.trial_id != champ.trial_id
    assert champ.trial_id not in set(study.finished()["trial_id"])  # every figure reads finished() only
    # the best trial (auroc < 0.95 in this generative model) does not beat the distance to the mean image
    assert data.baselines == {"baseline_intensity_auroc": 0.6, "baseline_mse_auroc": 0.95}
    assert data.best_auroc == pytest.approx(expected.metrics["auroc"])
    assert data.best_beats_baselines is False


def test_a_two_seed_study_report_gives_a_verdict_with_an_interval(store, tmp_path) -> None:
    """Wiring through MLflow: the report's effects section, read from its data, reaches verdicts."""
    from reports.stats import draw_effects, extract_effects

    root, uri = store
    write_synthetic_study(uri, "two_seeds", root / "art2", n_failed=0, label_free=False)
    data = extract_effects(load_study("two_seeds", tracking_uri=uri))
    assert len(data.effects) > 0 and data.effects["n_seeds"].max() == 2  # (sgd, exp, 100) diverged once
    assert (data.effects["ci_high"] > data.effects["ci_low"]).all()
    # the generative model plants an exp gain beyond any lr change: detected under SGD
    sgd_exp = data.effects[(data.effects.optimizer == "sgd") & (data.effects.amplification == "exp")]
    assert "gain" in set(sgd_exp["verdict"])
    panels = {p.name: p for p in draw_effects(data)}
    assert set(panels) == {"effects-adam", "effects-sgd", "steepness-stratified"}
    assert all(
        "[" in panels[k].caption and "Holm" in panels[k].caption for k in ("effects-adam", "effects-sgd")
    )
    st = data.steepness
    assert f"{st.combined_rho:+.2f}" in panels["steepness-stratified"].caption
    assert len(st.per_stratum) == 8  # 2 metrics x 2 optimizers x 2 archs
