"""How Tune proposes a spec's trials: a fixed list (grid, random) or Optuna's TPE over the spec's space."""

from __future__ import annotations

from typing import Any

from study.spec import StudySpec, expand


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
