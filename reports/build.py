"""Build a study's report: read MLflow once, extract each section's numbers, draw, write one HTML file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient

from reports.render.html import render_html
from reports.render.section import Panel, Section
from reports.sections.answers import NO_TRIALS, AnswersData, answers_section, extract_answers
from reports.sections.drilldown import draw_drilldown, extract_drilldown
from reports.sections.effects import draw_effects, extract_effects
from reports.sections.labelfree import draw_label_free, extract_label_free
from reports.sections.lr_control import draw_lr_control, extract_lr_control
from reports.sections.phases import draw_phases, extract_phases
from reports.sections.scores import draw_scores, extract_scores
from reports.sections.sensitivity import draw_sensitivity, extract_sensitivity
from reports.sections.steepness import draw_steepness, extract_steepness
from reports.sections.summary import SummaryData, banner_html, draw_summary, extract_summary, spec_html
from reports.source.extract import ArtifactLoader, Study, load_study
from study.core.outcome import study_outcome

DEFAULT_DIR = Path("reports_out")
REPORT_ARTIFACT = Path("report/report.html")  # the page's artifact path on the study's parent run


def build_report(
    study_name: str,
    *,
    tracking_uri: str,
    out: str | Path | None = None,
    trials: tuple[str, ...] = (),
    log_to_study: bool = True,
) -> Path:
    """Write the HTML report of one study and return its path.

    With `log_to_study`, the page is also the study's parent-run artifact `report/report.html`
    (replaced on every rebuild), so the report travels with the study in MLflow.

    Args:
        study_name: the study (= MLflow experiment) name.
        tracking_uri: where the study was tracked, e.g. `sqlite:///mlflow.db` or an MLflow server.
        out: output file; default `reports_out/<study_name>.html`.
        trials: trial (or run) ids whose learning curves and scores the drill-down adds.
        log_to_study: also log the page on the study's parent run.

    Raises:
        reports.source.extract.StudyNotFoundError: no such study; the message lists the existing ones.
        reports.sections.drilldown.UnknownTrialError: a listed trial is not in the study.

    Example:
        >>> build_report("quickstart", tracking_uri="sqlite:///mlflow.db")  # doctest: +SKIP
        PosixPath('reports_out/quickstart.html')
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    study = load_study(study_name, tracking_uri=tracking_uri, client=client)
    with tempfile.TemporaryDirectory(prefix="lamp-report-") as tmp:
        summary, sections = build_sections(study, ArtifactLoader(client, tmp), trials)
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
    if log_to_study and study.parent is not None:
        with tempfile.TemporaryDirectory(prefix="lamp-report-") as tmp:
            logged = Path(tmp) / REPORT_ARTIFACT.name
            logged.write_text(page, encoding="utf-8")
            client.log_artifact(study.parent.run_id, str(logged), str(REPORT_ARTIFACT.parent))
    return path


def build_sections(
    study: Study, artifacts: ArtifactLoader, trials: tuple[str, ...] = ()
) -> tuple[SummaryData, list[Section]]:
    """Every section of the report, in reading order (answers and summary only for a study without trials).

    The answers section states the verdicts of the data the other sections draw, so each is extracted once.
    """
    summary = extract_summary(study, artifacts)
    summary_section = Section("summary", "Summary", draw_summary(summary), preamble_html=spec_html(summary))
    if study.trials.empty:
        return summary, [answers_section(AnswersData([NO_TRIALS])), summary_section]
    if study.finished().empty:  # nothing trained: every comparison would be empty, for this reason
        outcome = study_outcome(summary.counts)
        why = (
            outcome.message()
            if outcome
            else "no trial finished (see the table of trials that did not finish)"
        )
        nothing = Section("outcome", "No comparisons", [Panel("none", f"Nothing to compare: {why}.")])
        return summary, [nothing, summary_section, _cost(study)]
    effects, lr = extract_effects(study), extract_lr_control(study)
    steepness, label_free = (
        extract_steepness(study, artifacts),
        extract_label_free(study, artifacts=artifacts),
    )
    answers = extract_answers(study, summary, effects, lr, steepness, label_free)
    sections = [
        answers_section(answers),
        summary_section,
        Section("sensitivity", "Sensitivity to amplification", draw_sensitivity(extract_sensitivity(study))),
        Section("effects", "Effects with intervals (one linear model)", draw_effects(effects)),
        Section("lr-control", "Effective-learning-rate control", draw_lr_control(lr)),
        Section("steepness", "Landscape steepness", draw_steepness(steepness)),
        Section("scores", "Score distributions", draw_scores(extract_scores(study, artifacts))),
        Section(
            "trials", "Per-trial drill-down", draw_drilldown(extract_drilldown(study, artifacts, trials))
        ),
    ]
    if label_free is not None:
        sections.append(Section("label-free", "Label-free selection", draw_label_free(label_free)))
    return summary, [*sections, _cost(study)]


def _cost(study: Study) -> Section:
    return Section("cost", "Where the time went", draw_phases(extract_phases(study)))
