"""Optuna's TPE define-by-run space of a spec (the runner hands it to Tune, study/runner/_search.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from study.spec import _dimensions as dims
from study.spec._params import coerce

if TYPE_CHECKING:
    import optuna

    from study.spec._schema import StudySpec


def suggest(spec: StudySpec, trial: optuna.Trial) -> dict[str, Any]:
    """Define-by-run space for Optuna: suggest every active dimension, return `{dotted_name: value}`.

    Conditional dimensions are suggested only when their condition holds, so
    TPE models them only on the trials where they exist.
    """
    values: dict[str, Any] = {}
    for name in dims.order(spec):
        if not dims.active(spec, name, values):
            continue
        dim = spec.dimensions[name]
        if dim.categorical:
            choices = dim.values()
            if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                value = trial.suggest_categorical(name, choices)
            else:  # Optuna stores only scalars: suggest a label (e.g. a list of normal classes)
                labels = [json.dumps(c) for c in choices]
                value = choices[labels.index(trial.suggest_categorical(name, labels))]
        elif dim.kind == "int":
            low, high = dim.int_
            value = trial.suggest_int(name, low, high, step=dim.step or 1)
        else:
            low, high = dim.spec(dim.kind)
            value = trial.suggest_float(name, low, high, log=dim.kind == "loguniform")
        values[name] = coerce(name, value)
    return values
