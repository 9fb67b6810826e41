"""One self-contained HTML page: plotly.js inlined once, every figure as an embedded JSON spec.

The page opens offline (no CDN, no external script). Each figure sits in
`<div id="fig-<section>-<panel>" class="plotly-graph-div">` with its spec in
`<script type="application/json" id="spec-fig-<section>-<panel>">`, and one
loader script draws them all, so tests can read every figure back with
`json.loads` and browsers render them without network access.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from reports.render.section import Section

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 24px 48px; color: #222; line-height: 1.45; }
header { border-bottom: 1px solid #ddd; margin-bottom: 12px; }
nav a { margin-right: 14px; }
section { margin-top: 28px; }
h2 { border-bottom: 2px solid #4c72b0; padding-bottom: 4px; }
.panel { margin: 18px 0 26px; }
.caption { max-width: 980px; margin: 6px 0; }
.banner { background: #fff3cd; border: 1px solid #e0c36a; padding: 8px 12px; border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f9; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; }
.meta { color: #666; font-size: 0.9em; }
ul.answers { background: #f3f7fc; border-left: 4px solid #4c72b0; padding: 10px 14px 10px 32px; max-width: 1000px; }
ul.answers li { margin: 6px 0; }
"""

LOADER = """
(function () {
  var divs = document.querySelectorAll("div.plotly-graph-div[data-spec]");
  for (var i = 0; i < divs.length; i++) {
    var div = divs[i];
    var spec = JSON.parse(document.getElementById(div.getAttribute("data-spec")).textContent);
    Plotly.newPlot(div, spec.data, spec.layout || {}, {responsive: true, displaylogo: false});
  }
})();
"""


def figure_id(section_key: str, panel_name: str) -> str:
    """The stable DOM id of a panel's figure div; its spec is at `spec-` + this id."""
    return f"fig-{section_key}-{panel_name}"


def figure_json(fig: go.Figure) -> str:
    """A figure's JSON spec, safe to embed in a `<script>` element (`<` escaped)."""
    return fig.to_json().replace("<", "\\u003c")


def render_html(title: str, sections: list[Section], *, meta: str = "", banner_html: str = "") -> str:
    """The whole report page.

    Args:
        title: page title and heading (escaped here).
        sections: the report content in order.
        meta: one line under the title (escaped here).
        banner_html: already escaped warnings shown above the contents.
    """
    toc = "".join(f'<a href="#sec-{html.escape(s.key)}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n"
        "<script type='text/javascript'>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>\n"
        "</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p><nav>{toc}</nav></header>\n"
        f"{banner_html}\n{body}\n"
        f"<script type='text/javascript'>{LOADER}</script>\n</body>\n</html>\n"
    )


def _section(section: Section) -> str:
    parts = [f"<section id='sec-{html.escape(section.key)}'>", f"<h2>{html.escape(section.title)}</h2>"]
    parts.append(section.preamble_html)
    for panel in section.panels:
        parts.append(f"<div class='panel' id='panel-{html.escape(section.key)}-{html.escape(panel.name)}'>")
        if panel.figure is not None:
            fid = figure_id(section.key, panel.name)
            height = panel.figure.layout.height or 450
            parts.append(
                f"<div id='{fid}' class='plotly-graph-div' data-spec='spec-{fid}' "
                f"style='height:{int(height)}px; width:100%;'></div>"
                f"<script type='application/json' id='spec-{fid}'>{figure_json(panel.figure)}</script>"
            )
        parts.append(f"<p class='caption'>{html.escape(panel.caption)}</p>")
        parts.append(panel.table_html)
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)
