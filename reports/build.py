"""Build a study's report: read MLflow once, extract each section's numbers, draw, write one HTML file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient

from reports.render.html import render_html
from reports.render.section import Section
from reports.sections.effects import draw_effects, extract_effects
from reports.sections.labelfree import draw_label_free, extract_label_free
from reports.sections.lr_control import draw_lr_control, extract_lr_control
from reports.sections.scores import draw_scores, extract_scores
from reports.sections.sensitivity import draw_sensitivity, extract_sensitivity
from reports.sections.steepness import draw_steepness, extract_steepness
from reports.sections.summary import SummaryData, banner_html, draw_summary, extract_summary, spec_html
from reports.source.extract import ArtifactLoader, Study, load_study

DEFAULT_DIR = Path("reports_out")


def build_report(study_name: str, *, tracking_uri: str, out: str | Path | None = None) -> Path:
    """Write the HTML report of one study and return its path.

    Args:
        study_name: the study (= MLflow experiment) name.
        tracking_uri: where the study was tracked, e.g. `sqlite:///mlflow.db` or an MLflow server.
        out: output file; default `reports_out/<study_name>.html`.

    Raises:
        reports.source.extract.StudyNotFoundError: no such study; the message lists the existing ones.

    Example:
        >>> build_report("quickstart", tracking_uri="sqlite:///mlflow.db")  # doctest: +SKIP
        PosixPath('reports_out/quickstart.html')
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    study = load_study(study_name, tracking_uri=tracking_uri, client=client)
    with tempfile.TemporaryDirectory(prefix="lamp-report-") as tmp:
        summary, sections = build_sections(study, ArtifactLoader(client, tmp))
    parent = f", study run {study.parent.run_id}" if study.parent else ""
    page = render_html(
        f"lamp-study report: {study_name}",
        sections,
        meta=f"MLflow experiment {study.experiment_id} at {tracking_uri}{parent}",
        banner_html=banner_html(summary),
    )
    path = Path(out) if out is not None else DEFAULT_DIR / f"{study_name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def build_sections(study: Study, artifacts: ArtifactLoader) -> tuple[SummaryData, list[Section]]:
    """Every section of the report, in reading order (only the summary for a study without trials)."""
    summary = extract_summary(study, artifacts)
    sections = [Section("summary", "Summary", draw_summary(summary), preamble_html=spec_html(summary))]
    if study.trials.empty:
        return summary, sections
    sections += [
        Section("sensitivity", "Sensitivity to amplification", draw_sensitivity(extract_sensitivity(study))),
        Section("effects", "Effects with intervals (one linear model)", draw_effects(extract_effects(study))),
        Section("lr-control", "Effective-learning-rate control", draw_lr_control(extract_lr_control(study))),
        Section("steepness", "Landscape steepness", draw_steepness(extract_steepness(study, artifacts))),
        Section("scores", "Score distributions", draw_scores(extract_scores(study, artifacts))),
    ]
    label_free = extract_label_free(study, artifacts=artifacts)
    if label_free is not None:
        sections.append(Section("label-free", "Label-free selection", draw_label_free(label_free)))
    return summary, sections
