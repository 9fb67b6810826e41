"""An unusable storage path is refused before anything is launched (no MLflow run, no Ray)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from study.core.errors import LampError
from study.runner import check_storage

ROOT = Path(__file__).resolve().parents[1]


def test_a_writable_storage_path_is_created_and_left_clean(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    check_storage(path)
    assert path.is_dir() and list(path.iterdir()) == []


def test_a_storage_path_below_a_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LampError, match=r"storage path .*file/sub is not usable: Not a directory"):
        check_storage(tmp_path / "file" / "sub")


def test_run_with_an_unusable_storage_path_exits_2_before_mlflow_or_ray(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    db = tmp_path / "mlflow.db"
    res = subprocess.run(
        [sys.executable, "-m", "study.cli", "run", str(ROOT / "tests/specs/two_trials.yaml"),
         "--tracking-uri", f"sqlite:///{db}", "--storage-path", str(tmp_path / "file" / "sub")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "--storage-path" in res.stderr
    assert not db.exists()  # no parent run was created


def test_an_object_store_uri_is_refused_not_made_a_local_folder(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "study.cli", "run", str(ROOT / "tests/specs/two_trials.yaml"),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--storage-path", "s3://bucket/lamp"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2 and "object-store URIs are not supported" in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []  # no ./s3: folder, no MLflow store
