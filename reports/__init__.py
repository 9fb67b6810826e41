"""Plotly reports built from an MLflow experiment (one study).

`build_report(name, tracking_uri=...)` writes one self-contained HTML file;
each section module (summary, sensitivity, lr_control, steepness, scores,
labelfree) extracts plain numbers first and draws from them second.
"""

from reports.build import build_report
from reports.source.extract import StudyNotFoundError

__all__ = ["StudyNotFoundError", "build_report"]
