"""Reports on synthetic studies logged to MLflow by the test: the page, the numbers, the edge cases.

Expected numbers are recomputed here from what `_synthetic_study` logged (its
returned records), never from `reports/` code, and compared both with the
extracted data objects and with the figure specs and captions in the HTML.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import os
import shutil
import tempfile
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from plotly.offline import get_plotlyjs
from scipy import stats
from sklearn.metrics import roc_auc_score

from reports.build import build_report
from reports.sections.labelfree import extract_label_free
from reports.sections.lr_control import extract_lr_control
from reports.sections.scores import extract_scores
from reports.sections.sensitivity import extract_sensitivity
from reports.sections.steepness import extract_steepness
from reports.sections.summary import extract_summary
from reports.source.extract import ArtifactLoader, StudyNotFoundError, load_study
from reports.stats.aggregate import estimate, factor_levels
from tests._synthetic_study import SyntheticGrid, SyntheticStudy, SyntheticTrial, write_synthetic_study

SECTIONS = (
    "answers",
    "summary",
    "sensitivity",
    "effects",
    "lr-control",
    "steepness",
    "scores",
    "trials",
    "label-free",
    "cost",
)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def store():
    """One sqlite MLflow store for the module. It lives in /dev/shm when possible: creating an MLflow
    sqlite schema on a busy disk takes seconds per fsync-heavy migration."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="lamp-reports-", dir=base))
    yield root, f"sqlite:///{root / 'mlflow.db'}"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def main(store):
    """The full synthetic study, its report page and its loaded `Study`."""
    root, uri = store
    logged = write_synthetic_study(
        uri, "main", root / "art-main", artifacts="some", drop_artifacts={100.0: ("landscape.npz",)}
    )
    path = build_report("main", tracking_uri=uri, out=root / "main.html")
    return logged, path.read_text(encoding="utf-8"), load_study("main", tracking_uri=uri)


@pytest.fixture()
def artifacts(store, tmp_path):
    return ArtifactLoader(MlflowClient(tracking_uri=store[1]), tmp_path)


# ---------------------------------------------------------------- helpers


class _Page(HTMLParser):
    """Collects embedded JSON specs, script src attributes and section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, str] = {}
        self.srcs: list[str] = []
        self.sections: list[str] = []
        self.divs: list[str] = []
        self._spec: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.srcs.append(a["src"])
            if a.get("type") == "application/json":
                self._spec = a["id"]
                self.specs[self._spec] = ""
        elif tag == "section":
            self.sections.append(a["id"])
        elif tag == "div" and "plotly-graph-div" in (a.get("class") or ""):
            self.divs.append(a["id"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._spec = None

    def handle_data(self, data):
        if self._spec is not None:
            self.specs[self._spec] += data


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def figure(page: str, fig_id: str) -> dict:
    import json

    return json.loads(parse(page).specs[f"spec-{fig_id}"])


def values(arr) -> np.ndarray:
    """A trace array from a plotly JSON spec (plain list or base64 typed array)."""
    if isinstance(arr, dict) and "bdata" in arr:
        out = np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
        if "shape" in arr:
            out = out.reshape([int(s) for s in str(arr["shape"]).split(",")])
        return out
    return np.asarray(arr)


def finished(logged: SyntheticStudy) -> list[SyntheticTrial]:
    return [t for t in logged.trials if t.status == "finished"]


def is_base(t: SyntheticTrial) -> bool:
    return t.config.amplification == "linear" and t.config.factor == 1.0 and t.config.twin_of == 0.0


def seed_mean_ci(per_seed: dict[int, list[float]]) -> tuple[float, float, int]:
    """Average within seeds, then mean and t-based 95% half width over seeds (scipy)."""
    means = np.array([np.mean(v) for _, v in sorted(per_seed.items())])
    if means.size < 2:
        return float(means.mean()), math.nan, int(means.size)
    lo, hi = stats.t.interval(0.95, means.size - 1, loc=means.mean(), scale=stats.sem(means))
    return float(means.mean()), float((hi - lo) / 2), int(means.size)


def pm(mean: float, half: float) -> str:
    return f"{mean:+.3f} ± {half:.3f}"


# ---------------------------------------------------------------- the page


def test_page_is_one_self_contained_file(main) -> None:
    _, page, _ = main
    parsed = parse(page)
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1, "plotly.js must be inlined exactly once"
    assert page.count("* plotly.js v") == bundle.count("* plotly.js v")
    assert parsed.srcs == [], f"external scripts: {parsed.srcs}"
    assert "cdn.plot.ly" not in page.replace(bundle, ""), "the report itself must not reference the CDN"
    assert parsed.sections == [f"sec-{s}" for s in SECTIONS]
    assert set(parsed.divs) == {k.removeprefix("spec-") for k in parsed.specs}
    for name in (
        "fig-summary-counts",
        "fig-sensitivity-lines",
        "fig-effects-adam",
        "fig-effects-sgd",
        "fig-sensitivity-importance",
    ):
        assert name in parsed.divs
    for name in ("fig-sensitivity-parcoords", "fig-lr-control-twins", "fig-steepness-vs-factor"):
        assert name in parsed.divs
    for name in ("fig-steepness-vs-detection", "fig-steepness-slices-1d", "fig-scores-histograms"):
        assert name in parsed.divs
    assert "fig-label-free-scatter" in parsed.divs
    assert "&lt;written by tests/_synthetic_study.py&gt; &amp; used" in page, "spec.yaml must be escaped"


# ---------------------------------------------------------------- summary


def test_summary_counts_every_trial_and_lists_problems(main, artifacts) -> None:
    logged, page, study = main
    data = extract_summary(study, artifacts)
    expected = {s: len(logged.by_status(s)) for s in ("finished", "diverged", "failed")}
    assert expected["diverged"] > 0 and expected["failed"] > 0
    assert data.counts == expected
    assert data.n_trials == len(logged.trials)
    assert f"recorded {len(logged.trials)} trials" in page
    assert (
        f"{expected['finished']} finished, {expected['diverged']} diverged, {expected['failed']} failed"
        in page
    )
    bars = figure(page, "fig-summary-counts")["data"][0]
    assert dict(zip(bars["x"], values(bars["y"]).tolist(), strict=True)) == expected
    problems = {p.trial_id: p for p in data.problems}
    for t in logged.by_status("failed") + logged.by_status("diverged"):
        assert t.trial_id in problems and t.trial_id in page
    for t in logged.by_status("failed"):
        assert problems[t.trial_id].error == t.error
        assert t.error.replace("<", "&lt;").replace(">", "&gt;") in page
    for t in logged.by_status("diverged"):
        assert problems[t.trial_id].diverged_epoch == t.metrics["diverged_epoch"]
    best = max(finished(logged), key=lambda t: (t.metrics["auroc"], -t.index))
    assert data.best_trial_id == best.trial_id
    assert data.best_metrics["auroc"] == pytest.approx(best.metrics["auroc"])
    assert data.spec_text == logged.spec_text


# ---------------------------------------------------------------- sensitivity


def test_sensitivity_lines_are_seed_means_of_the_logged_auroc(main) -> None:
    logged, page, study = main
    data = extract_sensitivity(study)
    cells: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in finished(logged):
        c = t.config
        if c.twin_of == 0.0:
            cells[(c.arch, c.optimizer, f"{c.metric} · {c.amplification}", c.factor)][c.seed].append(
                t.metrics["auroc"]
            )
    got = {
        (ln.arch, ln.optimizer, ln.label, f): e
        for ln in data.lines
        for f, e in zip(ln.factors, ln.estimates, strict=True)
    }
    assert set(got) == set(cells)
    for key, per_seed in cells.items():
        mean, half, n = seed_mean_ci(per_seed)
        assert got[key].mean == pytest.approx(mean) and got[key].n == n
        if n > 1:
            assert got[key].half_width == pytest.approx(half)
    assert data.n_trials == sum(1 for t in finished(logged) if t.config.twin_of == 0.0)

    fig = figure(page, "fig-sensitivity-lines")
    means = [tr for tr in fig["data"] if tr.get("meta") == "mean"]
    assert len(means) == len(data.lines)
    assert sorted(len(values(tr["x"])) for tr in means) == sorted(len(ln.factors) for ln in data.lines)
    assert len(fig["data"]) - len(means) == sum(
        any(e.has_interval for e in ln.estimates) for ln in data.lines
    )
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert (data.archs, data.optimizers) == (["conv_ae", "mlp_ae"], ["adam", "sgd"])
    diverged = defaultdict(int)
    for t in logged.by_status("diverged"):
        diverged[t.config.factor] += 1
    assert {f: d for f, (d, _) in data.diverged.items()} == dict(diverged)


def _cells(logged: SyntheticStudy) -> dict[tuple, dict[int, float]]:
    """Logged finished AUROC by (metric, optimizer, arch, form, factor) then seed; twins as form "twin"."""
    out: dict[tuple, dict[int, float]] = defaultdict(dict)
    for t in finished(logged):
        c = t.config
        form, factor = ("twin", c.twin_of) if c.twin_of > 0 else (c.amplification, c.factor)
        out[(c.metric, c.optimizer, c.arch, form, factor)][c.seed] = t.metrics["auroc"]
    return out


def _complete_difference(cells: dict, a: tuple, b: tuple, seeds: int) -> float | None:
    """Mean of a minus mean of b when both finished on every seed (then the model's contrast equals it)."""
    if len(cells.get(a, {})) < seeds or len(cells.get(b, {})) < seeds:
        return None
    return float(np.mean(list(cells[a].values())) - np.mean(list(cells[b].values())))


def test_effects_are_contrasts_of_the_logged_values_per_optimizer(main) -> None:
    from reports.render.verdicts import verdict_sentence
    from reports.sections.effects import extract_effects

    logged, page, study = main
    data = extract_effects(study)
    cells = _cells(logged)
    assert data.n_trials == len(finished(logged))
    checked = 0
    for r in data.effects.itertuples():
        stratum = (r.metric, r.optimizer, r.arch)
        other = (*stratum, "linear", 1.0) if r.kind == "gain" else (*stratum, "twin", r.factor)
        expected = _complete_difference(cells, (*stratum, r.amplification, r.factor), other, 2)
        if expected is not None:
            assert r.estimate == pytest.approx(expected)
            checked += 1
        assert r.ci_low < r.estimate < r.ci_high and r.p <= r.p_holm <= 1.0
    assert (
        checked >= len(data.effects) - 12
    )  # 4 diverged (sgd, exp, 100) cells, 2 failed trials: <= 12 unbalanced
    assert set(data.effects[data.effects.kind == "vs_twin"]["optimizer"]) == {"sgd"}
    for _, row in data.effects.iterrows():
        assert verdict_sentence(row).replace("<", "&lt;") in page
    for claim in ("beyond seed noise", "within seed noise", "no more than a larger"):
        assert claim not in page


def test_importance_and_parallel_coordinates_cover_the_varied_params(main) -> None:
    logged, page, study = main
    data = extract_sensitivity(study).params
    varied = {"optimizer", "metric", "amplification", "factor", "arch"}
    assert set(data.importance) == varied
    assert sum(data.importance.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in data.importance.values())
    bars = figure(page, "fig-sensitivity-importance")["data"][0]
    assert set(bars["y"]) == varied
    par = figure(page, "fig-sensitivity-parcoords")["data"][0]
    assert par["type"] == "parcoords"
    n = sum(1 for t in finished(logged) if t.config.twin_of == 0.0)
    assert len(par["dimensions"]) == len(varied) + 1
    assert all(len(values(d["values"])) == n for d in par["dimensions"])
    arch = next(d for d in par["dimensions"] if d["label"] == "arch")
    assert arch["ticktext"] == ["conv_ae", "mlp_ae"]


def test_importance_of_a_constant_detection_metric_is_skipped_with_the_reason(main) -> None:
    """Every trial at the same AUROC (e.g. 1.0 on an easy digit) leaves fANOVA nothing to split."""
    from reports.sections.importance import draw_importance, extract_importance

    _, _, study = main
    done = study.trials[study.trials["status"] == "finished"].assign(auroc=1.0)
    data = extract_importance(done, ["metric", "factor"], "auroc")
    assert data.importance == {} and "every finished trial has the same auroc (1)" in data.importance_note
    assert "Parameter importance is skipped: every finished trial" in draw_importance(data)[0].caption


# ---------------------------------------------------------------- effective learning rate


def test_lr_control_difference_is_amplified_minus_twin(main) -> None:
    logged, page, study = main
    data = extract_lr_control(study)
    cells = _cells(logged)
    amplified = {k for k in cells if k[1] == "sgd" and k[3] != "twin" and k[4] != 1.0}
    assert {c.label for c in data.comparisons} == {f"{m} · {a} · {f} λ={x:g}" for m, _, a, f, x in amplified}
    assert {c.optimizer for c in data.comparisons} == {"sgd"} and data.scale_free == ["adam"]
    for c in data.comparisons:
        r = c.vs_twin
        stratum = (r["metric"], "sgd", r["arch"])
        amp, twin, base = (
            (*stratum, r["amplification"], r["factor"]),
            (*stratum, "twin", r["factor"]),
            (*stratum, "linear", 1.0),
        )
        for got, a, b in (
            (r["estimate"], amp, twin),
            (c.gain["estimate"], amp, base),
            (c.twin_gain["estimate"], twin, base),
        ):
            expected = _complete_difference(cells, a, b, 2)
            if expected is not None:
                assert got == pytest.approx(expected)
        assert r["estimate"] == pytest.approx(c.gain["estimate"] - c.twin_gain["estimate"])
    fig = figure(page, "fig-lr-control-twins")
    assert [tr["name"] for tr in fig["data"]] == ["amplified", "lr-matched twin"]
    assert all(len(values(tr["y"])) == len(data.comparisons) for tr in fig["data"])
    assert "the λ = 1 baseline is the learning-rate-matched control" in page


# ---------------------------------------------------------------- steepness


def test_steepness_is_stratified_with_medians(main, artifacts) -> None:
    logged, page, study = main
    data = extract_steepness(study, artifacts)
    done = finished(logged)
    for measure in ("sharpness", "hessian_trace", "slice_curvature"):
        corr = next(c for c in data.correlations if c.measure == measure)
        assert len(corr.x) == len(done)
        strata = defaultdict(list)
        for t in done:
            strata[(t.config.metric, t.config.optimizer, t.config.arch)].append(t)
        per = corr.result.per_stratum.set_index(["metric", "optimizer", "arch"])
        assert set(per.index) == set(strata)
        weights, zs = [], []
        for key, cell in strata.items():
            rho = stats.spearmanr(
                [t.metrics[measure] for t in cell], [t.metrics["auroc"] for t in cell]
            ).statistic
            assert per.loc[key, "rho"] == pytest.approx(rho) and per.loc[key, "n"] == len(cell)
            weights.append(len(cell) - 3)
            zs.append(np.arctanh(rho))
        assert corr.result.combined_rho == pytest.approx(np.tanh(np.average(zs, weights=weights)))
        assert f"{measure} vs auroc: combined stratified ρ = {corr.result.combined_rho:+.2f}" in page
    line = next(
        ln
        for ln in data.lines
        if (ln.measure, ln.optimizer, ln.label) == ("sharpness", "sgd", "mse · conv_ae · exp")
    )
    cell = [
        t.metrics["sharpness"]
        for t in done
        if (t.config.metric, t.config.optimizer, t.config.arch, t.config.amplification, t.config.factor)
        == ("mse", "sgd", "conv_ae", "exp", 10.0)
        and t.config.twin_of == 0.0
    ]
    i = line.factors.index(10.0)
    assert (line.medians[i], line.q1[i], line.q3[i]) == pytest.approx(
        (np.median(cell), np.percentile(cell, 25), np.percentile(cell, 75))
    )
    assert (
        "Medians, not means" in page
        and "geometric" not in page.split("sec-steepness")[1].split("sec-scores")[0]
    )

    # Slices: the baseline of the best setting and the best trial at λ=10; λ=100 lost its landscape.npz.
    data = data.landscape
    by_id = {t.trial_id: t for t in logged.trials}
    roles = [s.role for s in data.slices]
    assert roles == ["baseline", "best λ=10"]
    for s in data.slices:
        assert np.allclose(s.loss, by_id[s.trial_id].arrays["landscape.npz"]["loss_1d"])
    best100 = max(
        (t for t in done if t.config.factor == 100.0 and t.config.twin_of == 0.0),
        key=lambda t: t.metrics["auroc"],
    )
    assert data.missing == [f"best λ=100 ({best100.trial_id}): landscape.npz"]
    assert "Missing artifacts: best λ=100" in page
    assert len(figure(page, "fig-steepness-slices-1d")["data"]) == 2
    assert artifacts.downloads <= 8, "artifacts are fetched for the shown trials only"


def test_score_histograms_use_the_logged_scores(main, artifacts) -> None:
    logged, page, study = main
    data = extract_scores(study, artifacts)
    by_id = {t.trial_id: t for t in logged.trials}
    assert [h.role for h in data.histograms] == ["baseline", "best"]
    for h in data.histograms:
        arrays = by_id[h.trial_id].arrays["scores.npz"]
        assert h.auroc == pytest.approx(roc_auc_score(arrays["labels"], arrays["scores"]))
        assert (h.n_normal, h.n_anomalous) == (
            int((arrays["labels"] == 0).sum()),
            int((arrays["labels"] == 1).sum()),
        )
        assert sum(h.normal) == pytest.approx(1.0) and sum(h.anomalous) == pytest.approx(1.0)
        assert f"AUROC of these scores {h.auroc:.3f}" in page
    assert len(figure(page, "fig-scores-histograms")["data"]) == 4


# ---------------------------------------------------------------- label-free selection


def test_label_free_regret_and_rank_correlation(main) -> None:
    logged, page, study = main
    data = extract_label_free(study)
    assert data is not None
    done = finished(logged)
    oracle = max(t.metrics["auroc"] for t in done)
    for name, higher in (
        ("synthetic_auroc", True),
        ("alignment_loss", False),
        ("alignment_loss_tuned", False),
    ):
        pick = (max if higher else min)(done, key=lambda t: t.metrics[name])
        score = next(s for s in data.scores if s.name == name)
        assert score.picked_trial == pick.trial_id
        assert score.regret == pytest.approx(oracle - pick.metrics["auroc"])
        rho, _ = stats.spearmanr([t.metrics[name] for t in done], [t.metrics["auroc"] for t in done])
        assert score.rho == pytest.approx(rho)
        assert f"{name}: ρ = {rho:.2f}" in page and f"regret {oracle - pick.metrics['auroc']:.4f}" in page
        # these scores track AUROC in the generative model: significantly, in the right direction
        assert score.verdict == "ranks trials" and f"regret {score.regret:.4f} (ranks trials)" in page
    # each selector is set beside a random pick and the default configuration (TrialConfig's defaults)
    random_regret = oracle - float(np.mean([t.metrics["auroc"] for t in done]))
    default = [
        t.metrics["auroc"]
        for t in done
        if (t.config.arch, t.config.optimizer, t.config.metric, t.config.amplification, t.config.factor)
        == ("conv_ae", "adam", "mse", "linear", 1.0)
        and t.config.twin_of == 0.0
    ]
    assert data.random_regret == pytest.approx(random_regret)
    assert data.default_regret == pytest.approx(oracle - float(np.mean(default)))
    assert html.escape(f"a random pick's expected regret is {random_regret:.4f}") in page
    assert f"{oracle - float(np.mean(default)):.4f}" in page
    assert html.escape("random pick's regret") in page and html.escape("default's regret") in page  # columns
    assert len(figure(page, "fig-label-free-scatter")["data"]) == 4


# ---------------------------------------------------------------- edge cases


def test_running_study_says_so(store, tmp_path) -> None:
    root, uri = store
    grid = SyntheticGrid(
        archs=("conv_ae",),
        optimizers=("sgd",),
        metrics=("mse",),
        amplifications=("linear",),
        factors=(1.0, 10.0),
        twins=False,
    )
    logged = write_synthetic_study(
        uri, "running", root / "art-running", grid=grid, status="running", n_failed=0
    )
    page = build_report("running", tracking_uri=uri, out=tmp_path / "r.html").read_text()
    assert "This study is still running" in page
    running = len(logged.by_status("running"))
    assert running == 2 and f"{running} running" in page


def test_empty_study_gives_a_clear_message(store, tmp_path) -> None:
    root, uri = store
    write_synthetic_study(uri, "empty", root / "art-empty", grid=SyntheticGrid(seeds=()), n_failed=0)
    page = build_report("empty", tracking_uri=uri, out=tmp_path / "e.html").read_text()
    assert "has no trials recorded yet" in page
    assert parse(page).sections == ["sec-answers", "sec-summary"]


def test_one_valued_dimensions_and_missing_artifacts_degrade_gracefully(store, tmp_path) -> None:
    root, uri = store
    grid = SyntheticGrid(
        archs=("conv_ae",), optimizers=("sgd",), metrics=("mse",), amplifications=("linear",), twins=False
    )
    write_synthetic_study(
        uri, "plain", root / "art-plain", grid=grid, artifacts="none", label_free=False, n_failed=0
    )
    page = build_report("plain", tracking_uri=uri, out=tmp_path / "p.html").read_text()
    parsed = parse(page)
    assert "sec-label-free" not in parsed.sections
    assert "Parameter importance is skipped: it needs at least 2 varied parameters" in page
    assert "no effective-learning-rate twins" in page
    # under Adam the baseline itself is the lr-matched control: no twins needed
    write_synthetic_study(
        uri,
        "adam",
        root / "art-adam",
        grid=dataclasses.replace(grid, optimizers=("adam",)),
        artifacts="none",
        label_free=False,
        n_failed=0,
    )
    adam_page = build_report("adam", tracking_uri=uri, out=tmp_path / "a.html").read_text()
    assert "the λ = 1 baseline is the learning-rate-matched control" in adam_page
    assert "No 1-D loss slice to show" in page and "No test-score distribution to show" in page
    assert "Missing artifacts: baseline" in page
    assert "fig-sensitivity-lines" in parsed.divs


def test_unknown_study_lists_the_existing_ones(main, store) -> None:
    with pytest.raises(StudyNotFoundError, match=r"no study named 'nope'.*existing studies: .*'main'"):
        build_report("nope", tracking_uri=store[1])


# ---------------------------------------------------------------- statistics helpers


def test_estimate_is_the_t_interval() -> None:
    x = np.array([0.81, 0.84, 0.86, 0.80])
    lo, hi = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    est = estimate(x)
    assert (est.mean, est.half_width, est.n) == pytest.approx((x.mean(), (hi - lo) / 2, 4))
    one = estimate([0.5, math.nan])
    assert one.n == 1 and not one.has_interval and one.mean == 0.5


def test_factor_levels_bin_open_ended_searches_and_keep_the_baseline() -> None:
    import pandas as pd

    factors = pd.Series(np.r_[1.0, np.geomspace(1.5, 1000.0, 200)])
    levels, binned = factor_levels(factors, max_levels=12)
    assert binned and levels.nunique() <= 13 and levels.iloc[0] == 1.0
    assert ((levels / factors).between(0.5, 2.0) | (factors == 1.0)).all()
    few, binned_few = factor_levels(pd.Series([1.0, 10.0, 100.0]))
    assert not binned_few and few.tolist() == [1.0, 10.0, 100.0]


# ---------------------------------------------------------------- a real study (lead's fixture)


@pytest.mark.slow
def test_report_on_real_study(tiny_study, tmp_path) -> None:
    """On a study run through the runner: every section renders and the summary counts every child run."""
    name, uri = tiny_study.name, tiny_study.tracking_uri
    page = build_report(name, tracking_uri=uri, out=tmp_path / "real.html").read_text()
    parsed = parse(page)
    for section in SECTIONS[:5]:
        assert f"sec-{section}" in parsed.sections
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    parent = client.search_runs([experiment.experiment_id], "tags.`lamp.role` = 'study'")[0]
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=10_000
    )
    bars = figure(page, "fig-summary-counts")["data"][0]
    assert int(values(bars["y"]).sum()) == len(children) > 0
    assert f"recorded {len(children)} trials" in page


@pytest.mark.slow
def test_cost_and_divergence_metrics_reach_mlflow(tiny_study) -> None:
    """docs/mlflow_schema.md's metric list: `train_time_s` on every trained trial, `diverged_value` on diverged ones."""
    import sys

    client = MlflowClient(tracking_uri=tiny_study.tracking_uri)
    experiment = client.get_experiment_by_name(tiny_study.name)
    runs = client.search_runs([experiment.experiment_id], "tags.`lamp.role` = 'trial'", max_results=10_000)
    by_status = defaultdict(list)
    for run in runs:
        by_status[run.data.tags["lamp.status"]].append(run.data.metrics)
    trained = by_status["finished"] + by_status["collapsed"] + by_status["diverged"]
    assert by_status["diverged"], "tests/specs/tiny.yaml's exp at λ=1e5 must diverge"
    assert trained and all(m["train_time_s"] > 0 for m in trained)
    for m in by_status["diverged"]:
        assert m["diverged_epoch"] >= 1 and m["diverged_is_nan"] in (0.0, 1.0)
        # the loss was non-finite: MLflow keeps +-inf as +-float max, NaN as 0 with the flag
        value, is_nan = m["diverged_value"], m["diverged_is_nan"] == 1.0
        assert value == 0.0 if is_nan else abs(value) == sys.float_info.max
    # every metric a trial logs is in the schema's child-run list (`amp_x` under x, per-family metrics as `<family>`)
    schema = (Path(__file__).resolve().parents[1] / "docs" / "mlflow_schema.md").read_text()
    listed = schema.split("## Child runs: one per trial")[1].split("\n## ")[0]
    from study.labelfree import FAMILIES

    def family_form(key: str) -> str:
        for prefix in ("synthetic_auroc_", "reference_auroc_", "severity_"):
            if key.removeprefix(prefix) in FAMILIES:
                return f"{prefix}<family>"
        return key

    logged = {family_form(k.removeprefix("amp_")) for run in runs for k in run.data.metrics}
    assert len(logged) > 20 and {k for k in logged if f"`{k}`" not in listed} == set()
