"""An unusable storage path is refused before anything is launched (no MLflow run, no Ray)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from study.core.errors import LampError
from study.runner import Storage, check_storage

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


def test_a_local_storage_keeps_whole_files_and_lists_its_studies(tmp_path: Path) -> None:
    storage = Storage.open(str(tmp_path / "s"))
    assert storage.is_local and storage.uri == str((tmp_path / "s").resolve())
    storage.check()
    storage.write_text("{}", "a", "lamp_study.json")
    storage.write_text("x", "b", "segments", "1", "f")
    assert storage.read_text("a", "lamp_study.json") == "{}" and storage.exists("a", "lamp_study.json")
    assert storage.subdirs() == ["a", "b"] and storage.subdirs("b", "segments") == ["1"]
    assert storage.subdirs("missing") == [] and not storage.exists("missing")
    assert sorted(p.name for p in (tmp_path / "s" / "a").iterdir()) == [
        "lamp_study.json"
    ]  # no temp file left


def test_credentials_in_an_object_store_uri_are_refused_without_echoing_them() -> None:
    with pytest.raises(LampError, match="environment") as err:
        Storage.open("s3://AKIAEXAMPLE:topsecret@bucket/prefix")
    assert "topsecret" not in str(err.value) and "AKIAEXAMPLE" not in str(err.value)
