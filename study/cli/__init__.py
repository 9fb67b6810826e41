"""The `lamp-study` command line, on top of every other layer.

`main` (the parser and one function per command), `trial_args` (trial
parameters as flags), `validate` (what `validate` prints) and `starter`
(`init`'s starter spec). Heavy layers are imported inside the commands.
"""

from __future__ import annotations

from study.cli.main import EXIT_CTRL_C, EXIT_NOT_FINISHED, EXIT_OK, EXIT_USAGE, build_parser, main

__all__ = ["EXIT_CTRL_C", "EXIT_NOT_FINISHED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
