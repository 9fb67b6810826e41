"""The report's label-free section: verdicts, baselines, benchmark record, consensus (issue 10 item 5, issue 12 item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.sections.labelfree import draw_label_free, extract_label_free
from reports.source.extract import Study
from study.labelfree import FAMILIES, family_metric
from study.selection import DEFAULT_SELECTOR

FAMS = [family_metric(f) for f in FAMILIES]


def _study(
    n: int = 12, *, saturate: bool = False, objective: str = "auroc", pool_share: float | None = None
) -> Study:
    """Trials whose families track AUROC, a synthetic_auroc with the wrong sign, one collapsed champion.

    With `pool_share`, trials also carry an unlabelled AUROC of a pool with that anomaly share
    (the identity of study/labelfree/unlabelled.py, plus noise smaller than its null spread).
    """
    rng = np.random.default_rng(0)
    auroc = np.linspace(0.6, 0.9, n)
    rows = []
    for i in range(n):
        row = {
            "trial_id": f"t{i:02d}",
            "run_id": f"r{i}",
            "status": "finished",
            "optimizer": "adam" if i % 2 == 0 else "sgd",
            "metric": "mse",
            "amplification": "linear",
            "factor": 1.0 if i < 4 else 10.0,
            "twin_of": 0.0,
            "auroc": auroc[i],
            "synthetic_auroc": 0.9 - 0.3 * (i / n) + rng.normal(0, 0.01),  # ranks trials backwards
            "alignment_loss": rng.normal(),  # unrelated
        }
        for k, c in enumerate(FAMS):
            row[c] = 0.999 if saturate else 0.55 + 0.35 * (i / n) + 0.01 * k + rng.normal(0, 0.01)
        if pool_share is not None:
            row |= {"unlabelled_normals": 60.0, "unlabelled_pool": 250.0}
            row["unlabelled_auroc"] = pool_share * auroc[i] + (1 - pool_share) / 2 + rng.normal(0, 0.002)
        rows.append(row)
    champion = dict(rows[-1], trial_id="t99", run_id="r99", status="collapsed", auroc=0.95)
    champion |= {c: 1.0 for c in FAMS}
    rows.append(champion)
    trials = pd.DataFrame(rows)
    return Study(
        name="s",
        tracking_uri="sqlite://",
        experiment_id="0",
        parent=None,
        n_parent_runs=1,
        trials=trials,
        param_columns=["optimizer", "metric", "amplification", "factor", "twin_of"],
        metric_columns=["auroc", "synthetic_auroc", "alignment_loss", *FAMS],
        objective=objective,
        mode="max",
        detection="auroc",
    )


@pytest.fixture
def record(tmp_path: Path) -> Path:
    path = tmp_path / "record.json"
    summary = {"median_regret": 0.012, "worst_regret": 0.05, "no_worse_than_random": 0.9, "beats_random": 0.8}
    rnd = {"median_regret": 0.08, "worst_regret": 0.2, "no_worse_than_random": 1.0, "beats_random": 0.0}
    path.write_text(
        json.dumps(
            {
                "date": "2026-11-25",
                "tasks": ["a"] * 20,
                "selectors": {DEFAULT_SELECTOR: summary, "random": rnd},
            }
        )
    )
    return path


def test_selectors_judged_against_random_and_default(record: Path) -> None:
    data = extract_label_free(_study(), record_path=record)
    assert data is not None
    by = {s.name: s for s in data.scores}
    assert {"borda", "rra", "synthetic_auroc", "alignment_loss", *FAMS} <= set(by)
    finished = _study().trials.query("status == 'finished'")
    assert data.oracle == pytest.approx(finished["auroc"].max())  # the collapsed champion is not the oracle
    assert data.random_regret == pytest.approx(finished["auroc"].max() - finished["auroc"].mean())
    default = finished[(finished["optimizer"] == "adam") & (finished["factor"] == 1.0)]["auroc"].mean()
    assert data.default_regret == pytest.approx(data.oracle - default)
    assert by["borda"].verdict == "ranks trials" and by["borda"].regret < data.random_regret
    assert by["synthetic_auroc"].verdict == "wrong sign"
    assert by["alignment_loss"].verdict in ("no better than random here", "wrong sign")
    assert all(s.picked_trial != "t99" for s in data.scores)  # collapsed: never picked
    assert data.chosen == DEFAULT_SELECTOR and data.consensus is not None and data.consensus.ranks
    assert data.pool is None  # no unlabelled AUROC logged: the default falls back to trimmed Borda
    assert by[DEFAULT_SELECTOR].picked_trial == by["borda"].picked_trial


def test_caption_states_record_baselines_and_flags(record: Path) -> None:
    data = extract_label_free(_study(), record_path=record)
    (panel,) = draw_label_free(data)
    text = panel.caption + panel.table_html
    assert "median regret 0.0120, worst 0.0500" in text and "20 one-class tasks" in text
    assert f"random pick's expected regret is {data.random_regret:.4f}" in text
    assert "synthetic_auroc: ρ = " in text and "(wrong sign)" in text
    assert "synthetic families rank trials" in text


def test_saturated_families_are_called_out(record: Path) -> None:
    data = extract_label_free(_study(saturate=True), record_path=record)
    assert data.consensus is not None and not data.consensus.ranks
    (panel,) = draw_label_free(data)
    assert "do NOT rank trials here" in panel.caption


def test_missing_record_is_said(tmp_path: Path) -> None:
    data = extract_label_free(_study(), record_path=tmp_path / "absent.json")
    (panel,) = draw_label_free(data)
    assert data.record is None and f"no record for {DEFAULT_SELECTOR}" in panel.caption


def test_pool_with_anomalies_is_used_and_its_share_bounded(record: Path) -> None:
    data = extract_label_free(_study(pool_share=0.9), record_path=record)
    assert data.pool is not None and data.pool.informative
    by = {s.name: s for s in data.scores}
    assert by["unlabelled_auroc"].verdict == "ranks trials" and by["unlabelled_auroc"].rho > 0.9
    assert by[DEFAULT_SELECTOR].picked_trial == by["unlabelled_auroc"].picked_trial
    assert 0.5 < data.pool.share_bound <= 0.9  # the best trial's AUROC < 1 bounds the share from below
    (panel,) = draw_label_free(data)
    assert f"at least {data.pool.share_bound:.0%} of the pool is anomalous" in panel.caption


def test_pool_that_every_trial_scores_below_normal_is_said(record: Path) -> None:
    """Trials whose test AUROC is under 1/2: the identity puts every unlabelled AUROC under 1/2 too."""
    study = _study(pool_share=0.9)
    t = study.trials
    t["auroc"] = 1 - t["auroc"]  # 0.1-0.4: each trial ranks the anomalies below the normals
    t["unlabelled_auroc"] = 0.9 * t["auroc"] + 0.05
    data = extract_label_free(study, record_path=record)
    assert data.pool is not None and data.pool.informative and data.pool.none_detects
    by = {s.name: s for s in data.scores}
    finished = t[t["status"] == "finished"]
    assert by[DEFAULT_SELECTOR].picked_trial == finished.loc[finished["auroc"].idxmax(), "trial_id"]
    (panel,) = draw_label_free(data)
    assert "every trial scores them BELOW normal images" in panel.caption
    assert "no trial here detects these anomalies" in panel.caption


def test_pool_without_anomalies_is_said_and_borda_used(record: Path) -> None:
    data = extract_label_free(_study(pool_share=0.0), record_path=record)
    assert data.pool is not None and not data.pool.informative
    by = {s.name: s for s in data.scores}
    assert by[DEFAULT_SELECTOR].picked_trial == by["borda"].picked_trial
    (panel,) = draw_label_free(data)
    assert "the pool shows no anomaly share these trials can resolve" in panel.caption
    assert f"beyond ±{data.pool.detectable:.3f} from 1/2" in panel.caption


def test_shipped_record_has_every_selector_the_report_shows() -> None:
    """The record the bench wrote (reports/sections/label_free_record.json) covers the default selector and random."""
    from reports.sections.labelfree import RECORD, UNPAIRED
    from study.selection import DEFAULT_SELECTOR

    record = json.loads(RECORD.read_text())
    default = DEFAULT_SELECTOR if DEFAULT_SELECTOR in record["selectors"] else UNPAIRED[DEFAULT_SELECTOR]
    assert {"median_regret", "worst_regret"} <= set(record["pools"]["cells"]["0.05/1000"][DEFAULT_SELECTOR])
    for name in (default, "random", "default"):
        assert {"median_regret", "worst_regret", "no_worse_than_random"} <= set(record["selectors"][name])
    assert len(record["tasks"]) >= 15 and record["seeds"] == [0, 1]
