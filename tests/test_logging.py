"""Library code logs, the command line prints: a caller of `run_study` decides where messages go."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from study.cli.log import LIBRARY_LOGGERS, log_to_stderr
from tests.conftest import SPECS, run_small_study

ROOT = Path(__file__).resolve().parents[1]


def _is_cli(path: Path) -> bool:
    """The command line's own modules, which own the terminal and may print."""
    rel = path.relative_to(ROOT)
    return rel.name.startswith("cli") or "cli" in rel.parts[:-1]


def test_library_code_never_prints() -> None:
    printing = []
    for path in sorted([*ROOT.joinpath("study").rglob("*.py"), *ROOT.joinpath("reports").rglob("*.py")]):
        if _is_cli(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not printing, f"library code prints (use logging.getLogger(__name__)): {printing}"


@pytest.fixture
def pristine_loggers() -> Iterator[None]:
    """The library's loggers as a fresh process has them; restored afterwards (another test may
    have run the CLI in this process, which installs its handler)."""
    saved = {}
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate, list(logger.handlers))
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.handlers.clear()
    try:
        yield
    finally:
        for name, (level, propagate, handlers) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate = propagate
            logger.handlers[:] = handlers


def test_the_cli_shows_library_messages_as_bare_lines_on_stderr(
    pristine_loggers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = logging.getLogger("study.runner._driver")
    driver.info("[s] before the CLI")  # a library caller who configured nothing sees no INFO line
    assert capsys.readouterr().err == ""
    log_to_stderr()
    log_to_stderr()  # a second CLI call in one process must not print every line twice
    driver.info("[s] %d trials", 3)
    logging.getLogger("reports.build").warning("a warning")
    assert capsys.readouterr().err == "[s] 3 trials\na warning\n"


@pytest.mark.slow
def test_a_library_caller_redirects_the_driver_and_its_terminal_stays_quiet(
    pristine_loggers: None, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Two real trials through `run_study`: the plan and progress lines go to the caller's
    handler, and none reaches the process's stderr (Ray's own output may)."""

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    study_logger, keep = logging.getLogger("study"), Keep()
    study_logger.addHandler(keep)
    study_logger.setLevel(logging.INFO)
    study_logger.propagate = False
    study = run_small_study(SPECS / "two_trials.yaml", tmp_path)
    assert study.summary["status"] == "finished"
    assert any(line.startswith("[two_trials] 2 trials, MLflow experiment") for line in keep.lines), keep.lines
    assert any("2/2 trials done" in line for line in keep.lines), keep.lines
    err = capfd.readouterr().err
    assert "[two_trials]" not in err, err[-2000:]
