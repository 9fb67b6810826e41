"""Ray Tune execution of a study (every Ray call of the project lives here).

A study is a list of `TrialConfig`s (grid, random) or a define-by-run Optuna
space (tpe). Each Tune trial runs `study.trial.run_trial` in a reused actor,
reports every epoch, and hands its result files to the driver in a final
checkpoint. The driver logs to MLflow through `MlflowCallback` and prints
progress. `resume_study` restores the Tune experiment from its storage; trials
Tune finished are not re-run, and the tracker never logs a trial twice.

The driver/trial boundary: trials receive plain dicts and return metrics and
files through Tune; they need neither MLflow nor the spec file.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from study.config import TrialConfig
from study.errors import LampError
from study.spec import StudySpec, load_spec
from study.tracking import (
    TERMINAL,
    StudyTracker,
    check_tracking_uri,
    git_commit,
    redact,
    set_quiet_mlflow_env,
)

STATE_FILE = "lamp_study.json"
SPEC_FILE = "spec.yaml"
DEFAULT_STORAGE = "lamp_storage"
STATUS_KEY = "lamp_status"
ERROR_KEY = "lamp_error"
EPOCHS_KEY = "lamp_epochs"  # JSON list of per-epoch metric rows not yet reported
TRAIN_STATE_FILE = "train_state.pt"
OBJECTIVE_KEY = "objective"


class ClusterError(LampError):
    """The Ray cluster cannot run the study as specified."""


# ---------------------------------------------------------------- trial side
def trainable(config: dict[str, Any], spec: StudySpec, report_interval: float) -> None:
    """The Tune function trainable: a thin wrapper of `run_trial`.

    A report is a round trip to the driver, so epochs are batched: every
    epoch's metrics travel (as JSON under `EPOCHS_KEY`) with the next report,
    which goes out every epoch only when a scheduler needs it (ASHA), else at
    most every `report_interval` seconds, carrying a checkpoint of the
    training state that a restored trial starts from (the driver snapshots
    the experiment as often, see `_init_ray`). The last epoch
    goes out with the final metrics and the result files, so a scheduler that
    stops at `max_t = epochs` never cuts the final evaluation.
    """
    import torch
    from ray import tune

    from study.train import TrainState
    from study.trial import run_trial

    cfg = trial_config(config, spec)
    objective, mode = spec.objective.metric, spec.objective.mode
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            if (Path(d) / TRAIN_STATE_FILE).exists():
                state = TrainState(**torch.load(Path(d) / TRAIN_STATE_FILE, weights_only=True))
    every_epoch = spec.early_stopping is not None
    es_known: dict[str, float] = {}  # the scheduler's metric must be in every report Tune sees
    if spec.early_stopping is not None:
        es_known[spec.early_stopping.metric] = _worst(spec.early_stopping.mode)

    def with_es(row: dict[str, Any]) -> dict[str, Any]:
        for key in es_known:
            es_known[key] = row.get(key, es_known[key])  # last known value (eval_every may skip epochs)
        return {**es_known, **row}

    pending: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    last_sent = time.monotonic()

    def reporter(epoch: int, metrics: dict[str, float], snapshot: Any) -> None:
        nonlocal last, last_sent
        row = with_es(
            {**metrics, "epoch": epoch, STATUS_KEY: "running", OBJECTIVE_KEY: _proxy(metrics, objective)}
        )
        pending.append({"epoch": epoch, **metrics})
        last = row
        due = time.monotonic() - last_sent >= report_interval
        if epoch == cfg.epochs or not (every_epoch or due):
            return
        payload = {**row, EPOCHS_KEY: json.dumps(pending)}
        pending.clear()
        if due:
            with tempfile.TemporaryDirectory() as d:
                torch.save(vars(snapshot()), Path(d) / TRAIN_STATE_FILE)
                tune.report(payload, checkpoint=tune.Checkpoint.from_directory(d))
            last_sent = time.monotonic()
        else:
            tune.report(payload)

    try:
        result = run_trial(cfg, reporter=reporter, state=state)
    except Exception as err:  # recorded as a failed trial; the study goes on
        error = f"{type(err).__name__}: {err}"
        tune.report(
            with_es(
                {
                    **last,
                    STATUS_KEY: "failed",
                    ERROR_KEY: error,
                    OBJECTIVE_KEY: _worst(mode),
                    EPOCHS_KEY: json.dumps(pending),
                }
            )
        )
        return
    final = with_es({**last, **result.metrics, STATUS_KEY: result.status, EPOCHS_KEY: json.dumps(pending)})
    value = result.metrics.get(f"val_{objective}", result.metrics.get(objective))  # select on validation
    final[OBJECTIVE_KEY] = value if value is not None and math.isfinite(value) else _worst(mode)
    with tempfile.TemporaryDirectory() as d:
        result.save(d)
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(d))


def report_interval_s() -> float:
    """Seconds between a trial's reports without a scheduler ($LAMP_REPORT_INTERVAL_S on the driver, default 10)."""
    return float(os.environ.get("LAMP_REPORT_INTERVAL_S", "10"))


def trial_config(config: dict[str, Any], spec: StudySpec) -> TrialConfig:
    """A Tune config -> TrialConfig: a full config (grid/random) or flat dotted values (tpe)."""
    if "trial" in config:
        return TrialConfig.from_dict(config["trial"])
    return spec.trial_config(config, spec.seeds[0])


def _proxy(metrics: dict[str, float], objective: str) -> float:
    """Per-epoch stand-in of the objective for the searcher (never the amplified loss)."""
    return metrics.get(f"val_{objective}", float("nan"))


def _worst(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf


# ---------------------------------------------------------------- driver side
# The live tracker and spec of each study this driver runs. Tune pickles its callbacks with the
# experiment and restores those copies on resume, so callbacks keep only the study name and look
# the live objects up here: a resumed study logs through a tracker that knows the runs of before.
_ACTIVE: dict[str, tuple[StudyTracker, StudySpec]] = {}


class MlflowCallback(Callback):
    """Driver-side MLflow logging of every trial."""

    def __init__(self, study: str) -> None:
        self.study = study

    def _live(self) -> tuple[StudyTracker, StudySpec]:
        return _ACTIVE[self.study]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tracker, spec = self._live()
        if not tracker.is_ended(trial.trial_id):
            tracker.start_trial(trial.trial_id, trial_config(trial.config, spec), spec.content_hash)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        tracker = self._live()[0]
        for row in json.loads(result.get(EPOCHS_KEY) or "[]"):
            tracker.log_epoch(trial.trial_id, int(row["epoch"]), _epoch_metrics(row))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tracker, spec = self._live()
        _finish(tracker, trial, spec.early_stopping is not None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tracker = self._live()[0]
        tracker.end_trial(
            trial.trial_id, "failed", _final_metrics(trial.last_result or {}), error=_read_error(trial)
        )


class Progress(Callback):
    """One line per ended trial: done/total, running, diverged, failed, pruned, best so far.

    Counts come from Tune's trial list, not from state of its own, so they stay right after a resume.
    """

    def __init__(self, study: str) -> None:
        self.study = study
        self.t0 = time.time()

    def setup(self, **info: Any) -> None:
        self.t0 = time.time()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trials, trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trials, trial, "ERROR")

    def _print(self, trials: list, ended: Any, ended_as: str) -> None:
        """Tune calls these hooks before it updates the ended trial's status, hence `ended_as`."""
        spec = _ACTIVE[self.study][1]
        counts: dict[str, int] = {}
        best: float | None = None
        for t in trials:
            tune_status = ended_as if t is ended else t.status
            if tune_status not in ("TERMINATED", "ERROR"):
                continue
            can_prune = spec.early_stopping is not None
            status = _status(t.last_result or {}, can_prune) if tune_status == "TERMINATED" else "failed"
            counts[status] = counts.get(status, 0) + 1
            value = (t.last_result or {}).get(spec.objective.metric)
            if status == "finished" and value is not None:
                better = best is None or (value > best if spec.objective.mode == "max" else value < best)
                best = value if better else best
        running = sum(1 for t in trials if t.status == "RUNNING" and t is not ended)
        shown = f"{best:.4f}" if best is not None else "-"
        print(
            f"[{spec.name}] {sum(counts.values())}/{spec.n_trials or '?'} trials done, {running} running, "
            f"{counts.get('diverged', 0)} diverged, {counts.get('failed', 0)} failed, "
            f"{counts.get('pruned', 0)} pruned; best {spec.objective.metric} {shown} ({time.time() - self.t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )


def _status(result: dict[str, Any], can_prune: bool) -> str:
    """The lamp status of a trial Tune terminated.

    A trial stopped while still running was pruned when a scheduler can prune,
    else the study was interrupted (Ctrl-C) and `resume` will run it again.
    """
    status = result.get(STATUS_KEY, "running")
    if status != "running":
        return status
    return "pruned" if can_prune else "interrupted"


def _epoch_metrics(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k.startswith(("train_", "val_"))}


def _final_metrics(result: dict[str, Any]) -> dict[str, Any]:
    skip = {
        OBJECTIVE_KEY,
        EPOCHS_KEY,
        "epoch",
        "training_iteration",
        "timestamp",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "pid",
        "done",
    }
    per_epoch = _epoch_metrics(result).keys() - {"train_time_s"}
    return {k: v for k, v in result.items() if k not in skip and k not in per_epoch}


def _finish(tracker: StudyTracker, trial: Any, can_prune: bool) -> None:
    result = trial.last_result or {}
    status = _status(result, can_prune)
    if status == "interrupted":
        return  # left open for `resume`; `interrupt_open_trials` ends the run if the driver stops
    metrics = _final_metrics(result)
    checkpoint = trial.checkpoint
    if checkpoint is not None and status in ("finished", "collapsed", "diverged"):
        with checkpoint.as_directory() as d:
            tracker.end_trial(trial.trial_id, status, metrics, result_dir=d)
    else:
        tracker.end_trial(trial.trial_id, status, metrics, error=result.get(ERROR_KEY))


def _read_error(trial: Any) -> str:
    path = getattr(trial, "error_file", None) or ""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return "trial failed (no error file; a worker or node may have died)"
    return text.splitlines()[-1] if text else "trial failed"


def _init_ray(address: str | None) -> None:
    import ray

    # Driver-side Tune settings, read when the Tuner is built (so set even if Ray is already up).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our Progress callback reports; no Tune tables
    # Snapshot the experiment as often as trials checkpoint (Tune's "auto" waits >= 10 s): a resumed
    # trial starts from the checkpoint in the last snapshot, so a fresher snapshot loses fewer epochs.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(report_interval_s()))
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address is None:
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    else:
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ClusterError(
                f"cannot connect to the Ray cluster at {address!r} ({err}); start one with `ray start --head` "
                f"or drop --address to run locally; clients of a token-auth cluster need RAY_AUTH_TOKEN"
            ) from None


def check_resources(spec: StudySpec) -> None:
    """Fail before `fit()` when no node can ever host one trial (Tune would wait forever)."""
    import ray

    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    if gpu > 0 and total.get("GPU", 0) == 0:
        raise ClusterError(
            f"study {spec.name!r} asks for {gpu:g} GPU per trial but the Ray cluster has no GPU; "
            f"set `resources: {{gpu: 0}}` in the spec to run on CPU, or join a cluster with GPUs"
        )
    if not any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in nodes):
        biggest = max((n.get("CPU", 0) for n in nodes), default=0)
        raise ClusterError(
            f"study {spec.name!r} asks for {cpu:g} CPU and {gpu:g} GPU per trial, but no node has that much "
            f"(largest node: {biggest:g} CPU); lower `resources` in the spec"
        )


def _tuner(spec: StudySpec, storage: Path, tracker: StudyTracker, *, restore: bool) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    base = spec.base_config()
    fn = tune.with_resources(
        tune.with_parameters(trainable, spec=spec, report_interval=report_interval_s()),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    _ACTIVE[spec.name] = (tracker, spec)
    callbacks = [MlflowCallback(spec.name), Progress(spec.name)]
    if restore:
        return tune.Tuner.restore(
            str(storage / spec.name), trainable=fn, resume_unfinished=True, resume_errored=False
        )

    scheduler = None
    if spec.early_stopping is not None:
        es = spec.early_stopping
        scheduler = ASHAScheduler(
            metric=es.metric,
            mode=es.mode,
            time_attr="training_iteration",
            max_t=max(int(base.get("epochs", TrialConfig.epochs)), 1),
            grace_period=es.grace_period,
            reduction_factor=es.reduction_factor,
        )
    search_alg = None
    if spec.search.algorithm == "tpe":
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
        param_space = {"trial": tune.grid_search([c.to_dict() for c in spec.expand()])}
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
            name=spec.name,
            storage_path=str(storage),
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def _storage(storage_path: str | None) -> Path:
    return Path(storage_path or DEFAULT_STORAGE).expanduser().resolve()


def run_study(
    spec: StudySpec,
    *,
    address: str | None = None,
    tracking_uri: str = "sqlite:///mlflow.db",
    storage_path: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Run a study end to end and return its summary (also logged on the parent run)."""
    if name:
        spec = spec.model_copy(update={"name": name})
    storage = _storage(storage_path)
    if (storage / spec.name / STATE_FILE).exists():
        raise LampError(
            f"study {spec.name!r} already exists in {storage}; continue it with `lamp-study resume {spec.name}`, "
            f"or pick another --name"
        )
    return _execute(spec, storage, address, tracking_uri, restore=False)


def resume_study(
    name: str, *, address: str | None = None, tracking_uri: str | None = None, storage_path: str | None = None
) -> dict[str, Any]:
    """Continue an interrupted study from its Tune storage; finished trials are kept."""
    storage = _storage(storage_path)
    state_file = storage / name / STATE_FILE
    if not state_file.exists():
        known = sorted(p.parent.name for p in storage.glob(f"*/{STATE_FILE}"))
        raise LampError(
            f"no study {name!r} in {storage}; known studies: {', '.join(known) or 'none'} "
            f"(pass --storage-path if it lives elsewhere)"
        )
    state = json.loads(state_file.read_text())
    spec = load_spec(storage / name / SPEC_FILE).model_copy(update={"name": name})
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or state["tracking_uri"]
    if "***@" in uri:
        raise LampError(
            f"study {name!r} was tracked at {uri} (credentials not stored); pass --tracking-uri, "
            f"or set MLFLOW_TRACKING_URI with MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
        )
    return _execute(spec, storage, address, uri, restore=True)


def _execute(
    spec: StudySpec, storage: Path, address: str | None, tracking_uri: str, *, restore: bool
) -> dict:
    set_quiet_mlflow_env()
    check_tracking_uri(tracking_uri)
    _preflight_data(spec)
    tracker = StudyTracker(tracking_uri, spec.name)
    _init_ray(address)
    check_resources(spec)
    tags = {
        "lamp.objective_metric": spec.objective.metric,
        "lamp.objective_mode": spec.objective.mode,
        "lamp.search": spec.search.algorithm,
    }
    if spec.n_trials is not None:
        tags["lamp.n_trials_planned"] = str(spec.n_trials)
    if commit := git_commit():
        tags["lamp.git_commit"] = commit
    params = {
        "study.name": spec.name,
        "search.algorithm": spec.search.algorithm,
        "objective.metric": spec.objective.metric,
        "objective.mode": spec.objective.mode,
        "n_trials": str(spec.n_trials),
    }
    parent = tracker.start_study(spec.source_text, spec.content_hash, tags, params)
    _log_baselines(tracker, spec, parent)
    exp_dir = storage / spec.name
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / SPEC_FILE).write_text(spec.source_text)
    (exp_dir / STATE_FILE).write_text(
        json.dumps({"tracking_uri": redact(tracking_uri), "parent_run_id": parent})
    )
    print(
        f"[{spec.name}] {spec.n_trials or '?'} trials, MLflow experiment {spec.name!r} at {redact(tracking_uri)}, "
        f"Tune storage {exp_dir}",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.time()
    status = "interrupted"
    try:
        tuner = _tuner(spec, storage, tracker, restore=restore)
        results = tuner.fit()
        can_prune = spec.early_stopping is not None
        _reconcile(tracker, results, can_prune)
        ended = sum(1 for r in results if r.error or _status(r.metrics or {}, can_prune) in TERMINAL)
        # Tune stops gracefully on Ctrl-C and fit() returns, without the trials it never created:
        # a study with fewer ended trials than planned is interrupted.
        status = "finished" if ended >= (spec.n_trials or len(results)) else "interrupted"
    finally:
        if status != "finished":
            tracker.interrupt_open_trials()
            print(
                f"[{spec.name}] interrupted; continue with `lamp-study resume {spec.name}`", file=sys.stderr
            )
        counts = _counts(tracker)
        tracker.end_study(
            status, {"wall_time_s": time.time() - t0, **{f"n_{k}": v for k, v in counts.items()}}
        )
    return {
        "status": status,
        "study": spec.name,
        "parent_run_id": parent,
        "tracking_uri": redact(tracking_uri),
        "storage": str(exp_dir),
        "wall_time_s": round(time.time() - t0, 1),
        "trials": counts,
    }


def _reconcile(tracker: StudyTracker, results: Any, can_prune: bool) -> None:
    """Close any child run Tune finished but the callbacks missed (e.g. a driver killed in between)."""
    for result in results:
        trial_id = (result.metrics or {}).get("trial_id")
        status = _status(result.metrics or {}, can_prune)
        if not trial_id or tracker.is_ended(trial_id) or (status == "interrupted" and not result.error):
            continue
        if result.checkpoint is not None and status in ("finished", "collapsed", "diverged"):
            with result.checkpoint.as_directory() as d:
                tracker.end_trial(trial_id, status, _final_metrics(result.metrics), result_dir=d)
        else:
            error = str(result.error) if result.error else (result.metrics or {}).get(ERROR_KEY)
            tracker.end_trial(
                trial_id,
                status if not result.error else "failed",
                _final_metrics(result.metrics or {}),
                error=error,
            )


def _counts(tracker: StudyTracker) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in tracker.children():
        status = run.data.tags.get("lamp.status", "running")
        counts[status] = counts.get(status, 0) + 1
    return counts


def _log_baselines(tracker: StudyTracker, spec: StudySpec, parent: str) -> None:
    """Model-free baseline AUROCs (study/baselines.py) on the parent run; a tpe study has no
    trial list, so its fixed configuration stands for it."""
    from study.baselines import study_baselines

    configs = spec.expand() if spec.search.algorithm != "tpe" else [TrialConfig.from_dict(spec.base_config())]
    for key, value in study_baselines(configs).items():
        tracker.client.log_metric(parent, key, value)


def _preflight_data(spec: StudySpec) -> None:
    """Load the dataset once on the driver: a missing dataset fails before Ray starts."""
    from study.data import load_dataset

    load_dataset(TrialConfig.from_dict(spec.base_config()).data)
