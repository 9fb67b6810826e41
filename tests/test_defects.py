"""Per-defect AUROC of MVTec-style folders: the loader keeps each test image's folder, trials log one
AUROC per defect type on the test part, and the report shows them for the best trial and its baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from PIL import Image
from sklearn.metrics import roc_auc_score

from study.core.config import DataConfig, TrialConfig
from study.data import load_dataset
from study.training.evaluate import defect_aurocs
from study.trial.run import run_trial

DEFECTS = {"crack": 6, "Big hole": 6}


def _tree(root: Path) -> Path:
    """train/good, test/good and two defect folders of 16x16 grey images; defects are brighter."""
    rng = np.random.default_rng(0)
    cat = root / "widget"
    for folder, count, shift in (
        ("train/good", 30, 0),
        ("test/good", 12, 0),
        ("test/crack", DEFECTS["crack"], 90),
        ("test/Big hole", DEFECTS["Big hole"], 30),
    ):
        (cat / folder).mkdir(parents=True)
        for i in range(count):
            pixels = np.clip(rng.normal(100 + shift, 20, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(cat / folder / f"{i:03d}.png")
    return cat


def test_defect_auroc_is_each_defect_against_all_normals() -> None:
    scores = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 0.5, 2.5])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = ["good"] * 4 + ["crack", "crack", "Broken Large", "Broken Large"]
    out = defect_aurocs(scores, labels, groups)
    assert set(out) == {"auroc_defect_crack", "auroc_defect_broken_large"}  # names sanitised, no "good"
    assert out["auroc_defect_crack"] == 1.0  # both cracks above every normal
    assert out["auroc_defect_broken_large"] == pytest.approx(2 / 8)  # 0.5 beats none, 2.5 beats two


def test_mvtec_loader_keeps_the_defect_of_every_test_image(tmp_path: Path) -> None:
    _tree(tmp_path)
    data = load_dataset(DataConfig(name="mvtec", path=str(tmp_path), category="widget", image_size=16))
    groups, labels = np.array(data.test_groups), data.test_labels.numpy()
    assert len(groups) == len(labels)
    assert ((groups != "good") == (labels == 1)).all()
    assert {g: int((groups == g).sum()) for g in DEFECTS} == DEFECTS


def test_trial_logs_one_auroc_per_defect_on_the_test_part(tmp_path: Path) -> None:
    _tree(tmp_path)
    cfg = TrialConfig.from_dict(
        {
            "data": {"name": "mvtec", "path": str(tmp_path), "category": "widget", "image_size": 16},
            "arch": "conv_ae",
            "latent_dim": 4,
            "width": 4,
            "epochs": 1,
            "batch_size": 16,
            "lr": 0.01,
            "landscape": {
                "batch_size": 16,
                "power_iters": 2,
                "hutchinson_probes": 2,
                "grid_1d": 3,
                "grid_2d": 3,
            },
            "label_free": {"enabled": False},
        }
    )
    result = run_trial(cfg)
    groups = np.array(load_dataset(cfg.data).test_groups)
    part = result.scores["test_part"]
    scores, labels, groups = result.scores["scores"][part], result.scores["labels"][part], groups[part]
    for name, key in (("crack", "auroc_defect_crack"), ("Big hole", "auroc_defect_big_hole")):
        keep = (labels == 0) | (groups == name)
        assert result.metrics[key] == pytest.approx(roc_auc_score(labels[keep], scores[keep]))
    assert result.metrics["auroc_defect_crack"] != result.metrics["auroc_defect_big_hole"]


def test_report_shows_defects_of_the_best_trial_and_its_baseline(tmp_path: Path) -> None:
    from reports.build import build_report
    from reports.sections.showcase import pick_baseline_and_best
    from reports.source.extract import load_study
    from tests._synthetic_study import SyntheticGrid, write_synthetic_study

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    grid = SyntheticGrid(archs=("conv_ae",), optimizers=("adam",), metrics=("mse",), twins=False)
    logged = write_synthetic_study(uri, "defects", tmp_path / "art", grid=grid, artifacts="none", n_failed=0)
    client, rng = MlflowClient(tracking_uri=uri), np.random.default_rng(1)
    values = {}
    for t in logged.by_status("finished"):
        values[t.trial_id] = {"crack": float(rng.uniform(0.5, 1)), "scratch": float(rng.uniform(0.5, 1))}
        client.log_batch(
            t.run_id, metrics=[Metric(f"auroc_defect_{k}", v, 0, 0) for k, v in values[t.trial_id].items()]
        )
    baseline, best = pick_baseline_and_best(load_study("defects", tracking_uri=uri))
    page = build_report("defects", tracking_uri=uri, out=tmp_path / "r.html").read_text()
    table = page[page.index("id='panel-trials-defects'") :]
    table = table[: table.index("</table>")]
    for defect in ("crack", "scratch"):
        row = f"<td>{defect}</td><td>{values[best.trial_id][defect]:.4f}</td><td>{values[baseline.trial_id][defect]:.4f}</td>"
        assert row in table
