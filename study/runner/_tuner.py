"""The Tune experiment of a study: trainable, scheduler, searcher, run config, or a restored one."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from study.core.config import TrialConfig
from study.runner._callbacks import _ACTIVE, MlflowCallback
from study.runner._gate import Gate
from study.runner._keys import MAX_FAILURES, OBJECTIVE_KEY
from study.runner._packed import PACK_KEY, pack_config, pack_trainable
from study.runner._progress import Progress
from study.runner._search import search_algorithm
from study.runner._storage import Storage
from study.runner._trainable import report_interval_s, trainable
from study.spec import StudySpec
from study.tracking import StudyTracker


def _tuner(
    spec: StudySpec,
    storage: Storage,
    tune_path: str,
    tracker: StudyTracker,
    *,
    restore: bool,
    configs: list[TrialConfig] | None = None,
    optuna_storage: str | None = None,
) -> Any:
    """A new Tune experiment at `tune_path` in `storage` (of `configs` when given, else the spec's), or the
    one there restored. Tune writes through the storage's own filesystem (None: a local path)."""
    from ray import tune

    packed, _ = spec.packing_decision()
    _snapshot_period(packed)
    fn = tune.with_resources(_work(spec, packed), {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    _ACTIVE[spec.name] = (tracker, spec)
    callbacks = [MlflowCallback(spec.name), Progress(spec.name)]
    filesystem = None if storage.is_local else storage.fs
    if restore:
        return tune.Tuner.restore(
            storage.path(tune_path),
            trainable=fn,
            resume_unfinished=True,
            resume_errored=False,
            storage_filesystem=filesystem,
        )
    search_alg, param_space, num_samples = _trials(spec, configs, packed, optuna_storage)
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
            name=posixpath.basename(tune_path),
            storage_path=storage.path(posixpath.dirname(tune_path)),
            storage_filesystem=filesystem,
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def optuna_storage_url(spec: StudySpec, tracking_uri: str, given: str | None) -> str | None:
    """Where a tpe study keeps its Optuna study: `given`, else `optuna.db` beside a sqlite MLflow store, else
    in the working directory (an object store cannot hold a database: on a cluster, pass an RDB server's URL).
    grid and random studies have no Optuna study."""
    if spec.search.algorithm != "tpe":
        return None
    if given:
        return given
    folder = (
        Path(tracking_uri.removeprefix("sqlite:///")).parent
        if tracking_uri.startswith("sqlite:///")
        else Path()
    )
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


_USER_SNAPSHOT_S = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")  # a user's own setting always wins


def _snapshot_period(packed: bool) -> None:
    """How often Tune snapshots the experiment (read when the Tuner is built).

    Solo trials: as often as they checkpoint (Tune's "auto" waits >= 10 s and
    then throttles), since a resumed trial starts from the checkpoint in the
    last snapshot and a fresher snapshot loses fewer epochs. Packs keep no
    training checkpoint, so Tune's own throttled period serves them.
    """
    if _USER_SNAPSHOT_S is not None:
        return
    if packed:
        os.environ.pop("TUNE_GLOBAL_CHECKPOINT_S", None)
    else:
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = str(report_interval_s())


def _work(spec: StudySpec, packed: bool) -> Any:
    """The function Tune runs per trial: a pack's or a solo trial's, with what it needs bound."""
    from ray import tune

    if packed:
        return tune.with_parameters(
            pack_trainable,
            objective=spec.objective.metric,
            mode=spec.objective.mode,
            report_interval=report_interval_s(),
        )
    return tune.with_parameters(
        trainable, spec=spec, report_interval=report_interval_s(), gate=Gate.from_env()
    )


def _trials(
    spec: StudySpec, configs: list[TrialConfig] | None, packed: bool, optuna_storage: str | None
) -> tuple[Any, dict[str, Any], int]:
    """(search_alg, param_space, num_samples): the spec's trials (or a segment's `configs`), packed or not."""
    from ray import tune

    from study.packing.plan import pack_plan

    if packed:  # one Tune trial per pack of the spec's trials, or of a segment's
        packs = pack_plan(configs if configs is not None else spec.expand(), spec.packing.max_members)
        return None, {PACK_KEY: tune.grid_search([pack_config(p) for p in packs])}, 1
    if configs is None:
        return search_algorithm(spec, OBJECTIVE_KEY, optuna_storage)
    return None, {"trial": tune.grid_search([c.to_dict() for c in configs])}, 1  # a segment: exactly these


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
