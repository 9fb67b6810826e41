"""The unlabelled AUROC (held-out normals against the pool): its identity with the test AUROC, its null, its selector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from study.labelfree import FAMILIES, family_metric
from study.labelfree.unlabelled import unlabelled_auroc
from study.selection import (
    anomaly_share_bound,
    detectable_departure,
    null_sd,
    pick,
    pool_informative,
    selector_scores,
    unlabelled_informative,
)


def _auroc_normal_vs(anomalies: np.ndarray, normals: np.ndarray) -> float:
    y = np.r_[np.zeros(len(normals)), np.ones(len(anomalies))]
    return float(roc_auc_score(y, np.r_[normals, anomalies]))


def test_pool_auroc_is_the_affine_image_of_the_test_auroc() -> None:
    """AUROC(N vs P) = pi * AUROC(N vs A) + (1 - pi) / 2 exactly when the pool's normals are N's own scores."""
    rng = np.random.default_rng(0)
    for pi, shift in ((0.9, 1.0), (0.5, 0.3), (0.1, 2.0), (0.5, -1.0)):
        normals = rng.normal(size=200)
        n_anom = int(round(pi * 200 / (1 - pi)))
        anomalies = rng.normal(shift, 1.0, size=n_anom)
        pool = np.r_[normals, anomalies]
        share = n_anom / len(pool)
        got = unlabelled_auroc(torch.from_numpy(normals), torch.from_numpy(pool))
        want = share * _auroc_normal_vs(anomalies, normals) + (1 - share) / 2
        assert abs(got - want) < 1e-12, (pi, got, want)


def test_pool_auroc_ranks_models_like_their_test_auroc() -> None:
    """Three 'models' of increasing separation, fresh normals in the pool: same order under both AUROCs."""
    rng = np.random.default_rng(1)
    test, unlabelled = [], []
    for shift in (0.2, 0.8, 1.6):
        held, pool_normals, test_normals = (rng.normal(size=400) for _ in range(3))
        anomalies = rng.normal(shift, 1.0, size=1600)
        test.append(_auroc_normal_vs(anomalies[:800], test_normals))
        pool = np.r_[pool_normals, anomalies[800:]]
        unlabelled.append(unlabelled_auroc(torch.from_numpy(held), torch.from_numpy(pool)))
    assert np.argsort(test).tolist() == np.argsort(unlabelled).tolist() == [0, 1, 2]
    assert anomaly_share_bound(max(unlabelled)) <= 800 / 1200 + 0.05  # a lower bound on the true share


def test_null_sd_matches_the_spread_of_anomaly_free_pools() -> None:
    rng = np.random.default_rng(2)
    n, m = 60, 250
    draws = [
        unlabelled_auroc(torch.from_numpy(rng.normal(size=n)), torch.from_numpy(rng.normal(size=m)))
        for _ in range(800)
    ]
    assert abs(np.mean(draws) - 0.5) < 3 * null_sd(n, m) / np.sqrt(800)
    assert 0.9 < np.std(draws) / null_sd(n, m) < 1.1


def test_pool_informative_needs_anomalies_beyond_noise() -> None:
    rng = np.random.default_rng(3)
    n, m, trials = 60, 250, 30
    clean = np.array(
        [
            unlabelled_auroc(torch.from_numpy(rng.normal(size=n)), torch.from_numpy(rng.normal(size=m)))
            for _ in range(trials)
        ]
    )
    assert not pool_informative(clean, n, m)
    dirty = clean.copy()
    dirty[0] = 0.5 + 5 * null_sd(n, m)  # one trial separates the pool clearly
    assert pool_informative(dirty, n, m)
    assert not pool_informative(np.full(3, np.nan), n, m)
    below = clean.copy()
    below[0] = 0.5 - 5 * null_sd(n, m)  # the pool differs the other way: its anomalies score below normal
    assert pool_informative(below, n, m)
    edge = detectable_departure(trials, n, m)  # what the report quotes is the check's own boundary
    for sign in (1, -1):
        at = np.full(trials, 0.5)
        at[0] = 0.5 + sign * 1.01 * edge
        assert pool_informative(at, n, m)
        at[0] = 0.5 + sign * 0.99 * edge
        assert not pool_informative(at, n, m)


def _study(unlabelled: list[float], families_prefer_first: bool = True) -> pd.DataFrame:
    n = len(unlabelled)
    order = np.arange(n, 0, -1) if families_prefer_first else np.arange(1, n + 1)
    frame = pd.DataFrame(
        {family_metric(f): 0.6 + 0.01 * order + 0.001 * k for k, f in enumerate(FAMILIES)},
        index=[f"t{i}" for i in range(n)],
    )
    frame["unlabelled_auroc"] = unlabelled
    frame["unlabelled_normals"] = 60
    frame["unlabelled_pool"] = 250
    frame["status"] = "finished"
    return frame


def test_unlabelled_or_borda_follows_the_pool_when_it_holds_anomalies_and_borda_when_not() -> None:
    informative = _study([0.55, 0.70, 0.85, 0.60])  # families prefer t0; the pool prefers t2
    assert unlabelled_informative(informative)
    assert pick(informative, "unlabelled_or_borda") == "t2"
    assert pick(informative, "borda") == "t0"
    flat = _study([0.50, 0.51, 0.49, 0.50])  # within noise of 1/2: the pool holds no visible anomaly
    assert not unlabelled_informative(flat)
    assert pick(flat, "unlabelled_or_borda") == "t0"
    inverted = _study([0.30, 0.45, 0.40, 0.35])  # every trial ranks the anomalies below the normals
    assert unlabelled_informative(inverted)
    assert pick(inverted, "unlabelled_or_borda") == "t1"  # the least bad, not the families' t0
    collapsed = informative.copy()
    collapsed.loc["t2", "status"] = "collapsed"
    assert pick(collapsed, "unlabelled_or_borda") == "t1"
    assert set(selector_scores(collapsed, "unlabelled_or_borda").index) == {"t0", "t1", "t3"}


def test_a_trial_judges_held_out_normals_against_its_validation_part_only() -> None:
    """A real trial: the pool is the validation part (never the reported test part), and the
    logged AUROC splits over the pool's hidden labels as pi * AUROC(N vs A) + (1 - pi) * AUROC(N vs N')."""
    from study.core.config import TrialConfig
    from study.data import load_dataset
    from study.training.evaluate import anomaly_scores
    from study.training.losses import get_metric
    from study.training.models import build_model
    from study.trial import run_trial

    off = {"power_iters": 0, "hutchinson_probes": 0, "grid_1d": 0, "grid_2d": 0}
    cfg = TrialConfig.from_dict(
        {
            "data": {"name": "digits", "normal_classes": 3, "val_fraction": 0.3},
            "epochs": 30,  # as in bench/label_free_regret.py: fewer epochs leave digits' models collapsed
            "width": 8,
            "latent_dim": 16,
            "batch_size": 64,
            "lr": 5e-3,
            "landscape": off,
            "label_free": {"tune_steps": 0, "pool_size": 64},
        }
    )
    result = run_trial(cfg)
    assert result.status == "finished"
    model = build_model(**result.model_meta)
    model.load_state_dict(result.model_state)
    normal = anomaly_scores(model, load_dataset(cfg.data).val, get_metric(cfg.metric))
    in_pool = ~result.scores["test_part"]
    pool, labels = result.scores["scores"][in_pool], result.scores["labels"][in_pool]
    m = result.metrics
    assert m["unlabelled_pool"] == len(pool) < len(result.scores["scores"]) and m[
        "unlabelled_normals"
    ] == len(normal)
    assert m["unlabelled_auroc"] == unlabelled_auroc(torch.from_numpy(normal), torch.from_numpy(pool))
    pi = labels.mean()
    split = pi * _auroc_normal_vs(pool[labels == 1], normal) + (1 - pi) * _auroc_normal_vs(
        pool[labels == 0], normal
    )
    assert abs(m["unlabelled_auroc"] - split) < 1e-12


def test_trials_without_an_unlabelled_auroc_fall_back_to_borda() -> None:
    """A study logged before the unlabelled AUROC existed (columns absent or empty) is ranked by Borda."""
    frame = _study([0.55, 0.70, 0.85, 0.60])
    empty = frame.assign(unlabelled_auroc=np.nan, unlabelled_normals=np.nan, unlabelled_pool=np.nan)
    absent = frame.drop(columns=["unlabelled_auroc", "unlabelled_normals", "unlabelled_pool"])
    for old in (empty, absent):
        assert (
            not unlabelled_informative(old) and pick(old, "unlabelled_or_borda") == pick(old, "borda") == "t0"
        )
