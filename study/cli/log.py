"""Where the command line puts the library's log messages: bare lines on stderr, as the CLI always printed them."""

from __future__ import annotations

import logging
import sys

LIBRARY_LOGGERS = ("study", "reports")  # the packages whose INFO messages the command line shows


class _Stderr(logging.Handler):
    """Each message as its bare text on the current `sys.stderr` (looked up per message, so a
    redirected or captured stderr gets it): the command line's progress and warnings."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def log_to_stderr() -> None:
    """Show the library's messages (INFO and up) on stderr, as plain lines; idempotent.

    The library only logs (`logging.getLogger(__name__)`); a program that imports
    it decides where messages go and which it silences. The command line is such
    a program, and this is its choice.
    """
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # a root handler (Ray's, a notebook's) does not print each line twice
        if not any(isinstance(h, _Stderr) for h in logger.handlers):
            logger.addHandler(_Stderr())
