"""How a spec's problems are reported: one line per problem, naming the file and the dotted key."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from study.core.errors import LampError

MAX_SHOWN = 12  # problems listed in one SpecError


class SpecError(LampError):
    """An invalid search-space file.

    `str()` is one line per problem, `<file>: <dotted key>: <problem>; allowed:
    <...>`, so the CLI can print it as is. `problems` holds every
    `(key, message)` found; `key` and `message` are the first.
    """

    def __init__(
        self, path: str | Path, key: str, message: str, more: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.path, self.key, self.message = str(path), key, message
        self.problems = [(key, message), *more]
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.path}: {k}: {m}" for k, m in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            lines.append(f"{self.path}: ... and {len(self.problems) - MAX_SHOWN} more problems")
        return "\n".join(lines)


class Problems(list[tuple[str, str]]):
    """(dotted key, message) pairs collected while checking a spec, reported together."""

    def add(self, key: str, message: str) -> None:
        self.append((key, message))

    def under(self, prefix: str) -> bool:
        """Whether a problem was already found at or below `prefix`."""
        return any(k.startswith(prefix) for k, _ in self)


def did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
