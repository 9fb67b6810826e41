"""The documented Python API of lamp-study (docs/api.md): everything the command line does, as functions.

    from study.api import load_spec, run_study, trials_frame, build_report, register_best

Each name is re-exported from the module that implements it; their docstrings
are the reference. Importing this module starts nothing (Ray starts inside
`run_study`).
"""

from __future__ import annotations

from reports.build import build_report
from reports.export import export_trials, trials_frame
from reports.extract import Study, load_study
from study.registry import register_best, score_model
from study.runner import resume_study, run_study
from study.spec import load_spec

__all__ = [
    "Study",
    "build_report",
    "export_trials",
    "load_spec",
    "load_study",
    "register_best",
    "resume_study",
    "run_study",
    "score_model",
    "trials_frame",
]
