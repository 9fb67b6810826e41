"""Searched parameters: one `Dimension` per parameter, and the `when` conditions between them.

A dimension is varied only where its conditions hold (its own `when`, plus
`config.CONDITIONAL`, e.g. momentum only for sgd); elsewhere the parameter
keeps its fixed or default value. The condition helpers take the study spec
(anything with `dimensions` and `explicit()`), so grid expansion, random
draws and Optuna's define-by-run space all read conditions the same way.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from study.core.config import CONDITIONAL
from study.spec._params import defaults

if TYPE_CHECKING:
    import numpy as np

    from study.spec._schema import StudySpec

KINDS = ("grid", "choice", "uniform", "loguniform", "int")


class Section(BaseModel):
    """Base of every spec section: unknown keys are errors, `int` may be written for `int_`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Dimension(Section):
    """One searched parameter: exactly one of grid | choice | uniform | loguniform | int.

    `grid` and `choice` list values (both enumerated by grid search; `choice` is
    the categorical name for random/tpe). `uniform` and `loguniform` give
    [low, high]; `int` gives [low, high] inclusive with `step`. `when` maps
    other parameters to the values under which this one is varied; elsewhere
    the parameter keeps its fixed or default value.
    """

    grid: list[Any] | None = Field(None, min_length=1)
    choice: list[Any] | None = Field(None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    int_: tuple[int, int] | None = Field(None, alias="int")
    step: int | None = Field(None, ge=1)
    when: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("uniform", "loguniform", "int_")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float] | None) -> tuple[float, float] | None:
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(
                f"bounds [{bounds[0]}, {bounds[1]}] are reversed or equal; allowed: [low, high] with low < high"
            )
        return bounds

    @field_validator("loguniform")
    @classmethod
    def _positive(cls, bounds: tuple[float, float] | None) -> tuple[float, float] | None:
        if bounds is not None and bounds[0] <= 0:
            raise ValueError(
                f"a log scale needs low > 0, got {bounds[0]}; allowed: [low, high] with 0 < low < high"
            )
        return bounds

    @field_validator("when", mode="before")
    @classmethod
    def _listify(cls, when: Any) -> Any:
        if isinstance(when, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in when.items()}
        return when

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [k for k in KINDS if self.spec(k) is not None]
        if len(kinds) != 1:
            got = ", ".join(kinds) or "none"
            raise ValueError(f"needs exactly one kind, got {got}; allowed: {', '.join(KINDS)}")
        if self.step is not None:
            if self.int_ is None:
                raise ValueError("`step` applies only to int dimensions; allowed: step with int: [low, high]")
            if (self.int_[1] - self.int_[0]) % self.step:
                raise ValueError(
                    f"int range [{self.int_[0]}, {self.int_[1]}] is not a whole number of steps of {self.step}; "
                    f"allowed: high - low divisible by step"
                )
        for key, values in self.when.items():
            if not values:
                raise ValueError(
                    f"`when: {key}` lists no values; allowed: a value or a non-empty list of values"
                )
        return self

    def spec(self, kind: str) -> Any:
        """The raw definition of `kind` (None when this dimension is of another kind)."""
        return self.int_ if kind == "int" else getattr(self, kind)

    @property
    def kind(self) -> str:
        """grid | choice | uniform | loguniform | int."""
        return next(k for k in KINDS if self.spec(k) is not None)

    @property
    def categorical(self) -> bool:
        """A list of values (grid or choice) rather than a range."""
        return self.kind in ("grid", "choice")

    @property
    def continuous(self) -> bool:
        return self.kind in ("uniform", "loguniform")

    def values(self) -> list[Any]:
        """Every value, for enumerable kinds (grid, choice, int)."""
        if self.categorical:
            return list(self.spec(self.kind))
        if self.kind == "int":
            return list(range(self.int_[0], self.int_[1] + 1, self.step or 1))
        raise TypeError(f"a {self.kind} dimension has no finite list of values")

    def draw(self, rng: np.random.Generator) -> Any:
        """One value drawn uniformly (log-uniformly for loguniform) with `rng`."""
        if not self.continuous:
            values = self.values()
            return values[int(rng.integers(len(values)))]
        low, high = self.spec(self.kind)
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return float(rng.uniform(low, high))


# ---------------------------------------------------------------- conditions between parameters
def base_value(spec: StudySpec, name: str) -> Any:
    """What `name` is when no dimension sets it: the file's setting, else the TrialConfig default."""
    explicit = spec.explicit()
    return explicit[name] if name in explicit else defaults()[name]


def possible(spec: StudySpec, name: str) -> list[Any] | None:
    """Every value `name` can take in this study (None: a continuous range)."""
    dim = spec.dimensions.get(name)
    if dim is None:
        return [base_value(spec, name)]
    if dim.continuous:
        return None
    values = dim.values()
    return values if not dim.when else [*values, base_value(spec, name)]


def conditions(spec: StudySpec, name: str) -> dict[str, tuple[Any, ...]]:
    """Parameter -> values under which dimension `name` is varied: its `when` and config.CONDITIONAL."""
    conds = {k: tuple(v) for k, v in spec.dimensions[name].when.items()}
    if name in CONDITIONAL:
        cond, allowed = CONDITIONAL[name]
        conds[cond] = tuple(v for v in conds[cond] if v in allowed) if cond in conds else allowed
    return conds


def active(spec: StudySpec, name: str, values: dict[str, Any]) -> bool:
    """Whether dimension `name` is varied given the values chosen so far."""
    return all(
        (values[c] if c in values else base_value(spec, c)) in allowed
        for c, allowed in conditions(spec, name).items()
    )


def order(spec: StudySpec) -> list[str]:
    """Dimension names, each after the dimensions its conditions read (declared order otherwise).

    Raises ValueError naming the cycle when conditions depend on each other.
    """
    out: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ValueError(
                f"conditions form a cycle: {' -> '.join([*chain, name])}; allowed: acyclic `when`"
            )
        state[name] = "visiting"
        for cond in conditions(spec, name):
            if cond in spec.dimensions and cond != name:
                visit(cond, [*chain, name])
        state[name] = "done"
        out.append(name)

    for name in spec.dimensions:
        visit(name, [])
    return out
