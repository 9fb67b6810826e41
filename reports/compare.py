"""Compare studies cell by cell (`lamp-study compare A B [C ...]`): the same grid on two data sets, or a study
before and after `--extend`.

Each study is its own MLflow experiment, so MLflow's compare view cannot span
two. Here each study's comparisons are the rows its own report's effects
section computes (`reports.sections.effects.extract_effects`: one linear model and one
Holm family per study); rows are matched by their settings (comparison kind,
metric, optimizer, architecture, the other varied params, form, λ), and each
matched cell says whether the studies' verdicts agree, disagree (a gain in one,
a harm in another), or are detectable in only some of them. A study argument
may restrict a study to some seeds (`NAME@seeds=0,1`), which compares a study
before and after its extension from one store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from reports.sections.effects import extract_effects
from reports.source.extract import Study, load_study
from reports.stats.effects import EFFECT_COLUMNS
from study.core.errors import LampError

MATCH = ("kind", "metric", "optimizer", "arch", "other", "amplification", "factor")
SHOWN = ("estimate", "ci_low", "ci_high", "verdict", "detectable", "n_seeds")
AGREE, DISAGREE, SOME, NONE, MISSING = (
    "agree",
    "disagree",
    "detectable in some only",
    "detectable in none",
    "not in every study",
)


class CompareInputError(LampError, ValueError):
    """A study argument of `compare` cannot be read (bad `@seeds=` filter, too few studies)."""


@dataclass(frozen=True)
class StudyRef:
    """One study to compare: its name, store, optional seed subset, and the label it is shown under."""

    name: str
    tracking_uri: str
    seeds: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        return self.name if self.seeds is None else f"{self.name} (seeds {','.join(map(str, self.seeds))})"


@dataclass(frozen=True)
class StudyEffects:
    """What one study contributes: its effects rows and what they were computed on."""

    ref: StudyRef
    detection: str
    n_trials: int  # finished trials in the model
    seeds: list[int]
    dataset: str
    effects: pd.DataFrame


@dataclass(frozen=True)
class CompareData:
    """Matched cells: one row per MATCH key, per study `<column>@<i>` for SHOWN, and the agreement."""

    studies: list[StudyEffects]
    cells: pd.DataFrame


def parse_refs(args: list[str], tracking_uris: list[str]) -> list[StudyRef]:
    """`NAME` or `NAME@seeds=0,1` arguments with one tracking URI for all, or one per study.

    Raises:
        CompareInputError: fewer than 2 studies, a URI count that is neither 1 nor one per study,
            or a seed filter that is not `seeds=<int>,<int>...`.
    """
    if len(args) < 2:
        raise CompareInputError(f"compare needs at least 2 studies, got {len(args)}: name them, e.g. A B")
    if len(tracking_uris) not in (1, len(args)):
        raise CompareInputError(
            f"{len(tracking_uris)} --tracking-uri for {len(args)} studies: give one for all, or one per study in order"
        )
    uris = tracking_uris * len(args) if len(tracking_uris) == 1 else tracking_uris
    refs = []
    for arg, uri in zip(args, uris, strict=True):
        name, _, filt = arg.partition("@")
        seeds = None
        if filt:
            key, _, values = filt.partition("=")
            try:
                seeds = tuple(sorted(int(v) for v in values.split(",")))
            except ValueError:
                seeds = None
            if key != "seeds" or not seeds:
                raise CompareInputError(
                    f"{arg!r}: the filter after @ must be seeds=<int>,<int>..., e.g. {name}@seeds=0,1"
                )
        refs.append(StudyRef(name, uri, seeds))
    return refs


def study_effects(ref: StudyRef, *, alpha: float = 0.05) -> StudyEffects:
    """Load one study (restricted to its seeds when asked) and compute its effects section's rows."""
    study = load_study(ref.name, tracking_uri=ref.tracking_uri)
    if ref.seeds is not None:
        if "seed" not in study.trials:
            raise CompareInputError(f"study {ref.name!r} has no seed parameter to filter with @seeds=")
        study = dataclasses.replace(study, trials=study.trials[study.trials["seed"].isin(ref.seeds)])
    data = extract_effects(study, alpha=alpha)
    seeds = (
        sorted(int(s) for s in study.finished()["seed"].dropna().unique()) if "seed" in study.trials else []
    )
    effects = data.effects if not data.effects.empty else pd.DataFrame(columns=EFFECT_COLUMNS)
    return StudyEffects(ref, data.value, data.n_trials, seeds, _dataset(study), effects)


def _dataset(study: Study) -> str:
    for col in ("data.name", "dataset", "data"):
        if col in study.trials and study.trials[col].notna().any():
            names = sorted(map(str, study.trials[col].dropna().unique()))
            extra = [c for c in ("data.category", "data.normal_classes") if c in study.trials]
            more = [
                f"{c.removeprefix('data.')}={v}"
                for c in extra
                for v in sorted(map(str, study.trials[c].dropna().unique()))
            ]
            return " ".join([", ".join(names), *more])
    return "unknown"


def extract_compare(refs: list[StudyRef], *, alpha: float = 0.05) -> CompareData:
    """Every study's effects rows, matched cell by cell, with each cell's agreement."""
    studies = [study_effects(r, alpha=alpha) for r in refs]
    merged: pd.DataFrame | None = None
    for i, s in enumerate(studies):
        rows = s.effects[[*MATCH, *SHOWN]].rename(columns={c: f"{c}@{i}" for c in SHOWN})
        rows = rows.assign(factor=rows["factor"].astype(float), other=rows["other"].fillna("").astype(str))
        merged = rows if merged is None else merged.merge(rows, on=list(MATCH), how="outer")
    cells = merged if merged is not None else pd.DataFrame(columns=list(MATCH))
    verdicts = cells[[f"verdict@{i}" for i in range(len(studies))]]
    cells = cells.assign(agreement=[agreement(list(v)) for v in verdicts.itertuples(index=False)])
    cells = cells.sort_values(["optimizer", "metric", "arch", "other", "kind", "amplification", "factor"])
    return CompareData(studies, cells.reset_index(drop=True))


def agreement(verdicts: list[object]) -> str:
    """How the studies' verdicts of one cell relate (a missing verdict is NaN/None)."""
    present = [v for v in verdicts if isinstance(v, str)]
    if len(present) < len(verdicts):
        return MISSING
    detected = {v for v in present if v != "not detectable"}
    if detected == {"gain", "harm"}:
        return DISAGREE
    if not detected:
        return NONE
    return AGREE if all(v != "not detectable" for v in present) else SOME


def cell_text(row: pd.Series) -> str:
    """`sgd · mse · conv_ae · exp λ=10 vs baseline` (`vs lr twin` for amplified − twin)."""
    other = [row["other"].replace("|", ", ")] if row["other"] else []
    versus = "vs baseline" if row["kind"] == "gain" else "vs lr twin"
    parts = [row["optimizer"], row["metric"], row["arch"], *other]
    return f"{' · '.join(map(str, parts))} · {row['amplification']} λ={row['factor']:g} {versus}"


def study_value(row: pd.Series, i: int) -> str:
    """One study's verdict of a cell: `gain +0.050 [+0.031, +0.069]`, with the detectable size when undetected."""
    verdict = row.get(f"verdict@{i}")
    if not isinstance(verdict, str):
        return "absent"
    text = f"{verdict} {row[f'estimate@{i}']:+.3f} [{row[f'ci_low@{i}']:+.3f}, {row[f'ci_high@{i}']:+.3f}]"
    if verdict == "not detectable":
        text += f" (would detect {row[f'detectable@{i}']:.3f})"
    return text


def counts(data: CompareData) -> dict[str, int]:
    """Cells per agreement, in a fixed order (only those present)."""
    found = data.cells["agreement"].value_counts().to_dict()
    return {k: int(found[k]) for k in (AGREE, DISAGREE, SOME, NONE, MISSING) if k in found}


def compare_text(data: CompareData) -> str:
    """The plain-text summary: the studies, the agreement counts, then every cell that is not `agree`/`none`."""
    lines = ["Studies compared (each row of the table: that study's own effects model, Holm-corrected):"]
    for i, s in enumerate(data.studies):
        lines.append(
            f"  [{i}] {s.ref.label} at {s.ref.tracking_uri}: data {s.dataset}, {s.n_trials} finished trials, "
            f"seeds {s.seeds}, {len(s.effects)} comparisons of {s.detection}"
        )
    lines.append(
        f"Matched cells: {len(data.cells)}; " + ", ".join(f"{n} {k}" for k, n in counts(data).items()) + "."
    )
    for name in (DISAGREE, SOME, MISSING, AGREE):
        shown = data.cells[data.cells["agreement"] == name]
        if shown.empty:
            continue
        lines.append(f"{name.capitalize()}:")
        for _, row in shown.iterrows():
            values = "; ".join(f"[{i}] {study_value(row, i)}" for i in range(len(data.studies)))
            lines.append(f"  {cell_text(row)}: {values}")
    lines.append(
        "A cell not detectable in a study does not show its effect is zero there: it rules out only effects "
        "outside its interval. A cell that differs between studies is two verdicts, not a test of their difference."
    )
    return "\n".join(lines)
