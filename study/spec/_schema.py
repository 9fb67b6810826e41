"""The schema of a study file: its sections as pydantic models, and `StudySpec`, the validated whole.

Field-level rules live on the models; rules that need the trial vocabulary or
several sections at once are in `_checks`; expansion into trials in `_expand`;
Optuna's space in `_search`. `StudySpec` keeps only the data and thin methods
that delegate to those modules.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, computed_field, field_validator, model_validator

from study.core.metrics import EARLY_STOPPING_METRICS, OBJECTIVES, TRAINING_LOSSES
from study.spec import _checks, _expand, _search
from study.spec._dimensions import Dimension, Section
from study.spec._errors import Problems, SpecError, did_you_mean
from study.spec._params import check_section, registry

if TYPE_CHECKING:
    import optuna

    from study.core.config import DataConfig, TrialConfig


class SearchSpec(Section):
    """How configurations are produced."""

    algorithm: Literal["grid", "random", "tpe"] = "grid"
    samples: int = Field(1, ge=1)  # grid: repeats of the whole grid; random/tpe: configurations
    seed: int = Field(0, ge=0)  # sampler seed (random, tpe)


class ObjectiveSpec(Section):
    """What "best trial" means; `mode` defaults to the metric's direction."""

    metric: str = "auroc"
    mode: Literal["min", "max"] | None = None

    @field_validator("metric")
    @classmethod
    def _known(cls, metric: str) -> str:
        if metric not in OBJECTIVES:
            raise ValueError(
                f"unknown objective metric {metric!r}{did_you_mean(metric, OBJECTIVES)}; "
                f"allowed: {', '.join(OBJECTIVES)}"
            )
        return metric


class EarlyStoppingSpec(Section):
    """ASHA on a per-epoch detection metric (never a training loss)."""

    metric: str = "val_auroc"
    grace_period: int = Field(1, ge=1)  # epochs every trial runs before it can be stopped
    reduction_factor: float = Field(2, gt=1)

    @field_validator("metric")
    @classmethod
    def _comparable(cls, metric: str) -> str:
        allowed = ", ".join(EARLY_STOPPING_METRICS)
        if metric in TRAINING_LOSSES:
            raise ValueError(
                f"{metric!r} cannot compare trials: amplified losses are not comparable across trials (a loss "
                f"amplified 100x is not 100x worse) and base losses differ in scale between metrics; allowed: {allowed}"
            )
        if metric not in EARLY_STOPPING_METRICS:
            raise ValueError(f"unknown early-stopping metric {metric!r}; allowed: {allowed}")
        return metric

    @property
    def mode(self) -> Literal["min", "max"]:
        """Direction of `metric` (for the scheduler)."""
        return EARLY_STOPPING_METRICS[self.metric].value


class ResourcesSpec(Section):
    """Per-trial Ray resources; a fractional gpu packs trials on one GPU."""

    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0)

    @field_validator("gpu")
    @classmethod
    def _ray_gpu(cls, gpu: float) -> float:
        if gpu > 1 and gpu != int(gpu):
            raise ValueError(
                f"{gpu} GPUs: Ray allows a fraction only below 1; allowed: 0 <= gpu <= 1 or a whole number"
            )
        return gpu


class PackingSpec(Section):
    """Train trials that differ only in per-member hyperparameters as one stacked model (study.packing).

    `auto` packs when trials request GPUs (a small model alone leaves a GPU
    idle) and not on CPU, where bench/gpu_pack.py measured no gain. Packs need
    the trial list up front and run every member to the end, so `true` is
    refused with tpe search or early_stopping and `auto` then runs solo trials.
    """

    enabled: bool | Literal["auto"] = "auto"
    max_members: int = Field(64, ge=1)  # members per pack: K x batch activations must fit the device


INTERNAL = ("source_text", "source_path")  # set by load_spec, not by the file


class StudySpec(Section):
    """A validated study definition (see the package docstring and search_spaces/)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    dataset: dict[str, Any]  # DataConfig fields (without the `data.` prefix)
    fixed: dict[str, Any] = Field(default_factory=dict)  # dotted parameter -> value, after loading
    dimensions: dict[str, Dimension] = Field(default_factory=dict)
    search: SearchSpec = Field(default_factory=SearchSpec)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    early_stopping: EarlyStoppingSpec | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    max_concurrent: int = Field(1, ge=1)
    packing: PackingSpec = Field(default_factory=PackingSpec)
    lr_control: bool = False
    landscape: dict[str, Any] = Field(default_factory=dict)  # LandscapeConfig fields
    label_free: dict[str, Any] = Field(default_factory=dict)  # LabelFreeConfig fields
    source_text: str = ""
    source_path: str = ""
    _n_trials: int | None = PrivateAttr(None)  # cache: a spec is not changed after validation

    @computed_field  # type: ignore[prop-decorator]
    @property
    def content_hash(self) -> str:
        """sha256 of the file text: tagged on every run of the study."""
        return hashlib.sha256(self.source_text.encode()).hexdigest()

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(
                f"seeds {seeds} must be distinct and >= 0; allowed: a list of distinct integers >= 0"
            )
        return seeds

    @model_validator(mode="after")
    def _semantics(self, info: ValidationInfo) -> StudySpec:
        """Checks across sections; raises SpecError directly (pydantic lets it through) with dotted keys."""
        problems = Problems()
        self.dataset = check_section(self.dataset, "dataset", "data", problems)
        if isinstance(self.dataset.get("unlabelled"), str):  # trials may run elsewhere (Ray's trial folder)
            self.dataset["unlabelled"] = str(Path(self.dataset["unlabelled"]).expanduser().absolute())
        if "name" not in self.dataset:
            problems.add("dataset.name", f"missing; allowed: {', '.join(registry('data.name'))}")
        self.landscape = check_section(self.landscape, "landscape", "landscape", problems)
        self.label_free = check_section(self.label_free, "label_free", "label_free", problems)
        self.fixed = _checks.check_fixed(self, problems)
        _checks.check_dimensions(self, problems)
        _checks.check_study(self, problems)
        if problems:
            path = (info.context or {}).get("path", "<spec>")
            raise SpecError(path, *problems[0], more=problems[1:])
        return self

    def explicit(self) -> dict[str, Any]:
        """Dotted parameter -> value for every parameter the file sets (not the dimensions)."""
        out = {f"data.{k}": v for k, v in self.dataset.items()}
        out.update({f"landscape.{k}": v for k, v in self.landscape.items()})
        out.update({f"label_free.{k}": v for k, v in self.label_free.items()})
        out.update(self.fixed)
        return out

    def base_config(self) -> dict[str, Any]:
        """Nested plain data the file fixes; merge dimension values in and call `TrialConfig.from_dict`."""
        return _expand.base_config(self)

    def trial_config(self, values: dict[str, Any], seed: int) -> TrialConfig:
        """One trial from flat dotted dimension values and a replicate seed."""
        return _expand.trial_config(self, values, seed)

    def expand(self) -> list[TrialConfig]:
        """Every trial of a grid or random study, in a deterministic order (see `_expand.expand`)."""
        return _expand.expand(self)

    def data_configs(self) -> list[DataConfig]:
        """Every distinct dataset setting the trials use (what `validate` opens)."""
        return _expand.data_configs(self)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Define-by-run space for Optuna (see `_search.suggest`)."""
        return _search.suggest(self, trial)

    def packing_decision(self) -> tuple[bool, str]:
        """(whether the study runs packed trials, why): see `PackingSpec`."""
        return _checks.packing_decision(self)

    @property
    def n_trials(self) -> int | None:
        """Trials the study runs: len(expand()) for grid/random, samples for tpe (computed once)."""
        if self.search.algorithm == "tpe":
            return self.search.samples
        if self._n_trials is None:
            self._n_trials = len(self.expand())
        return self._n_trials
