"""A real Ray cluster, launched as docs/clusters.md shows, with token auth left on.

`ray start --head` (zero CPUs, so trials must run on the worker), `ray start`
of one worker, an `mlflow server` on loopback, and `ray job submit
--working-dir` of a two-trial digits study from a client that holds only
RAY_AUTH_TOKEN. Everything runs under a temp HOME and a temp Ray directory on
free ports, and the test ends only the processes it started (never `ray stop`,
which would end every cluster on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests._faults import children
from tests.test_tracking_server import Server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(marker: str) -> list[int]:
    """PIDs of processes whose command line names our private Ray directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A head (0 CPUs) and one 1-CPU worker; yields the env and addresses a client needs."""
    ray_dir = tempfile.mkdtemp(prefix="lr", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_AUTH_MODE", None)  # Ray's default: token auth on once a token exists
    env.pop("RAY_ADDRESS", None)
    gcs, dash = _free_port(), _free_port()
    # each node its own Ray directory, as on separate machines (one shared directory lets the worker's
    # runtime-env agent delete the job's unpacked working dir under the head's feet)
    head_dir, worker_dir = f"{ray_dir}/h", f"{ray_dir}/w"
    try:
        # `ray start` turns token auth on when a token exists (docs/clusters.md: generate one first)
        token = subprocess.run(
            [str(BIN / "ray"), "get-auth-token", "--generate"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        subprocess.run(
            [
                *(str(BIN / "ray"), "start", "--head", "--num-cpus", "0", "--port", str(gcs)),
                *("--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash)),
                *("--dashboard-agent-listen-port", str(_free_port())),
                *("--temp-dir", head_dir, "--disable-usage-stats"),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        subprocess.run(
            [
                *(str(BIN / "ray"), "start", "--address", f"127.0.0.1:{gcs}", "--num-cpus", "1"),
                *("--dashboard-agent-listen-port", str(_free_port())),
                *("--temp-dir", worker_dir, "--disable-usage-stats"),
            ],
            env={**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},  # as on another machine
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        yield {"dashboard": f"http://127.0.0.1:{dash}", "gcs": f"127.0.0.1:{gcs}", "token": token}
    except subprocess.CalledProcessError as err:
        raise AssertionError(
            f"{err.cmd[:3]} failed:\n{(err.stdout or '') + (err.stderr or '')}"[-3000:]
        ) from None
    finally:
        for pid in _ours(ray_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_dir, ignore_errors=True)


def test_ray_job_submit_runs_a_study_on_a_token_auth_cluster(tmp_path: Path, cluster: dict[str, str]) -> None:
    server = Server(tmp_path)
    server.start()
    try:
        client_home = tmp_path / "client"
        client_home.mkdir()
        # the client has no token file: RAY_AUTH_TOKEN is all it holds, as docs/clusters.md says
        env = {
            **os.environ,
            "HOME": str(client_home),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": cluster["token"],
        }
        env.pop("RAY_ADDRESS", None)
        storage = tmp_path / "lamp_storage"
        submit = [
            *(str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"], "--working-dir", "."),
            *("--", "lamp-study", "run", "tests/specs/two_trials.yaml", "--address", "auto"),
            *("--storage-path", str(storage), "--tracking-uri", server.uri),
        ]
        res = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
        assert res.returncode == 0, (res.stdout + res.stderr)[-8000:]
        assert "succeeded" in res.stdout

        without = {k: v for k, v in env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
        refused = subprocess.run(
            [str(BIN / "ray"), "job", "list", "--address", cluster["dashboard"]],
            env=without,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode != 0  # token auth is on: a client without the token is turned away

        mlflow = MlflowClient(server.uri)
        parent, runs = children(mlflow, "two_trials")
        assert sorted(r.data.params["factor"] for r in runs) == ["1.0", "10.0"]  # each trial once
        assert all(r.data.tags["lamp.status"] == "finished" and r.info.status == "FINISHED" for r in runs)
        assert parent.data.tags["lamp.status"] == "finished"
        head_only = subprocess.run(
            [
                sys.executable,
                "-c",
                "import ray; ray.init(address='auto'); "
                "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive'] and n['Resources'].get('CPU', 0) > 0))",
            ],
            env={**env, "RAY_ADDRESS": cluster["gcs"]},
            capture_output=True,
            text=True,
            timeout=120,
        )
        workers = set(head_only.stdout.split())
        assert len(workers) == 1, head_only.stderr[-2000:]
        assert {r.data.tags["lamp.node_id"] for r in runs} == workers  # trials ran on the worker node
    finally:
        server.stop()
