"""The storage path where Tune keeps trial state: checked before anything is launched.

An unwritable or full storage path would otherwise surface as a traceback
after the MLflow parent run exists, or as failing checkpoints mid-study.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from study.core.errors import LampError


def check_storage(path: Path) -> None:
    """Create `path` if needed and prove a file can be written there, or say what to change."""
    probe = path / f".lamp-write-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)  # a few blocks: a full disk refuses them
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise LampError(
            f"storage path {path} is not usable: {err.strerror or err}; pass --storage-path DIR with a "
            f"writable directory that has free space (a shared path on a cluster)"
        ) from None
    finally:
        with contextlib.suppress(OSError):  # the path is not a directory: the error above says so
            probe.unlink(missing_ok=True)
