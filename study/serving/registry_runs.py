"""Which trial `register` picks: every child run of a study, read page after page, ranked by setting.

`search_runs` returns one page (at most `max_results` runs); a study can hold
more trials than any page (`lamp_grid`: 12,960), so a single call ranks an
arbitrary subset. `trial_runs` follows the page tokens to the end.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from typing import Any

from study.core.errors import LampError
from study.core.metrics import mode_of
from study.core.vocab import GROUP_TAG, PARENT_TAG, ROLE_TAG, STATUS_TAG, TRIAL_ID_TAG
from study.selection.best_setting import SettingChoice, choose_setting, setting_key

PAGE_SIZE = 1000  # runs per search_runs page
SELECTED_ON_VALIDATION = ("auroc", "ap")  # ranked by val_<metric>
EXCLUDED = {  # statuses never registered unless asked, and why
    "collapsed": "output independent of input",
    "degenerate": "scores like a trivial model",
}
LABEL_FREE = "label-free"  # `register --by label-free`: the default label-free selector


def trial_runs(client: Any, experiment_id: str, parent_id: str, page_size: int = PAGE_SIZE) -> list[Any]:
    """Every child run of the study's parent run, page after page (a study can hold >10,000 trials)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
            max_results=page_size,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def trial_frame(runs: list[Any], metric: str) -> Any:
    """run_id, trial_id, group (setting) and `metric` of each run, for study/selection/best_setting.py."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "run_id": r.info.run_id,
                "trial_id": r.data.tags.get(TRIAL_ID_TAG, r.info.run_id),
                "group": r.data.tags.get(GROUP_TAG) or setting_key(r.data.params),
                metric: r.data.metrics.get(metric, math.nan),
            }
            for r in runs
        ],
        columns=["run_id", "trial_id", "group", metric],
    )


def setting_label(run: Any) -> str:
    """`sgd ssim linear λ=100 lr=0.005` (twins: `twin of λ=…`): a setting as `register` names it."""
    p = run.data.params
    twin = f" twin of λ={p['twin_of']}" if p.get("twin_of") not in (None, "0", "0.0") else ""
    parts = (p.get("arch"), p.get("optimizer"), p.get("metric"), p.get("amplification"))
    return f"{' '.join(x for x in parts if x)} λ={p.get('factor')} lr={p.get('lr')}{twin}"


class RegistryError(LampError):
    """Nothing to register, or nothing to score with."""


@dataclass(frozen=True)
class Pick:
    """What `register` picked: the trial's run, how it was ranked, and (for a per-trial metric) its setting."""

    parent: Any
    run: Any
    metric: str
    mode: str
    setting: SettingChoice | None  # None for a cross-trial label-free selector
    labels: dict[str, str] = field(default_factory=dict)  # setting (lamp.group) -> readable label


def best_trial(
    client: Any, study: str, metric: str | None, mode: str | None, *, allow_collapsed: bool = False
) -> tuple[Any, Any, str, str]:
    """(parent run, best child run, ranking metric, mode) of a study's finished trials (see `best_pick`)."""
    pick = best_pick(client, study, metric, mode, allow=("collapsed",) if allow_collapsed else ())
    return pick.parent, pick.run, pick.metric, pick.mode


def best_pick(
    client: Any,
    study: str,
    metric: str | None,
    mode: str | None,
    *,
    allow: tuple[str, ...] = (),
    page_size: int = PAGE_SIZE,
) -> Pick:
    """The trial to register among every trial of the study (all pages of runs).

    A per-trial metric picks the best setting by its seed-mean (study/selection/best_setting.py), then that
    setting's best seed; `allow` adds statuses beside `finished` (collapsed, degenerate).
    """
    parent, children = _study_runs(client, study, page_size)
    objective = parent.data.tags.get("lamp.objective_metric", "auroc")
    from study.selection import DEFAULT_SELECTOR, SELECTORS, TRIAL_METRICS

    if metric == LABEL_FREE or (metric is None and objective in TRIAL_METRICS):
        metric = DEFAULT_SELECTOR  # label-free: the benchmark's best selector (bench/RESULTS.md)
    metric = metric or objective
    if metric in SELECTORS and metric not in TRIAL_METRICS:
        return Pick(
            parent, _pick_by_selector(children, study, metric, score_loader(client)), metric, "max", None
        )
    if mode is None:  # the study's mode belongs to its objective; any other metric has its natural direction
        natural = mode_of(metric)
        mode = parent.data.tags.get("lamp.objective_mode", natural) if metric == objective else natural
    if metric in SELECTED_ON_VALIDATION:
        metric = f"val_{metric}"
    statuses = ("finished", *allow)
    choice = choose_setting(
        trial_frame([r for r in children if r.data.tags.get(STATUS_TAG) in statuses], metric), metric, mode
    )
    if choice is None:
        left = {
            s: sum(r.data.tags.get(STATUS_TAG) == s for r in children) for s in EXCLUDED if s not in allow
        }
        hint = "".join(
            f"; {n} {s} trial(s) ({EXCLUDED[s]}) were left out, pass --allow-{s} to consider them"
            for s, n in left.items()
            if n
        )
        raise RegistryError(f"study {study!r} has no finished trial with metric {metric!r} to register{hint}")
    chosen = next(r for r in children if r.info.run_id == choice.run_id)
    return Pick(
        parent,
        chosen,
        metric,
        mode,
        choice,
        {r.data.tags.get(GROUP_TAG, ""): setting_label(r) for r in children},
    )


def _study_runs(client: Any, study: str, page_size: int) -> tuple[Any, list[Any]]:
    """(parent run, every trial run) of a study; a clear error when the study or its parent is missing."""
    exp = client.get_experiment_by_name(study)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise RegistryError(
            f"no study {study!r} in this tracking store; studies: {', '.join(names) or 'none'}"
        )
    parents = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'study'", max_results=1
    )
    if not parents:
        raise RegistryError(
            f"experiment {study!r} has no lamp-study parent run; was it made by `lamp-study run`?"
        )
    parent = parents[0]
    return parent, trial_runs(client, exp.experiment_id, parent.info.run_id, page_size)


def _pick_by_selector(children: list[Any], study: str, selector: str, load: Any = None) -> Any:
    """The finished trial a cross-trial label-free selector (study/selection/rules.py) picks."""
    import pandas as pd

    from study.selection import get_selector, pick

    if get_selector(selector).needs_pool:
        raise RegistryError(
            f"selector {selector!r} needs every trial's test-pool scores; register --by borda or rra"
        )
    runs = [r for r in children if r.data.tags.get(STATUS_TAG) == "finished"]
    frame = pd.DataFrame([{"run_id": r.info.run_id, "status": "finished", **r.data.metrics} for r in runs])
    second = load if get_selector(selector).needs_scores else None
    chosen = pick(frame.set_index("run_id"), selector, second) if not frame.empty else None
    if chosen is None:
        raise RegistryError(f"study {study!r} has no finished trial that selector {selector!r} can rank")
    return next(r for r in runs if r.info.run_id == chosen)


def score_loader(client: Any) -> Any:
    """Per run: its held-out normal and unlabelled-pool scores from `scores.npz` (None when it has none).

    The paired comparison (study/selection/paired.py) loads only its few candidates.
    """
    import numpy as np
    from mlflow.exceptions import MlflowException

    from study.core.vocab import SCORES_FILE

    def load(run_id: str) -> tuple[Any, Any] | None:
        with tempfile.TemporaryDirectory() as d:
            try:
                path = client.download_artifacts(run_id, SCORES_FILE, d)
                with np.load(path, allow_pickle=False) as f:
                    if "unlabelled_pool" not in f:
                        return None
                    return f["unlabelled_normals"].astype(float), f["unlabelled_pool"].astype(float)
            except (OSError, ValueError, MlflowException):
                return None

    return load


def setting_info(pick: Pick) -> dict[str, Any]:
    """The picked setting's seed-mean and whether the validation part separates it from the rest."""
    choice = pick.setting
    assert choice is not None
    return {
        "group": choice.group,
        "seed_mean": choice.mean,
        "ci95": [choice.ci_low, choice.ci_high] if math.isfinite(choice.ci_low) else None,
        "n_seeds": choice.n_seeds,
        "n_settings": choice.n_settings,
        "distinguishable": choice.distinguishable,
        "n_not_distinguishable": len(choice.tied),
        "note": choice.sentence(pick.metric, pick.labels),
    }
