"""Label-free selection section: would picking a trial without labels have found a good one?

For each label-free selector the study can evaluate — the per-trial scores
(ST-SSAD's synthetic AUROC and alignment loss, the calibrated per-family
synthetic AUROCs and their mean) and the cross-trial rank aggregations of
study/selection/rules.py — the section shows how it ranks finished trials against
the labelled detection metric (Spearman ρ) and its regret (best detection
metric minus that of the trial it picks), beside the expected regret of a
random pick and of the default configuration. Every selector gets a verdict:
"ranks trials" only when ρ is significantly positive (one-sided p < 0.05 in the
better direction); "no better than random here" otherwise, or "wrong sign".

For the chosen selector (the study's label-free objective, else the default
selector) it adds its benchmark record (median and worst regret over the
regret benchmark's tasks, reports/sections/label_free_record.json written by
bench/label_free_regret.py) and whether it ranks trials at all on this study:
the unlabelled AUROC only where the pool holds anomalies the trials see
(study/labelfree/unlabelled.py), the synthetic families only where they agree
with each other (mean pairwise Spearman ρ between families over trials) and do
not saturate.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.stats import spearmanr

from reports.render.labels import describe, fmt_p
from reports.render.section import Panel, html_table
from reports.render.verdicts import selector_rule, selector_verdict
from reports.sections.labelfree_checks import (
    Consensus,
    PoolCheck,
    consensus,
    consensus_sentence,
    pool_check,
    pool_sentence,
)
from reports.sections.labelfree_pool import PoolReading, pool_reading, pool_reading_sentence, score_loader
from reports.source.extract import ArtifactLoader, Study
from reports.stats.aggregate import Points, scatter_points
from study.core.config import TrialConfig
from study.core.vocab import UNLABELLED_METRIC
from study.selection import (
    DEFAULT_SELECTOR,
    SELECTORS,
    TRIAL_METRICS,
    family_columns,
    selector_scores,
)

RECORD = Path(__file__).with_name("label_free_record.json")
# A selector's form without per-image pool scores: what the regret record holds when it predates the selector.
UNPAIRED = {
    "unlabelled_tail": "unlabelled_or_borda",
    "unlabelled_paired": "unlabelled_or_borda",
    "unlabelled_paired_tiebreak": "unlabelled_or_borda",
}
ALPHA = 0.05  # one-sided level for "ranks trials"
# Shown in this order when present; per-family columns follow the aggregate ones.
SHOWN = (
    "unlabelled_tail",
    "unlabelled_paired",
    "unlabelled_or_borda",
    "borda",
    "rra",
    UNLABELLED_METRIC,
    "synthetic_auroc_mean",
    *TRIAL_METRICS,
)
# Parameters whose TrialConfig default defines "the default configuration" of a study.
DEFAULT_PARAMS = ("arch", "optimizer", "metric", "amplification", "factor", "twin_of")  # lr: twins vary it


@dataclass(frozen=True)
class SelectionScore:
    """One label-free selector against the detection metric over finished trials."""

    name: str
    higher_is_better: bool  # of the raw per-trial metric (selectors: True)
    x: list[float]  # the raw score shown in the scatter (a metric, or the selector's aggregate)
    y: list[float]  # the detection metric
    trial_ids: list[str]
    rho: float  # Spearman ρ of the raw score with the detection metric
    p: float  # two-sided
    picked_trial: str
    picked_setting: str
    picked_detection: float
    regret: float  # oracle best detection minus picked_detection
    points: Points  # what the scatter draws (columns "_score" and the detection metric)

    @property
    def agreement(self) -> float:
        """ρ signed so that positive means the score ranks trials like the detection metric."""
        return self.rho if self.higher_is_better else -self.rho

    @property
    def verdict(self) -> str:
        """`ranks trials`, `no better than random here` or `wrong sign` (one-sided test of the agreement)."""
        return selector_verdict(self.agreement, self.p, ALPHA)


@dataclass(frozen=True)
class LabelFreeData:
    """Selectors present in the study, with the oracle, the baselines and the benchmark record."""

    detection: str
    oracle: float  # best detection metric over finished trials
    oracle_trial: str
    random_regret: float  # expected regret of a uniformly random finished trial
    default_regret: float  # regret of the default configuration (mean over its trials); NaN when absent
    default_setting: str
    scores: list[SelectionScore]
    chosen: str  # the selector this study would use
    consensus: Consensus | None  # None when the trials carry no per-family scores
    pool: PoolCheck | None  # None when the trials carry no unlabelled AUROC
    record: dict[str, Any] | None  # the chosen selector's benchmark record
    paired: PoolReading | None = (
        None  # the paired comparison of the best trials (reports/sections/labelfree_pool.py)
    )


def extract_label_free(
    study: Study, record_path: Path = RECORD, artifacts: ArtifactLoader | None = None
) -> LabelFreeData | None:
    """None when the study logged no label-free score or no detection metric (the section is left out).

    `artifacts` lets the paired selector read the best trials' per-image pool scores.
    """
    y = study.detection
    trials = study.trials.copy()
    trials.index = pd.Index(trials["trial_id"].astype(str).to_numpy())  # selectors index trials by id
    done = trials[trials["status"] == "finished"]
    if y not in done or done[y].isna().all():
        return None
    labelled = done[done[y].notna()]
    has_families = bool(family_columns(labelled))
    names = [
        n for n in SHOWN if n in SELECTORS and (n in labelled or (has_families and n not in TRIAL_METRICS))
    ]
    names = [n for n in dict.fromkeys(names) if n not in TRIAL_METRICS or labelled[n].notna().any()]
    if not names:
        return None
    ordered = labelled.sort_values([y, "trial_id"], ascending=[False, True], kind="mergesort")
    oracle_row = ordered.iloc[0]
    oracle = float(oracle_row[y])
    load = score_loader(study, artifacts) if artifacts is not None else None
    scores = [s for s in (_score(name, labelled, y, oracle, load) for name in names) if s is not None]
    if not scores:
        return None
    default_value, default_setting = _default_configuration(labelled, y)
    chosen = study.objective if study.objective in TRIAL_METRICS else DEFAULT_SELECTOR
    if chosen not in {s.name for s in scores}:
        chosen = scores[0].name
    return LabelFreeData(
        detection=y,
        oracle=oracle,
        oracle_trial=str(oracle_row["trial_id"]),
        random_regret=oracle - float(labelled[y].mean()),
        default_regret=oracle - default_value,
        default_setting=default_setting,
        scores=scores,
        chosen=chosen,
        consensus=consensus(labelled) if has_families else None,
        pool=pool_check(labelled),
        record=_record(record_path, chosen),
        paired=pool_reading(labelled, load, record_path) if load is not None else None,
    )


def _score(
    name: str, labelled: pd.DataFrame, y: str, oracle: float, load: Any = None
) -> SelectionScore | None:
    higher = TRIAL_METRICS.get(name, True)
    second = load if SELECTORS[name].needs_scores else None
    value = selector_scores(labelled, name, second).reindex(labelled.index)  # higher is better
    raw = labelled[name] if name in TRIAL_METRICS else value
    ok = value.notna() & raw.reindex(labelled.index).notna()
    if not ok.any():
        return None
    both = labelled[ok]
    v = value[ok]
    tie = both[v == v.max()].sort_values("trial_id", kind="mergesort")
    pick = tie.iloc[0]
    x, d = raw.reindex(both.index).to_numpy(float), both[y].to_numpy(float)
    rho, p = math.nan, math.nan
    if len(both) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = spearmanr(x, d)
        rho, p = float(result.statistic), float(result.pvalue)
    return SelectionScore(
        name=name,
        higher_is_better=higher,
        x=x.tolist(),
        y=d.tolist(),
        trial_ids=both["trial_id"].astype(str).tolist(),
        rho=rho,
        p=p,
        picked_trial=str(pick["trial_id"]),
        picked_setting=describe(pick),
        picked_detection=float(pick[y]),
        regret=oracle - float(pick[y]),
        points=scatter_points(both.assign(_score=x), ["_score", y], y),
    )


def _default_configuration(labelled: pd.DataFrame, y: str) -> tuple[float, str]:
    """Mean detection of the trials at TrialConfig's default in every parameter the study varies.

    A varied parameter whose default no trial runs (e.g. a study of SGD only) is left free.
    """
    defaults = TrialConfig().to_dict()
    match = pd.Series(True, index=labelled.index)
    fixed = []
    for p in DEFAULT_PARAMS:
        if p in labelled and labelled[p].nunique(dropna=True) > 1 and (labelled[p] == defaults[p]).any():
            match &= labelled[p] == defaults[p]
            fixed.append(f"{p}={defaults[p]}")
    setting = ", ".join(fixed) or "every trial"
    if not match.any():
        return math.nan, setting
    return float(labelled.loc[match, y].mean()), setting


def _record(path: Path, selector: str) -> dict[str, Any] | None:
    """The benchmark's figures for `selector` and the random pick, or None when the bench never ran it."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    summary = record.get("selectors", {})
    shown = selector
    if selector not in summary and selector in UNPAIRED:  # a record from before the paired default
        shown = UNPAIRED[selector]
    if shown not in summary:
        return None
    return {
        "selector": summary[shown],
        "shown": shown,
        "random": summary.get("random"),
        "default": summary.get("default"),
        "n_tasks": len(record.get("tasks", [])),
        "date": record.get("date", "?"),
    }


def draw_label_free(data: LabelFreeData) -> list[Panel]:
    """Score-vs-detection scatters and a table of ρ, verdict and regret beside random and default."""
    titles = [f"{s.name} ({'higher' if s.higher_is_better else 'lower'} is better)" for s in data.scores]
    fig = make_subplots(rows=1, cols=len(data.scores), subplot_titles=titles, shared_yaxes=True)
    for i, s in enumerate(data.scores, start=1):
        points = s.points.frame
        fig.add_trace(
            go.Scatter(
                x=points["_score"].to_numpy(float),
                y=points[data.detection].to_numpy(float),
                mode="markers",
                name=s.name,
                text=points["label"].to_numpy(object),
                marker={"size": 5, "opacity": 0.6},
                hovertemplate=f"%{{text}}<br>{s.name}=%{{x:.4f}}<br>{data.detection}=%{{y:.4f}}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text=s.name, row=1, col=i)
    fig.update_yaxes(title_text=data.detection, row=1, col=1)
    fig.update_layout(height=360, margin={"t": 40})
    rows = [
        (
            s.name + (" (chosen)" if s.name == data.chosen else ""),
            "higher" if s.higher_is_better else "lower",
            s.rho,
            fmt_p(s.p).removeprefix("p = "),
            s.verdict,
            len(s.x),
            f"{s.picked_trial} ({s.picked_setting})",
            s.picked_detection,
            s.regret,
            data.random_regret,
            data.default_regret,
        )
        for s in data.scores
    ]
    table = html_table(
        [
            "score",
            "better",
            "Spearman ρ",
            "p",
            "verdict",
            "trials",
            "picks",
            data.detection,
            "regret",
            "random pick's regret",
            "default's regret",
        ],
        rows,
        css_class="regret",
    )
    return [Panel("scatter", _caption(data), fig, table_html=table)]


def _caption(data: LabelFreeData) -> str:
    parts = [
        f"{s.name}: ρ = {s.rho:.2f} ({fmt_p(s.p)}), regret {s.regret:.4f} ({s.verdict})" for s in data.scores
    ]
    chosen = next(s for s in data.scores if s.name == data.chosen)
    default = (
        f"the default configuration ({data.default_setting}) {data.default_regret:.4f}"
        if math.isfinite(data.default_regret)
        else f"no trial runs the default configuration ({data.default_setting})"
    )
    return (
        f"Each point is {data.scores[0].points.what()}: a label-free score (computed without anomaly labels) against "
        f"{data.detection}. A useful score ranks trials like {data.detection} (ρ > 0 for higher-is-better scores, "
        f"ρ < 0 for losses) and picks a trial close to the best one ({data.detection} {data.oracle:.4f}, "
        f"{data.oracle_trial}); regret is that best value minus the {data.detection} of the trial the score picks. "
        f"For comparison, a random pick's expected regret is {data.random_regret:.4f} and {default}. "
        f"{selector_rule(ALPHA)} "
        f"{'; '.join(parts)}. "
        f"Selecting with {chosen.name} (this study's label-free choice) costs {chosen.regret:.4f} {data.detection} "
        f"here, against {data.random_regret:.4f} for a random pick. "
        f"{_record_sentence(data)} {pool_sentence(data.pool)} "
        f"{pool_reading_sentence(data.paired) if data.paired is not None or data.chosen == 'unlabelled_paired' else ''} "
        f"{consensus_sentence(data.consensus)}"
    )


def _record_sentence(data: LabelFreeData) -> str:
    r = data.record
    if r is None:
        return f"The regret benchmark has no record for {data.chosen}."
    s, rnd = r["selector"], r["random"] or {}
    name = (
        data.chosen
        if r.get("shown", data.chosen) == data.chosen
        else f"{r['shown']} ({data.chosen} without per-image pool scores; the record predates {data.chosen})"
    )
    return (
        f"Benchmark record of {name} (bench/label_free_regret.py, {r['n_tasks']} one-class tasks, {r['date']}): "
        f"median regret {s['median_regret']:.4f}, worst {s['worst_regret']:.4f}, no worse than a random pick on "
        f"{s['no_worse_than_random']:.0%} of tasks (random pick: median {rnd.get('median_regret', math.nan):.4f})."
    )
