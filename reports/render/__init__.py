"""How the report is written: sections and panels, the HTML page, labels and verdict sentences.

`section` (`Section`, `Panel`, tables), `html` (one self-contained page),
`labels` (how a trial and a p-value are named) and `verdicts` (every sentence
that states a statistical result, written from the rows it states).
"""

from __future__ import annotations

from reports.render.html import render_html
from reports.render.section import Panel, Section, html_table

__all__ = ["Panel", "Section", "html_table", "render_html"]
