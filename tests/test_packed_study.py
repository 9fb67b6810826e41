"""Packed trials through the real runner: the quickstart's trials packed and solo give the same MLflow study.

A pack member must be a trial to the user: its own child run with the params,
per-epoch metrics, final metrics, status and files of the solo trial with its
config (tests/test_packed.py pins the training equivalence itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from study.spec import load_spec
from tests.conftest import Study, run_small_study

pytestmark = pytest.mark.slow
QUICKSTART = Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml"


def _quickstart_small(root: Path, packing: bool) -> Path:
    """The quickstart's configurations (every dimension and twin; one seed) on less data, two epochs."""
    spec = yaml.safe_load(QUICKSTART.read_text())
    spec["name"] = "qs_packed" if packing else "qs_solo"
    spec["dataset"] |= {"train_limit": 256, "test_limit": 400}
    # the pool is a generated file (scripts/make_pool.py); tests/test_pools.py covers it
    spec["dataset"].pop("unlabelled", None)
    spec["fixed"] |= {"epochs": 2, "eval_limit": 200}
    spec["landscape"] = {
        "power_iters": 4,
        "hutchinson_probes": 2,
        "grid_1d": 3,
        "grid_2d": 0,
        "batch_size": 32,
    }
    spec["label_free"] = {"pool_size": 100, "tune_steps": 2}
    spec["seeds"] = [0]  # the second seed repeats the same configurations: half the time, nothing less tested
    spec["packing"] = {"enabled": packing, "max_members": 8}
    path = root / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Study, Study]:
    root = tmp_path_factory.mktemp("packed")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    solo = run_small_study(_quickstart_small(root, False), root, tracking_uri=uri)
    packed = run_small_study(_quickstart_small(root, True), root, tracking_uri=uri)
    return solo, packed


def _trials(client: MlflowClient, study: str) -> dict[tuple, Any]:
    exp = client.get_experiment_by_name(study)
    runs = client.search_runs([exp.experiment_id], "tags.`lamp.role` = 'trial'", max_results=1000)
    return {tuple(sorted(r.data.params.items())): r for r in runs}


def test_packed_quickstart_logs_the_same_trials_as_solo(studies: tuple[Study, Study]) -> None:
    solo, packed = studies
    assert load_spec(_quickstart_small(Path(packed.storage).parent, True)).packing_decision()[0]
    client = MlflowClient(solo.tracking_uri)
    a, b = _trials(client, solo.name), _trials(client, packed.name)
    assert len(a) == len(b) == solo.n_trials == packed.n_trials  # one run per trial, same params
    assert set(a) == set(b)
    assert packed.summary["trials"] == solo.summary["trials"]
    pack_ids = {r.data.tags["lamp.pack_id"] for r in b.values()}
    assert 1 < len(pack_ids) < len(b)  # trials were packed (max_members 8), and into more than one pack
    for key, ra in a.items():
        rb = b[key]
        assert rb.data.tags["lamp.status"] == ra.data.tags["lamp.status"]
        assert set(rb.data.metrics) == set(ra.data.metrics)
        assert set(rb.data.tags) - set(ra.data.tags) == {"lamp.pack_id"}
        assert _artifacts(client, rb.info.run_id) == _artifacts(client, ra.info.run_id)
        # Equal up to float rounding: a vmapped convolution sums in another order than a solo one, and
        # Adam's first steps (about lr * sign(g)) turn rounding of near-zero gradients into whole steps.
        # tests/test_packed.py pins the exact equivalence (rtol 1e-4); here the trials are the
        # quickstart's (conv_ae on Fashion-MNIST), and 1% of a loss is far below seed-to-seed spread.
        for name in ("train_base_loss", "val_base_loss"):
            np.testing.assert_allclose(_history(client, rb, name), _history(client, ra, name), rtol=1e-2)
        # exp(lambda L) turns a relative error e of L into lambda L e: the amplified loss gets that much slack
        base = max(_history(client, ra, "train_base_loss"), default=0.0)
        slack = float(ra.data.params["factor"]) * base if ra.data.params["amplification"] == "exp" else 1.0
        amp_a, amp_b = _history(client, ra, "train_amp_loss"), _history(client, rb, "train_amp_loss")
        np.testing.assert_allclose(amp_b, amp_a, rtol=1e-2 * max(1.0, slack))
        if "auroc" in ra.data.metrics:
            assert rb.data.metrics["auroc"] == pytest.approx(ra.data.metrics["auroc"], abs=0.01)
            assert rb.data.metrics["val_auroc"] == pytest.approx(ra.data.metrics["val_auroc"], abs=0.01)


def test_report_and_register_work_on_a_packed_study(studies: tuple[Study, Study], tmp_path: Path) -> None:
    import mlflow

    from reports.build import build_report
    from study.serving.registry import register_best

    packed = studies[1]
    out = build_report(packed.name, tracking_uri=packed.tracking_uri, out=tmp_path / "report.html")
    assert out.stat().st_size > 0
    # two epochs on 256 images: the trials that do not collapse are no better than the mean image
    # (degenerate); this test is about registering a pack member, so it allows them
    info = register_best(
        packed.name, tracking_uri=packed.tracking_uri, model_name="lamp-packed-check", allow_degenerate=True
    )
    client = MlflowClient(packed.tracking_uri)
    best = client.get_run(info["run_id"])
    assert "lamp.pack_id" in best.data.tags
    mlflow.set_tracking_uri(packed.tracking_uri)
    model = mlflow.pyfunc.load_model(info["uri"])
    from study.core.config import DataConfig
    from study.data import load_dataset

    test = load_dataset(DataConfig(normal_classes=(0,), train_limit=256, test_limit=400)).test
    with np.load(client.download_artifacts(info["run_id"], "scores.npz")) as f:
        np.testing.assert_allclose(model.predict(test.numpy()), f["scores"], rtol=1e-5, atol=1e-7)


def _artifacts(client: MlflowClient, run_id: str) -> list[str]:
    return sorted(a.path for a in client.list_artifacts(run_id))


def _history(client: MlflowClient, run: Any, name: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)]
