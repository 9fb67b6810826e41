"""The one error every data problem raises."""

from __future__ import annotations

from study.core.errors import LampError


class DatasetError(LampError):
    """A dataset is missing, malformed or misconfigured; the message says what was expected and how to fix it."""
