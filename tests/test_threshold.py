"""The alarm threshold: its false-alarm claim and its interval, simulated under score distributions that
are neither normal nor continuous; then stored with a registered model and applied by `score`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from study.serving.threshold import Threshold, ThresholdError, alarm_threshold, clopper_pearson

# normal-image scores unlike any textbook: heavy-tailed, skewed, bimodal, and discrete (ties)
DRAWS = {
    "cauchy": lambda rng, n: np.abs(rng.standard_cauchy(n)),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 2.0, n),
    "bimodal": lambda rng, n: np.where(rng.random(n) < 0.9, rng.normal(0, 1, n), rng.normal(8, 0.5, n)),
    "ties": lambda rng, n: rng.poisson(3.0, n).astype(float),
}


def _split(scores: np.ndarray, n_cal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scores.npz arrays for all-normal samples: the first n_cal in the validation part."""
    test_part = np.arange(len(scores)) >= n_cal
    return scores, np.zeros(len(scores), dtype=int), test_part


@pytest.mark.parametrize("name", sorted(DRAWS))
@pytest.mark.parametrize(("n", "alpha"), [(30, 0.05), (200, 0.01), (20, 0.01)])
def test_the_false_alarm_rate_on_new_normals_is_at_most_the_stated_bound(
    name: str, n: int, alpha: float
) -> None:
    rng = np.random.default_rng(0)
    draw, reps, fresh = DRAWS[name], 2000, 200
    rates, bounds = np.empty(reps), set()
    for r in range(reps):
        t = alarm_threshold(*_split(draw(rng, n), n), false_alarm=alpha)
        rates[r] = (draw(rng, fresh) > t.value).mean()
        bounds.add(t.bound)
    (bound,) = bounds
    assert bound == (alpha if n >= 1 / alpha else 1 / (n + 1))  # 20 normals cannot promise 1%
    se = rates.std(ddof=1) / np.sqrt(reps)
    assert rates.mean() <= bound + 3 * se, (rates.mean(), bound)
    if name != "ties":  # continuous scores use the bound nearly fully: the threshold is not needlessly high
        assert rates.mean() >= 0.5 * bound


@pytest.mark.parametrize("p", [0.005, 0.02, 0.1, 0.4])
@pytest.mark.parametrize("n", [15, 60, 300])
def test_the_check_interval_covers_the_true_rate_at_least_95_percent(p: float, n: int) -> None:
    rng = np.random.default_rng(1)
    reps = 2000
    hits = 0
    for k in rng.binomial(n, p, reps):
        low, high = clopper_pearson(int(k), n)
        hits += low <= p <= high
    assert hits / reps >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / reps)


def test_the_threshold_uses_only_normals_and_checks_on_the_other_part() -> None:
    scores = np.array([1.0, 2.0, 3.0, 100.0, 0.5, 5.0, 50.0])
    labels = np.array([0, 0, 0, 1, 0, 0, 1])  # the anomalies' scores must not move it
    part = np.array([False, False, False, False, True, True, True])
    t = alarm_threshold(scores, labels, part, false_alarm=0.2)
    assert (t.n_calibration, t.n_check, t.value) == (3, 2, 3.0)  # rank ceil(4 * 0.8) = 4 > 3: the max
    assert t.bound == pytest.approx(0.25) and t.alarms_check == 1  # 5.0 > 3.0
    assert "3 normals cannot guarantee 0.2, only 0.25" in t.sentence()
    assert Threshold.from_tags(t.tags()) == t
    with pytest.raises(ThresholdError, match="between 0 and 1"):
        alarm_threshold(scores, labels, part, false_alarm=1.5)


@pytest.mark.slow
def test_register_stores_the_threshold_and_score_applies_it(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from study.cli import main
    from study.core.vocab import ROLE_TAG, STATUS_TAG
    from study.serving.registry import RegistryError, model_threshold, register_best
    from tests._logged_trials import log_trials

    trained = log_trials(tmp_path, "thr")
    uri = trained.tracking_uri
    client = MlflowClient(uri)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("thr").experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'study'"
    )
    client.set_tag(parent.info.run_id, STATUS_TAG, "running")  # a study still running is refused
    with pytest.raises(RegistryError, match="--allow-running"):
        register_best("thr", tracking_uri=uri)
    info = register_best("thr", tracking_uri=uri, false_alarm=0.05, allow_running=True)
    arrays = trained.results[0].scores
    expected = alarm_threshold(arrays["scores"], arrays["labels"], arrays["test_part"], 0.05)
    stored = model_threshold(info["uri"], tracking_uri=uri)
    assert stored == expected and info["threshold"]["value"] == expected.value
    assert (
        model_threshold(f"runs:/{info['run_id']}", tracking_uri=uri).false_alarm == 0.01
    )  # a run: the default

    out = tmp_path / "scores.csv"
    assert (
        main(
            [
                "score",
                info["uri"],
                "--data",
                "digits",
                "--out",
                str(out),
                "--threshold",
                "--tracking-uri",
                uri,
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert rows and all(int(r["alarm"]) == int(float(r["score"]) > stored.value) for r in rows)
    assert (
        main(
            [
                "score",
                info["uri"],
                "--data",
                "digits",
                "--out",
                str(out),
                "--threshold",
                "0",
                "--tracking-uri",
                uri,
            ]
        )
        == 0
    )
    assert {r["alarm"] for r in csv.DictReader(out.open())} == {"1"}  # every error is above 0
    assert (
        main(
            [
                "score",
                info["uri"],
                "--data",
                "digits",
                "--out",
                str(out),
                "--threshold",
                "x",
                "--tracking-uri",
                uri,
            ]
        )
        == 2
    )
