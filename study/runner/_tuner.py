"""The Tune experiment of a study: trainable, scheduler, searcher, run config, or a restored one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study.config import TrialConfig
from study.gate import Gate
from study.runner._callbacks import _ACTIVE, MlflowCallback, Progress
from study.runner._keys import MAX_FAILURES, OBJECTIVE_KEY
from study.runner._trainable import report_interval_s, trainable
from study.spec import StudySpec
from study.tracking import StudyTracker


def _tuner(
    spec: StudySpec,
    tune_path: Path,
    tracker: StudyTracker,
    *,
    restore: bool,
    configs: list[TrialConfig] | None = None,
) -> Any:
    """A new Tune experiment at `tune_path` (of `configs` when given, else the spec's), or the one there restored."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    fn = tune.with_resources(
        tune.with_parameters(trainable, spec=spec, report_interval=report_interval_s(), gate=Gate.from_env()),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    _ACTIVE[spec.name] = (tracker, spec)
    callbacks = [MlflowCallback(spec.name), Progress(spec.name)]
    if restore:
        return tune.Tuner.restore(str(tune_path), trainable=fn, resume_unfinished=True, resume_errored=False)

    scheduler = None
    if spec.early_stopping is not None:
        es = spec.early_stopping
        scheduler = ASHAScheduler(
            metric=es.metric,
            mode=es.mode,
            time_attr="training_iteration",
            max_t=max_epochs(spec),
            grace_period=es.grace_period,
            reduction_factor=es.reduction_factor,
        )
    search_alg = None
    if spec.search.algorithm == "tpe" and configs is None:
        import optuna
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(
            space=spec.suggest,
            metric=OBJECTIVE_KEY,
            mode=spec.objective.mode,
            sampler=optuna.samplers.TPESampler(seed=spec.search.seed),
        )
        search_alg = ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)
        param_space: dict[str, Any] = {}
        num_samples = spec.n_trials or spec.search.samples
    else:
        chosen = spec.expand() if configs is None else configs
        param_space = {"trial": tune.grid_search([c.to_dict() for c in chosen])}
        num_samples = 1
    return tune.Tuner(
        fn,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=spec.max_concurrent,
            reuse_actors=True,
            trial_name_creator=lambda t: f"trial_{t.trial_id}",
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=tune_path.name,
            storage_path=str(tune_path.parent),
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def max_epochs(spec: StudySpec) -> int:
    """The most epochs any trial of the study can run: ASHA's `max_t`, read from a dimension when one varies it."""
    dim = spec.dimensions.get("epochs")
    if dim is None:
        return max(int(spec.base_config().get("epochs", TrialConfig.epochs)), 1)
    if dim.kind == "int":
        return max(int(dim.int_[1]), 1)
    return max(int(v) for v in dim.values())
