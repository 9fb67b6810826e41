"""Where a study keeps its state: a local or shared folder, or an object-store prefix (s3://, gs://, abfs://).

Everything the runner keeps (its own study files, Tune's experiment state and
checkpoints) goes through one pyarrow filesystem, the same one Ray Tune is
handed (`RunConfig(storage_filesystem=...)`), so an object store needs no
shared disk anywhere. Credentials and the endpoint come from the environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL[_S3], a profile...)
through pyarrow; they are never passed explicitly, so the filesystem Tune
pickles to its workers holds none. The storage is checked before anything is
launched: an unwritable path, a missing bucket, refused credentials or an
unreachable endpoint would otherwise surface mid-study.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from study.core.errors import LampError

# What an object store's error says (AWS SDK error names) -> what the user should change
_CAUSES = (
    (("NO_SUCH_BUCKET", "NoSuchBucket"), "the bucket does not exist: create it, or fix the bucket name"),
    (
        (
            "ACCESS_DENIED",
            "INVALID_ACCESS_KEY_ID",
            "SIGNATURE_DOES_NOT_MATCH",
            "AccessDenied",
            "Forbidden",
            "403",
        ),
        "the credentials were refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
        "and the bucket's permissions",
    ),
    (
        ("NETWORK_CONNECTION", "Could not connect", "curlCode", "Couldn't resolve", "timed out"),
        "the endpoint cannot be reached: check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 and the network",
    ),
)


@dataclass(frozen=True)
class Storage:
    """A storage root: the user's `--storage-path`, its pyarrow filesystem, and the root path in it."""

    uri: str  # as the user named it (absolute for a local folder): shown in messages
    fs: Any  # pyarrow.fs.FileSystem
    root: str  # the root in `fs` (no scheme)

    @classmethod
    def open(cls, storage_path: str | None, default: str = "lamp_storage") -> Storage:
        """The storage a `--storage-path` names: a URI any pyarrow filesystem takes, or a local folder."""
        import pyarrow.fs

        if storage_path and "://" in storage_path and not storage_path.startswith("file://"):
            if urlsplit(storage_path).password:
                raise LampError(
                    f"--storage-path {urlsplit(storage_path)._replace(netloc='***').geturl()} holds credentials; "
                    f"drop them from the URI and set them in the environment (AWS_ACCESS_KEY_ID, "
                    f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
                )
            try:
                fs, root = pyarrow.fs.FileSystem.from_uri(storage_path)
            except (OSError, ValueError, pyarrow.lib.ArrowException) as err:
                raise _refused(storage_path, err) from None
            return cls(storage_path.rstrip("/"), fs, root.rstrip("/"))
        local = storage_path.removeprefix("file://") if storage_path else default
        path = str(Path(local).expanduser().resolve())
        return cls(path, pyarrow.fs.LocalFileSystem(), path)

    @property
    def is_local(self) -> bool:
        import pyarrow.fs

        return isinstance(self.fs, pyarrow.fs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        """A path in the filesystem below the root."""
        return posixpath.join(self.root, *parts)

    def show(self, *parts: str) -> str:
        """A path below the root as the user would write it (with the URI's scheme)."""
        return posixpath.join(self.uri, *parts)

    def exists(self, *parts: str) -> bool:
        import pyarrow.fs

        return self._call(
            lambda: self.fs.get_file_info(self.path(*parts)).type != pyarrow.fs.FileType.NotFound
        )

    def read_text(self, *parts: str) -> str:
        def read() -> str:
            with self.fs.open_input_stream(self.path(*parts)) as f:
                return f.read().decode()

        return self._call(read)

    def write_text(self, text: str, *parts: str) -> None:
        """Write a small file whole: an object store's PUT, or a local rename, so no reader sees half of it."""
        target = self.path(*parts)

        def write() -> None:
            self.fs.create_dir(posixpath.dirname(target), recursive=True)
            tmp = f"{target}.tmp-{os.getpid()}" if self.is_local else target
            with self.fs.open_output_stream(tmp) as f:
                f.write(text.encode())
            if tmp != target:
                self.fs.move(tmp, target)

        self._call(write)

    def subdirs(self, *parts: str) -> list[str]:
        """Names of the folders directly below a path (none if it does not exist)."""
        import pyarrow.fs

        selector = pyarrow.fs.FileSelector(self.path(*parts), allow_not_found=True)
        infos = self._call(lambda: self.fs.get_file_info(selector))
        return sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory)

    def delete_dir(self, path: str) -> None:
        """Remove a folder (a path in the filesystem) and everything below it, if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self._call(lambda: self.fs.delete_dir(path))

    def check(self) -> None:
        """Create the root if needed and prove a file can be written there, or say what to change."""
        if self.is_local:
            check_storage(Path(self.root))
            return
        probe = self.path(f".lamp-write-probe-{os.getpid()}")
        try:
            with self.fs.open_output_stream(probe) as f:
                f.write(b"\0" * 16)
            self.fs.delete_file(probe)
        except (OSError, ValueError) as err:
            raise _refused(self.uri, err) from None

    def _call(self, fn: Any) -> Any:
        """Run a filesystem call; an object store's error becomes a LampError naming the cause."""
        try:
            return fn()
        except FileNotFoundError:
            raise
        except OSError as err:
            if self.is_local:
                raise
            raise _refused(self.uri, err) from None


def _refused(uri: str, err: BaseException) -> LampError:
    """The error of a storage that cannot be used: what went wrong and what to change."""
    text = str(getattr(err, "strerror", None) or err)
    cause = next((fix for needles, fix in _CAUSES if any(n in text for n in needles)), None)
    return LampError(
        f"storage path {uri} is not usable: {text.splitlines()[0] if text else type(err).__name__}; "
        f"{cause or 'check the URI, the credentials in the environment and the endpoint'}"
    )


def check_storage(path: Path) -> None:
    """Create a local `path` if needed and prove a file can be written there, or say what to change."""
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
            f"writable directory that has free space (a shared path on a cluster), or an object-store URI"
        ) from None
    finally:
        with contextlib.suppress(OSError):  # the path is not a directory: the error above says so
            probe.unlink(missing_ok=True)
