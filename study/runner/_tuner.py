"""The Tune experiment of a study: trainable, scheduler, searcher, run config, or a restored one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study.config import TrialConfig
from study.gate import Gate
from study.runner._callbacks import _ACTIVE, MlflowCallback, Progress
from study.runner._keys import MAX_FAILURES, OBJECTIVE_KEY
from study.runner._packed import PACK_KEY, pack_config, pack_trainable
from study.runner._trainable import report_interval_s, trainable
from study.spec import StudySpec, search_algorithm
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

    from study.packing.plan import pack_plan

    packed, _ = spec.packing_decision()
    if packed:
        work = tune.with_parameters(
            pack_trainable,
            objective=spec.objective.metric,
            mode=spec.objective.mode,
            report_interval=report_interval_s(),
        )
    else:
        work = tune.with_parameters(
            trainable, spec=spec, report_interval=report_interval_s(), gate=Gate.from_env()
        )
    fn = tune.with_resources(work, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    _ACTIVE[spec.name] = (tracker, spec)
    callbacks = [MlflowCallback(spec.name), Progress(spec.name)]
    if restore:
        return tune.Tuner.restore(str(tune_path), trainable=fn, resume_unfinished=True, resume_errored=False)

    if packed:  # one Tune trial per pack of the spec's trials, or of a segment's
        packs = pack_plan(configs if configs is not None else spec.expand(), spec.packing.max_members)
        search_alg, param_space, num_samples = (
            None,
            {PACK_KEY: tune.grid_search([pack_config(p) for p in packs])},
            1,
        )
    elif configs is None:
        search_alg, param_space, num_samples = search_algorithm(spec, OBJECTIVE_KEY)
    else:  # a segment (extend, retry): exactly these trials
        search_alg, param_space, num_samples = (
            None,
            {"trial": tune.grid_search([c.to_dict() for c in configs])},
            1,
        )
    return tune.Tuner(
        fn,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=_scheduler(spec),
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


def _scheduler(spec: StudySpec) -> Any:
    """ASHA on the spec's early-stopping metric, one rung unit per epoch, or None."""
    from ray.tune.schedulers import ASHAScheduler

    es = spec.early_stopping
    if es is None:
        return None
    return ASHAScheduler(
        metric=es.metric,
        mode=es.mode,
        time_attr="training_iteration",
        max_t=max_epochs(spec),
        grace_period=es.grace_period,
        reduction_factor=es.reduction_factor,
    )


def max_epochs(spec: StudySpec) -> int:
    """The most epochs any trial of the study can run: ASHA's `max_t`, read from a dimension when one varies it."""
    dim = spec.dimensions.get("epochs")
    if dim is None:
        return max(int(spec.base_config().get("epochs", TrialConfig.epochs)), 1)
    if dim.kind == "int":
        return max(int(dim.int_[1]), 1)
    return max(int(v) for v in dim.values())
