"""The parameters of one trial, as data.

A `TrialConfig` is everything `run_trial` needs: it is what a search space
expands to, what Ray Tune passes to a trial, and what MLflow records as a child
run's params (flattened by `to_params`). Adding a trial parameter is one field
here; the search-space schema derives its allowed keys from these fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Parameters that only make sense for some other parameter's value; the value
# stored when the condition is false is the field default.
CONDITIONAL: dict[str, tuple[str, tuple[str, ...]]] = {
    "momentum": ("optimizer", ("sgd",)),
}


@dataclass(frozen=True)
class DataConfig:
    """Which data a trial trains and tests on (one-class protocol)."""

    name: str = "fashion_mnist"  # registry key in study.data.LOADERS
    path: str | None = None  # dataset location; None = the loader's search order
    anomalous_path: str | None = None  # images: the folder of anomalous images (path holds the normal ones)
    normal_classes: tuple[int | str, ...] = (0,)  # classes treated as normal
    category: str | None = None  # mvtec: the category folder
    image_size: int | None = None  # resize to image_size x image_size (mvtec, npz)
    val_fraction: float = 0.1  # seeded share of normal train samples held out, never trained on
    train_limit: int | None = None  # cap on normal training samples (fast studies)
    test_limit: int | None = None  # cap on test samples, stratified (fast studies)
    split_seed: int = 0  # seed of the held-out split and of the caps
    # Unlabelled images for label-free selection (a folder of images or an .npz file; no labels are read):
    # every trial scores them (study/labelfree/pool.py). None = the test split's validation part.
    unlabelled: str | None = None
    unlabelled_key: str | None = None  # .npz array holding the images (default: x, images, test_x, x_test)


@dataclass(frozen=True)
class LandscapeConfig:
    """How steepness is measured at the end of a trial (0 disables a measure)."""

    # The counts are maxima: `budget` scales them down to a share of the trial's training work
    # (study/landscape/steepness.py), so a small dataset or few epochs do not pay for a full measurement.
    batch_size: int = 64  # fixed seeded batch of held-out normal samples
    power_iters: int = 15  # most Lanczos steps (HVPs) for the top eigenvalue; stops at power_tol
    hutchinson_probes: int = 8  # Rademacher probes for the Hessian trace
    grid_1d: int = 21  # alphas in [-1, 1] for the 1-D slice
    grid_2d: int = 5  # side of the 2-D slice grid (coarse; 0 skips it)
    budget: float = 0.1  # measurement work / training work (0: always the counts above)
    power_tol: float = 1e-2  # relative Ritz residual under which sharpness counts as converged
    amplified: bool = True  # also measure the amplified objective


@dataclass(frozen=True)
class LabelFreeConfig:
    """Label-free selection scores (ST-SSAD) computed at the end of a trial."""

    enabled: bool = True
    pool_size: int = 1000  # unlabelled test-pool samples used for the alignment loss
    tune_steps: int = 30  # gradient steps on the augmentation parameters
    tune_lr: float = 0.2  # 30 Adam steps at 0.05 barely move the logit-parametrised area
    area: float = 0.5  # initial augmentation parameters in [0, 1]
    aspect: float = 0.5
    # Cost: label-free forward passes as a share of training's (one training sample ~ 3 forward passes);
    # pool_size and tune_steps are then caps, and fewer normal images are scored. None = full cost.
    budget: float | None = 0.1
    target_auroc: float = 0.65  # model-free reference AUROC each synthetic family's severity is calibrated to
    draws: int = 2  # seeded corrupted copies of each normal image per synthetic family
    min_normal: int = 64  # fewest normal images scored per family, whatever the budget
    # Scoring `data.unlabelled`: its cost as a share of training's (one image scored ~ SCORE_COST training
    # samples, bench/label_free_cost.py); a larger pool is subsampled (nested, seeded). None = whole pool.
    pool_budget: float | None = 0.025


@dataclass(frozen=True)
class TrialConfig:
    """One trial: data, model, loss, amplification, optimiser and measurements."""

    data: DataConfig = field(default_factory=DataConfig)
    # model
    arch: str = "conv_ae"  # registry key in study.training.models.MODELS
    latent_dim: int = 32
    width: int = 32  # channels of the first conv layer / hidden units scale
    # loss
    metric: str = "mse"  # base metric, registry key in study.training.losses.METRICS
    amplification: str = "linear"  # registry key in study.training.losses.AMPLIFICATIONS
    factor: float = 1.0  # lambda; linear with 1.0 is the plain loss
    # optimisation
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    epochs: int = 5
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast on CUDA
    eval_every: int = 1  # epochs between validation detection metrics (0 = only at the end)
    eval_limit: int = 2000  # test samples used for per-epoch validation metrics
    # effective-learning-rate control: this trial is the lambda=1 twin of an
    # amplified trial with factor `twin_of` (lr already scaled); 0 = not a twin.
    twin_of: float = 0.0
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    label_free: LabelFreeConfig = field(default_factory=LabelFreeConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrialConfig:
        """Build from nested plain data (JSON/YAML/Tune config); unknown keys raise."""
        raw = dict(raw)
        nested = {"data": DataConfig, "landscape": LandscapeConfig, "label_free": LabelFreeConfig}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in nested and isinstance(value, dict):
                sub = dict(value)
                if key == "data" and "normal_classes" in sub:
                    sub["normal_classes"] = tuple(_as_list(sub["normal_classes"]))
                _check_keys(nested[key], sub, prefix=f"{key}.")
                kwargs[key] = nested[key](**sub)
            else:
                kwargs[key] = value
        _check_keys(cls, kwargs)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain data, JSON-safe; `from_dict(to_dict())` round-trips."""
        out = dataclasses.asdict(self)
        out["data"]["normal_classes"] = list(self.data.normal_classes)
        return out

    def to_params(self) -> dict[str, str]:
        """Flat `section.key -> str` mapping for MLflow params."""
        flat: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    flat[f"{key}.{sub}"] = _param_str(v)
            else:
                flat[key] = _param_str(value)
        return flat

    def group_key(self) -> str:
        """Hash of everything but the seed: replicates of one setting share it."""
        d = self.to_dict()
        d.pop("seed")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to nested sections: `{"data.name": x}` -> `{"data": {"name": x}}`."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[head] = value
    return out


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _param_str(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _check_keys(cls: type, raw: dict[str, Any], prefix: str = "") -> None:
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        msg = (
            f"unknown trial parameter(s) {', '.join(prefix + u for u in unknown)}; "
            f"allowed: {', '.join(prefix + a for a in sorted(allowed))}"
        )
        raise ValueError(msg)


def trial_fields() -> dict[str, type | str]:
    """Top-level and dotted nested field names with their declared types (for spec validation)."""
    out: dict[str, type | str] = {}
    for f in dataclasses.fields(TrialConfig):
        factory = f.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            for sub in dataclasses.fields(factory):
                out[f"{f.name}.{sub.name}"] = sub.type
        else:
            out[f.name] = f.type
    return out
