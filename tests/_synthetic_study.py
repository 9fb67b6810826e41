"""Deterministic synthetic lamp studies, logged straight into MLflow (test and bench data for `reports/`).

The writer follows `docs/mlflow_schema.md` exactly: one experiment named after
the study, a parent run tagged `lamp.role=study` with `spec.yaml`, and one child
run per trial with the flattened `TrialConfig` params, per-epoch and final
metrics, and `scores.npz` / `landscape.npz` artifacts. Its numbers come from a
small generative model with known effects, so tests can recompute what a
report should say from the values returned here (what was logged), never from
the report's own code:

- under SGD, `linear` lambda helps exactly as much as its lr-matched twin
  (lambda = 1 at lr * lambda); under Adam it does nothing;
- `exp` amplification helps beyond any learning-rate change;
- steepness grows with lambda; label-free scores track AUROC with noise.

A `Planted` truth replaces that model's AUROC (and, for `simpson`, its
steepness) so the trust tests can check each verdict against a known answer.

Trials whose setting is (sgd, exp, largest factor) diverge on the last seed;
`n_failed` amplified trials fail with an error message. For large studies
(`artifacts="some"`), only baselines and the best trial of each factor carry
artifacts, so logging 1,000 trials stays quick.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from scipy.stats import norm

from study.core.config import TrialConfig

T0_MS = 1_700_000_000_000  # start of every synthetic study (deterministic timestamps)
TRIAL_MS = 60_000  # each synthetic trial "takes" one minute

ARCH_AUROC = {"conv_ae": 0.88, "mlp_ae": 0.85, "unet_ae": 0.87}
METRIC_SHIFT = {"mse": 0.0, "mae": 0.004, "huber": 0.002, "ssim": 0.02}
# AUROC gain per decade of lambda from the amplification form itself (beyond any lr change).
FORM_GAIN = {"linear": 0.0, "exp": 0.012, "log": 0.005}
# AUROC gain per decade of learning rate (relative to the grid's lr), by optimiser.
LR_GAIN = {"sgd": 0.008, "adam": -0.006, "adamw": -0.006}
LABEL_FREE = ("synthetic_auroc", "alignment_loss", "synthetic_auroc_tuned", "alignment_loss_tuned")


SIMPSON_SHARPNESS = {"mse": 1.0, "ssim": 10.0}  # the metric shifts steepness ...
SIMPSON_AUROC = {"mse": 0.80, "ssim": 0.95}  # ... and detection, in the same direction


@dataclass(frozen=True)
class Planted:
    """A known truth: AUROC = 0.85 + seed effect (σ 0.01) + shift of the trial's cell + noise `sigma`.

    `shifts` keys a cell as (metric, optimizer, form, factor); an lr twin is (metric, optimizer,
    "twin", twin_of). Cells not listed have no effect. With `simpson`, AUROC and steepness instead
    come from one draw u ~ U(0, 1) per trial: sharpness = S[metric] (1 + u), AUROC = A[metric] -
    0.05 u + noise, so within every metric steeper is worse while ssim is both steeper and better.
    """

    shifts: dict[tuple[str, str, str, float], float] = field(default_factory=dict)
    sigma: float = 0.01
    simpson: bool = False


@dataclass(frozen=True)
class SyntheticGrid:
    """The settings a synthetic study crosses; every combination runs once per seed."""

    archs: tuple[str, ...] = ("conv_ae", "mlp_ae")
    optimizers: tuple[str, ...] = ("adam", "sgd")
    metrics: tuple[str, ...] = ("mse", "ssim")
    amplifications: tuple[str, ...] = ("linear", "exp")
    factors: tuple[float, ...] = (1.0, 10.0, 100.0)
    seeds: tuple[int, ...] = (0, 1)
    widths: tuple[int, ...] = (32,)  # no effect in the generative model; scale studies cross them
    lr: float = 1e-3
    twins: bool = True  # add an lr-matched twin for every amplified factor
    epochs: int = 3

    def configs(self) -> list[TrialConfig]:
        """Every trial of the grid, in launch order: the main grid, then the twins."""
        out = [
            TrialConfig(
                arch=a,
                optimizer=o,
                metric=m,
                amplification=amp,
                factor=f,
                seed=s,
                lr=self.lr,
                epochs=self.epochs,
                width=w,
            )
            for a, w, o, m, amp, f, s in itertools.product(
                self.archs,
                self.widths,
                self.optimizers,
                self.metrics,
                self.amplifications,
                self.factors,
                self.seeds,
            )
        ]
        if self.twins:
            amplified = sorted({f for f in self.factors if f != 1.0})
            out += [
                TrialConfig(
                    arch=a,
                    optimizer=o,
                    metric=m,
                    amplification="linear",
                    factor=1.0,
                    lr=self.lr * f,
                    twin_of=f,
                    seed=s,
                    epochs=self.epochs,
                    width=w,
                )
                for a, w, o, m, f, s in itertools.product(
                    self.archs, self.widths, self.optimizers, self.metrics, amplified, self.seeds
                )
            ]
        return out


@dataclass
class SyntheticTrial:
    """One logged child run: its config, status and exactly the values written to MLflow."""

    index: int
    config: TrialConfig
    status: str  # finished | diverged | failed | running
    metrics: dict[str, float] = field(default_factory=dict)  # final metrics (step 0)
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch metrics, step = epoch
    error: str | None = None
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # artifact name -> arrays
    artifacts: tuple[str, ...] = ()  # artifact names actually logged
    run_id: str = ""

    @property
    def trial_id(self) -> str:
        return f"synthetic_{self.index:05d}"


@dataclass
class SyntheticStudy:
    """What was logged: enough for a test to recompute any number a report shows."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    status: str
    objective: str
    mode: str
    spec_text: str
    trials: list[SyntheticTrial]

    def by_status(self, status: str) -> list[SyntheticTrial]:
        return [t for t in self.trials if t.status == status]


def write_synthetic_study(
    tracking_uri: str,
    name: str,
    artifact_root: Path,
    *,
    grid: SyntheticGrid | None = None,
    seed: int = 0,
    status: str = "finished",
    objective: tuple[str, str] = ("auroc", "max"),
    artifacts: str = "all",
    drop_artifacts: dict[float, tuple[str, ...]] | None = None,
    n_failed: int = 2,
    label_free: bool = True,
    n_running: int = 2,
    collapsed_champion: bool = False,
    baselines: dict[str, float] | None = None,
    planted: Planted | None = None,
) -> SyntheticStudy:
    """Log one synthetic study into `tracking_uri` and return what was logged.

    Args:
        tracking_uri: an MLflow tracking URI (tests use `sqlite:///<tmp>/mlflow.db`).
        name: study (experiment) name; must not exist yet.
        artifact_root: folder for the experiment's artifacts.
        grid: the settings crossed; `SyntheticGrid()` when None.
        seed: seed of all noise; the same arguments log the same values.
        status: parent `lamp.status`; "running" leaves the last `n_running` trials running.
        objective: (`lamp.objective_metric`, `lamp.objective_mode`).
        artifacts: "all" (every finished trial), "some" (baselines and the best of each factor), "none".
        drop_artifacts: factor -> artifact names never logged for trials at that factor.
        n_failed: amplified trials that fail with an error.
        label_free: log the label-free scores.
        n_running: trials still running when `status == "running"`.
        collapsed_champion: turn the first finished trial into a collapsed one whose validation
            and test AUROC beat every other trial (a collapsed model must never be crowned).
        baselines: model-free baseline AUROCs logged on the parent run (`baseline_<name>_auroc`).
        planted: a known truth replacing the generative model (see `Planted`).
    """
    grid = grid or SyntheticGrid()
    rng = np.random.default_rng(seed)
    client = MlflowClient(tracking_uri=tracking_uri)
    artifact_root.mkdir(parents=True, exist_ok=True)
    experiment_id = client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())
    trials = _simulate(grid, rng, n_failed=n_failed, label_free=label_free, planted=planted)
    if collapsed_champion:
        champ = next(t for t in trials if t.status == "finished")
        champ.status = "collapsed"
        champ.metrics |= {
            "auroc": 0.999,
            "collapse_var_ratio": 0.002,
            "collapse_loss_ratio": 1.3,
            "collapsed": 1.0,
        }
        champ.history["val_auroc"] = [0.999] * len(champ.history["val_auroc"])
    if status == "running":
        for trial in trials[len(trials) - n_running :]:
            trial.status, trial.metrics, trial.arrays = "running", {}, {}
            trial.history = {k: v[:1] for k, v in trial.history.items()}
    _choose_artifacts(trials, artifacts, objective, drop_artifacts or {})
    spec_text = _spec_text(name, grid, objective)
    spec_hash = hashlib.sha256(spec_text.encode()).hexdigest()

    parent = client.create_run(
        experiment_id,
        run_name=name,
        start_time=T0_MS,
        tags={
            "lamp.role": "study",
            "lamp.spec_hash": spec_hash,
            "lamp.git_commit": "0" * 40,
            "lamp.status": status,
            "lamp.objective_metric": objective[0],
            "lamp.objective_mode": objective[1],
            "lamp.search": "grid",
            "lamp.n_trials_planned": str(len(trials)),
        },
    )
    parent_id = parent.info.run_id
    params = {"study.name": name, "search.algorithm": "grid", "objective.metric": objective[0]}
    params["objective.mode"] = objective[1]
    client.log_batch(parent_id, params=[Param(k, v) for k, v in params.items()])
    if baselines:
        client.log_batch(parent_id, metrics=[Metric(k, v, T0_MS, 0) for k, v in baselines.items()])

    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.yaml"
        spec_path.write_text(spec_text)
        client.log_artifact(parent_id, str(spec_path))
        for trial in trials:
            _log_trial(client, experiment_id, parent_id, spec_hash, trial, Path(tmp))

    if status != "running":
        end = T0_MS + len(trials) * TRIAL_MS
        counts = {s: sum(t.status == s for t in trials) for s in ("finished", "diverged", "failed")}
        summary = {"wall_time_s": (end - T0_MS) / 1000.0, **{f"n_{k}": float(v) for k, v in counts.items()}}
        client.log_batch(parent_id, metrics=[Metric(k, v, end, 0) for k, v in summary.items()])
        client.set_terminated(parent_id, "FINISHED" if status == "finished" else "FAILED", end_time=end)
    return SyntheticStudy(
        name=name,
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent_id,
        status=status,
        objective=objective[0],
        mode=objective[1],
        spec_text=spec_text,
        trials=trials,
    )


def _simulate(
    grid: SyntheticGrid,
    rng: np.random.Generator,
    *,
    n_failed: int,
    label_free: bool,
    planted: Planted | None = None,
) -> list[SyntheticTrial]:
    """Draw every trial's outcome from the generative model or the planted truth (no MLflow here)."""
    configs = grid.configs()
    seed_effect = {s: rng.normal(0.0, 0.003 if planted is None else 0.01) for s in grid.seeds}
    top = max(grid.factors)
    trials = []
    for i, cfg in enumerate(configs):
        diverged = (
            cfg.optimizer == "sgd"
            and cfg.amplification == "exp"
            and cfg.factor == top > 1
            and cfg.seed == grid.seeds[-1]
        )
        trial = SyntheticTrial(index=i, config=cfg, status="diverged" if diverged else "finished")
        sharpness = None
        if planted is None:
            auroc = _auroc(cfg, grid.lr) + seed_effect[cfg.seed] + rng.normal(0.0, 0.004)
        else:
            auroc, sharpness = _planted(cfg, planted, seed_effect[cfg.seed], rng)
        trial.metrics, trial.history, trial.arrays = _outcome(
            cfg, float(np.clip(auroc, 0.5, 0.999)), rng, label_free, sharpness
        )
        if diverged:
            epoch = max(1, grid.epochs - 1)
            trial.history = {k: v[: epoch - 1] for k, v in trial.history.items()}
            trial.history["train_base_loss"] = trial.history.get("train_base_loss", []) + [math.nan]
            trial.metrics = {"diverged_epoch": float(epoch), "epochs_run": float(epoch), "train_time_s": 1.0}
            trial.arrays = {}
        trials.append(trial)
    amplified = [
        t for t in trials if t.status == "finished" and t.config.factor != 1.0 and t.config.twin_of == 0.0
    ]
    for trial in rng.choice(
        np.array(amplified, dtype=object), size=min(n_failed, len(amplified)), replace=False
    ):
        trial.status, trial.metrics, trial.history, trial.arrays = "failed", {}, {}, {}
        trial.error = f"RuntimeError: CUDA out of memory in synthetic trial {trial.index} <batch_size={trial.config.batch_size}>"
    return trials


def _auroc(cfg: TrialConfig, grid_lr: float) -> float:
    """Expected AUROC of a setting under the generative model."""
    base = ARCH_AUROC.get(cfg.arch, 0.86) + METRIC_SHIFT.get(cfg.metric, 0.0)
    form = FORM_GAIN.get(cfg.amplification, 0.0)
    if cfg.amplification == "linear":  # linear lambda = lr * lambda, except under adaptive optimisers
        form = LR_GAIN["sgd"] if cfg.optimizer == "sgd" else 0.0
    return (
        base + form * math.log10(cfg.factor) + LR_GAIN.get(cfg.optimizer, 0.0) * math.log10(cfg.lr / grid_lr)
    )


def _planted(
    cfg: TrialConfig, planted: Planted, seed_effect: float, rng: np.random.Generator
) -> tuple[float, float | None]:
    """AUROC (and, for `simpson`, sharpness) of one trial under a planted truth."""
    if planted.simpson:
        u = float(rng.uniform(0.0, 1.0))
        auroc = SIMPSON_AUROC[cfg.metric] - 0.05 * u + rng.normal(0.0, 0.002)
        return float(auroc), SIMPSON_SHARPNESS[cfg.metric] * (1.0 + u)
    twin = cfg.twin_of > 0
    key = (
        cfg.metric,
        cfg.optimizer,
        "twin" if twin else cfg.amplification,
        cfg.twin_of if twin else cfg.factor,
    )
    return 0.85 + seed_effect + planted.shifts.get(key, 0.0) + float(rng.normal(0.0, planted.sigma)), None


def _outcome(
    cfg: TrialConfig,
    auroc: float,
    rng: np.random.Generator,
    label_free: bool,
    sharpness: float | None = None,
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, dict[str, np.ndarray]]]:
    """Final metrics, per-epoch history and artifact arrays of one finished trial (`sharpness` overrides)."""
    steep = 1.0 if cfg.amplification == "linear" and cfg.optimizer != "sgd" else cfg.factor**0.5
    drawn = 0.5 * steep * float(rng.lognormal(0.0, 0.2))
    sharpness = drawn if sharpness is None else sharpness
    trace = sharpness * 25.0 * float(rng.lognormal(0.0, 0.1))
    curvature = sharpness * 0.8 * float(rng.lognormal(0.0, 0.15))
    loss_min = 0.02 * float(rng.lognormal(0.0, 0.1))
    m: dict[str, float] = {
        "auroc": auroc,
        "ap": float(np.clip(auroc - 0.05 + rng.normal(0.0, 0.005), 0.0, 1.0)),
        "sharpness": sharpness,
        "hessian_trace": trace,
        "slice_curvature": curvature,
        "loss_at_minimum": loss_min,
        "amp_sharpness": sharpness * cfg.factor,
        "amp_hessian_trace": trace * cfg.factor,
        "amp_slice_curvature": curvature * cfg.factor,
        "amp_loss_at_minimum": loss_min * cfg.factor,
        "train_time_s": 30.0 + float(rng.uniform(0, 5)),
        "steepness_time_s": 4.0,
        "epochs_run": float(cfg.epochs),
    }
    if label_free:
        m["synthetic_auroc"] = float(np.clip(0.6 + 2.0 * (auroc - 0.8) + rng.normal(0.0, 0.02), 0.0, 1.0))
        m["synthetic_auroc_tuned"] = float(
            np.clip(0.62 + 2.0 * (auroc - 0.8) + rng.normal(0.0, 0.01), 0.0, 1.0)
        )
        m["alignment_loss"] = 0.9 - 0.5 * auroc + float(rng.normal(0.0, 0.01))
        m["alignment_loss_tuned"] = 0.85 - 0.5 * auroc + float(rng.normal(0.0, 0.004))
        m["aug_area"], m["aug_aspect"] = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))
        m["labelfree_time_s"] = 2.0
    history = {
        "train_base_loss": [loss_min * (1 + 2.0 / e) for e in range(1, cfg.epochs + 1)],
        "train_amp_loss": [loss_min * cfg.factor * (1 + 2.0 / e) for e in range(1, cfg.epochs + 1)],
        "val_base_loss": [loss_min * (1.1 + 2.0 / e) for e in range(1, cfg.epochs + 1)],
        "val_auroc": [auroc - 0.02 / e for e in range(1, cfg.epochs + 1)],
        "val_ap": [auroc - 0.05 - 0.02 / e for e in range(1, cfg.epochs + 1)],
    }
    # Scores: log-normal errors whose normal/anomalous shift yields the trial's AUROC.
    sigma = 0.3
    normal = rng.normal(math.log(0.02), sigma, 100)
    anomalous = rng.normal(math.log(0.02) + sigma * math.sqrt(2) * norm.ppf(auroc), sigma, 300)
    scores = np.exp(np.concatenate([normal, anomalous]))
    labels = np.concatenate([np.zeros(100, dtype=np.int64), np.ones(300, dtype=np.int64)])
    m["score_normal_mean"], m["score_anomalous_mean"] = float(scores[:100].mean()), float(scores[100:].mean())
    a1, a2 = np.linspace(-1, 1, cfg.landscape.grid_1d), np.linspace(-1, 1, cfg.landscape.grid_2d)
    loss_1d = loss_min + curvature * a1**2 + 0.01 * curvature * a1**3
    grid_a, grid_b = np.meshgrid(a2, a2, indexing="ij")
    loss_2d = loss_min + curvature * (grid_a**2 + 0.6 * grid_b**2)
    landscape = {
        "alphas_1d": a1,
        "loss_1d": loss_1d,
        "alphas_2d": a2,
        "loss_2d": loss_2d,
        "trace_samples": trace * (1.0 + rng.normal(0.0, 0.1, cfg.landscape.hutchinson_probes)),
        "amp_loss_1d": loss_1d * cfg.factor,
        "amp_loss_2d": loss_2d * cfg.factor,
    }
    return m, history, {"scores.npz": {"scores": scores, "labels": labels}, "landscape.npz": landscape}


def _choose_artifacts(
    trials: list[SyntheticTrial], mode: str, objective: tuple[str, str], drop: dict[float, tuple[str, ...]]
) -> None:
    """Decide which finished trials carry artifacts (`SyntheticTrial.artifacts`)."""
    finished = [t for t in trials if t.status == "finished"]
    if mode == "all":
        chosen = finished
    elif mode == "some":
        sign = 1.0 if objective[1] == "max" else -1.0
        best: dict[float, SyntheticTrial] = {}
        for t in finished:
            if t.config.twin_of == 0.0 and objective[0] in t.metrics:
                f = t.config.factor
                if f not in best or sign * t.metrics[objective[0]] > sign * best[f].metrics[objective[0]]:
                    best[f] = t
        baselines = [t for t in finished if _is_baseline(t.config)]
        chosen = list({t.index: t for t in baselines + list(best.values())}.values())
    elif mode == "none":
        chosen = []
    else:
        raise ValueError(f"artifacts={mode!r}; expected 'all', 'some' or 'none'")
    for t in chosen:
        t.artifacts = tuple(
            a for a in ("scores.npz", "landscape.npz") if a not in drop.get(t.config.factor, ())
        )


def _is_baseline(cfg: TrialConfig) -> bool:
    return cfg.amplification == "linear" and cfg.factor == 1.0 and cfg.twin_of == 0.0


def _log_trial(
    client: MlflowClient, experiment_id: str, parent_id: str, spec_hash: str, trial: SyntheticTrial, tmp: Path
) -> None:
    """One child run: tags at creation, params and metrics in one batch, then artifacts."""
    start = T0_MS + trial.index * TRIAL_MS
    tags = {
        "mlflow.parentRunId": parent_id,
        "lamp.role": "trial",
        "lamp.trial_id": trial.trial_id,
        "lamp.status": trial.status,
        "lamp.group": trial.config.group_key(),
        "lamp.spec_hash": spec_hash,
    }
    if trial.error:
        tags["lamp.error"] = trial.error
    run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=trial.trial_id)
    trial.run_id = run.info.run_id
    metrics = [Metric(k, v, start, 0) for k, v in trial.metrics.items()]
    metrics += [
        Metric(k, v, start + e, e) for k, vals in trial.history.items() for e, v in enumerate(vals, 1)
    ]
    params = [Param(k, v) for k, v in trial.config.to_params().items()]
    client.log_batch(
        trial.run_id, metrics=metrics, params=params, tags=[RunTag("mlflow.note.content", "synthetic")]
    )
    for name in trial.artifacts:
        path = tmp / name
        np.savez(path, **trial.arrays[name])
        client.log_artifact(trial.run_id, str(path))
    if trial.status != "running":
        end_status = {"finished": "FINISHED", "collapsed": "FINISHED", "diverged": "FINISHED"}.get(
            trial.status, "FAILED"
        )
        client.set_terminated(trial.run_id, end_status, end_time=start + TRIAL_MS)


def _spec_text(name: str, grid: SyntheticGrid, objective: tuple[str, str]) -> str:
    """A readable search-space file; its `<...>` checks the report escapes it."""
    lines = [
        f"name: {name}",
        "description: synthetic study <written by tests/_synthetic_study.py> & used by the report tests",
        "search: grid",
        f"objective: {{metric: {objective[0]}, mode: {objective[1]}}}",
        "space:",
        f"  arch: {list(grid.archs)}",
        f"  optimizer: {list(grid.optimizers)}",
        f"  metric: {list(grid.metrics)}",
        f"  amplification: {list(grid.amplifications)}",
        f"  factor: {list(grid.factors)}",
        f"  seed: {list(grid.seeds)}",
        f"  width: {list(grid.widths)}",
        f"  lr: {grid.lr}",
        f"effective_lr_twins: {str(grid.twins).lower()}",
    ]
    return "\n".join(lines) + "\n"
