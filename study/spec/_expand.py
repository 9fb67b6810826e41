"""A spec as a list of trials: grid and random expansion, and effective-learning-rate twins."""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import TYPE_CHECKING, Any

from study.core.config import CONDITIONAL, DataConfig, TrialConfig, nest
from study.core.vocab import SCALE_SENSITIVE_OPTIMIZERS
from study.spec import _dimensions as dims
from study.spec._errors import SpecError
from study.spec._params import coerce, defaults

if TYPE_CHECKING:
    from study.spec._schema import StudySpec


def base_config(spec: StudySpec) -> dict[str, Any]:
    """Nested plain data of everything the file fixes (dataset, fixed, landscape, label_free)."""
    nested = nest(spec.explicit())
    nested.setdefault("data", {})
    return json.loads(json.dumps(nested))


def trial_config(spec: StudySpec, values: dict[str, Any], seed: int) -> TrialConfig:
    """One trial from flat dotted dimension values and a replicate seed.

    A conditional parameter (config.CONDITIONAL, e.g. momentum for sgd) whose
    condition is false keeps its default, so trials that cannot differ compare equal.
    """
    flat = {**spec.explicit(), **values, "seed": seed}
    for param, (cond, allowed) in CONDITIONAL.items():
        if flat.get(cond, defaults()[cond]) not in allowed:
            flat.pop(param, None)
    return TrialConfig.from_dict(nest(flat))


def expand(spec: StudySpec) -> list[TrialConfig]:
    """Every trial of a grid or random study, in a deterministic order.

    grid: every combination of dimension values (a conditional dimension only
    where its condition holds; identical trials once) x seeds, then the lr
    twins; the whole list repeated `search.samples` times (identical repeats
    measure run-to-run nondeterminism; `seeds` are the replicates).
    random: `search.samples` configurations drawn with
    `numpy.random.default_rng(search.seed)` x seeds, then the lr twins.
    """
    algorithm = spec.search.algorithm
    if algorithm == "tpe":
        raise SpecError(
            spec.source_path or "<spec>",
            "search.algorithm",
            "tpe proposes trials adaptively, so there is no list to expand (use suggest); allowed: grid, random",
        )
    points = _grid_points(spec) if algorithm == "grid" else _random_points(spec)
    trials = [trial_config(spec, p, seed) for p in points for seed in spec.seeds]
    if algorithm == "grid":
        trials = list(dict.fromkeys(trials))
    if spec.lr_control:
        trials += list(dict.fromkeys(lr_twin(t) for t in trials if needs_twin(t)))
    return trials * spec.search.samples if algorithm == "grid" else trials


def data_configs(spec: StudySpec) -> list[DataConfig]:
    """Every distinct dataset setting the study's trials use (tpe: each combination of data dimensions)."""
    if spec.search.algorithm != "tpe":
        return list(dict.fromkeys(t.data for t in expand(spec)))
    names = [n for n, d in spec.dimensions.items() if n.startswith("data.") and not d.continuous]
    combos = itertools.product(*(spec.dimensions[n].values() for n in names))
    points = [{n: coerce(n, v) for n, v in zip(names, combo, strict=True)} for combo in combos]
    return list(dict.fromkeys(trial_config(spec, p, spec.seeds[0]).data for p in points))


def _grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for name in dims.order(spec):
        values = spec.dimensions[name].values()
        points = list(
            itertools.chain.from_iterable(
                ([{**p, name: coerce(name, v)} for v in values] if dims.active(spec, name, p) else [p])
                for p in points
            )
        )
    return points


def _random_points(spec: StudySpec) -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(spec.search.seed)
    points = []
    for _ in range(spec.search.samples):
        point: dict[str, Any] = {}
        for name in dims.order(spec):
            if dims.active(spec, name, point):
                point[name] = coerce(name, spec.dimensions[name].draw(rng))
        points.append(point)
    return points


def needs_twin(trial: TrialConfig) -> bool:
    """Amplified SGD trials get a twin; under Adam(W) the lambda = 1 baseline already is the lr-matched control."""

    return trial.factor != 1 and trial.optimizer in SCALE_SENSITIVE_OPTIMIZERS


def lr_twin(trial: TrialConfig) -> TrialConfig:
    """The effective-learning-rate control of an amplified trial: lambda = 1, lr x factor.

    Every amplification form g(L; factor) has slope `factor` at L = 0
    (study/training/losses.py), so near a good fit the amplified gradient is `factor`
    times the base gradient, and an SGD step with lr eta on it is the step of
    the plain loss with lr eta * factor (exactly so for `linear` under SGD
    without weight decay). The twin is that plain-loss trial; if the amplified
    trial beats its twin, the gain is more than a learning-rate change. Adam's
    update ignores gradient scale, so its matching learning rate is the same
    lr: the lambda = 1 baseline is the control and no twin is added
    (`needs_twin`). Linear and exp trials at one factor share a twin
    (deduplicated by `expand`). `twin_of` records the factor.
    """
    return dataclasses.replace(
        trial, amplification="linear", factor=1.0, lr=trial.lr * trial.factor, twin_of=float(trial.factor)
    )
