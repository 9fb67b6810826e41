"""How `lamp-study run`/`resume` show a study's progress: one updating bar in a terminal, else one line per event.

The driver only emits `ProgressState` records (study/runner/_progress.py);
this handler, installed by the command line for the length of a study, owns
the terminal. A library caller sees the same records through `logging`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO


class ProgressHandler(logging.Handler):
    """Renders progress records: a tqdm bar on a terminal (every record), lines elsewhere (INFO ones)."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._bar: Any = None
        self._last_line: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        state = getattr(record, "lamp_progress", None)
        if state is None:
            return
        try:
            if self.tty:
                self._draw(state)
            elif record.levelno >= logging.INFO:
                self._write(state)
        except Exception:  # a broken terminal must not stop the study
            self.handleError(record)

    def _write(self, state: Any) -> None:
        """One line per event; a line that would repeat the previous one's counts is left out."""
        key = state.line().split(";")[0] + state.best_text()
        if key != self._last_line:
            self.stream.write(state.line() + "\n")
            self.stream.flush()
            self._last_line = key

    def _draw(self, state: Any) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=state.total,
                file=self.stream,
                desc=f"[{state.study}] trials",
                bar_format="{desc} {n_fmt}/{total_fmt} done |{bar}|{postfix}",
                mininterval=0,
                **self._width(),
            )
        self._bar.n = state.done
        outcomes = "".join(f", {n} {k}" for k, n in state.counts.items() if n and k != "finished")
        self._bar.set_postfix_str(
            f"{state.running} running{outcomes}; {state.best_text()}; ETA {state.eta_text()}, "
            f"{state.elapsed_s:.0f}s elapsed",
            refresh=False,
        )
        self._bar.refresh()

    def _width(self) -> dict[str, Any]:
        """Follow the terminal's size; a pty that reports none (0 x 0, e.g. `script`, some CI runners) gets
        120 columns and 40 rows: tqdm would otherwise draw an empty bar, or nothing at all (it takes -1 rows)."""
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            size = os.terminal_size((0, 0))
        return {"dynamic_ncols": True} if size.columns > 0 and size.lines > 0 else {"ncols": 120, "nrows": 40}

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        super().close()


@contextlib.contextmanager
def progress_output(stream: TextIO | None = None) -> Iterator[ProgressHandler]:
    """Show the progress of the studies run inside the block on `stream` (default stderr)."""
    from study.runner import PROGRESS_LOGGER

    handler = ProgressHandler(stream or sys.stderr)
    log = logging.getLogger(PROGRESS_LOGGER)
    before = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False  # the handler renders these records; a root handler would print them twice
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(before[0])
        log.propagate = before[1]
        handler.close()
