"""What a report section hands to the HTML writer: titled panels of figure + caption + table.

Each section module has the same two steps (extract, then draw):
`extract_<section>(study, ...) -> <Section>Data` computes plain numbers, and
`draw_<section>(data) -> list[Panel]` turns them into Plotly figures and
captions whose numbers are read from the data object, never from the figure.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go


@dataclass
class Panel:
    """One figure (or none) with the paragraph that says what it shows and what the data says."""

    name: str  # stable within its section; the figure div id is f"fig-{section}-{name}"
    caption: str
    figure: go.Figure | None = None
    table_html: str = ""  # already escaped HTML (see `html_table`)


@dataclass
class Section:
    """A titled group of panels; `key` is the stable anchor id."""

    key: str
    title: str
    panels: list[Panel] = field(default_factory=list)
    preamble_html: str = ""  # already escaped HTML shown before the panels


@dataclass(frozen=True)
class Link:
    """A table cell that links to `href` (a trial's MLflow run page), or plain text without one."""

    text: str
    href: str | None = None


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, css_class: str = "") -> str:
    """A small escaped HTML table; floats are shown with 4 significant digits, `Link`s as links."""

    def cell(value: object) -> str:
        if isinstance(value, Link):
            text = html.escape(value.text)
            return f'<a href="{html.escape(value.href)}">{text}</a>' if value.href else text
        if isinstance(value, float):
            return "–" if value != value else f"{value:.4g}"
        return html.escape("" if value is None else str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    cls = f' class="{html.escape(css_class)}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
