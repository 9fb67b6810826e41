"""Deployment pools: `data.unlabelled` read without labels, fast DeLong, the paired comparison between trials."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from study.core.config import TrialConfig
from study.data import DatasetError, load_dataset
from study.data.digits import load_digits
from study.labelfree.pool import load_pool, pool_size, score_pool
from study.selection.delong import delong
from study.selection.paired import compare, critical_z, share_lower_bound
from study.trial import run_trial

TINY = {
    "data": {"name": "digits", "normal_classes": 0, "val_fraction": 0.3},
    "arch": "conv_ae",
    "latent_dim": 8,
    "width": 4,
    "epochs": 3,
    "batch_size": 32,
    "lr": 0.03,
    "eval_limit": 200,
    "landscape": {"power_iters": 0, "hutchinson_probes": 0, "grid_1d": 0, "grid_2d": 0},
    "label_free": {"pool_size": 64, "tune_steps": 0, "pool_budget": None},
}


def _kernel(neg: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """psi(x, y) = 1 if the pool image outscores the normal, 1/2 on a tie: [n_pos, n_neg]."""
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def _correlated(
    rng: np.random.Generator, k: int, m: int, n: int, shift: float
) -> tuple[np.ndarray, np.ndarray]:
    """k trials' scores sharing a per-image latent, rounded so that ties occur (DeLong counts them 1/2)."""
    base_neg, base_pos = rng.standard_t(3, size=m), rng.standard_t(3, size=n) + shift
    neg = np.round(np.stack([base_neg + rng.normal(0, 0.7, m) for _ in range(k)]), 1)
    pos = np.round(np.stack([base_pos + rng.normal(0, 0.7, n) for _ in range(k)]), 1)
    return neg, pos


def test_delong_matches_the_kernel_sum() -> None:
    rng = np.random.default_rng(0)
    neg, pos = _correlated(rng, 3, 37, 53, 0.6)
    d = delong(neg, pos)
    v10 = np.stack([_kernel(neg[i], pos[i]).mean(axis=1) for i in range(3)])
    v01 = np.stack([_kernel(neg[i], pos[i]).mean(axis=0) for i in range(3)])
    np.testing.assert_allclose(d.auroc, v10.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(d.cov, np.cov(v10) / 53 + np.cov(v01) / 37, atol=1e-12)


def test_delong_difference_sd_agrees_with_a_paired_bootstrap() -> None:
    """Resampling normals and pool images (each trial keeps its pairing) spreads the difference as DeLong says."""
    rng = np.random.default_rng(1)
    neg, pos = _correlated(rng, 2, 150, 400, 0.4)
    d = delong(neg, pos)
    diffs = []
    for _ in range(400):
        i, j = rng.integers(0, 150, 150), rng.integers(0, 400, 400)
        diffs.append(np.subtract(*delong(neg[:, i], pos[:, j]).auroc))
    assert d.diff_sd(0, 1) == pytest.approx(np.std(diffs), rel=0.15)
    assert d.diff_sd(0, 1) < 0.8 * np.sqrt(
        d.cov[0, 0]
    )  # pairing: the difference is less noisy than one AUROC


def _clean_study(
    rng: np.random.Generator, k: int, m: int, n: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """k trials of unequal quality and different score shapes on an anomaly-free pool (normals only)."""
    neg, pos = _correlated(rng, k, m, n, 0.0)
    shapes = [np.exp, np.abs, lambda v: v**3, lambda v: np.floor(v)]  # monotone or not, heavy tails, ties
    return {f"t{i}": (shapes[i % 4](neg[i]), shapes[i % 4](pos[i])) for i in range(k)}


def test_the_pair_test_rarely_separates_trials_on_an_anomaly_free_pool() -> None:
    """With no anomalies every expected unlabelled AUROC is 1/2: 'separated' must stay within its alpha (0.05)."""
    rng = np.random.default_rng(2)
    alarms = 0
    sims = 200
    for _ in range(sims):
        study = _clean_study(rng, 6, 60, 300)
        u = {t: delong(s[0], s[1]).auroc[0] for t, s in study.items()}
        verdict = compare(sorted(u, key=lambda t: -u[t]), study.get, n_trials=6)
        alarms += verdict.separated
    assert alarms / sims <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)


def test_the_pair_test_separates_a_good_trial_from_a_blind_one_on_an_anomalous_pool() -> None:
    rng = np.random.default_rng(3)
    m, n_norm, n_anom = 300, 1400, 600
    good = (rng.normal(size=m), np.r_[rng.normal(size=n_norm), rng.normal(3, 1, n_anom)])
    blind = (rng.normal(size=m), rng.normal(size=n_norm + n_anom))
    verdict = compare(["good", "blind"], {"good": good, "blind": blind}.get, n_trials=2)
    assert verdict.separated and verdict.top == ("good",) and verdict.leader == "good"
    assert verdict.pool_factor == 1.0 and verdict.normal_factor == 1.0


def test_the_anomaly_share_bound_holds_by_simulation() -> None:
    """The lower bound stays under the true share in >= 95% of pools, for trials good, poor and inverted."""
    rng = np.random.default_rng(4)
    share, misses, sims = 0.05, 0, 300
    for _ in range(sims):
        n_anom = rng.binomial(2000, share)
        neg = np.stack([rng.normal(size=200) for _ in range(3)])
        pos = np.stack(
            [np.r_[rng.normal(size=2000 - n_anom), rng.normal(mu, 1, n_anom)] for mu in (4.0, 0.5, -2.0)]
        )
        misses += share_lower_bound(delong(neg, pos), 3) > n_anom / 2000
    assert misses / sims <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)


def test_growth_factors_are_where_the_gap_reaches_the_critical_value() -> None:
    rng = np.random.default_rng(5)
    neg, pos = _correlated(rng, 2, 80, 300, 0.3)
    pos[0, :30] += 1.0  # trial 0 a little better
    load = {"a": (neg[0], pos[0]), "b": (neg[1], pos[1])}.get
    v = compare(["a", "b"], load, n_trials=2)
    d = delong(neg, pos)
    lead, runner = (0, 1) if v.leader == "a" else (1, 0)
    for factor, kw in ((v.pool_factor, "n_pos"), (v.normal_factor, "n_neg")):
        if np.isfinite(factor) and factor > 1:
            size = (d.n_pos if kw == "n_pos" else d.n_neg) * factor
            assert v.critical_z * d.diff_sd(lead, runner, **{kw: size}) == pytest.approx(v.gap, rel=1e-6)
    assert critical_z(2) < critical_z(20)


def _write_pool(root: Path, normal: np.ndarray, anomalous: np.ndarray, *, labelled_names: bool) -> Path:
    """PNG files: under normal/ and anomalous/ with telling names, or flat under random names."""
    rng = np.random.default_rng(6)
    for kind, images in (("normal", normal), ("anomalous", anomalous)):
        for i, img in enumerate(images):
            name = (
                f"{kind}/{kind}_{i:03d}.png"
                if labelled_names
                else f"{uuid.UUID(int=int(rng.integers(2**62))).hex}.png"
            )
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(img[0] * 255).astype(np.uint8)).save(root / name)
    return root


def test_an_unlabelled_folder_is_read_without_labels_and_bounds_its_anomaly_share(tmp_path: Path) -> None:
    """Digits 0 normal; a pool of 45 unseen zeros and 15 other digits (share 0.25) in three forms.

    Folder names, file names and an .npz change nothing but the order; the
    trial logs the pool's size and scores, and the share's lower bound is
    below the true 0.25.
    """
    raw = load_digits(TrialConfig.from_dict(TINY).data)
    zeros, others = raw.test_x[raw.test_y == 0][:45], raw.test_x[raw.test_y != 0][:15]
    telling = _write_pool(tmp_path / "telling", zeros, others, labelled_names=True)
    flat = _write_pool(tmp_path / "flat", zeros, others, labelled_names=False)
    stack = np.round(np.concatenate([zeros, others])[:, 0] * 255).astype(np.uint8)
    np.savez(tmp_path / "pool.npz", frames=stack[::-1], labels=np.r_[np.zeros(45), np.ones(15)][::-1])
    result = run_trial(TrialConfig.from_dict(TINY | {"data": TINY["data"] | {"unlabelled": str(telling)}}))
    assert result.metrics["unlabelled_pool_scored"] == result.metrics["unlabelled_pool"] == 60
    assert len(result.scores["unlabelled_pool"]) == 60
    model, data = result.build_model(), load_dataset(result.config.data)
    got = {}
    for name, source, key in (
        ("telling", telling, None),
        ("flat", flat, None),
        ("npz", tmp_path / "pool.npz", "frames"),
    ):
        cfg = dataclasses.replace(
            result.config,
            data=dataclasses.replace(result.config.data, unlabelled=str(source), unlabelled_key=key),
        )
        _, scores, _ = score_pool(model, data, cfg, train_samples=1000)
        got[name] = np.sort(scores)
    np.testing.assert_allclose(got["flat"], got["telling"], rtol=1e-6)
    np.testing.assert_allclose(got["npz"], got["telling"], rtol=1e-6)
    np.testing.assert_allclose(np.sort(result.scores["unlabelled_pool"]), got["telling"], rtol=1e-6)
    d = delong(result.scores["unlabelled_normals"][None], result.scores["unlabelled_pool"][None])
    assert d.auroc[0] == pytest.approx(result.metrics["unlabelled_auroc"], abs=1e-9)
    assert share_lower_bound(d, 1) <= 0.25


def test_the_pool_budget_nests_and_bad_pools_are_named(tmp_path: Path) -> None:
    cfg = TrialConfig.from_dict(TINY)
    assert pool_size(cfg.label_free, 20000, 1000) == 20000  # pool_budget None: the whole pool
    budgeted = dataclasses.replace(cfg.label_free, pool_budget=0.03)
    small, large = pool_size(budgeted, 20000, 9000), pool_size(budgeted, 20000, 90000)
    assert 64 <= small < large <= 20000
    with pytest.raises(DatasetError, match="does not exist"):
        load_pool(dataclasses.replace(cfg.data, unlabelled=str(tmp_path / "nope")), image_size=8, channels=1)
    np.savez(tmp_path / "p.npz", x=np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(DatasetError, match="no array 'frames'"):
        load_pool(
            dataclasses.replace(cfg.data, unlabelled=str(tmp_path / "p.npz"), unlabelled_key="frames"),
            image_size=8,
            channels=1,
        )


def test_init_and_validate_learn_the_unlabelled_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from study.cli import EXIT_OK, main
    from study.spec import load_spec

    rng = np.random.default_rng(7)
    for folder, n in (("good", 6), ("bad", 3), ("line", 11)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(
                tmp_path / folder / f"{i}.png"
            )
    out = tmp_path / "mine.yaml"
    argv = ["init", "mine", "--normal", str(tmp_path / "good"), "--anomalous", str(tmp_path / "bad")]
    assert (
        main([*argv, "--unlabelled", str(tmp_path / "line"), "--out", str(out), "--image-size", "16"])
        == EXIT_OK
    )
    (data,) = load_spec(out).data_configs()
    assert data.unlabelled == str(tmp_path / "line")
    assert f"unlabelled pool {tmp_path / 'line'}: 11 images" in capsys.readouterr().out


def test_register_reads_the_candidates_pool_scores_and_says_the_pick_is_a_tie(tmp_path: Path) -> None:
    """Three logged trials with scores.npz: a blind one and two near-equal good ones on a 20%-anomalous pool."""
    from mlflow import MlflowClient

    from study.core.vocab import PARENT_TAG as PARENT
    from study.core.vocab import ROLE_TAG as ROLE
    from study.core.vocab import STATUS_TAG as STATUS
    from study.core.vocab import TRIAL_ID_TAG as TRIAL_ID
    from study.labelfree import FAMILIES, family_metric
    from study.labelfree.unlabelled import unlabelled_auroc
    from study.serving.registry import best_trial, pool_note

    rng = np.random.default_rng(8)
    normals, pool_normals, anomalies = rng.normal(size=400), rng.normal(size=1600), rng.normal(3, 1, 400)
    jitter = rng.normal(0, 0.05, 2400)
    trials = {
        "blind": (normals + jitter[:400], np.r_[pool_normals, rng.normal(size=400)]),
        "good": (normals, np.r_[pool_normals, anomalies]),
        "twin": (normals + jitter[:400], np.r_[pool_normals, anomalies] + jitter[400:]),
    }
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("pools", artifact_location=str(tmp_path / "art"))
    parent = client.create_run(exp, tags={ROLE: "study", "lamp.objective_metric": "unlabelled_auroc"})
    ids = {}
    for k, (name, (neg, pos)) in enumerate(trials.items()):
        run = client.create_run(exp, tags={PARENT: parent.info.run_id, STATUS: "finished", TRIAL_ID: name})
        u = unlabelled_auroc(torch.from_numpy(neg), torch.from_numpy(pos))
        for key, value in {"unlabelled_auroc": u, "unlabelled_normals": 400, "unlabelled_pool": 2000}.items():
            client.log_metric(run.info.run_id, key, value)
        for f in FAMILIES:
            client.log_metric(run.info.run_id, family_metric(f), 0.6 + 0.1 * k)
        folder = tmp_path / name
        folder.mkdir()
        np.savez(
            folder / "scores.npz",
            unlabelled_normals=neg.astype(np.float32),
            unlabelled_pool=pos.astype(np.float32),
        )
        client.log_artifact(run.info.run_id, str(folder / "scores.npz"))
        client.set_terminated(run.info.run_id)
        ids[run.info.run_id] = name
    _, run, metric, _ = best_trial(client, "pools", "label-free", None)
    assert metric == "unlabelled_tail" and ids[run.info.run_id] in ("good", "twin")
    note = pool_note(client, "pools", parent.info.run_id, metric)
    assert "2000 pool images, 400 held-out normals" in note and "indistinguishable from 1 other" in note
    # U separates these trials, so the default picks as `unlabelled_paired` does and says the same
    assert pool_note(client, "pools", parent.info.run_id, "unlabelled_paired") == note


def test_the_report_says_what_the_pool_can_and_cannot_tell(tmp_path: Path) -> None:
    """Clean pool: a fallback, not a ranking. Anomalous pool: the share bound, the count, the resolvable gap."""
    import json

    import pandas as pd

    from reports.sections.labelfree_pool import pool_reading, pool_reading_sentence

    rng = np.random.default_rng(9)
    record = tmp_path / "record.json"
    cell = {"median_regret": 0.02, "worst_regret": 0.05}
    record.write_text(
        json.dumps(
            {
                "pools": {
                    "cells": {"0.0/1000": {"unlabelled_tail": cell, "random": cell, "_pool": {"n_tasks": 13}}}
                }
            }
        )
    )

    def study(shift: float) -> tuple[pd.DataFrame, dict]:
        scores = {}
        for i, q in enumerate((0.0, 0.5, 1.0, 3.0)):
            pos = np.r_[rng.normal(size=700), rng.normal(q * shift, 1, 300)]
            scores[f"t{i}"] = (rng.normal(size=200), pos)
        u = {t: delong(*s).auroc[0] for t, s in scores.items()}
        frame = pd.DataFrame(
            {"unlabelled_auroc": u, "unlabelled_normals": 200, "unlabelled_pool": 1000, "status": "finished"}
        )
        for f in ("intensity", "cutpaste"):
            frame[f"synthetic_auroc_{f}"] = rng.uniform(size=4)
        return frame, scores

    frame, scores = study(0.0)
    text = pool_reading_sentence(pool_reading(frame, scores.get, record))
    assert "separates none of these trials" in text and "not a ranking" in text
    assert "1000 unlabelled pool images against 200 held-out normals" in text
    assert "share / size 0 / 1000, 13 tasks" in text  # the benchmark cell of a clean 1k pool, and its tasks
    frame, scores = study(1.0)
    reading = pool_reading(frame, scores.get, record)
    text = pool_reading_sentence(reading)
    assert reading.mode != "fallback" and 0 < reading.verdict.share_lower <= 0.3
    assert f"at least {reading.verdict.share_lower:.1%}" in text and "smallest U difference resolved" in text


def test_the_report_says_when_the_default_picks_by_the_pools_tail() -> None:
    """5% anomalies that one trial puts far above its normals: U separates nothing at 300 held-out normals,
    the tail does, and the report names the tail's leader as the default's pick."""
    import pandas as pd

    from reports.sections.labelfree_pool import pool_reading, pool_reading_sentence
    from study.selection import pick

    rng = np.random.default_rng(10)
    scores = {}
    for i, shift in enumerate((0.0, 0.5, 1.0, 4.0)):
        pos = np.r_[rng.normal(size=4750), rng.normal(shift, 1, 250)]
        scores[f"t{i}"] = (rng.normal(size=300), pos)
    u = {t: delong(*s).auroc[0] for t, s in scores.items()}
    frame = pd.DataFrame(
        {"unlabelled_auroc": u, "unlabelled_normals": 300, "unlabelled_pool": 5000, "status": "finished"}
    )
    for f in ("intensity", "cutpaste"):
        frame[f"synthetic_auroc_{f}"] = [0.9, 0.8, 0.7, 0.6]  # the families prefer the blind trial
    reading = pool_reading(frame, scores.get, Path("/nonexistent"))
    assert reading.mode != "separated" and reading.tail is not None and reading.tail.fires
    text = pool_reading_sentence(reading)
    assert "U separates none of these trials, but the pool's tail shows anomalies" in text
    assert f"the tail's leader {reading.tail.leader}" in text and reading.tail.leader == "t3"
    assert pick(frame, pool=scores.get) == "t3"  # the default follows the tail, not the families
    assert pick(frame, "unlabelled_paired", scores.get) == "t0"  # U alone falls back to the families
