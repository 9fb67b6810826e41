"""Security properties as tests: loopback by default, no leaked credentials, no code from YAML, no path escape."""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.core.errors import LampError
from study.spec import SpecError, load_spec
from study.tracking.store import TrackingError, check_tracking_uri
from tests._faults import CLI, children, wait_for
from tests.conftest import SPECS

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-Pa55"


def test_every_server_command_we_document_binds_loopback() -> None:
    """Commands in README, docs/ and Makefile that start a server or dashboard name 127.0.0.1 (their default may not)."""
    files = [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "Makefile",
        *sorted((ROOT / "docs").glob("*.md")),
    ]
    text = "\n".join(f.read_text() for f in files)
    commands = re.findall(r"(?:mlflow (?:server|ui)|ray start --head)[^\n`]*", text)
    assert commands, "no server command found: the check would pass vacuously"
    for cmd in commands:
        if cmd.startswith("ray start"):
            assert "--dashboard-host 127.0.0.1" in cmd, cmd
        else:
            assert "--host 127.0.0.1" in cmd or "binds 127.0.0.1" in text, cmd


def test_yaml_tags_that_would_run_code_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    spec = tmp_path / "evil.yaml"
    spec.write_text(
        (SPECS / "two_trials.yaml").read_text()
        + f'\nextra: !!python/object/apply:os.system ["touch {marker}"]\n'
    )
    with pytest.raises(SpecError, match="yaml"):
        load_spec(spec)
    assert not marker.exists()


def test_the_code_loads_yaml_only_with_a_safe_loader() -> None:
    """Every yaml.load names a SafeLoader (sub)class; no full_load/unsafe_load anywhere."""
    seen = 0
    for path in (ROOT / "study").rglob("*.py"):
        tree = ast.parse(path.read_text())
        safe = {"SafeLoader", "CSafeLoader"} | {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and any(
                getattr(b, "attr", getattr(b, "id", "")) in ("SafeLoader", "CSafeLoader") for b in node.bases
            )
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
            ):
                continue
            assert node.attr not in ("unsafe_load", "full_load", "load_all", "Loader", "UnsafeLoader"), (
                f"{path.name}:{node.lineno} yaml.{node.attr}"
            )
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "load":
                if getattr(call.func.value, "id", "") != "yaml":
                    continue
                seen += 1
                loader = next((k.value for k in call.keywords if k.arg == "Loader"), None)
                name = getattr(loader, "id", getattr(loader, "attr", None))
                assert name in safe, f"{path.name}:{call.lineno} yaml.load with Loader={name}"
    assert seen >= 1  # the spec loader is found: the scan is not vacuous


def test_a_study_name_cannot_write_outside_the_storage_path(tmp_path: Path) -> None:
    from study.runner import resume_study, run_study

    evil = tmp_path / "evil.yaml"
    evil.write_text((SPECS / "two_trials.yaml").read_text().replace("name: two_trials", "name: ../../etc"))
    with pytest.raises(SpecError, match="name"):
        load_spec(evil)
    storage = tmp_path / "deep" / "storage"
    spec = load_spec(SPECS / "two_trials.yaml")
    for name in ("..", "../escape", "a/../../escape", "/tmp/escape"):
        with pytest.raises(LampError, match="storage path"):
            run_study(spec, name=name, storage_path=str(storage), tracking_uri=f"sqlite:///{tmp_path}/m.db")
        with pytest.raises(LampError, match="storage path"):
            resume_study(name, storage_path=str(storage), tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.yaml"]  # nothing written, nothing launched
    res = subprocess.run(
        [*CLI, "run", str(SPECS / "two_trials.yaml"), "--name", "../escape", "--storage-path", str(storage)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2 and "storage path" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "deep" / "escape").exists()


@pytest.mark.slow
def test_tracking_credentials_never_reach_params_tags_logs_or_storage(tmp_path: Path) -> None:
    """A study tracked at http://user:password@host logs everything and stores the password nowhere."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"),
            *("--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    plain = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            check_tracking_uri(plain, timeout_s=2)
        except TrackingError:
            return False
        return True

    try:
        wait_for("the mlflow server to answer /health", up, server)
        uri = f"http://alice:{SECRET}@127.0.0.1:{port}"
        storage = tmp_path / "storage"
        res = subprocess.run(
            [
                *CLI,
                "run",
                str(SPECS / "two_trials.yaml"),
                "--tracking-uri",
                uri,
                "--storage-path",
                str(storage),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        client = MlflowClient(plain)
        parent, runs = children(client, "two_trials")
        assert len(runs) == 2 and all(r.data.tags["lamp.status"] == "finished" for r in runs)
        assert "***@127.0.0.1" in res.stdout  # the summary names the store, redacted
        for run in (parent, *runs):
            assert SECRET not in repr(run.data.params) + repr(run.data.tags), run.info.run_name
        assert SECRET not in res.stdout + res.stderr
        for path in storage.rglob("*"):
            if path.is_file() and path.stat().st_size < 10_000_000:
                assert SECRET.encode() not in path.read_bytes(), path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
