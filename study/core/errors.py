"""The one base class of expected failures.

Every error that is the user's input or environment (a bad search space, a
missing dataset, an unreachable tracking server, an unknown study, resources
the cluster lacks) derives from `LampError`; the CLI prints its message and
exits 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LampError(Exception):
    """An expected failure whose message names the problem and the fix."""
