"""One background thread that applies a study's MLflow writes in order, off Tune's event loop.

Closing a pack of 64 trials is a few hundred store calls; made inline they
would hold Tune's loop (no new trial starts, no result is read) for seconds.
The tracker decides what to write on the caller's thread (so `is_ended` and
the epoch bookkeeping are exact at once) and queues how; this thread writes.
The first error a write raises (e.g. `TrackingLost`) stops the writes after
it and is raised again to the next caller, so the study stops as it did when
writes were inline, and `resume` logs what was not written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class Writer:
    """A FIFO of write jobs and the daemon thread that runs them."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._error: BaseException | None = None
        threading.Thread(target=self._work, name="lamp-mlflow-writer", daemon=True).start()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job`; raises the error an earlier job raised, if any."""
        self._raise()
        self._jobs.put(job)

    def flush(self) -> None:
        """Wait until every queued job ran; raises the first error one raised."""
        self._jobs.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if self._error is None:  # after a failure, later writes would land out of order: skip them
                    job()
            except BaseException as err:  # handed to the next caller of submit/flush
                self._error = err
            finally:
                self._jobs.task_done()
