"""Checks that need the trial vocabulary or several sections of a spec at once.

Each check appends `(dotted key, message)` to a `Problems` list, so a file
with several mistakes reports all of them in one go. They run inside
`StudySpec`'s model validator and may store coerced values back on the spec
(e.g. YAML's string `1e-3` becomes the float 0.001).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from study.core.metrics import LABEL_BASED, OBJECTIVES
from study.core.vocab import Direction
from study.spec import _dimensions as dims
from study.spec._errors import Problems, did_you_mean
from study.spec._params import RESERVED, SECTIONS, check_value, describe, param_types

if TYPE_CHECKING:
    from study.spec._dimensions import Dimension
    from study.spec._schema import StudySpec


def check_fixed(spec: StudySpec, problems: Problems) -> dict[str, Any]:
    """The `fixed:` section as dotted parameter -> checked value (nested sections flattened)."""
    flat: dict[str, Any] = {}
    for key, value in spec.fixed.items():
        items = (
            {f"{key}.{k}": v for k, v in value.items()}
            if key in SECTIONS and isinstance(value, dict)
            else {key: value}
        )
        for name, v in items.items():
            if name in flat:
                problems.add(f"fixed.{name}", "set twice (dotted and nested); allowed: one setting")
            flat[str(name)] = v
    out = {}
    allowed = [n for n in param_types() if not n.startswith("data.") and n not in RESERVED]
    for name, value in flat.items():
        key = f"fixed.{name}"
        head, _, tail = name.partition(".")
        if name in RESERVED:
            problems.add(key, f"cannot be fixed; allowed: {RESERVED[name]}")
        elif head == "data" and name in param_types():
            problems.add(
                key, f"dataset parameters go in the `dataset:` section; allowed: dataset: {{{tail}: ...}}"
            )
        elif name not in param_types():
            problems.add(
                key, f"unknown trial parameter{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}"
            )
        elif tail and tail in getattr(spec, head):
            problems.add(key, f"also set in the `{head}:` section; allowed: one setting")
        else:
            out[name], problem = check_value(name, value)
            if problem:
                problems.add(key, problem)
    return out


def check_dimensions(spec: StudySpec, problems: Problems) -> None:
    explicit = spec.explicit()
    allowed = [n for n in param_types() if n not in RESERVED]
    for name, dim in spec.dimensions.items():
        key = f"dimensions.{name}"
        if name in RESERVED:
            problems.add(key, f"cannot be a dimension; allowed: {RESERVED[name]}")
        elif name not in param_types():
            problems.add(
                key, f"unknown trial parameter{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}"
            )
        else:
            if name in explicit:
                head = name.split(".")[0]
                where = "fixed" if name in spec.fixed else {"data": "dataset"}.get(head, head)
                problems.add(
                    key, f"also set in `{where}:`; allowed: a parameter is either fixed or a dimension"
                )
            _check_values(spec, name, dim, problems)
            _check_when(spec, name, dim, explicit, problems)
    try:
        dims.order(spec)
    except ValueError as err:
        problems.add("dimensions", str(err))


def _check_values(spec: StudySpec, name: str, dim: Dimension, problems: Problems) -> None:
    """The dimension's kind fits its parameter's type, and each value or bound is allowed."""
    key, hint, kind = f"dimensions.{name}", param_types()[name], dim.kind
    if dim.continuous and hint is not float:
        problems.add(
            f"{key}.{kind}",
            f"{name} is {describe(hint)}; allowed: grid or choice" + (" or int" if hint is int else ""),
        )
    elif kind == "int" and hint not in (int, float):
        problems.add(f"{key}.int", f"{name} is {describe(hint)}; allowed: grid or choice")
    elif dim.continuous and spec.search.algorithm == "grid":
        problems.add(
            f"{key}.{kind}",
            "a continuous range cannot be enumerated by grid search; "
            "allowed: grid/choice/int dimensions, or search.algorithm random or tpe",
        )
    elif dim.categorical:
        coerced = []
        for i, value in enumerate(dim.values()):
            v, problem = check_value(name, value)
            coerced.append(v)
            if problem:
                problems.add(f"{key}.{kind}[{i}]", problem)
        setattr(dim, kind, coerced)
    else:
        for bound in dim.spec(kind):
            _, problem = check_value(name, float(bound) if hint is float else bound)
            if problem:
                problems.add(f"{key}.{kind}", f"bound {problem}")


def _check_when(
    spec: StudySpec, name: str, dim: Dimension, explicit: dict[str, Any], problems: Problems
) -> None:
    known = sorted((set(explicit) | set(spec.dimensions)) - {name})
    for cond, values in dim.when.items():
        key = f"dimensions.{name}.when.{cond}"
        other = spec.dimensions.get(cond)
        if cond == name:
            problems.add(
                key, "a dimension cannot depend on itself; allowed: other fixed parameters or dimensions"
            )
        elif cond not in explicit and other is None:
            problems.add(
                key,
                f"{cond!r} is neither fixed nor a dimension{did_you_mean(str(cond), known)}; allowed: {', '.join(known)}",
            )
        elif other is not None and other.continuous:
            problems.add(
                key,
                f"{cond} is a continuous dimension; allowed: conditions on grid, choice or int dimensions",
            )
        else:
            coerced = []
            for value in values:
                v, problem = check_value(cond, value) if cond in param_types() else (value, None)
                coerced.append(v)
                if problem:
                    problems.add(key, problem)
            dim.when[cond] = coerced
    if problems.under(f"dimensions.{name}.when"):
        return
    for cond, allowed_values in dims.conditions(spec, name).items():
        values = dims.possible(spec, cond)
        if values is not None and not any(v in allowed_values for v in values):
            problems.add(
                f"dimensions.{name}",
                f"{name} is varied only when {cond} is one of {list(allowed_values)}, "
                f"but {cond} only takes {values}; allowed: a condition that can hold",
            )


def check_study(spec: StudySpec, problems: Problems) -> None:
    """Options that must agree with each other: objective, seeds, twins, early stopping."""
    objective = spec.objective.metric
    natural = OBJECTIVES[objective]
    if spec.objective.mode is None:
        spec.objective.mode = natural.value  # a plain string: the spec is saved as YAML
    elif spec.objective.mode != natural:
        problems.add(
            "objective.mode",
            f"{spec.objective.mode!r} contradicts {objective}, which is better "
            f"when {'higher' if natural == Direction.MAX else 'lower'}; allowed: {natural}",
        )
    if objective not in LABEL_BASED and dims.possible(spec, "label_free.enabled") == [False]:
        problems.add(
            "objective.metric",
            f"{objective} needs the label-free scores; allowed: label_free: {{enabled: true}}, or objective auroc or ap",
        )
    if spec.lr_control and spec.search.algorithm == "tpe":
        problems.add(
            "lr_control",
            "effective-learning-rate twins need a grid or random search, since TPE proposes "
            "trials adaptively and there is no list of trials to pair; allowed: false with algorithm tpe",
        )
    if spec.search.algorithm == "tpe" and len(spec.seeds) > 1:
        problems.add(
            "seeds",
            "TPE runs each proposed configuration once, so replicate seeds would be optimised over "
            "rather than averaged; allowed: one seed with algorithm tpe (replicate the best "
            "configurations in a grid study)",
        )
    if spec.early_stopping is not None:
        _check_early_stopping(spec, problems)
    cuda = [d for d in dims.possible(spec, "device") or [] if str(d).startswith("cuda")]
    if cuda and spec.resources.gpu == 0:
        problems.add(
            "resources.gpu",
            f"0, but trials ask for device {cuda[0]!r}: Ray reserves no GPU for such a trial (and by default "
            "hides the GPUs from it), so it fails or shares a GPU unaccounted; allowed: resources: {gpu: 1} "
            "(or a fraction), or device auto or cpu",
        )
    if spec.packing.enabled is True and (clash := _packing_clash(spec)):
        problems.add("packing.enabled", f"true, but {clash}; allowed: packing.enabled auto or false here")


def packing_decision(spec: StudySpec) -> tuple[bool, str]:
    """Whether trials run packed, and why (validate prints the reason)."""
    enabled = spec.packing.enabled
    if enabled is False:
        return False, "packing.enabled is false"
    if clash := _packing_clash(spec):
        return False, f"not packed: {clash}"
    if enabled is True:
        return True, "packing.enabled is true"
    if spec.resources.gpu > 0:
        return True, "auto: trials request GPUs"
    return False, "auto: trials run on CPU, where packing does not pay (bench/gpu_pack.py)"


def _packing_clash(spec: StudySpec) -> str | None:
    """Why this study's trials cannot run in packs, or None."""
    if spec.search.algorithm == "tpe":
        return (
            "tpe proposes one trial at a time from the results so far, so there is no list of trials to pack"
        )
    if spec.early_stopping is not None:
        return (
            "early_stopping (ASHA) stops trials one by one, and a pack trains its members together to the end; "
            "drop early_stopping to pack"
        )
    return None


def _check_early_stopping(spec: StudySpec, problems: Problems) -> None:
    es, objective = spec.early_stopping, spec.objective.metric
    epochs = dims.possible(spec, "epochs")
    if epochs is not None and es.grace_period > max(epochs):
        problems.add(
            "early_stopping.grace_period",
            f"{es.grace_period} exceeds epochs ({max(epochs)}); allowed: 1 .. {max(epochs)}",
        )
    if dims.possible(spec, "eval_every") == [0]:
        problems.add(
            "early_stopping",
            "needs per-epoch validation metrics but eval_every is 0; allowed: eval_every >= 1, or no early_stopping",
        )
    if objective not in LABEL_BASED and es.metric in LABEL_BASED:
        problems.add(
            "early_stopping.metric",
            f"{es.metric} uses anomaly labels, so pruning on it would leak labels into the label-free "
            f"objective {objective}; allowed: no early_stopping with a label-free objective, "
            "or objective auroc or ap",
        )
