"""Reading a study file: a strict YAML loader, and pydantic's errors as one line per dotted key."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from study.spec._errors import SpecError, did_you_mean
from study.spec._schema import INTERNAL, StudySpec

_COMPARISONS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_DIMENSION_KINDS = "grid, choice, uniform, loguniform, int"
MAX_BYTES = 1_000_000  # the largest shipped study is ~5 kB; a bigger file is a wrong path, not a study


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects duplicate keys (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (YAML would silently keep the last one)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _top_keys() -> list[str]:
    return [f.alias or n for n, f in StudySpec.model_fields.items() if n not in INTERNAL]


def load_spec(path: str | Path) -> StudySpec:
    """Read, validate and return a study file; every problem raises SpecError."""
    path = Path(path)
    allowed = f"a mapping with keys {', '.join(_top_keys())}"
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(
                path, "(file)", f"is {size:,} bytes; allowed: a study file under {MAX_BYTES:,} bytes"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(path, "(file)", f"cannot read: {err}; allowed: a readable UTF-8 YAML file") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(path, "(yaml)", f"invalid YAML at {where}: {problem}; allowed: YAML syntax") from None
    except RecursionError:
        raise SpecError(path, "(yaml)", "nested too deeply to read; allowed: a study file") from None
    if data is None:
        raise SpecError(path, "(top level)", f"the file is empty; allowed: {allowed}")
    if not isinstance(data, dict):
        raise SpecError(
            path,
            "(top level)",
            f"the top level is a {type(data).__name__}, not a mapping; allowed: {allowed}",
        )
    bad = [k for k in data if k in INTERNAL or not isinstance(k, str)]
    if bad:
        raise SpecError(path, str(bad[0]), f"unknown key; allowed: {', '.join(_top_keys())}")
    try:
        spec = StudySpec.model_validate(data, context={"path": str(path)})
    except ValidationError as err:
        problems = _translate(err)
        raise SpecError(path, *problems[0], more=problems[1:]) from None
    spec.source_text, spec.source_path = text, str(path)
    return spec


def _translate(err: ValidationError) -> list[tuple[str, str]]:
    """Pydantic errors -> (dotted key, message with what is allowed)."""
    return [(_dotted(e["loc"]) or "(top level)", _message(e)) for e in err.errors()]


def _message(e: Any) -> str:  # one branch per pydantic error type: a flat table reads best
    loc, kind, got = e["loc"], e["type"], e.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return f"unknown key{did_you_mean(str(loc[-1]), allowed)}; allowed: {', '.join(allowed)}"
    if kind == "missing":
        return "required key is missing; allowed: see search_spaces/quickstart.yaml for an example"
    if kind == "value_error":
        return str(e["ctx"]["error"])
    if kind in _COMPARISONS:
        return f"{got!r} is out of range; allowed: {_COMPARISONS[kind]} {next(iter(e['ctx'].values()))}"
    if kind == "literal_error":
        return f"{got!r} is not allowed; allowed: {e['ctx']['expected'].replace(' or ', ', ')}"
    if (
        kind in ("model_type", "model_attributes_type", "dict_type")
        and len(loc) == 2
        and loc[0] == "dimensions"
    ):
        return (
            f"{got!r} is not a dimension; allowed: a mapping with one of {_DIMENSION_KINDS} "
            "(to hold a parameter constant, put it under fixed:)"
        )
    if kind in ("model_type", "model_attributes_type"):
        return f"wrong value {got!r}; allowed: a mapping with keys {', '.join(_allowed_keys(loc))}"
    if kind == "dict_type":
        return f"wrong value {got!r}; allowed: a mapping"
    if kind == "too_short":
        return f"{got!r} has too few items; allowed: at least {e['ctx']['min_length']}"
    if kind == "too_long":
        return f"{got!r} has too many items; allowed: at most {e['ctx']['max_length']}"
    if kind == "string_pattern_mismatch":
        return f"{got!r} is not allowed; allowed: letters, digits, '_', '.', '-' (it names the MLflow experiment)"
    if e["msg"].startswith("Input should be "):
        return f"wrong value {got!r}; allowed: {e['msg'].removeprefix('Input should be ').split(',')[0]}"
    return f"{e['msg'][0].lower()}{e['msg'][1:]}; got {got!r}"


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Keys of the schema section at `loc` (a path of field names and mapping keys)."""
    model: type[BaseModel] = StudySpec
    parts = list(loc)
    while parts:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == parts[0]), None)
        if field is None:
            return []
        target = field.annotation
        if isinstance(target, types.UnionType) or typing.get_origin(target) is typing.Union:
            target = next(a for a in typing.get_args(target) if a is not type(None))
        parts.pop(0)
        if typing.get_origin(target) is dict:
            target = typing.get_args(target)[1]
            parts = parts[1:]
        if not (isinstance(target, type) and issubclass(target, BaseModel)):
            return []
        model = target
    return _top_keys() if model is StudySpec else [f.alias or n for n, f in model.model_fields.items()]
