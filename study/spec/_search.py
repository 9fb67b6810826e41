"""How Tune proposes a spec's trials: a fixed list (grid, random) or Optuna's TPE define-by-run space."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from study.spec import _dimensions as dims
from study.spec._expand import expand
from study.spec._params import coerce

if TYPE_CHECKING:
    import optuna

    from study.spec._schema import StudySpec


def suggest(spec: StudySpec, trial: optuna.Trial) -> dict[str, Any]:
    """Define-by-run space for Optuna: suggest every active dimension, return `{dotted_name: value}`.

    Conditional dimensions are suggested only when their condition holds, so
    TPE models them only on the trials where they exist.
    """
    values: dict[str, Any] = {}
    for name in dims.order(spec):
        if not dims.active(spec, name, values):
            continue
        dim = spec.dimensions[name]
        if dim.categorical:
            choices = dim.values()
            if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                value = trial.suggest_categorical(name, choices)
            else:  # Optuna stores only scalars: suggest a label (e.g. a list of normal classes)
                labels = [json.dumps(c) for c in choices]
                value = choices[labels.index(trial.suggest_categorical(name, labels))]
        elif dim.kind == "int":
            low, high = dim.int_
            value = trial.suggest_int(name, low, high, step=dim.step or 1)
        else:
            low, high = dim.spec(dim.kind)
            value = trial.suggest_float(name, low, high, log=dim.kind == "loguniform")
        values[name] = coerce(name, value)
    return values


def search_algorithm(
    spec: StudySpec, metric: str, optuna_storage: str | None = None
) -> tuple[Any, dict[str, Any], int]:
    """`(search_alg, param_space, num_samples)` for `tune.TuneConfig` / `tune.Tuner`.

    grid and random: no searcher, the expanded trials as one `grid_search`
    under the key `trial`, one sample. tpe: Optuna's TPE (seeded by
    `search.seed`) on the define-by-run space, reporting `metric` in the
    objective's direction, limited to `max_concurrent` proposals at a time;
    with `optuna_storage` (an RDB URL) the Optuna study named after the spec
    lives there, where `optuna-dashboard` and `optuna.load_study` open it.
    """
    from ray import tune

    if spec.search.algorithm != "tpe":
        return None, {"trial": tune.grid_search([c.to_dict() for c in expand(spec)])}, 1
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(
        space=spec.suggest,
        metric=metric,
        mode=spec.objective.mode,
        sampler=optuna.samplers.TPESampler(seed=spec.search.seed),
        storage=optuna.storages.RDBStorage(optuna_storage) if optuna_storage else None,
        study_name=spec.name,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent), {}, spec.search.samples
