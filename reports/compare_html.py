"""The compare page: studies side by side per cell, one self-contained offline HTML file (`reports.render.html`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from reports.compare import (
    CompareData,
    StudyRef,
    cell_text,
    compare_text,
    counts,
    extract_compare,
    study_value,
)
from reports.render.html import render_html
from reports.render.section import Panel, Section, html_table

DEFAULT_DIR = Path("reports_out")
SYMBOLS = {"gain": "circle", "harm": "x", "not detectable": "circle-open"}


def build_compare(
    refs: list[StudyRef], *, out: str | Path | None = None, alpha: float = 0.05
) -> tuple[Path, str]:
    """Write the compare page and return its path and the text summary.

    Raises:
        reports.source.extract.StudyNotFoundError: a study is not in its store (the message lists those that are).
    """
    data = extract_compare(refs, alpha=alpha)
    title = "lamp-study compare: " + " vs ".join(s.ref.label for s in data.studies)
    meta = "; ".join(f"[{i}] {s.ref.label} at {s.ref.tracking_uri}" for i, s in enumerate(data.studies))
    page = render_html(title, compare_sections(data), meta=meta)
    default = DEFAULT_DIR / ("compare-" + "-vs-".join(r.name for r in refs) + ".html")
    path = Path(out) if out is not None else default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path, compare_text(data)


def compare_sections(data: CompareData) -> list[Section]:
    """The studies and the agreement counts, then one panel per optimizer of matched cells."""
    studies = html_table(
        ["", "study", "data", "finished trials", "seeds", "comparisons"],
        [
            (f"[{i}]", s.ref.label, s.dataset, s.n_trials, ", ".join(map(str, s.seeds)), len(s.effects))
            for i, s in enumerate(data.studies)
        ],
    )
    tally = ", ".join(f"{n} {k}" for k, n in counts(data).items()) or "no cell"
    head = Panel(
        "studies",
        f"{len(data.cells)} cells matched by their settings (comparison, metric, optimizer, architecture, other "
        f"varied params, form, λ): {tally}. Each study's verdicts come from its own linear model and Holm family, "
        "exactly as its report states them; 'disagree' means a gain in one study and a harm in another, "
        "'detectable in some only' that a study's seeds could not detect what another's did. Two verdicts are "
        "not a test of the difference between the studies.",
        table_html=studies,
    )
    cells = [
        Panel(str(opt), _caption(rows, opt), _forest(rows, data), table_html=_table(rows, data))
        for opt, rows in data.cells.groupby("optimizer", sort=True)
    ]
    if not cells:
        cells = [
            Panel(
                "none", "No study has a comparison to show (each needs a baseline and 2 seeds per setting)."
            )
        ]
    return [Section("studies", "Studies compared", [head]), Section("cells", "Cells side by side", cells)]


def _caption(rows: pd.DataFrame, optimizer: str) -> str:
    found = rows["agreement"].value_counts()
    parts = ", ".join(f"{n} {k}" for k, n in found.items())
    return (
        f"{optimizer}: each cell's estimate and 95% interval in every study (marker: filled gain, x harm, open "
        f"not detectable): {parts}."
    )


def _forest(rows: pd.DataFrame, data: CompareData) -> go.Figure:
    labels = [cell_text(r).removeprefix(f"{r['optimizer']} · ") for _, r in rows.iterrows()]
    fig = go.Figure()
    for i, s in enumerate(data.studies):
        est = rows[f"estimate@{i}"].to_numpy(float)
        verdicts = rows[f"verdict@{i}"].fillna("absent").to_numpy(object)
        fig.add_trace(
            go.Scatter(
                x=est,
                y=np.array(labels, dtype=object),
                mode="markers",
                name=f"[{i}] {s.ref.label}",
                marker={
                    "color": qualitative.Plotly[i % len(qualitative.Plotly)],
                    "size": 9,
                    "symbol": [SYMBOLS.get(v, "circle-open") for v in verdicts],
                },
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": rows[f"ci_high@{i}"].to_numpy(float) - est,
                    "arrayminus": est - rows[f"ci_low@{i}"].to_numpy(float),
                },
                text=verdicts,
                hovertemplate="%{y}: %{x:+.4f} (%{text})<extra>" + s.ref.label + "</extra>",
            )
        )
    fig.add_vline(x=0.0, line_dash="dot")
    fig.update_layout(
        scattermode="group",
        height=140 + 30 * len(rows),
        xaxis_title=f"Δ {data.studies[0].detection} (95% interval)",
        yaxis={"autorange": "reversed"},
        margin={"t": 20, "l": 300},
    )
    return fig


def _table(rows: pd.DataFrame, data: CompareData) -> str:
    header = ["cell", *(f"[{i}] {s.ref.label}" for i, s in enumerate(data.studies)), "agreement"]
    body = [
        (cell_text(r), *(study_value(r, i) for i in range(len(data.studies))), r["agreement"])
        for _, r in rows.iterrows()
    ]
    return html_table(header, body)
