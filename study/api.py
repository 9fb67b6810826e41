"""The documented Python API of lamp-study (docs/api.md): everything the command line does, as functions.

    from study.api import load_spec, run_study, trials_frame, build_report, register_best

Each name is the function of the module that implements it (its docstring is
the reference), imported on first use: importing this module loads neither
Ray nor MLflow, and Ray starts only inside `run_study`.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Study": "reports.source.extract",
    "load_study": "reports.source.extract",
    "build_report": "reports.build",
    "export_trials": "reports.export",
    "trials_frame": "reports.export",
    "register_best": "study.serving.registry",
    "score_model": "study.serving.registry",
    "model_threshold": "study.serving.registry",
    "resume_study": "study.runner",
    "run_study": "study.runner",
    "load_spec": "study.spec",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"study.api has no {name!r}; it offers {', '.join(__all__)}")
    return getattr(importlib.import_module(_HOMES[name]), name)
