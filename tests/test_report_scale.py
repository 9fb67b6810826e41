"""A report that scales (issue 11): how the store is read, how the model is solved, what large studies draw.

No timing here (bench/report_speed.py --trials 13000 measures that): these tests pin the
behaviour that makes a 13,000-trial report fast and small. The SQL read returns what the
public `search_runs` returns; the block-solved setting model returns what a dense statsmodels
OLS returns; and once a study has more trials than a scatter's point budget, growing it 4x in
seeds leaves the page's size unchanged, each point being a setting's median over its seeds.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from mlflow import MlflowClient
from plotly.offline import get_plotlyjs

import reports.sections.importance
import reports.stats.aggregate
from reports.build import build_report
from reports.source.runs import searched_runs, sql_runs, sql_store
from reports.stats.aggregate import scatter_points
from reports.stats.effects import fit_settings, setting_of
from tests._synthetic_study import SyntheticGrid, write_synthetic_study
from tests.test_reports import figure, values

# 24 settings a seed + 8 lr twins: 32 settings, 2 of which (sgd, exp, λ=100) diverge on the last seed
GRID = SyntheticGrid(archs=("conv_ae",), factors=(1.0, 10.0, 100.0))
POINTS = 40  # the point budget these tests set, below both studies' trial counts


@pytest.fixture(scope="module")
def store():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="lamp-scale-", dir=base))
    yield root, f"sqlite:///{root / 'mlflow.db'}"
    shutil.rmtree(root, ignore_errors=True)


def _records(runs) -> dict[str, tuple]:
    """Run id -> every field, NaN made comparable."""

    def plain(d: dict) -> dict:
        return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}

    return {
        r.run_id: (r.run_name, r.status, r.start_time, r.end_time, r.tags, r.params, plain(r.metrics))
        for r in runs
    }


def test_the_sql_read_returns_what_search_runs_returns(store) -> None:
    """Running, failed and diverged (NaN loss) runs, and a deleted run that neither path may return."""
    root, uri = store
    grid = SyntheticGrid(archs=("conv_ae",), metrics=("mse",), factors=(1.0, 100.0), seeds=(0, 1))
    logged = write_synthetic_study(uri, "read", root / "art-read", grid=grid, status="running", n_failed=1)
    client = MlflowClient(tracking_uri=uri)
    deleted = logged.trials[0].run_id
    client.delete_run(deleted)
    db = sql_store(client)
    assert db is not None  # a sqlite store takes the SQL path in load_study
    fast = _records(sql_runs(db, logged.experiment_id))
    public = _records(searched_runs(client, logged.experiment_id))
    assert fast == public
    assert len(fast) == len(logged.trials) and deleted not in fast  # the parent in, the deleted trial out
    statuses = {v[4]["lamp.status"] for v in fast.values()}
    assert {"running", "failed", "diverged", "finished"} <= statuses
    assert any(v[6].get("train_base_loss") == "nan" for v in fast.values())


def test_the_block_solved_setting_model_is_the_dense_ols() -> None:
    """Unbalanced (a quarter of the cells missing), an extra varied param: every contrast as statsmodels'."""
    rng = np.random.default_rng(0)
    rows = []
    cells = itertools.product(
        ("mse", "ssim"), ("adam", "sgd"), (16, 32), ("linear", "exp"), (1.0, 10.0), range(4)
    )
    for metric, opt, width, form, factor, seed in cells:
        if rng.uniform() < 0.25:
            continue
        y = 0.8 + 0.01 * seed + 0.02 * (form == "exp") * math.log10(factor) + rng.normal(0, 0.01)
        rows.append(
            dict(metric=metric, optimizer=opt, arch="conv_ae", width=width, amplification=form,
                 factor=factor, seed=seed, twin_of=0.0, auroc=y)
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    model = fit_settings(frame, extra=("width",))
    dense = frame.assign(
        setting=[setting_of(r, ("width",)) for r in frame.to_dict("records")], seed=frame["seed"].astype(str)
    )
    fit = smf.ols("auroc ~ C(setting) + C(seed)", data=dense).fit()
    assert model.df_resid == fit.df_resid and model.scale == pytest.approx(fit.scale, rel=1e-9)
    names = list(fit.params.index)
    for a, b in itertools.combinations(sorted(model.settings), 2):
        vec = np.zeros(len(names))
        for setting, sign in ((a, 1.0), (b, -1.0)):
            if f"C(setting)[T.{setting}]" in names:
                vec[names.index(f"C(setting)[T.{setting}]")] += sign
        test = fit.t_test(vec)
        low, high = test.conf_int(alpha=0.05)[0]
        ours = model.contrast(a, b)
        expected = (float(np.ravel(test.effect)[0]), low, high, float(np.ravel(test.pvalue)[0]))
        assert (ours["estimate"], ours["ci_low"], ours["ci_high"], ours["p"]) == pytest.approx(
            expected, rel=1e-7, abs=1e-12
        )


def test_scatter_points_are_setting_medians_beyond_the_budget() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "trial_id": [f"t{i:03d}" for i in range(60)],
            "group": [f"g{i % 12:02d}" for i in range(60)],  # 12 settings x 5 seeds
            "x": rng.normal(size=60),
            "y": rng.normal(size=60),
            "stratum": [f"s{i % 3}" for i in range(60)],
        }
    )
    few = scatter_points(frame, ["x", "y"], "y", max_points=60)
    assert not few.per_setting and len(few.frame) == 60 and few.what() == "one finished trial"
    many = scatter_points(frame, ["x", "y"], "y", keep=["stratum"], max_points=59)
    assert many.per_setting and not many.sampled and len(many.frame) == 12 and set(many.frame["n"]) == {5}
    for _, point in many.frame.iterrows():
        members = frame[frame["trial_id"] == point["label"].split(" ")[0]]["group"].iloc[0]
        group = frame[frame["group"] == members]
        assert (point["x"], point["y"]) == pytest.approx((group["x"].median(), group["y"].median()))
        assert point["stratum"] == group["stratum"].iloc[0]
    sampled = scatter_points(frame, ["x", "y"], "y", max_points=5)
    medians = frame.groupby("group")["y"].median()
    assert sampled.sampled and len(sampled.frame) == 5 and sampled.n_settings == 12
    assert sampled.frame["y"].iloc[0] == medians.min() and sampled.frame["y"].iloc[-1] == medians.max()
    assert "5 settings evenly spaced" in sampled.what()


def _figure_bytes(page: str) -> int:
    return len(page) - len(get_plotlyjs())


def test_a_study_4x_larger_gives_a_page_of_the_same_size(store, tmp_path, monkeypatch) -> None:
    """Beyond the point budget every scatter draws one point per setting: seeds x4, page bytes x1."""
    root, uri = store
    monkeypatch.setattr(reports.stats.aggregate, "MAX_POINTS", POINTS)
    monkeypatch.setattr(reports.sections.importance, "MAX_IMPORTANCE_ROWS", POINTS)
    pages, logged = {}, {}
    for n_seeds in (2, 8):
        name = f"seeds{n_seeds}"
        grid = GRID.__class__(**{**GRID.__dict__, "seeds": tuple(range(n_seeds))})
        logged[n_seeds] = write_synthetic_study(uri, name, root / f"art-{name}", grid=grid, artifacts="none")
        pages[n_seeds] = build_report(name, tracking_uri=uri, out=tmp_path / f"{name}.html").read_text()
    assert len(logged[8].trials) == 4 * len(logged[2].trials) > POINTS
    assert _figure_bytes(pages[8]) <= 1.1 * _figure_bytes(pages[2])
    for n_seeds, page in pages.items():
        done = [t for t in logged[n_seeds].trials if t.status == "finished"]
        by_setting: dict[str, list[float]] = {}
        for t in done:
            by_setting.setdefault(t.config.group_key(), []).append(t.metrics["auroc"])
        expected = sorted(float(np.median(v)) for v in by_setting.values())
        scatter = figure(page, "fig-label-free-scatter")["data"][0]  # every finished trial, twins too
        assert sorted(values(scatter["y"]).tolist()) == pytest.approx(expected)
        assert "the median of one setting over its seeds" in page
        assert f"{len(done)} trials in {len(by_setting)} settings" in page
        parcoords = figure(page, "fig-sensitivity-parcoords")["data"][0]
        non_twin = {t.config.group_key() for t in done if t.config.twin_of == 0.0}
        assert len(values(parcoords["line"]["color"])) == len(non_twin)
        assert f"fANOVA on {len(non_twin)} setting medians" in page
