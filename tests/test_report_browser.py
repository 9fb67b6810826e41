"""The report renders in a real, offline, headless Chromium: every figure draws and the console stays clean.

Unit tests check the numbers; this test checks the drawing. The browser runs
with the network emulated offline and a dead proxy, so a report that needed a
CDN would fail here.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from reports.build import build_report
from tests._synthetic_study import write_synthetic_study

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
RENDER_TIMEOUT_S = 60

pytestmark = pytest.mark.slow

# Returns, per figure div, whether Plotly has drawn into it (an SVG, plus a canvas for WebGL traces).
_RENDERED_JS = """
return Array.from(document.querySelectorAll('div.plotly-graph-div')).map(function (div) {
  var gl = (div._fullData || []).some(function (t) { return t.type === 'parcoords' || /gl$/.test(t.type); });
  return {id: div.id, svg: div.querySelectorAll('.main-svg').length > 0,
          canvas: div.querySelectorAll('canvas').length > 0, gl: gl,
          traces: (div._fullData || []).length};
});
"""


@pytest.fixture()
def driver(tmp_path: Path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium, chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=127.0.0.1:9",
        "--enable-unsafe-swiftshader",  # software WebGL for the parallel-coordinates figure (our own page)
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
        )
        yield browser
    finally:
        browser.quit()


def test_report_renders_offline(driver, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_synthetic_study(uri, "browser", tmp_path / "artifacts", drop_artifacts={100.0: ("landscape.npz",)})
    page = build_report("browser", tracking_uri=uri, out=tmp_path / "report.html")

    driver.get(page.resolve().as_uri())
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while True:
        figures = driver.execute_script(_RENDERED_JS)
        done = [f["svg"] and (f["canvas"] or not f["gl"]) and f["traces"] > 0 for f in figures]
        if figures and all(done):
            break
        if time.monotonic() > deadline:
            pending = [f["id"] for f, ok in zip(figures, done, strict=True) if not ok]
            pytest.fail(f"figures not rendered after {RENDER_TIMEOUT_S} s: {pending or 'no figure divs'}")
        time.sleep(0.25)

    ids = {f["id"] for f in figures}
    for expected in (
        "fig-summary-counts",
        "fig-sensitivity-lines",
        "fig-sensitivity-parcoords",
        "fig-label-free-scatter",
    ):
        assert expected in ids
    assert any(f["gl"] and f["canvas"] for f in figures), (
        "the parallel-coordinates (WebGL) figure drew no canvas"
    )

    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, f"browser console errors: {severe}"

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "fromSurface": True, "clip": clip},
    )
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "report.png").write_bytes(png)
