"""Search-space files: schema, validation, and expansion into trials.

A study is one YAML file (see `search_spaces/*.yaml`, whose comments teach the
format). `load_spec` reads it with a safe loader, validates it, and returns a
`StudySpec`; every problem is a `SpecError` naming the file, the dotted key and
what is allowed. Trial parameters use the names of `study.core.config.TrialConfig`
(dotted for nested sections, e.g. `landscape.power_iters`), so adding a trial
parameter there makes it usable here.

What a spec becomes:
- grid / random: `expand()` gives the full, deterministic list of
  `TrialConfig`s (configurations x seeds, plus effective-learning-rate twins).
- tpe: `suggest(optuna_trial)` is a define-by-run space; `trial_config(values,
  seed)` turns its answer into a `TrialConfig`.
- study/runner/_search.py builds what Tune needs for either.

Modules (private, one concept each): `_errors` (SpecError and its one-line
format), `_params` (the trial-parameter vocabulary), `_dimensions` (dimensions
and `when` conditions), `_checks` (cross-section rules), `_schema` (the
sections and `StudySpec`), `_expand` (trials and twins), `_search` (Optuna's
space), `_loading` (YAML to `StudySpec`). Importing this package does not
import torch.
"""

from __future__ import annotations

from study.core.metrics import EARLY_STOPPING_METRICS, OBJECTIVES
from study.spec._dimensions import Dimension
from study.spec._errors import SpecError
from study.spec._expand import expand, lr_twin, needs_twin
from study.spec._loading import load_spec
from study.spec._params import check_value, param_types
from study.spec._schema import EarlyStoppingSpec, ObjectiveSpec, ResourcesSpec, SearchSpec, StudySpec

__all__ = [
    "EARLY_STOPPING_METRICS",
    "OBJECTIVES",
    "Dimension",
    "EarlyStoppingSpec",
    "ObjectiveSpec",
    "ResourcesSpec",
    "SearchSpec",
    "SpecError",
    "StudySpec",
    "check_value",
    "expand",
    "load_spec",
    "lr_twin",
    "needs_twin",
    "param_types",
]
