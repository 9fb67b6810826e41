"""Effects from one linear model: planted truths are found, null studies rarely declare a gain."""

from __future__ import annotations

import gc
import itertools

import numpy as np
import pandas as pd
from scipy.stats import binom

from reports.render.verdicts import verdict_sentence
from reports.stats.effects import amplification_effects


def _study(
    rng: np.random.Generator, effects: dict[tuple, float], *, sigma: float = 0.01, seeds: int = 2
) -> pd.DataFrame:
    """A grid over metric x optimizer x (linear 1, exp 10, exp 100) with SGD twins; AUROC = 0.85 +
    seed effect + planted effect (keyed by (metric, optimizer, setting, factor)) + noise sigma."""
    rows = []
    seed_effect = rng.normal(0, 0.01, seeds)
    for metric, opt, seed in itertools.product(("mse", "ssim"), ("adam", "sgd"), range(seeds)):
        settings = [("linear", 1.0, 0.0), ("exp", 10.0, 0.0), ("exp", 100.0, 0.0)]
        if opt == "sgd":
            settings += [("linear", 1.0, 10.0), ("linear", 1.0, 100.0)]  # twins: lambda = 1 at lr x twin_of
        for form, factor, twin_of in settings:
            key = (metric, opt, "twin", twin_of) if twin_of else (metric, opt, form, factor)
            y = 0.85 + seed_effect[seed] + effects.get(key, 0.0) + rng.normal(0, sigma)
            rows.append(
                dict(
                    metric=metric,
                    optimizer=opt,
                    arch="conv_ae",
                    amplification=form,
                    factor=factor,
                    seed=seed,
                    twin_of=twin_of,
                    auroc=y,
                )
            )
    return pd.DataFrame(rows)


def _row(effects: pd.DataFrame, **match) -> pd.Series:
    sel = effects
    for k, v in match.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, match
    return sel.iloc[0]


def test_a_planted_gain_in_one_sgd_cell_is_found_with_its_interval() -> None:
    data = _study(np.random.default_rng(0), {("mse", "sgd", "exp", 100.0): 0.05})
    eff = amplification_effects(data)
    hit = _row(eff, metric="mse", optimizer="sgd", kind="gain", factor=100.0)
    assert hit["verdict"] == "gain" and hit["ci_low"] < 0.05 < hit["ci_high"]
    vs_twin = _row(eff, metric="mse", optimizer="sgd", kind="vs_twin", factor=100.0)
    assert vs_twin["verdict"] == "gain"  # the twin did not get it: more than a learning-rate change
    others = eff[~((eff.metric == "mse") & (eff.optimizer == "sgd") & (eff.factor == 100.0))]
    assert set(others["verdict"]) == {"not detectable"}
    assert "+0.0" in verdict_sentence(hit) and "gain" in verdict_sentence(hit)


def test_a_pure_learning_rate_effect_is_a_gain_that_its_twin_matches() -> None:
    planted = {("mse", "sgd", "exp", 100.0): 0.05, ("mse", "sgd", "twin", 100.0): 0.05}
    eff = amplification_effects(_study(np.random.default_rng(1), planted))
    assert _row(eff, metric="mse", optimizer="sgd", kind="gain", factor=100.0)["verdict"] == "gain"
    same = _row(eff, metric="mse", optimizer="sgd", kind="vs_twin", factor=100.0)
    assert same["verdict"] == "not detectable"
    sentence = verdict_sentence(same)
    assert "interval is ±" in sentence and "seeds would detect an effect of" in sentence


def test_an_optimizer_interaction_is_reported_per_optimizer_not_averaged() -> None:
    planted = {("mse", "sgd", "exp", 10.0): 0.05, ("mse", "adam", "exp", 10.0): -0.07}
    eff = amplification_effects(_study(np.random.default_rng(2), planted))
    assert _row(eff, metric="mse", optimizer="sgd", kind="gain", factor=10.0)["verdict"] == "gain"
    assert _row(eff, metric="mse", optimizer="adam", kind="gain", factor=10.0)["verdict"] == "harm"


def test_null_studies_rarely_declare_a_gain() -> None:
    """Holm controls the family-wise error: <= 5% of null studies declare any gain, + binomial tolerance."""
    rng = np.random.default_rng(123)
    n = 120
    # statsmodels' Holm path calls gc.collect(); freezing the test process's heap keeps each call cheap
    gc.freeze()
    try:
        declared = sum((amplification_effects(_study(rng, {}))["verdict"] == "gain").any() for _ in range(n))
    finally:
        gc.unfreeze()
    assert declared <= binom.ppf(0.99, n, 0.05), declared


def test_no_finished_trials_give_no_comparison_not_an_error() -> None:
    """Every trial collapsed or failed: the frame the report receives is empty."""
    empty = _study(np.random.default_rng(0), {}).iloc[0:0]
    eff = amplification_effects(empty)
    assert eff.empty and {"estimate", "ci_low", "ci_high", "verdict"} <= set(eff.columns)


def test_simpson_steepness_confound_across_metrics_is_undone_by_stratifying() -> None:
    """Within each metric steeper is worse; ssim is both steeper and better: pooled rho says the opposite."""
    from reports.stats.effects import stratified_spearman

    rng = np.random.default_rng(5)
    rows = []
    for metric, (s0, a0) in {"mse": (1.0, 0.80), "ssim": (10.0, 0.95)}.items():
        for i in range(12):
            sharp = s0 + 0.5 * i + rng.normal(0, 0.05)
            rows.append(
                dict(
                    metric=metric,
                    optimizer="sgd",
                    arch="conv_ae",
                    sharpness=sharp,
                    auroc=a0 - 0.004 * i + rng.normal(0, 0.001),
                )
            )
    frame = pd.DataFrame(rows)
    result = stratified_spearman(frame)
    assert result.pooled_rho > 0.5
    assert result.combined_rho < -0.8 and result.combined_p < 0.01
    assert set(result.per_stratum["metric"]) == {"mse", "ssim"} and (result.per_stratum["rho"] < 0).all()


def test_another_varied_param_is_part_of_the_stratum_never_averaged() -> None:
    """lr varied by the search: λ helps at one lr and hurts at the other; twins key by the lr they match."""
    rng = np.random.default_rng(7)
    seed_effect = rng.normal(0, 0.01, 2)
    planted = {(1e-2, "exp", 10.0): 0.05, (1e-3, "exp", 10.0): -0.05, (1e-2, "twin", 10.0): 0.05}
    rows = []
    for lr, seed in itertools.product((1e-3, 1e-2), range(2)):
        for form, factor, twin_of in (("linear", 1.0, 0.0), ("exp", 10.0, 0.0), ("linear", 1.0, 10.0)):
            key = (lr, "twin", twin_of) if twin_of else (lr, form, factor)
            y = 0.85 + seed_effect[seed] + planted.get(key, 0.0) + rng.normal(0, 0.005)
            rows.append(
                dict(metric="mse", optimizer="sgd", arch="conv_ae", amplification=form, factor=factor,
                     seed=seed, twin_of=twin_of, lr=lr * (twin_of or 1.0), auroc=y)
            )  # fmt: skip
    eff = amplification_effects(pd.DataFrame(rows), extra=("lr",))
    assert set(eff["other"]) == {"lr=0.001", "lr=0.01"}
    assert _row(eff, other="lr=0.01", kind="gain")["verdict"] == "gain"
    assert _row(eff, other="lr=0.001", kind="gain")["verdict"] == "harm"
    # at lr = 0.01 the twin (lr 0.1 = 0.01 x 10) gained the same: amplified - twin is not detectable
    assert _row(eff, other="lr=0.01", kind="vs_twin")["verdict"] == "not detectable"
    assert "mse · sgd · conv_ae · lr=0.01 · exp λ=10" in verdict_sentence(
        _row(eff, other="lr=0.01", kind="gain")
    )
