"""Malformed specs, generated: each exits 2 with one line per problem naming its key, no traceback, nothing launched.

Hypothesis draws one to three mutations of a valid small study (wrong types,
out-of-range values, unknown keys at every level, conflicting options, bad
`when` clauses, empty grids) or a file that is not a study at all (binary,
not UTF-8, huge, deeply nested, not a mapping). Most examples run in-process
through the CLI's `main()`; a few run as subprocesses.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study.cli import EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[1]
BASE: dict[str, Any] = {
    "name": "gen",
    "dataset": {"name": "digits", "normal_classes": 0, "train_limit": 200, "test_limit": 100},
    "fixed": {"epochs": 2, "lr": 0.01, "optimizer": "sgd", "batch_size": 32},
    "dimensions": {"factor": {"grid": [1, 10]}, "metric": {"grid": ["mse", "ssim"]}},
    "search": {"algorithm": "grid"},
    "seeds": [0, 1],
    "objective": {"metric": "auroc"},
    "resources": {"cpu": 1, "gpu": 0},
    "max_concurrent": 1,
    "landscape": {"power_iters": 2},
    "label_free": {"pool_size": 50},
}
Mutation = Callable[[dict[str, Any]], str]  # edits the spec in place, returns the key its error must name

unknown_keys = st.from_regex(r"zz[a-z_]{0,8}", fullmatch=True)
not_a_number = st.sampled_from(["fast", [1, 2], {"a": 1}, None])
not_a_list = st.sampled_from(["abc", 3, {"a": 1}])


def _set(path: str, value: Any) -> Mutation:
    def apply(spec: dict[str, Any]) -> str:
        *heads, last = path.split("/")
        node = spec
        for head in heads:
            node = node.setdefault(head, {})
        node[last] = value
        return path.replace("/", ".")

    return apply


# (path in the spec, strategy of values that are wrong there)
WRONG_VALUES: list[tuple[str, st.SearchStrategy]] = [
    ("name", st.sampled_from([3, "../../etc", "has space", "", ["x"]])),
    ("seeds", st.one_of(not_a_list, st.just([]), st.just([-1]), st.just([0, 0]), st.just([1.5]))),
    ("max_concurrent", st.one_of(st.integers(max_value=0), st.sampled_from(["many", 1.5]))),
    ("lr_control", st.sampled_from(["maybe", 2, [True]])),
    ("search/algorithm", st.sampled_from(["bayes", 3, "GRID"])),
    ("search/samples", st.one_of(st.integers(max_value=0), not_a_number)),
    ("search/seed", st.integers(max_value=-1)),
    ("objective/metric", st.sampled_from(["accuracy", 5, "train_amp_loss"])),
    ("objective/mode", st.sampled_from(["up", 1])),
    ("resources/cpu", st.one_of(st.floats(max_value=0, allow_nan=False), st.just("x"))),
    ("resources/gpu", st.sampled_from([-1, 1.5, 2.5, "one"])),
    ("fixed/lr", st.one_of(st.floats(max_value=0, allow_nan=False), not_a_number, st.just(float("nan")))),
    ("fixed/epochs", st.one_of(st.integers(max_value=0), st.just(2.5), st.just("two"))),
    (
        "fixed/momentum",
        st.one_of(st.floats(min_value=1, allow_nan=False), st.floats(max_value=-0.01, allow_nan=False)),
    ),
    ("fixed/arch", st.sampled_from(["resnet", 3, "conv-ae"])),
    ("fixed/optimizer", st.sampled_from(["rmsprop", "SGD"])),
    ("fixed/device", st.sampled_from(["tpu", "cuda:x", 0])),
    ("fixed/batch_size", st.integers(max_value=0)),
    ("fixed/bf16", st.sampled_from(["sure", 2])),
    ("fixed/amplification", st.sampled_from(["square", ""])),
    ("dataset/name", st.sampled_from(["cifar", 3])),
    ("dataset/val_fraction", st.sampled_from([0, 1, 1.5, -0.1, "half"])),
    ("dataset/train_limit", st.integers(max_value=0)),
    ("dataset/image_size", st.integers(max_value=0)),
    ("dataset/normal_classes", st.sampled_from([[], [1.5], [True], {"a": 1}])),
    ("landscape/power_iters", st.one_of(st.integers(max_value=-1), not_a_number)),
    ("landscape/grid_1d", st.sampled_from([-1, "x"])),
    ("landscape/budget", st.sampled_from([-0.1, "x"])),
    ("landscape/power_tol", st.sampled_from([0, -1e-3, 1.5])),
    ("label_free/pool_size", st.integers(max_value=0)),
    ("label_free/area", st.sampled_from([1.5, -0.5])),
    ("early_stopping/grace_period", st.integers(max_value=0)),
    ("early_stopping/reduction_factor", st.sampled_from([1, 0.5, -2])),
    ("early_stopping/metric", st.sampled_from(["train_amp_loss", "loss", 3])),
    ("dimensions/factor/grid", st.one_of(st.just([]), st.just([-1, 10]), st.just("ten"))),
    ("dimensions/metric/grid", st.sampled_from([[], ["l3"], ["mse", 4]])),
]
# Where an unknown key can go: the section path (empty = top level).
UNKNOWN_KEY_SECTIONS = [
    "",
    "dataset",
    "fixed",
    "dimensions",
    "dimensions/factor",
    "dimensions/factor/when",
    "search",
    "objective",
    "resources",
    "early_stopping",
    "landscape",
    "label_free",
    "fixed/landscape",
]


def _conflicts() -> list[tuple[str, Mutation]]:
    """Options that are fine alone but not together (each returns the key its error names)."""

    def both(*edits: Mutation) -> Mutation:
        def apply(spec: dict[str, Any]) -> str:
            keys = [edit(spec) for edit in edits]
            return keys[-1]

        return apply

    def tpe(spec: dict[str, Any]) -> None:
        spec["search"] = {"algorithm": "tpe", "samples": 4}
        spec["seeds"] = [0]

    def named(key: str, edit: Callable[[dict[str, Any]], None]) -> Mutation:
        def apply(spec: dict[str, Any]) -> str:
            edit(spec)
            return key

        return apply

    return [
        (
            "fixed-and-dimension",
            named(
                "dimensions.lr",
                lambda s: (s["fixed"].setdefault("lr", 0.01), s["dimensions"].update(lr={"grid": [0.1]})),
            ),
        ),  # fmt: skip
        ("tpe-lr-control", named("lr_control", lambda s: (tpe(s), s.update(lr_control=True)))),
        ("tpe-seeds", named("seeds", lambda s: (tpe(s), s.update(seeds=[0, 1])))),
        ("mode-contradicts", _set("objective", {"metric": "alignment_loss", "mode": "max"})),
        (
            "labelfree-objective-label-pruner",
            both(
                _set("objective", {"metric": "synthetic_auroc"}),
                _set("early_stopping", {"metric": "val_auroc"}),
            ),
        ),  # fmt: skip
        (
            "labelfree-disabled",
            both(_set("label_free/enabled", False), _set("objective/metric", "synthetic_auroc")),
        ),
        ("grace-beyond-epochs", _set("early_stopping", {"grace_period": 50})),
        (
            "early-stopping-no-eval",
            both(
                _set("early_stopping", {"metric": "val_auroc"}),
                named("early_stopping", lambda s: s["fixed"].update(eval_every=0)),
            ),
        ),  # fmt: skip
        (
            "condition-never-holds",
            named(
                "dimensions.momentum",
                lambda s: (
                    s["fixed"].update(optimizer="adam"),
                    s["dimensions"].update(momentum={"grid": [0.5, 0.9]}),
                ),
            ),
        ),  # fmt: skip
        (
            "continuous-in-grid",
            named(
                "dimensions.lr",
                lambda s: (
                    s["search"].update(algorithm="grid"),
                    s["dimensions"].update(lr={"uniform": [0.001, 0.1]}),
                ),
            ),
        ),  # fmt: skip
        ("dataset-in-fixed", named("fixed.data.name", lambda s: s["fixed"].update({"data.name": "digits"}))),
        ("seed-fixed", _set("fixed/seed", 3)),
        ("twin-fixed", _set("fixed/twin_of", 3)),
        (
            "set-twice",
            named(
                "fixed.landscape.power_iters",
                lambda s: s["fixed"].update({"landscape.power_iters": 3, "landscape": {"power_iters": 4}}),
            ),
        ),  # fmt: skip
        ("set-in-section-and-fixed", _set("fixed/landscape.power_iters", 5)),
        ("dimension-no-kind", _set("dimensions/width", {})),
        ("dimension-two-kinds", _set("dimensions/width", {"grid": [4], "int": [1, 8]})),
        ("dimension-plain-value", _set("dimensions/width", 8)),
        ("reversed-bounds", _set("dimensions/width", {"int": [8, 1]})),
        ("step-without-int", _set("dimensions/width", {"grid": [4, 8], "step": 2})),
        ("uneven-step", _set("dimensions/width", {"int": [1, 8], "step": 2})),
        (
            "log-from-zero",
            named(
                "dimensions.lr.loguniform",
                lambda s: (
                    s["search"].update(algorithm="random"),
                    s["fixed"].pop("lr", None),
                    s["dimensions"].update(lr={"loguniform": [0, 1]}),
                ),
            ),
        ),  # fmt: skip
        ("empty-choice", _set("dimensions/width", {"choice": []})),
        (
            "uniform-int-param",
            named(
                "dimensions.width.uniform",
                lambda s: (
                    s["search"].update(algorithm="random"),
                    s["dimensions"].update(width={"uniform": [1.0, 8.0]}),
                ),
            ),
        ),  # fmt: skip
    ]


def _bad_whens() -> list[tuple[str, Mutation]]:
    def when(name: str, clause: Any, key: str, extra: dict | None = None) -> Mutation:
        def apply(spec: dict[str, Any]) -> str:
            spec["dimensions"]["width"] = {"grid": [4, 8], "when": clause}
            spec["dimensions"].update(extra or {})
            return key

        return apply

    return [
        ("unknown-param", when("w", {"zz_param": [1]}, "dimensions.width.when.zz_param")),
        ("on-itself", when("w", {"width": [4]}, "dimensions.width.when.width")),
        ("empty-values", when("w", {"metric": []}, "dimensions.width.when")),
        ("wrong-value", when("w", {"optimizer": ["rmsprop"]}, "dimensions.width.when.optimizer")),
        ("never-holds", when("w", {"metric": ["mae"]}, "dimensions.width")),
        ("not-a-mapping", when("w", ["metric"], "dimensions.width.when")),
        ("cycle", when("w", {"latent_dim": [4]}, "dimensions", {"latent_dim": {"grid": [4, 8], "when": {"width": [4]}}})),
        ("on-continuous", when("w", {"lr": [0.1]}, "dimensions.width.when.lr", {"lr": {"uniform": [0.01, 0.1]}})),
    ]  # fmt: skip


@st.composite
def _mutation(draw: st.DrawFn) -> Mutation:
    kind = draw(st.sampled_from(["value", "unknown", "conflict", "when"]))
    if kind == "value":
        path, values = draw(st.sampled_from(WRONG_VALUES))
        return _set(path, draw(values))
    if kind == "unknown":
        section, key = draw(st.sampled_from(UNKNOWN_KEY_SECTIONS)), draw(unknown_keys)
        return _set(f"{section}/{key}" if section else key, draw(st.sampled_from([1, "x", [1], {"a": 1}])))
    pool = _conflicts() if kind == "conflict" else _bad_whens()
    return draw(st.sampled_from(pool))[1]


def _not_a_study() -> st.SearchStrategy[tuple[bytes, str]]:
    """(file bytes, key the error names) for files that are not a study at all."""
    binary = st.binary(min_size=1, max_size=200).filter(lambda b: not _utf8(b))
    return st.one_of(
        binary.map(lambda b: (b, "(file)")),
        st.just((b"\x00\x01\x02\xff\xfe" * 100, "(file)")),
        st.just((b"name: x\n" + b"#" * 1_100_000, "(file)")),  # huge
        st.sampled_from([b"a: " + b"[" * 5000 + b"]" * 5000, b"a: " + b"{b: " * 3000]).map(
            lambda b: (b, "(yaml)")
        ),
        st.sampled_from([b"", b"# only a comment\n", b"~\n"]).map(lambda b: (b, "(top level)")),
        st.sampled_from([b"- 1\n- 2\n", b"just text\n", b"42\n"]).map(lambda b: (b, "(top level)")),
        st.sampled_from([b"name: [\n", b"a: b: c\n", b"\tname: x\n", b"x: 1\nx: 2\n"]).map(
            lambda b: (b, "(yaml)")
        ),
        st.just((b"1: one\nname: x\n", "1")),  # a non-string key
    )


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_output(err: str, path: Path, keys: list[str]) -> None:
    """One well-formed line per problem, naming the key; never a traceback."""
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert lines[0].startswith("lamp-study validate: ")
    lines[0] = lines[0].removeprefix("lamp-study validate: ")
    line_re = re.compile(rf"^{re.escape(str(path))}: (\S[^:]*|\(file\)|\(yaml\)|\(top level\)|\.\.\. and \d+ more problems): \S.*$")  # fmt: skip
    for line in lines:
        assert line_re.match(line), line
    named = [line.split(": ", 2)[1] for line in lines]
    assert any(k.startswith(key) or key.startswith(k) for key in keys for k in named), (keys, named)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad_input")


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["validate", str(path)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_the_base_spec_is_valid(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Guards the generator: every error below comes from a mutation, not from the base."""
    path = workdir / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert main(["validate", str(path), "--no-data"]) == 0, capsys.readouterr().err


def test_generated_malformed_specs_exit_2_one_line_per_problem(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    ray.shutdown()  # a Ray left by an earlier test would hide one this command starts

    monkeypatch.chdir(workdir)  # an MLflow store or Tune storage would appear here
    seen: list[int] = []

    @settings(max_examples=220, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations=st.lists(_mutation(), min_size=1, max_size=3))
    def check(mutations: list[Mutation]) -> None:
        spec = copy.deepcopy(BASE)
        keys = [m(spec) for m in mutations]
        path = workdir / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True))
        _check_output(_validate(path, capsys), path, keys)
        seen.append(len(mutations))

    check()
    assert len(seen) >= 200
    assert not ray.is_initialized()
    assert sorted(p.name for p in workdir.iterdir()) == [
        "base.yaml",
        "spec.yaml",
    ]  # no mlflow.db, no lamp_storage


def test_generated_files_that_are_not_studies_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=_not_a_study())
    def check(case: tuple[bytes, str]) -> None:
        content, key = case
        path = workdir / "file.yaml"
        path.write_bytes(content)
        _check_output(_validate(path, capsys), path, [key])

    check()


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "(file): cannot read"),
        (b"name: x\n" + b"#" * 2_000_000, "(file): is 2,000,008 bytes"),
        (yaml.safe_dump({**BASE, "zz_unknown": 1}).encode(), "zz_unknown: unknown key"),
    ],
    ids=["binary", "huge", "unknown-key"],
)
def test_bad_specs_in_a_subprocess_launch_nothing(tmp_path: Path, content: bytes, named: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    ray_dir = tmp_path / "ray"
    proc = subprocess.run(
        [sys.executable, "-m", "study.cli", "run", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_dir)},
        timeout=120,
    )
    assert proc.returncode == EXIT_USAGE and "Traceback" not in proc.stderr
    assert f"{path}: {named}" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no ray session, mlflow.db or storage
