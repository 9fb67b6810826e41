"""Packed trials: a pack member is the solo trial of its config, and the pack key groups correctly.

The equivalence packs use hyperparameters in a stable training regime on
purpose. With a large effective learning rate (e.g. SGD on exp(20 L) at lr
0.01) a *solo* trial already changes its loss by ~1e-2 and its AUROC by ~1e-2
between 1 and 2 CPU threads: float rounding is amplified, and no
implementation could match it to 1e-4.

So a member's training losses and BatchNorm statistics must match its solo trial
to 1e-4, or, where the solo trial's own trajectory is that sensitive to float
rounding, to SPREAD_FACTOR times how far the solo trial moves when rerun at
another thread count (same arithmetic, other summation order), measured in the
same test. The yardstick matters on CPUs with AVX-512/AMX kernels: there an
SSIM member moves by ~5e-4 between thread counts, solo or packed alike.

Eval-mode losses (`val_base_loss`) are compared at rtol 1e-2: conv_ae's conv
biases sit before a BatchNorm, so their true gradient is 0 and Adam moves them
by its normalised rounding noise; train mode cancels them exactly, eval mode
sees them through the lagging running mean. A solo trial's val_base_loss moves
by up to 2.6e-3 between 1 and 2 threads for the same reason.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random

import numpy as np
import pytest
import torch

from study.core.config import DataConfig, LabelFreeConfig, LandscapeConfig, TrialConfig
from study.packing import BATCHABLE, pack_key, pack_plan, run_pack
from study.packing.optim import build_stacked_optimizer
from study.packing.plan import check_packable
from study.packing.stack import StackedModel
from study.training.losses import get_metric
from study.training.models import build_model
from study.trial import TrialResult, run_trial

# A tiny Fashion-MNIST subset: 28x28 images, so conv_ae has three BatchNorm'd stride-2 blocks.
BASE = {
    "data": {"name": "fashion_mnist", "normal_classes": [0], "train_limit": 300, "test_limit": 600},
    "arch": "conv_ae",
    "latent_dim": 8,
    "width": 4,
    "epochs": 3,
    "batch_size": 32,
    "eval_limit": 300,
    "landscape": {"batch_size": 32, "power_iters": 2, "hutchinson_probes": 1, "grid_1d": 3, "grid_2d": 0},
    "label_free": {"pool_size": 100, "tune_steps": 2},
}
# (amplification, factor, metric, lr, seed, weight_decay, momentum): every batchable field varies.
ADAM_MEMBERS = [
    ("linear", 1.0, "mse", 1e-3, 0, 0.0, 0.9),
    ("exp", 5.0, "mae", 3e-3, 1, 1e-3, 0.9),
    ("log", 2.0, "ssim", 1e-3, 2, 0.0, 0.9),
    ("linear", 10.0, "huber", 2e-3, 3, 1e-3, 0.9),
    ("exp", 1.0, "mse", 5e-3, 4, 0.0, 0.9),
    ("log", 0.5, "mae", 5e-4, 0, 1e-3, 0.9),
    ("linear", 3.0, "ssim", 1e-3, 1, 0.0, 0.9),
    ("exp", 20.0, "mse", 1e-3, 5, 1e-3, 0.9),
]
SGD_MEMBERS = [
    ("linear", 1.0, "mse", 0.02, 0, 0.0, 0.0),
    ("exp", 5.0, "mae", 0.002, 1, 1e-3, 0.9),
    ("log", 2.0, "ssim", 0.01, 2, 0.0, 0.9),
    ("linear", 10.0, "huber", 0.005, 3, 1e-3, 0.0),
    ("exp", 1.0, "mse", 0.02, 4, 0.0, 0.9),
    ("log", 0.5, "mae", 0.01, 0, 1e-3, 0.5),
    ("linear", 3.0, "ssim", 0.01, 1, 0.0, 0.0),
    ("exp", 2.0, "mse", 0.01, 5, 1e-3, 0.9),
]
FIELDS = ("amplification", "factor", "metric", "lr", "seed", "weight_decay", "momentum")
SPREAD_FACTOR = 8.0  # a member may differ from its solo trial by this many times the solo's rounding spread


def configs(optimizer: str, members: list[tuple], **overrides: object) -> list[TrialConfig]:
    return [
        TrialConfig.from_dict(BASE | {"optimizer": optimizer} | dict(zip(FIELDS, m, strict=True)) | overrides)
        for m in members
    ]


def solo_runs(cfgs: list[TrialConfig]) -> tuple[list[TrialResult], list[TrialResult]]:
    """Each config's solo trial, and the same trial at another thread count (its rounding spread)."""
    solos = [run_trial(c) for c in cfgs]
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        reruns = [run_trial(c) for c in cfgs]
    finally:
        torch.set_num_threads(threads)
    return solos, reruns


def _close(packed: float, solo: float, rerun: float | None, rel: float) -> bool:
    """Within `rel` of the solo value, or within SPREAD_FACTOR times the solo's own rounding spread."""
    if not (math.isfinite(packed) and math.isfinite(solo)):
        return math.isfinite(packed) == math.isfinite(solo)
    spread = abs(solo - rerun) if rerun is not None and math.isfinite(rerun) else 0.0
    return abs(packed - solo) <= max(rel * abs(solo), SPREAD_FACTOR * spread)


def assert_same_trial(packed: TrialResult, solo: TrialResult, rerun: TrialResult | None = None) -> None:
    """Same status, per-epoch training losses (rtol 1e-4 or the solo's rounding spread, see the module
    docstring), AUROC (+-0.002) and result contents. `rerun`: the solo trial at another thread count."""
    assert packed.status == solo.status
    assert len(packed.history) == len(solo.history)
    reruns = rerun.history if rerun is not None and len(rerun.history) == len(solo.history) else None
    for epoch, (p, s) in enumerate(zip(packed.history, solo.history, strict=True)):
        assert set(p) == set(s)
        for key in ("train_base_loss", "train_amp_loss"):
            again = reruns[epoch][key] if reruns is not None else None
            assert _close(p[key], s[key], again, rel=1e-4), (key, epoch, p[key], s[key], again)
        assert p["val_base_loss"] == pytest.approx(s["val_base_loss"], rel=1e-2, nan_ok=True)
        if "val_auroc" in s:
            assert p["val_auroc"] == pytest.approx(s["val_auroc"], abs=0.002)
    assert set(packed.metrics) == set(solo.metrics)
    if solo.status in ("finished", "collapsed"):
        assert packed.metrics["auroc"] == pytest.approx(solo.metrics["auroc"], abs=0.002)
        np.testing.assert_array_equal(packed.scores["labels"], solo.scores["labels"])
        assert set(packed.model_state) == set(solo.model_state)
        assert set(packed.landscape) == set(solo.landscape)
        assert packed.model_meta == solo.model_meta
    else:
        assert packed.metrics["diverged_epoch"] == solo.metrics["diverged_epoch"]


Pack = tuple[list[TrialResult], list[TrialResult], list[TrialResult]]  # packed, solo, solo rerun


@pytest.fixture(scope="module")
def sgd_pack() -> Pack:
    cfgs = configs("sgd", SGD_MEMBERS)
    return run_pack(cfgs), *solo_runs(cfgs)


def test_adam_pack_members_equal_their_solo_trials() -> None:
    cfgs = configs("adam", ADAM_MEMBERS)
    for packed, solo, rerun in zip(run_pack(cfgs), *solo_runs(cfgs), strict=True):
        assert_same_trial(packed, solo, rerun)


def test_sgd_pack_members_equal_their_solo_trials(sgd_pack: Pack) -> None:
    for packed, solo, rerun in zip(*sgd_pack, strict=True):
        assert_same_trial(packed, solo, rerun)


def test_batchnorm_running_statistics_are_per_member(sgd_pack: Pack) -> None:
    packed, solos, reruns = sgd_pack
    stats = [k for k in solos[0].model_state if k.endswith(("running_mean", "running_var"))]
    assert stats, "conv_ae is expected to use BatchNorm"
    for p, s, r in zip(packed, solos, reruns, strict=True):
        for key in stats:
            spread = float((s.model_state[key] - r.model_state[key]).abs().max())
            torch.testing.assert_close(
                p.model_state[key], s.model_state[key], rtol=1e-3, atol=max(1e-4, SPREAD_FACTOR * spread)
            )
        assert (
            p.model_state["encoder.0.1.num_batches_tracked"]
            == s.model_state["encoder.0.1.num_batches_tracked"]
        )
    # members do not share statistics: seeds 0 and 1 (members 0 and 1) end with different ones
    assert not torch.allclose(packed[0].model_state[stats[0]], packed[1].model_state[stats[0]])


def test_adamw_pack_matches_solo_on_mlp() -> None:
    """AdamW's decoupled decay, and an architecture without BatchNorm."""
    cfgs = configs("adamw", ADAM_MEMBERS[:3], arch="mlp_ae", epochs=2, weight_decay=0.05)
    for packed, solo, rerun in zip(run_pack(cfgs), *solo_runs(cfgs), strict=True):
        assert_same_trial(packed, solo, rerun)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_stacked_optimizer_steps_each_member_as_torch_optim(name: str) -> None:
    """Same gradients in, same parameters out: per-member lr, momentum (0 included) and weight decay."""
    hyper = {"lr": [1e-3, 3e-2, 0.1], "momentum": [0.9, 0.0, 0.5], "weight_decay": [0.0, 1e-2, 1e-3]}
    solo_optimizer = {
        "adam": lambda p, h: torch.optim.Adam(p, lr=h["lr"], weight_decay=h["weight_decay"]),
        "adamw": lambda p, h: torch.optim.AdamW(p, lr=h["lr"], weight_decay=h["weight_decay"]),
        "sgd": lambda p, h: torch.optim.SGD(
            p, lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"]
        ),
    }[name]
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model("conv_ae", 1, 8, 8, 4))
    solos = [copy.deepcopy(m) for m in models]
    stack = StackedModel.from_modules(models, torch.device("cpu"))
    member_hyper = [{k: v[i] for k, v in hyper.items()} for i in range(3)]
    optimizers = [solo_optimizer(list(m.parameters()), h) for m, h in zip(solos, member_hyper, strict=True)]
    stacked = build_stacked_optimizer(
        name, torch.device("cpu"), **{k: torch.tensor(v, dtype=torch.float64) for k, v in hyper.items()}
    )
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        for key, p in stack.params.items():
            p.grad = torch.randn(p.shape, generator=gen)
            for k, m in enumerate(solos):
                m.get_parameter(key).grad = p.grad[k].clone()
        for opt in optimizers:
            opt.step()
        stacked.step(stack.params)
    for k, m in enumerate(solos):
        for key, p in m.named_parameters():
            torch.testing.assert_close(stack.params[key][k], p, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("arch", ["conv_ae", "unet_ae", "mlp_ae"])
def test_vmapped_evaluation_equals_the_member_loop(arch: str) -> None:
    """Evaluation is vmapped on a GPU and looped on a CPU; both give each member's eval-mode scores."""
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(arch, 1, 28, 8, 4))
    for m in models:  # non-trivial running statistics
        m(torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    stack = StackedModel.from_modules(models, torch.device("cpu"))
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    mse = get_metric("mse").score
    scores = {}
    for loop in (True, False):
        stack.loop_eval = loop
        scores[loop] = stack.score_shared(
            x, lambda x_hat, xb: mse(x_hat.flatten(0, 1), xb.repeat(3, 1, 1, 1)).view(3, -1)
        )
    for k, m in enumerate(models):
        m.eval()
        with torch.no_grad():
            torch.testing.assert_close(scores[False][k], mse(m(x), x), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(scores[True], scores[False], rtol=1e-5, atol=1e-7)


def test_diverging_member_is_masked_at_its_epoch_and_the_others_go_on() -> None:
    digits = {
        "data": {"name": "digits", "normal_classes": [0]},
        "epochs": 5,
        "eval_limit": 200,
        "optimizer": "sgd",
        "momentum": 0.9,
        "landscape": {"batch_size": 32, "power_iters": 1, "hutchinson_probes": 1, "grid_1d": 0, "grid_2d": 0},
        "label_free": {"enabled": False},
    }
    # exp(118 L) overflows float32 in epoch 3 under this step size; the others train normally.
    members = [
        {"amplification": "exp", "factor": 118.0, "lr": 1.0},
        {"lr": 0.1},
        {"metric": "mae", "lr": 0.05, "seed": 1},
    ]
    cfgs = [
        TrialConfig.from_dict({k: v for k, v in BASE.items() if k != "data"} | digits | m) for m in members
    ]
    packed = run_pack(cfgs)
    solos, reruns = solo_runs(cfgs)
    assert solos[0].status == "diverged" and solos[0].metrics["diverged_epoch"] == 3.0
    assert packed[0].status == "diverged" and packed[0].metrics["diverged_epoch"] == 3.0
    assert len(packed[0].history) == 2
    assert packed[0].model_state is None
    for p, s, r in zip(packed, solos, reruns, strict=True):
        assert_same_trial(p, s, r)


# --------------------------------------------------------------------------- the pack key


def _changed(value: object, type_name: str) -> object:
    """A valid-looking different value for a config field."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "_other"
    if isinstance(value, tuple):
        return (*value, 9)
    assert value is None, type_name
    return 7 if "int" in type_name else "other"


def _variants() -> list[tuple[str, TrialConfig]]:
    """(dotted field, base config with only that field changed) for every TrialConfig field."""
    base = TrialConfig()
    out = []
    for f in dataclasses.fields(TrialConfig):
        value = getattr(base, f.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                new = dataclasses.replace(
                    value, **{sub.name: _changed(getattr(value, sub.name), str(sub.type))}
                )
                out.append((f"{f.name}.{sub.name}", dataclasses.replace(base, **{f.name: new})))
        else:
            out.append((f.name, dataclasses.replace(base, **{f.name: _changed(value, str(f.type))})))
    return out


def test_pack_key_splits_exactly_on_non_batchable_fields() -> None:
    base = TrialConfig()
    variants = _variants()
    assert {name for name, _ in variants} >= set(BATCHABLE)  # every batchable field was exercised
    for name, cfg in variants:
        same = pack_key(cfg) == pack_key(base)
        assert same == (name in BATCHABLE), f"{name}: shares key {same}"


def test_any_mix_of_batchable_changes_keeps_the_key() -> None:
    rng = random.Random(0)
    base = TrialConfig(
        data=DataConfig(name="digits"), landscape=LandscapeConfig(), label_free=LabelFreeConfig()
    )
    batchable = {name: cfg for name, cfg in _variants() if name in BATCHABLE}
    for _ in range(50):
        names = rng.sample(sorted(batchable), rng.randint(1, len(batchable)))
        cfg = dataclasses.replace(base, **{n: getattr(batchable[n], n) for n in names})
        assert pack_key(cfg) == pack_key(base)
        check_packable([base, cfg])


def test_pack_plan_groups_by_key_and_caps_members() -> None:
    adam = configs("adam", ADAM_MEMBERS)
    sgd = configs("sgd", SGD_MEMBERS)
    wide = configs("adam", ADAM_MEMBERS[:3], width=8)
    mixed = [c for triple in zip(adam, sgd, adam[::-1], strict=True) for c in triple] + wide
    plan = pack_plan(mixed, max_members=6)
    assert sorted(i for p in plan for i in p.indices) == list(range(len(mixed)))  # each config once
    assert all(len(p) <= 6 for p in plan)
    for p in plan:
        assert len({pack_key(c) for c in p.configs}) == 1
        assert [mixed[i] for i in p.indices] == list(p.configs)
    assert len({p.pack_id for p in plan}) == len(plan)
    # adam (16 configs) -> 6+6+4, sgd (8) -> 6+2, wide adam (3) -> 3
    assert sorted(len(p) for p in plan) == [2, 3, 4, 6, 6, 6]


def test_unpackable_configs_are_refused_naming_the_field() -> None:
    cfgs = configs("adam", ADAM_MEMBERS[:2]) + configs("sgd", SGD_MEMBERS[:1])
    with pytest.raises(ValueError, match="optimizer"):
        run_pack(cfgs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pack_members_equal_their_solo_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the GPU, bf16 off and TF32 off (float32 as on the CPU); grouped and single convs differ only in rounding."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    for optimizer, members in (("adam", ADAM_MEMBERS), ("sgd", SGD_MEMBERS)):
        cfgs = configs(optimizer, members, device="cuda")
        for packed, solo in zip(run_pack(cfgs), [run_trial(c) for c in cfgs], strict=True):
            assert_same_trial(packed, solo)
