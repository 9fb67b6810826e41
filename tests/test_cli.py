"""The command line explains itself, checks its input like a spec, and opens data before anything runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from study.cli import EXIT_CTRL_C, EXIT_NOT_FINISHED, EXIT_OK, EXIT_USAGE, build_parser, main
from study.core.config import DataConfig
from study.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_of_every_command_has_help_and_every_command_an_example() -> None:
    commands = _commands()
    assert {"init", "validate", "run", "resume", "register", "score", "serve", "report", "trial"} <= set(
        commands
    )
    for name, sub in commands.items():
        assert f"example:\n  lamp-study {name} " in sub.epilog, name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (
                f"{name} {action.option_strings or action.dest}"
            )
        assert sub.description, name


def test_top_level_help_documents_the_exit_codes_the_code_uses() -> None:
    text = build_parser().format_help()
    for code in (EXIT_OK, EXIT_NOT_FINISHED, EXIT_USAGE, EXIT_CTRL_C):
        assert f"\n  {code} " in text
    assert "bad input" in text and "Ctrl-C" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"lamp-study {metadata.version('lamp-study')}"


def test_resume_help_states_its_real_default() -> None:
    action = next(a for a in _commands()["resume"]._actions if a.dest == "tracking_uri")
    assert action.default is None and "the store the study was started with" in action.help


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (["--arch", "foo", "--lr", "-1"], ["--arch: unknown architecture 'foo'", "--lr: -1.0 is out of range; allowed: > 0"]),
        (["--set", "landscape.power_iter=3"], ["--set landscape.power_iter: unknown trial parameter"]),
        (["--dataset", "cifar"], ["--dataset: unknown dataset 'cifar'"]),
        (["--epochs", "two"], ["--epochs: wrong type: 'two'"]),
        (["--set", "novalue"], ["--set 'novalue': expected KEY=VALUE"]),
    ],
)  # fmt: skip
def test_trial_flags_are_checked_like_spec_values(
    argv: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trial", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for line in lines:
        assert line in err
    assert len(err.strip().splitlines()) == len(lines)  # one line per problem


def test_trial_bad_flag_in_a_subprocess_exits_2_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "study.cli", "trial", "--arch", "foo"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == EXIT_USAGE and "Traceback" not in proc.stderr
    assert "--arch: unknown architecture 'foo'" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where torch sees no CUDA GPU")
def test_trial_on_an_invisible_cuda_device_exits_2_naming_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trial", "--dataset", "digits", "--device", "cuda", "--epochs", "1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sees no CUDA GPU" in err and "allowed: device auto or cpu" in err


# ---------------------------------------------------------------- validate opens the data
def _spec(tmp_path: Path, dataset: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"name": "v", "dataset": dataset, "fixed": {"epochs": 1}}))
    return path


def test_validate_prints_a_data_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(_spec(tmp_path, {"name": "digits", "normal_classes": 3}))]) == EXIT_OK
    out = capsys.readouterr().out
    d = load_dataset(DataConfig(name="digits", normal_classes=(3,)))
    n_anom = int(d.test_labels.sum())
    assert "v: grid search, 1 trials" in out
    assert "digits, normal classes [3]: 1x8x8 images" in out
    assert f"train {len(d.train)} + val {len(d.val)} normal; test {len(d.test)} = " in out
    assert f"{len(d.test) - n_anom} normal + {n_anom} anomalous" in out


def _png_folder(folder: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(folder / f"{i}.png")


def _bad_data(tmp_path: Path, case: str) -> tuple[dict, str]:
    """A dataset block that is wrong in one way, and what the error must name."""
    if case == "missing-file":
        return {"name": "npz", "path": str(tmp_path / "gone.npz")}, "gone.npz: no such .npz file"
    if case == "wrong-shape":
        np.savez(tmp_path / "s.npz", x_train=np.zeros((4, 5)), x_test=np.zeros((4, 5, 5)), y_test=np.zeros(4))
        return {"name": "npz", "path": str(tmp_path / "s.npz")}, "s.npz:x_train: images of shape (4, 5)"
    if case == "nan":
        np.savez(
            tmp_path / "n.npz",
            x_train=np.full((4, 5, 5), np.nan),
            x_test=np.zeros((4, 5, 5)),
            y_test=np.zeros(4),
        )
        return {"name": "npz", "path": str(tmp_path / "n.npz")}, "n.npz:x_train: 4 images contain NaN"
    if case == "no-normal-class":
        return {
            "name": "digits",
            "normal_classes": 42,
        }, "normal class 42 is not a class of 'digits'; available: 0, 1"
    if case == "no-train-good":
        (tmp_path / "root" / "widget" / "test" / "good").mkdir(parents=True)
        return {"name": "mvtec", "path": str(tmp_path / "root")}, "has no <category>/train/good folder"
    _png_folder(tmp_path / "good", 5, 0)
    _png_folder(tmp_path / "bad", 2, 1)
    (tmp_path / "bad" / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\n torn")
    return {
        "name": "images",
        "path": str(tmp_path / "good"),
        "anomalous_path": str(tmp_path / "bad"),
    }, "torn.png"


@pytest.mark.parametrize(
    "case", ["missing-file", "wrong-shape", "nan", "no-normal-class", "no-train-good", "corrupt"]
)
def test_validate_reports_data_errors_with_exit_2_before_ray(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    ray.shutdown()  # a Ray left by an earlier test would hide one this command starts

    dataset, named = _bad_data(tmp_path, case)
    assert main(["validate", str(_spec(tmp_path, dataset))]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert err.startswith("lamp-study validate: ")
    assert not ray.is_initialized()


def test_validate_in_a_subprocess_starts_no_ray(tmp_path: Path) -> None:
    dataset, named = _bad_data(tmp_path, "no-normal-class")
    ray_dir = tmp_path / "ray"
    proc = subprocess.run(
        [sys.executable, "-m", "study.cli", "validate", str(_spec(tmp_path, dataset))],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_dir)},
        timeout=120,
    )
    assert proc.returncode == EXIT_USAGE and named in proc.stderr and "Traceback" not in proc.stderr
    assert not ray_dir.exists()  # no Ray session was created


# ---------------------------------------------------------------- getting started on one's own data
def _own_data(tmp_path: Path) -> tuple[Path, Path]:
    _png_folder(tmp_path / "good" / "batch1", 12, 0)
    _png_folder(tmp_path / "good" / "batch2", 12, 1)
    rng = np.random.default_rng(2)
    (tmp_path / "defects" / "scratch").mkdir(parents=True)
    for i in range(6):  # colour defects among grey normal images: the dataset becomes RGB
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(
            tmp_path / "defects" / "scratch" / f"{i}.jpg"
        )
    return tmp_path / "good", tmp_path / "defects"


def test_init_writes_a_study_for_two_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from study.spec import load_spec

    good, bad = _own_data(tmp_path)
    out = tmp_path / "mine.yaml"
    argv = [
        "init",
        "mine",
        "--normal",
        str(good),
        "--anomalous",
        str(bad),
        "--out",
        str(out),
        "--image-size",
        "16",
    ]
    assert main(argv) == EXIT_OK
    printed = capsys.readouterr().out
    spec = load_spec(out)
    (data,) = spec.data_configs()
    assert (data.name, data.path, data.anomalous_path, data.image_size) == ("images", str(good), str(bad), 16)
    assert len(spec.seeds) >= 2 and spec.n_trials > 1
    assert "images from" in printed and "3x16x16 images" in printed and "+ 6 anomalous" in printed
    assert main(argv) == EXIT_USAGE  # never overwrites
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_own_folders_to_a_report_in_three_commands(tmp_path: Path) -> None:
    """init, run, report through the real CLI; the study is shrunk so the test stays short."""
    good, bad = _own_data(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "study.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=500,
        )

    init = cli(
        "init", "mine", "--normal", str(good), "--anomalous", str(bad), "--image-size", "16", "--epochs", "1"
    )
    assert init.returncode == 0, init.stderr
    raw = yaml.safe_load((tmp_path / "mine.yaml").read_text())
    raw["dimensions"] = {"factor": {"grid": [1, 10]}}
    raw["fixed"].update(width=4, latent_dim=4)
    raw.update(seeds=[0], lr_control=False)
    raw["landscape"] = {"batch_size": 8, "power_iters": 2, "hutchinson_probes": 2, "grid_1d": 3, "grid_2d": 3}
    raw["label_free"] = {"pool_size": 10, "tune_steps": 1}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(raw))
    run = cli("run", "mine.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert " INFO " not in run.stdout + run.stderr  # MLflow's INFO lines stay quiet
    assert "Add type hints" not in run.stdout + run.stderr
    report = cli("report", "mine")
    assert report.returncode == 0, report.stderr[-3000:]
    html = tmp_path / report.stdout.strip().splitlines()[-1]  # printed relative to the working directory
    assert html.is_file() and "mine" in html.read_text()[:100_000]


def test_validate_prints_the_pack_plan_of_the_full_grid(capsys: pytest.CaptureFixture[str]) -> None:
    from study.packing import pack_plan
    from study.spec import load_spec

    path = Path(__file__).resolve().parents[1] / "search_spaces" / "lamp_grid.yaml"
    assert main(["validate", str(path), "--no-data"]) == EXIT_OK
    out = capsys.readouterr().out
    spec = load_spec(path)
    packs = pack_plan(spec.expand(), spec.packing.max_members)
    assert f"packing  on (auto: trials request GPUs): {spec.n_trials} trials in {len(packs)} packs" in out
    assert "pack key varies in arch, data.normal_classes, optimizer" in out
