"""The pool-tail selector (study/selection/tail.py): calibrated on clean pools, finds a planted better model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.core.vocab import FAMILY_NAMES, UNLABELLED_METRIC, family_metric
from study.selection import selector_scores
from study.selection.delong import delong
from study.selection.pool import ALPHA
from study.selection.rules import fallback, pool_decision, tail_decision
from study.selection.tail import exceedance_pvalue, tail_line


def _study(
    rng: np.random.Generator, share: float, n_pool: int = 5000, m: int = 300
) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Five trials sharing a per-image latent; t0 sees the pool's anomalies far better than t1..t4.

    Anomalies sit in the pool at `share`; normals are heavy-tailed (t, 3 df),
    so the tail is not a Gaussian's. Returns the frame (U, sizes, synthetic
    families at random) and the per-trial (held-out normal, pool) scores.
    """
    k, n_anom = 5, round(share * n_pool)
    latent_neg = rng.standard_t(3, m)
    latent_pool = rng.standard_t(3, n_pool)
    is_anom = np.zeros(n_pool, bool)
    is_anom[:n_anom] = True
    scores = {}
    for i in range(k):
        shift = 8.0 if i == 0 else 1.5
        neg = latent_neg + rng.normal(0, 0.7, m)
        pos = latent_pool + rng.normal(0, 0.7, n_pool) + shift * is_anom
        scores[f"t{i}"] = (neg, pos)
    d = delong(np.stack([s[0] for s in scores.values()]), np.stack([s[1] for s in scores.values()]))
    frame = pd.DataFrame(
        {
            "status": "finished",
            UNLABELLED_METRIC: d.auroc,
            "unlabelled_normals": m,
            "unlabelled_pool": n_pool,
            **{family_metric(f): rng.uniform(0.5, 0.9, k) for f in FAMILY_NAMES},
        },
        index=list(scores),
    )
    return frame, scores


def test_the_exceedance_pvalue_is_calibrated_under_exchangeability() -> None:
    """Pool and held-out normals from one heavy-tailed, tied distribution: P(p <= a) <= a at every level."""
    rng = np.random.default_rng(0)
    p = np.array(
        [
            exceedance_pvalue(np.round(rng.standard_t(2, 120), 1), np.round(rng.standard_t(2, 900), 1), r)
            for r in (1, 3)
            for _ in range(1500)
        ]
    )
    for a in (0.01, 0.05, 0.2):
        assert (p <= a).mean() <= a + 3 * np.sqrt(a * (1 - a) / len(p))
    assert (p <= 0.5).mean() > 0.3  # not trivially conservative


def test_the_tail_finds_the_planted_better_model_at_five_percent_anomalies() -> None:
    rng = np.random.default_rng(1)
    frame, scores = _study(rng, 0.05)
    tail = tail_decision(frame, scores.get)
    assert tail is not None and tail.fires and tail.leader == "t0"
    s = selector_scores(frame, "unlabelled_tail", scores.get)
    assert s.idxmax() == "t0"
    assert "anomalies present" in tail_line(tail)


def test_the_tail_abstains_on_a_clean_pool() -> None:
    """No anomalies: the exceedance test does not fire (rate <= alpha over studies) and the pick is the fallback's
    (unless the paired U test false-alarms, at its own rate alpha: then the pick is `unlabelled_paired`'s)."""
    rng = np.random.default_rng(2)
    fired = 0
    for _ in range(40):
        frame, scores = _study(rng, 0.0, n_pool=1000, m=100)
        tail = tail_decision(frame, scores.get)
        assert tail is not None
        fired += tail.fires
        u_alarm = pool_decision(frame, scores.get)[1] == "separated"  # the paired U test's own false alarm
        if not tail.fires and not u_alarm:
            pd.testing.assert_series_equal(
                selector_scores(frame, "unlabelled_tail", scores.get), fallback(frame), check_names=False
            )
            assert "separates no trials" in tail_line(tail)
    assert fired <= max(1, 3 * ALPHA * 40)


def test_register_says_what_the_pool_tail_resolved(tmp_path: Path) -> None:
    """`register --by unlabelled_tail` on a 5% pool that U does not separate: its note adds the tail's reading."""
    from mlflow import MlflowClient

    from study.core.vocab import PARENT_TAG, ROLE_TAG, STATUS_TAG, TRIAL_ID_TAG
    from study.serving.registry import pool_note

    frame, scores = _study(np.random.default_rng(1), 0.05)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("tail", artifact_location=str(tmp_path / "art"))
    parent = client.create_run(exp, tags={ROLE_TAG: "study"})
    for name, (neg, pos) in scores.items():
        run = client.create_run(
            exp, tags={PARENT_TAG: parent.info.run_id, STATUS_TAG: "finished", TRIAL_ID_TAG: name}
        )
        for key in (
            UNLABELLED_METRIC,
            "unlabelled_normals",
            "unlabelled_pool",
            *(family_metric(f) for f in FAMILY_NAMES),
        ):
            client.log_metric(run.info.run_id, key, float(frame.loc[name, key]))
        np.savez(tmp_path / "scores.npz", unlabelled_normals=neg, unlabelled_pool=pos)
        client.log_artifact(run.info.run_id, str(tmp_path / "scores.npz"))
        client.set_terminated(run.info.run_id)
    paired = pool_note(client, "tail", parent.info.run_id, "unlabelled_paired")
    tail = pool_note(client, "tail", parent.info.run_id, "unlabelled_tail")
    assert paired is not None and "pool tail" not in paired
    assert (
        tail is not None and tail.startswith(paired) and "pool tail" in tail and "anomalies present" in tail
    )


def test_the_top_set_rarely_separates_equally_good_trials() -> None:
    """Four trials of equal quality on a 5% pool (heavy-tailed normals): the leader is called apart <= alpha."""
    from study.selection.paired import ALPHA as PAIR_ALPHA
    from study.selection.tail import tail_verdict

    rng = np.random.default_rng(3)
    runs, apart = 80, 0
    for _ in range(runs):
        lat_neg, lat_pos = rng.standard_t(3, 300), rng.standard_t(3, 2000)
        anomalous = np.arange(2000) < 100
        neg = np.stack([lat_neg + rng.normal(0, 0.7, 300) for _ in range(4)])
        pos = np.stack([lat_pos + rng.normal(0, 0.7, 2000) + 4.0 * anomalous for _ in range(4)])
        apart += len(tail_verdict(["a", "b", "c", "d"], neg, pos, n_trials=4).top) < 4
    assert apart / runs <= PAIR_ALPHA + 3 * np.sqrt(PAIR_ALPHA * (1 - PAIR_ALPHA) / runs)
