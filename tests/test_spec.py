"""Search-space files: shipped studies, expansion invariants, and every way a file can be wrong."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from study.core.config import CONDITIONAL, TrialConfig, trial_fields
from study.data import LOADERS
from study.spec import SpecError, StudySpec, check_value, load_spec
from study.spec import _params as spec_params
from study.training.losses import AMPLIFICATIONS, METRICS
from study.training.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
BAD = Path(__file__).resolve().parent / "bad_specs"
DEFAULTS = TrialConfig()


def _write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _assert_valid(trials: list[TrialConfig]) -> None:
    """Every value of every trial passes the parameter checks (each distinct value checked once)."""
    seen: dict[str, set] = {}
    for t in trials:
        assert TrialConfig.from_dict(t.to_dict()) == t
        for name, value in _flat(t).items():
            seen.setdefault(name, set()).add(value)
    for name, values in seen.items():
        for value in values:
            value = list(value) if isinstance(value, tuple) else value
            assert check_value(name, value)[1] is None, (name, value)


def _flat(t: TrialConfig) -> dict:
    out = {}
    for f in dataclasses.fields(t):
        value = getattr(t, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}.{k}": v for k, v in dataclasses.asdict(value).items()})
        elif f.name not in ("seed", "twin_of"):
            out[f.name] = value
    return out


# ---------------------------------------------------------------- shipped studies
def test_the_four_shipped_studies_exist() -> None:
    assert {p.stem for p in SPACES.glob("*.yaml")} >= {"quickstart", "lamp_grid", "tpe", "label_free"}


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_study_loads(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == _raw(path)["name"]
    assert spec.source_path == str(path) and spec.source_text == path.read_text()
    assert spec.n_trials is not None and spec.n_trials >= 1


def _expected_grid_count(raw: dict) -> int:
    """Trial count of an unconditional grid study, from the file's dimensions alone.

    Each configuration runs once per seed. With lr_control, only SGD trials get
    twins (Adam's lr-matched control is its baseline), and the twins of one
    (factor != 1, everything but the amplification form) coincide, so there is
    one twin per amplified factor per SGD combination of the other dimensions.
    """
    dims = raw.get("dimensions", {})
    assert all(set(d) == {"grid"} for d in dims.values()), "count formula covers plain grids"
    sizes = {name: len(d["grid"]) for name, d in dims.items()}
    assert all(len(set(map(str, d["grid"]))) == len(d["grid"]) for d in dims.values())
    seeds = len(raw.get("seeds", [0]))
    n = math.prod(sizes.values()) * seeds
    if raw.get("lr_control"):
        factors = dims["factor"]["grid"] if "factor" in dims else [raw.get("fixed", {}).get("factor", 1)]
        others = math.prod(
            s for name, s in sizes.items() if name not in ("factor", "amplification", "optimizer")
        )
        optimizers = (
            dims["optimizer"]["grid"]
            if "optimizer" in dims
            else [raw.get("fixed", {}).get("optimizer", "adam")]
        )
        n += sum(f != 1 for f in factors) * others * optimizers.count("sgd") * seeds
    return n * raw.get("search", {}).get("samples", 1)


@pytest.mark.parametrize("stem", ["quickstart", "lamp_grid", "label_free"])
def test_grid_studies_expand_to_the_combinatorial_count(stem: str) -> None:
    path = SPACES / f"{stem}.yaml"
    spec = load_spec(path)
    trials = spec.expand()
    assert len(trials) == _expected_grid_count(_raw(path)) == spec.n_trials
    assert len(set(trials)) == len(trials)
    assert {t.seed for t in trials} == set(spec.seeds)
    _assert_valid(trials)


def test_quickstart_is_small_enough_for_a_laptop() -> None:
    spec = load_spec(SPACES / "quickstart.yaml")
    assert 20 <= spec.n_trials <= 40
    assert (
        spec.resources.gpu == 0 and spec.max_concurrent == 2 and spec.seeds == [0, 1]
    )  # 2 seeds: a noise estimate


def test_label_free_study_optimises_the_label_free_score() -> None:
    spec = load_spec(SPACES / "label_free.yaml")
    assert (spec.objective.metric, spec.objective.mode) == ("unlabelled_auroc", "max")
    assert all(t.label_free.enabled for t in spec.expand())


def test_tpe_study_counts_samples_times_seeds_and_cannot_expand() -> None:
    spec = load_spec(SPACES / "tpe.yaml")
    assert spec.n_trials == spec.search.samples * len(spec.seeds)
    with pytest.raises(SpecError, match="tpe"):
        spec.expand()


# ---------------------------------------------------------------- expansion
COND = """
name: cond
dataset: {name: digits}
dimensions:
  optimizer: {grid: [adam, sgd]}
  momentum: {grid: [0.0, 0.5]%s}
  factor: {grid: [1, 10]}
seeds: [0, 1]
"""


@pytest.mark.parametrize(
    "when", [", when: {optimizer: [sgd]}", ""], ids=["explicit_when", "config_conditional"]
)
def test_conditional_dimension_varies_only_where_its_condition_holds(tmp_path: Path, when: str) -> None:
    assert CONDITIONAL["momentum"] == ("optimizer", ("sgd",))  # without `when`, config.CONDITIONAL applies
    trials = load_spec(_write(tmp_path, COND % when)).expand()
    assert len(trials) == len(set(trials)) == (1 + 2) * 2 * 2
    adam = [t for t in trials if t.optimizer == "adam"]
    sgd = [t for t in trials if t.optimizer == "sgd"]
    assert {t.momentum for t in adam} == {DEFAULTS.momentum}
    assert Counter(t.momentum for t in sgd) == {0.0: 4, 0.5: 4}


def test_fixed_conditional_parameter_keeps_its_default_where_it_does_not_apply(tmp_path: Path) -> None:
    text = "name: c\ndataset: {name: digits}\nfixed: {momentum: 0.5}\ndimensions:\n  optimizer: {grid: [adam, sgd]}\n"
    by_opt = {t.optimizer: t for t in load_spec(_write(tmp_path, text)).expand()}
    assert by_opt["sgd"].momentum == 0.5
    assert by_opt["adam"].momentum == DEFAULTS.momentum


def test_duplicate_values_give_one_trial(tmp_path: Path) -> None:
    text = "name: d\ndataset: {name: digits}\ndimensions:\n  factor: {grid: [1, 1.0, 10]}\n"
    assert len(load_spec(_write(tmp_path, text)).expand()) == 2


def test_grid_samples_repeat_the_whole_grid(tmp_path: Path) -> None:
    text = (
        "name: g\ndataset: {name: digits}\nfixed: {optimizer: sgd}\ndimensions:\n  factor: {grid: [1, 10]}\n"
        "search: {samples: 3}\nlr_control: true\n"
    )
    trials = load_spec(_write(tmp_path, text)).expand()
    assert len(trials) == 3 * (2 + 1)
    assert trials[:3] == trials[3:6] == trials[6:]


TWINS = """
name: twins
dataset: {name: digits}
fixed: {lr: 0.01}
dimensions:
  amplification: {grid: [linear, exp, log]}
  factor: {grid: [1, 10, 100]}
  optimizer: {grid: [sgd, adam]}
seeds: [0, 1]
lr_control: true
"""
_TWIN_FIELDS = {"amplification", "factor", "lr", "twin_of"}


def _params_without(t: TrialConfig, keys: set[str]) -> dict:
    return {k: v for k, v in t.to_params().items() if k not in keys}


def test_every_amplified_sgd_trial_has_exactly_one_lr_twin(tmp_path: Path) -> None:
    trials = load_spec(_write(tmp_path, TWINS)).expand()
    originals = [t for t in trials if t.twin_of == 0]
    twins = [t for t in trials if t.twin_of != 0]
    assert len(originals) == 3 * 3 * 2 * 2
    assert len(twins) == len(set(twins)) == 2 * 2  # factor != 1 x seed (sgd only): forms share a twin
    assert {t.optimizer for t in twins} == {"sgd"}
    for t in twins:
        assert (t.amplification, t.factor) == ("linear", 1.0)
    for t in originals:
        mine = [
            u
            for u in twins
            if u.twin_of == t.factor
            and u.lr == pytest.approx(t.lr * t.factor)
            and _params_without(u, _TWIN_FIELDS) == _params_without(t, _TWIN_FIELDS)
        ]
        assert len(mine) == (1 if t.factor != 1 and t.optimizer == "sgd" else 0)
        if t.amplification == "linear" and t.factor != 1 and t.optimizer == "sgd":
            differ = {k for k, v in t.to_params().items() if mine[0].to_params()[k] != v}
            assert differ == {"factor", "lr", "twin_of"}


def test_linear_trial_and_its_twin_take_identical_sgd_steps(tmp_path: Path) -> None:
    """The pairing is exact for linear amplification under SGD without weight decay (docs/design.md, fact 1)."""
    trials = load_spec(_write(tmp_path, TWINS)).expand()
    amp = next(t for t in trials if (t.amplification, t.factor, t.optimizer) == ("linear", 10.0, "sgd"))
    twin = next(t for t in trials if t.twin_of == amp.factor and t.optimizer == "sgd" and t.seed == amp.seed)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    weights = []
    for cfg in (amp, twin):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1).double()
        opt = torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        for _ in range(5):
            opt.zero_grad()
            base = (model(x) - y).pow(2).mean()
            AMPLIFICATIONS[cfg.amplification].apply(base, cfg.factor).backward()
            opt.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-12, atol=1e-12)


RANDOM = """
name: rnd
dataset: {name: digits}
dimensions:
  lr: {loguniform: [1.0e-4, 1.0e-1]}
  factor: {uniform: [1.0, 100.0]}
  width: {int: [8, 64], step: 8}
  metric: {choice: [mse, mae, ssim]}
  optimizer: {choice: [adam, sgd]}
  momentum: {uniform: [0.0, 0.9], when: {optimizer: [sgd]}}
search: {algorithm: random, samples: 300, seed: %d}
seeds: [0, 1]
"""


def test_random_search_is_seeded_and_stays_in_bounds(tmp_path: Path) -> None:
    trials = load_spec(_write(tmp_path, RANDOM % 7, "a.yaml")).expand()
    assert trials == load_spec(_write(tmp_path, RANDOM % 7, "b.yaml")).expand()
    assert trials != load_spec(_write(tmp_path, RANDOM % 8, "c.yaml")).expand()
    assert len(trials) == 300 * 2
    lr = np.array([t.lr for t in trials])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-1
    assert all(1.0 <= t.factor <= 100.0 for t in trials)
    assert {t.width for t in trials} <= set(range(8, 65, 8)) and len({t.width for t in trials}) == 8
    assert {t.metric for t in trials} == {"mse", "mae", "ssim"}
    sgd = [t.momentum for t in trials if t.optimizer == "sgd"]
    assert all(0.0 <= m <= 0.9 for m in sgd) and len(set(sgd)) > 100
    assert {t.momentum for t in trials if t.optimizer == "adam"} == {DEFAULTS.momentum}
    _assert_valid(trials)


def test_loguniform_spreads_over_decades(tmp_path: Path) -> None:
    lr = np.array([t.lr for t in load_spec(_write(tmp_path, RANDOM % 3)).expand()])
    decades = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1])[0] / len(lr)
    assert decades.min() > 0.25  # a uniform draw on [1e-4, 1e-1] would put ~1 % in the first decade


def test_random_twins_scale_the_sampled_lr(tmp_path: Path) -> None:
    trials = load_spec(_write(tmp_path, (RANDOM % 5) + "lr_control: true\n")).expand()
    twins = [t for t in trials if t.twin_of]
    sgd = [t for t in trials if not t.twin_of and t.optimizer == "sgd"]
    assert len(twins) == len(sgd) > 0  # every sampled sgd factor > 1 is amplified and unique
    by_key = {(t.seed, t.twin_of, t.lr): t for t in twins}
    for t in sgd:
        assert (t.seed, t.factor, t.lr * t.factor) in by_key


# ---------------------------------------------------------------- tpe
def test_suggest_with_a_real_optuna_study_respects_bounds_and_conditions() -> None:
    path = SPACES / "tpe.yaml"
    spec, dims = load_spec(path), _raw(path)["dimensions"]
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5)
    )
    seen_optimizers = set()
    for i in range(20):
        trial = study.ask()
        values = spec.suggest(trial)
        assert set(values) == set(trial.params)
        for name, d in dims.items():
            if "when" in d and values.get(next(iter(d["when"]))) not in d["when"][next(iter(d["when"]))]:
                assert name not in values
                continue
            assert name in values
            kind, bounds = next((k, v) for k, v in d.items() if k != "when")
            if kind in ("uniform", "loguniform"):
                assert bounds[0] <= values[name] <= bounds[1]
            else:
                assert values[name] in bounds
        assert ("momentum" in values) == (values["optimizer"] == "sgd")
        seen_optimizers.add(values["optimizer"])
        cfg = spec.trial_config(values, seed=3)
        assert (
            cfg.seed == 3 and cfg.factor == values["factor"] and cfg.epochs == _raw(path)["fixed"]["epochs"]
        )
        _assert_valid([cfg])
        study.tell(trial, float(i % 3))
    assert seen_optimizers == {"adam", "sgd"}


def test_suggest_handles_list_valued_choices(tmp_path: Path) -> None:
    text = (
        "name: t\ndataset: {name: digits}\nsearch: {algorithm: tpe, samples: 5}\n"
        "dimensions:\n  data.normal_classes: {choice: [[0, 1], 2]}\n"
    )
    spec = load_spec(_write(tmp_path, text))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    got = set()
    for _ in range(12):
        value = spec.suggest(study.ask())["data.normal_classes"]
        got.add(tuple(value) if isinstance(value, list) else value)
        assert spec.trial_config({"data.normal_classes": value}, 0).data.normal_classes in {(0, 1), (2,)}
    assert got == {(0, 1), 2}


# ---------------------------------------------------------------- loading details
def test_content_hash_follows_the_file_text(tmp_path: Path) -> None:
    text = (SPACES / "quickstart.yaml").read_text()
    a = load_spec(_write(tmp_path, text, "a.yaml"))
    b = load_spec(_write(tmp_path, text, "b.yaml"))
    c = load_spec(_write(tmp_path, text + "# a comment changes the study's identity\n", "c.yaml"))
    assert a.content_hash == b.content_hash == hashlib.sha256(text.encode()).hexdigest()
    assert c.content_hash != a.content_hash


def test_base_config_is_plain_nested_data_that_builds_a_trial() -> None:
    spec = load_spec(SPACES / "quickstart.yaml")
    base = spec.base_config()
    cfg = TrialConfig.from_dict(base)
    assert cfg.landscape.power_iters == 10 and cfg.data.train_limit == 2000 and cfg.epochs == 3
    assert yaml.safe_load(yaml.safe_dump(base)) == base


def test_yaml11_exponent_strings_are_read_as_numbers(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, "name: e\ndataset: {name: digits}\nfixed: {lr: 1e-3}\n"))
    assert spec.fixed["lr"] == 1e-3 and spec.expand()[0].lr == 1e-3


def test_nested_and_dotted_fixed_forms_are_equivalent(tmp_path: Path) -> None:
    head = "name: n\ndataset: {name: digits}\n"
    a = load_spec(_write(tmp_path, head + "fixed: {landscape: {power_iters: 3}}\n", "a.yaml"))
    b = load_spec(_write(tmp_path, head + "fixed: {landscape.power_iters: 3}\n", "b.yaml"))
    c = load_spec(_write(tmp_path, head + "landscape: {power_iters: 3}\n", "c.yaml"))
    assert a.expand() == b.expand() == c.expand()
    assert a.expand()[0].landscape.power_iters == 3


def test_declared_ranges_and_registries_name_real_trial_parameters() -> None:
    fields = set(trial_fields())
    assert set(spec_params.RANGES) <= fields
    assert set(spec_params.REGISTRIES) <= fields


def test_specs_can_be_built_without_a_file() -> None:
    spec = StudySpec.model_validate({"name": "x", "dataset": {"name": "digits"}})
    assert spec.objective.mode == "max" and len(spec.expand()) == 1


# ---------------------------------------------------------------- bad files
def _names(registry: dict) -> str:
    return "allowed: " + ", ".join(sorted(registry))


# file in tests/bad_specs -> (offending key, phrase the message must contain)
BAD_SPECS: dict[str, tuple[str, str]] = {
    "unknown_top_key": ("dimension", "did you mean 'dimensions'"),
    "unknown_dimension": ("dimensions.learning_rate", "unknown trial parameter"),
    "wrong_type": ("fixed.epochs", "allowed: an integer >= 1"),
    "factor_negative": ("dimensions.factor.grid[1]", "allowed: > 0"),
    "lr_zero": ("fixed.lr", "allowed: > 0"),
    "momentum_out_of_range": ("fixed.momentum", "allowed: >= 0 and < 1"),
    "unknown_metric": ("dimensions.metric.grid[1]", _names(METRICS)),
    "unknown_architecture": ("fixed.arch", _names(MODELS)),
    "unknown_amplification": ("dimensions.amplification.grid[1]", _names(AMPLIFICATIONS)),
    "unknown_dataset": ("dataset.name", _names(LOADERS)),
    "invalid_yaml": ("(yaml)", "line 4"),
    "duplicate_key": ("(yaml)", "duplicate key 'factor'"),
    "empty": ("(top level)", "empty"),
    "not_mapping": ("(top level)", "not a mapping"),
    "bounds_reversed": ("dimensions.lr.loguniform", "low < high"),
    "loguniform_zero": ("dimensions.lr.loguniform", "0 < low"),
    "continuous_in_grid": ("dimensions.lr.loguniform", "cannot be enumerated by grid"),
    "early_stopping_train_loss": ("early_stopping.metric", "not comparable across trials"),
    "lr_control_tpe": ("lr_control", "TPE proposes trials adaptively"),
    "fixed_and_dimension": ("dimensions.factor", "either fixed or a dimension"),
    "when_unknown_parameter": ("dimensions.momentum.when.optimiser", "neither fixed nor a dimension"),
    "momentum_without_sgd": ("dimensions.momentum", "optimizer only takes ['adam']"),
    "unknown_objective": ("objective.metric", "allowed: auroc, ap, synthetic_auroc"),
    "mode_contradicts_metric": ("objective.mode", "allowed: min"),
    "unknown_section_key": ("landscape.power_iter", "did you mean 'power_iters'"),
    "seed_fixed": ("fixed.seed", "seeds"),
    "dimension_unknown_kind": ("dimensions.factor.log", "allowed: grid, choice, uniform, loguniform, int"),
    "dimension_plain_value": ("dimensions.factor", "put it under fixed"),
    "gpu_fraction_above_one": ("resources.gpu", "allowed: 0 <= gpu <= 1 or a whole number"),
    "cuda_without_gpu": ("resources.gpu", "trials ask for device 'cuda'"),
    "label_free_objective_label_pruner": ("early_stopping.metric", "would leak labels"),
}


def test_every_bad_spec_file_is_in_the_table() -> None:
    assert {p.stem for p in BAD.glob("*.yaml")} == set(BAD_SPECS)


@pytest.mark.parametrize("stem", sorted(BAD_SPECS))
def test_bad_spec_raises_a_spec_error_naming_file_key_and_what_is_allowed(stem: str) -> None:
    key, phrase = BAD_SPECS[stem]
    path = BAD / f"{stem}.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    err = info.value
    assert err.key == key
    assert str(err).startswith(f"{path}: {key}: ")
    assert phrase in str(err)
    assert "allowed:" in str(err).splitlines()[0]
    assert "pydantic" not in str(err) and "errors.pydantic.dev" not in str(err)


@pytest.fixture(scope="module")
def cli_results() -> dict[str, subprocess.CompletedProcess]:
    """`lamp-study validate` on every bad file, two processes at a time (each imports torch)."""

    def run(stem: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "study.cli", "validate", str(BAD / f"{stem}.yaml")]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(sorted(BAD_SPECS), pool.map(run, sorted(BAD_SPECS)), strict=True))


@pytest.mark.slow  # one process per file, each importing torch: ~2 s of CPU apiece
@pytest.mark.parametrize("stem", sorted(BAD_SPECS))
def test_cli_validate_exits_2_with_the_message_and_no_traceback(
    stem: str, cli_results: dict[str, subprocess.CompletedProcess]
) -> None:
    key, phrase = BAD_SPECS[stem]
    result = cli_results[stem]
    assert result.returncode == 2, result.stderr
    assert f"{stem}.yaml: {key}: " in result.stderr and phrase in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_validate_accepts_a_shipped_study() -> None:
    cmd = [sys.executable, "-m", "study.cli", "validate", str(SPACES / "label_free.yaml")]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(load_spec(SPACES / "label_free.yaml").n_trials) in result.stdout


def test_search_algorithm_builds_what_tune_needs() -> None:
    """grid/random: the expanded trials as one grid_search; tpe: a seeded TPE searcher, limited to max_concurrent."""
    from ray.tune.search import ConcurrencyLimiter

    from study.runner import search_algorithm

    grid = load_spec(SPACES / "quickstart.yaml")
    alg, space, samples = search_algorithm(grid, "objective")
    assert alg is None and samples == 1
    assert space["trial"]["grid_search"] == [t.to_dict() for t in grid.expand()]
    tpe = load_spec(SPACES / "tpe.yaml")
    alg, space, samples = search_algorithm(tpe, "objective")
    assert isinstance(alg, ConcurrencyLimiter) and alg.max_concurrent == tpe.max_concurrent
    assert (alg.searcher.metric, alg.searcher.mode) == ("objective", tpe.objective.mode)
    assert space == {} and samples == tpe.search.samples


def test_n_trials_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from study.spec import _expand

    spec = load_spec(SPACES / "quickstart.yaml")
    calls = []
    real = _expand.expand
    monkeypatch.setattr(_expand, "expand", lambda s: calls.append(1) or real(s))
    assert [spec.n_trials for _ in range(5)] == [len(real(spec))] * 5
    assert len(calls) == 1


# ---------------------------------------------------------------- packing
PACKED = "name: p\ndataset: {name: digits}\ndimensions:\n  factor: {grid: [1, 10]}\n  arch: {grid: [conv_ae, mlp_ae]}\n"


@pytest.mark.parametrize(
    ("extra", "packed"),
    [
        ("", False),  # auto on CPU
        ("resources: {gpu: 1}\n", True),  # auto with GPUs
        ("packing: {enabled: true}\n", True),
        ("packing: {enabled: false}\nresources: {gpu: 1}\n", False),
        ("resources: {gpu: 1}\nearly_stopping: {metric: val_auroc}\n", False),  # auto gives way to ASHA
    ],
)
def test_packing_decision_follows_the_spec(tmp_path: Path, extra: str, packed: bool) -> None:
    assert load_spec(_write(tmp_path, PACKED + extra)).packing_decision()[0] is packed


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ("early_stopping: {metric: val_auroc}\n", "early_stopping"),
        ("search: {algorithm: tpe, samples: 4}\n", "tpe"),
    ],
)
def test_forced_packing_with_asha_or_tpe_is_refused_naming_why(
    tmp_path: Path, extra: str, names: str
) -> None:
    with pytest.raises(SpecError, match=rf"packing\.enabled.*{names}"):
        load_spec(_write(tmp_path, PACKED + "packing: {enabled: true}\n" + extra))


def test_lamp_grid_packs_by_class_architecture_and_optimizer() -> None:
    from study.packing import pack_key, pack_plan
    from study.packing.plan import varying_key_fields

    spec = load_spec(SPACES / "lamp_grid.yaml")
    assert spec.packing_decision()[0]
    trials = spec.expand()
    packs = pack_plan(trials, spec.packing.max_members)
    assert sorted(i for p in packs for i in p.indices) == list(range(len(trials)))  # each trial in one pack
    assert all(
        len(p) <= spec.packing.max_members and len({pack_key(c) for c in p.configs}) == 1 for p in packs
    )
    assert varying_key_fields(trials) == ["arch", "data.normal_classes", "optimizer"]
