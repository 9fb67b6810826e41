"""The answers at the top of a report, checked against the sections' statistics and planted truths.

Two synthetic studies differ only in a planted truth (one SGD cell gains 0.05 with
its lr twin unchanged; or nothing is planted). The answers must state what the
effects and lr-control rows say, and change when the truth changes.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from reports.build import build_report
from reports.sections.answers import extract_answers
from reports.sections.effects import extract_effects
from reports.sections.labelfree import extract_label_free
from reports.sections.lr_control import extract_lr_control
from reports.sections.steepness import extract_steepness
from reports.sections.summary import extract_summary
from reports.source.extract import ArtifactLoader, load_study
from tests._synthetic_study import Planted, SyntheticGrid, write_synthetic_study

GRID = SyntheticGrid(archs=("conv_ae",), metrics=("mse",), seeds=(0, 1, 2))
GAIN = ("mse", "sgd", "exp", 10.0)


@pytest.fixture(scope="module")
def store():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="lamp-answers-", dir=base))
    yield root, f"sqlite:///{root / 'mlflow.db'}"
    shutil.rmtree(root, ignore_errors=True)


def _study(store, name: str, planted: Planted):
    root, uri = store
    write_synthetic_study(
        uri,
        name,
        root / f"art-{name}",
        grid=GRID,
        planted=planted,
        artifacts="none",
        n_failed=1,
        baselines={"baseline_mse_auroc": 0.70},
    )
    study = load_study(name, tracking_uri=uri)
    loader = ArtifactLoader(MlflowClient(tracking_uri=uri), root / f"cache-{name}")
    summary = extract_summary(study, loader)
    effects, lr = extract_effects(study), extract_lr_control(study)
    data = extract_answers(
        study, summary, effects, lr, extract_steepness(study, loader), extract_label_free(study)
    )
    page = build_report(name, tracking_uri=uri, out=root / f"{name}.html").read_text(encoding="utf-8")
    return study, summary, effects, lr, {a.key: a.text for a in data.answers}, page


@pytest.fixture(scope="module")
def gained(store):
    return _study(store, "gained", Planted(shifts={GAIN: 0.05}, sigma=0.01))


@pytest.fixture(scope="module")
def null(store):
    return _study(store, "null", Planted(shifts={}, sigma=0.01))


def _rows(effects, optimizer: str, kind: str = "gain"):
    rows = effects.effects
    return rows[(rows["optimizer"] == optimizer) & (rows["kind"] == kind)]


def _count(text: str, verb: str) -> int:
    found = re.search(rf"{verb} in (\d+) of (\d+)", text)
    return int(found.group(1)) if found else 0


def test_amplification_answer_states_the_effects_verdicts(gained, null) -> None:
    for _, _, effects, _, answers, _ in (gained, null):
        for optimizer in ("adam", "sgd"):
            rows, text = _rows(effects, optimizer), answers[f"amplification-{optimizer}"]
            assert _count(text, "helps") == (rows["verdict"] == "gain").sum(), text
            assert _count(text, "hurts") == (rows["verdict"] == "harm").sum(), text
            undetected = rows[rows["verdict"] == "not detectable"]
            assert (f"in {len(undetected)} setting(s) the difference is not detectable" in text) == bool(
                len(undetected)
            )
            if len(undetected):  # the size the seeds could detect, as the effects rows state it
                assert f"{undetected['detectable'].min():.3f}" in text
            assert "no effect" not in text and "no more than" not in text


def test_planted_gain_changes_the_answer(gained, null) -> None:
    sgd_gain, sgd_null = gained[4]["amplification-sgd"], null[4]["amplification-sgd"]
    assert sgd_gain.startswith("Under sgd, amplification helps in 1 of")
    assert "exp λ=10" in sgd_gain
    assert "no amplified setting differs detectably" in sgd_null  # nothing planted: the answer changes
    twin_gain, twin_null = gained[4]["beyond-lr-sgd"], null[4]["beyond-lr-sgd"]
    vs_twin = _rows(gained[2], "sgd", "vs_twin")
    assert (
        _count(twin_gain, "does more than its lr-matched twin") == (vs_twin["verdict"] == "gain").sum() == 1
    )
    assert "does more than" not in twin_null and "cannot be told from a larger learning rate" in twin_null


def test_model_answer_is_the_summary_best_with_its_baseline(gained) -> None:
    study, summary, effects, _, answers, _ = gained
    text = answers["model"]
    assert f"Trial {summary.best_trial_id} ({summary.best_setting})" in text
    assert "validation part (val_auroc)" in text
    assert f"{summary.best_auroc:.4f}" in text and "0.7000" in text  # test AUROC beside the baseline
    best = study.best()  # the planted +0.05 cell wins on validation; its verdict is the effects row's
    assert (best["metric"], best["optimizer"], best["amplification"], best["factor"]) == GAIN
    row = _rows(effects, "sgd").query("amplification == 'exp' and factor == 10.0").iloc[0]
    assert f"{row['estimate']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], {row['verdict']}." in text


def test_next_answer_names_seeds_and_unstable_cells(gained) -> None:
    study, _, effects, _, answers, _ = gained
    text = answers["next"]
    failed = study.trials[study.trials["status"].isin(["failed", "diverged"])]
    assert failed["optimizer"].iloc[0] in text and "did not all finish" in text
    open_rows = effects.effects[
        (effects.effects["verdict"] == "not detectable")
        & effects.effects["seeds_needed"].map(lambda v: v < 1e9)
    ]
    if len(open_rows):
        assert f"{len(open_rows)} undetected comparison(s)" in text


def test_answers_lead_the_page_and_link_their_sections(gained) -> None:
    *_, answers, page = gained
    assert page.index("id='sec-answers'") < page.index("id='sec-summary'") < page.index("id='sec-effects'")
    block = page[page.index("<ul class='answers'>") : page.index("</ul>", page.index("<ul class='answers'>"))]
    for text in answers.values():
        assert html.escape(text) in block
    for anchor in re.findall(r"href='#(sec-[a-z-]+)'", block):
        assert f"id='{anchor}'" in page
