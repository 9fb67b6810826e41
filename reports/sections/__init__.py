"""The report's sections, each one module that extracts its numbers first and draws them second.

summary, sensitivity (with importance), lr_control, effects, steepness (with
slices), scores (with showcase: which trials to show) and labelfree (with
labelfree_checks). `reports/build.py` puts them in order.
"""

from __future__ import annotations

from reports.sections.effects import draw_effects, extract_effects
from reports.sections.labelfree import draw_label_free, extract_label_free
from reports.sections.lr_control import draw_lr_control, extract_lr_control
from reports.sections.scores import draw_scores, extract_scores
from reports.sections.sensitivity import draw_sensitivity, extract_sensitivity
from reports.sections.steepness import draw_steepness, extract_steepness
from reports.sections.summary import draw_summary, extract_summary

__all__ = [
    "draw_effects",
    "draw_label_free",
    "draw_lr_control",
    "draw_scores",
    "draw_sensitivity",
    "draw_steepness",
    "draw_summary",
    "extract_effects",
    "extract_label_free",
    "extract_lr_control",
    "extract_scores",
    "extract_sensitivity",
    "extract_steepness",
    "extract_summary",
]
