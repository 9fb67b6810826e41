"""The MLflow tracking store as a connection: URI checks, credentials kept out of logs, retries.

Separate from `study.tracking` (what a study writes) because every command
that takes `--tracking-uri` needs these checks, and the retry policy is the
one place that decides when a lost server stops a study.
"""

from __future__ import annotations

import base64
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from study.core.errors import LampError

log = logging.getLogger(__name__)


class TrackingError(LampError):
    """The tracking store cannot be used as given."""


class TrackingLost(TrackingError):
    """The tracking store stayed unreachable longer than $LAMP_TRACKING_RETRY_S: the study must stop."""


def tracking_retry_s() -> float:
    """How long the driver retries a tracking call before it stops the study ($LAMP_TRACKING_RETRY_S, default 300)."""
    return float(os.environ.get("LAMP_TRACKING_RETRY_S", "300"))


def _transient(err: Exception) -> bool:
    """A failure a later retry can cure: no connection, a timeout, a 5xx answer, a locked database."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(err, (requests.RequestException, ConnectionError, TimeoutError)):
        return True
    if isinstance(err, MlflowException):
        text = str(err)
        return err.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED") and (
            "failed with exception" in text or "database is locked" in text or "Response code 5" in text
        )
    return False


class _RetryingClient:
    """An MlflowClient whose calls are retried with exponential backoff while the store is away.

    The driver blocks meanwhile, so Tune holds every later report (nothing is
    dropped); past `limit_s` the call raises `TrackingLost`, the study stops as
    `interrupted`, and `lamp-study resume` logs what was missed.
    """

    def __init__(self, client: Any, uri: str, limit_s: float) -> None:
        self._client, self._uri, self._limit_s = client, uri, limit_s
        self.retried = False  # whether the last call needed a retry

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.monotonic()
            delay = 0.5
            self.retried = False
            while True:
                try:
                    return method(*args, **kwargs)
                except Exception as err:
                    waited = time.monotonic() - t0
                    if not _transient(err):
                        raise
                    if waited >= self._limit_s:
                        raise TrackingLost(
                            f"MLflow tracking store {redact(self._uri)} unreachable for {waited:.0f}s "
                            f"(limit $LAMP_TRACKING_RETRY_S={self._limit_s:g}); last error: {str(err)[:300]}"
                        ) from None
                    if delay == 0.5:
                        log.warning(
                            "tracking store %s unreachable (%s); retrying for up to %ss",
                            redact(self._uri),
                            type(err).__name__,
                            f"{self._limit_s:g}",
                        )
                    self.retried = True
                    time.sleep(min(delay, max(self._limit_s - waited, 0.1)))
                    delay = min(delay * 2, 10.0)

        return call


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before anything is launched, when the store cannot work.

    An HTTP server must answer its `/health` endpoint within `timeout_s`; a
    sqlite path must be in an existing directory; the retired file store is
    refused with the replacement to use.
    """
    fix = "start one with `mlflow server --host 127.0.0.1 --port 5000` or use --tracking-uri sqlite:///mlflow.db"
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(_health_request(uri), timeout=timeout_s) as resp:
                if resp.status != 200:
                    raise TrackingError(
                        f"MLflow tracking server {redact(uri)} answered HTTP {resp.status}; {fix}"
                    )
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingError(
                f"MLflow tracking server {redact(uri)} is unreachable ({reason}); {fix}"
            ) from None
    elif uri.startswith("sqlite:///"):
        parent = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not parent.is_dir():
            raise TrackingError(
                f"tracking URI {uri}: directory {parent} does not exist; create it or pick another path"
            )
    elif uri.startswith("file:") or "://" not in uri:
        raise TrackingError(
            f"tracking URI {uri!r} is a file store, which MLflow 3 no longer supports; "
            f"use sqlite:///mlflow.db (or a server URI)"
        )


def artifact_root(uri: str) -> str | None:
    """Where a new experiment of a sqlite store keeps its artifacts: `mlruns/` beside the database.

    MLflow's own default is `./mlruns` of whatever directory the process started
    in, which scatters one store's files over several places (tests, a second
    shell). None for a server, which decides.
    """
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent / "mlruns").as_uri()


def without_credentials(uri: str) -> str:
    """The URI with its user:password moved to MLFLOW_TRACKING_USERNAME/PASSWORD.

    MLflow prints run URLs built from the tracking URI ("View run ... at"),
    so a URI that carries a password would put it in every log.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None:
        return uri
    os.environ["MLFLOW_TRACKING_USERNAME"] = urllib.parse.unquote(parts.username)
    os.environ["MLFLOW_TRACKING_PASSWORD"] = urllib.parse.unquote(parts.password or "")
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def _health_request(uri: str) -> urllib.request.Request:
    """GET /health, with a URI's user:password sent as basic auth (urllib cannot read them from the URL)."""
    parts = urllib.parse.urlsplit(uri)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    url = urllib.parse.urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/health"
    request = urllib.request.Request(url)
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    return request


def redact(uri: str) -> str:
    """The URI without user:password, for logs, params and files (use MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))
