"""An ESTIMATE of lamp_grid's training wall time on one H100, from kernels and FLOPs counted on a CPU.

No GPU has run this code. This script counts, on the CPU, the kernels (with
`torch.profiler`: the aten operators that launch one on a GPU, views and
metadata left out) and the FLOPs (with `torch.utils.flop_counter`:
convolutions and matrix products, forward and backward) of one steady-state
training step of the product's own code: `study.training.train.train` (a solo trial)
and `study.packing.run._train_epoch` (a pack of K members, one vmapped step).
A step is counted as the difference between an epoch of two batches and an
epoch of one, so first-step set-up and per-epoch work cancel. The solo
optimiser is built with `foreach=True`, as PyTorch builds it on CUDA.

The step time on an H100 is then estimated as

    t_step = kernels x launch latency
             + (convolution FLOPs / peak TF32 + other FLOPs / peak FP32) / efficiency

(serial: no overlap of launches and compute, so an upper-side figure) with
these stated figures and sources:

- launch latency, LAUNCH_US: NVIDIA Technical Blog, "Getting Started with CUDA
  Graphs" (A. Gray, 2019; https://developer.nvidia.com/blog/cuda-graphs/): short
  kernels launched back to back in a stream take about 3.8 us each including
  launch overhead, and about 9.6 us when the host synchronises after each.
  Both are used (4 and 10 us): PyTorch eager adds its own host-side dispatch.
- peak FP32 (non-tensor-core) throughput, PEAK_FP32: 67 TFLOPS, NVIDIA H100
  Tensor Core GPU datasheet, H100 SXM (https://www.nvidia.com/en-us/data-center/h100/);
  TF32 tensor cores give 494.7 TFLOPS dense (989 with sparsity), BF16 989.5 dense.
  lamp_grid trains in fp32 (`bf16: false`), and the product leaves PyTorch's
  defaults alone: cuDNN convolutions may use TF32 (`torch.backends.cudnn.allow_tf32`
  is True by default), matrix products stay FP32 (`allow_tf32` False).
- EFFICIENCY: the share of peak that small kernels reach; 0.25 is an assumption,
  not a measurement (printed with every figure).

The lamp_grid figure covers training steps only (20 epochs x batches per epoch
per pack, packs run one after another on the GPU; measurement after training,
validation every epoch and Ray overhead are not in it). `--calibrate`, on a
machine with CUDA, times the same steps on the GPU and prints the wall time
computed from measured step times instead: a measurement, labelled so.

    python bench/gpu_estimate.py                 # counts + estimate (CPU, ~10 min on 2 busy cores)
    python bench/gpu_estimate.py --smoke-test    # conv_ae, K in 1, 4: a quick check that it runs
    python bench/gpu_estimate.py --calibrate     # on a GPU: measured step times replace the estimate
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from study.core.config import TrialConfig
from study.data import load_dataset
from study.packing.objective import PackObjective
from study.packing.optim import build_stacked_optimizer
from study.packing.plan import pack_plan
from study.packing.run import _train_epoch
from study.packing.stack import StackedModel
from study.spec import load_spec
from study.training.models import build_model
from study.training.train import batches, train
from study.trial.run import model_meta

GRID = Path(__file__).resolve().parent.parent / "search_spaces" / "lamp_grid.yaml"
LAUNCH_US = (4.0, 10.0)  # per kernel: back to back, and synchronised (source above)
PEAK_FP32 = 67e12  # FLOP/s, H100 SXM datasheet
PEAK_TF32 = 494.7e12  # FLOP/s dense, H100 SXM datasheet: PyTorch lets cuDNN use TF32 for convolutions
EFFICIENCY = 0.25  # assumed share of peak
# operators that launch no kernel on a GPU (views, metadata, allocation without a fill)
NO_KERNEL = {
    "aten::view", "aten::_unsafe_view", "aten::as_strided", "aten::reshape", "aten::t", "aten::transpose",
    "aten::expand", "aten::permute", "aten::unsqueeze", "aten::squeeze", "aten::select", "aten::slice",
    "aten::detach", "aten::alias", "aten::resolve_conj", "aten::resolve_neg", "aten::empty",
    "aten::empty_strided", "aten::empty_like", "aten::lift_fresh", "aten::result_type", "aten::numpy_T",
    "aten::movedim", "aten::unbind", "aten::split", "aten::chunk", "aten::narrow", "aten::flatten",
    "aten::unflatten", "aten::expand_as", "aten::view_as", "aten::_reshape_alias", "aten::set_",
    "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense", "aten::size", "aten::stride",
    "aten::contiguous", "aten::to", "aten::_to_copy", "aten::lift", "aten::detach_", "aten::_has_compatible_shallow_copy_type",
}  # fmt: skip


@dataclasses.dataclass
class Count:
    kernels: int
    flops: float  # all counted FLOPs
    conv_flops: float  # of them, convolutions (cuDNN runs them on TF32 tensor cores by default)
    by_op: collections.Counter


def _leaf_kernels(prof: torch.profiler.profile) -> collections.Counter:
    """Operators that launch a kernel: aten leaves (a foreach op counts once), less views and metadata."""
    by_op: collections.Counter = collections.Counter()
    for evt in prof.events():
        name = evt.name
        if not name.startswith("aten::") or name in NO_KERNEL:
            continue
        inside_foreach = evt.cpu_parent is not None and evt.cpu_parent.name.startswith("aten::_foreach")
        has_aten_child = any(c.name.startswith("aten::") for c in evt.cpu_children)
        if inside_foreach or (has_aten_child and not name.startswith("aten::_foreach")):
            continue
        by_op[name] += 1
    return by_op


def _profile(fn: Callable[[], None]) -> collections.Counter:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return _leaf_kernels(prof)


def _solo_epoch(cfg: TrialConfig, meta: dict, x: torch.Tensor) -> Callable[[], None]:
    """One epoch of `study.training.train.train` on `x` (a few batches)."""

    def run() -> None:
        torch.manual_seed(cfg.seed)
        model = build_model(**meta).to(x.device)
        train(model, x, dataclasses.replace(cfg, epochs=1), x.device)

    return run


def _pack_epoch(cfgs: list[TrialConfig], meta: dict, x: torch.Tensor) -> Callable[[], None]:
    """One epoch of `study.packing.run._train_epoch` for the pack `cfgs` on `x`."""
    device = x.device

    def run() -> None:
        stack = StackedModel.from_modules([build_model(**meta) for _ in cfgs], device)
        hyper = {
            n: torch.tensor([float(getattr(c, n)) for c in cfgs], dtype=torch.float64)
            for n in ("lr", "momentum", "weight_decay")
        }
        optimizer = build_stacked_optimizer(cfgs[0].optimizer, device, **hyper)
        factors = torch.tensor([c.factor for c in cfgs], dtype=torch.float32, device=device)
        objective = PackObjective([c.metric for c in cfgs], [c.amplification for c in cfgs], factors)
        order = [
            batches(len(x), cfgs[0].batch_size, torch.Generator().manual_seed(c.seed), device) for c in cfgs
        ]
        stack.train()
        _train_epoch(stack, objective, optimizer, x, order, torch.autocast("cpu", enabled=False))

    return run


def _cuda_like_optimizers() -> None:
    """Solo optimisers as PyTorch builds them on CUDA: `foreach=True` (its default there), so the CPU count
    has one multi-tensor op per update, not CPU's per-parameter loop. The stacked ones are per-parameter on both."""
    from study.training.train import (
        OPTIMIZERS,
    )  # the registry's own dict: `study.training.train` is the function

    OPTIMIZERS["adam"] = lambda p, c: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay, foreach=True)
    OPTIMIZERS["sgd"] = lambda p, c: torch.optim.SGD(
        p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, foreach=True
    )


def _maker(cfgs: list[TrialConfig], meta: dict, packed: bool) -> Callable[[torch.Tensor], Callable[[], None]]:
    if packed:
        return lambda d: _pack_epoch(cfgs, meta, d)
    return lambda d: _solo_epoch(cfgs[0], meta, d)


COUNT_BATCH = 4  # counted at this batch size: the same kernels, and FLOPs that scale linearly with it
_SOLO_FLOPS: dict[tuple, tuple[float, float]] = {}
_KERNELS: dict[
    tuple, collections.Counter
] = {}  # by what the kernels depend on: arch, optimiser, member groups


def _flops(fn: Callable[[], None]) -> tuple[float, float]:
    """(all FLOPs, convolution FLOPs) of a call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    by_op = counter.get_flop_counts().get("Global", {})
    conv = sum(v for op, v in by_op.items() if "convolution" in str(op))
    return float(counter.get_total_flops()), float(conv)


def solo_flops(cfg: TrialConfig, meta: dict, x: torch.Tensor) -> tuple[float, float]:
    """FLOPs of one solo step at COUNT_BATCH (`torch.utils.flop_counter`: convolutions and matrix
    products, forward and backward): an epoch of two batches less an epoch of one."""
    key = (cfg.arch, cfg.metric, cfg.amplification)
    if key not in _SOLO_FLOPS:
        make = _maker([dataclasses.replace(cfg, batch_size=COUNT_BATCH)], meta, packed=False)
        (two, two_conv), (one, one_conv) = _flops(make(x[: 2 * COUNT_BATCH])), _flops(make(x[:COUNT_BATCH]))
        _SOLO_FLOPS[key] = (two - one, two_conv - one_conv)
    return _SOLO_FLOPS[key]


def _distinct(cfgs: list[TrialConfig]) -> list[TrialConfig]:
    """One member per (metric, amplification): a vmapped pack launches the same kernels for any member count,
    one set per group of members sharing a metric and a form (`PackObjective`)."""
    first: dict[tuple[str, str], TrialConfig] = {}
    for c in cfgs:
        first.setdefault((c.metric, c.amplification), c)
    return list(first.values())


def step_count(
    cfgs: list[TrialConfig], meta: dict, x: torch.Tensor, packed: bool, distinct: bool = True
) -> Count:
    """Kernels and FLOPs of one steady-state step at the configs' batch size.

    Kernels: `torch.profiler` on an epoch of two batches less an epoch of one,
    at COUNT_BATCH (a 64-member step at 128 takes many minutes on a CPU), of a
    pack's distinct members (`_distinct`; `distinct=False` profiles them all). FLOPs: the
    sum of the members' solo steps, scaled to the batch size; the profiler's
    own FLOP figure misses convolution backward and counts a vmapped (grouped)
    convolution as one member's, and the flop counter counts it K times over.
    """
    profiled = _distinct(cfgs) if packed and distinct else cfgs
    key = (packed, cfgs[0].arch, cfgs[0].optimizer, tuple((c.metric, c.amplification) for c in profiled))
    if key not in _KERNELS:
        small = [dataclasses.replace(c, batch_size=COUNT_BATCH) for c in profiled]
        make = _maker(small, meta, packed)
        make(x[: 2 * COUNT_BATCH])()  # warm-up: lazy initialisation outside the counts
        _KERNELS[key] = _profile(make(x[: 2 * COUNT_BATCH])) - _profile(make(x[:COUNT_BATCH]))
    ops = _KERNELS[key]
    scale = cfgs[0].batch_size / COUNT_BATCH
    flops = [solo_flops(cfg, meta, x) for cfg in cfgs]
    return Count(sum(ops.values()), sum(f for f, _ in flops) * scale, sum(c for _, c in flops) * scale, ops)


def step_seconds(
    cfgs: list[TrialConfig], meta: dict, x: torch.Tensor, packed: bool, repeats: int = 3
) -> float:
    """MEASURED seconds per step on x's device (`--calibrate`): (epoch of n+1 batches - epoch of 1) / n."""
    b, n, make = cfgs[0].batch_size, 10, _maker(cfgs, meta, packed)

    def timed(d: torch.Tensor) -> float:
        best = math.inf
        for _ in range(repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            make(d)()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    make(x[: 2 * b])()
    return (timed(x[: (n + 1) * b]) - timed(x[:b])) / n


def estimate_s(count: Count, launch_us: float, efficiency: float = EFFICIENCY) -> float:
    """ESTIMATED seconds per step on one H100 (formula and sources in the module docstring)."""
    other = count.flops - count.conv_flops
    compute = count.conv_flops / (PEAK_TF32 * efficiency) + other / (PEAK_FP32 * efficiency)
    return count.kernels * launch_us * 1e-6 + compute


def _plan(smoke: bool) -> tuple[list, int, torch.Tensor, dict]:
    """lamp_grid's packs, steps per epoch, Fashion-MNIST class 0 training images, and model args per arch."""
    spec = load_spec(GRID)
    packs = pack_plan(spec.expand(), spec.packing.max_members)
    lead = packs[0].configs[0]
    data = load_dataset(lead.data)  # classes are balanced (6,000 train images each): class 0 stands for all
    steps = math.ceil(len(data.train) / lead.batch_size)
    metas = {a: model_meta(dataclasses.replace(lead, arch=a), data) for a in ARCHS[: 1 if smoke else 3]}
    return packs, steps, data.train, metas


ARCHS = ("conv_ae", "mlp_ae", "unet_ae")


def _members(packs: list, arch: str, optimizer: str, k: int) -> list[TrialConfig]:
    """The first k members of lamp_grid's first pack of this architecture and optimiser (its real mix)."""
    pack = next(
        p
        for p in packs
        if p.configs[0].arch == arch and p.configs[0].optimizer == optimizer and len(p.configs) >= k
    )
    return list(pack.configs[:k])


def count_table(packs: list, metas: dict, x: torch.Tensor, sizes: tuple[int, ...]) -> list[tuple]:
    """(arch, way, members, Count, estimated ms per step at each launch latency) rows."""
    rows = []
    for arch, meta in metas.items():
        ways = [("solo", 1, False)] + [("packed", k, True) for k in sizes]
        for way, k, packed in ways:
            c = step_count(_members(packs, arch, "adam", k), meta, x, packed)
            est = [estimate_s(c, us) * 1e3 for us in LAUNCH_US]
            rows.append((arch, way, k, c, *est))
            print(
                f"  counted {arch} {way} K={k}: {c.kernels} kernels, {c.flops / 1e9:.2f} GFLOP",
                file=sys.stderr,
            )
    return rows


def grid_steps(
    packs: list, metas: dict, x: torch.Tensor, steps: int, per_step: Callable
) -> list[tuple[int, object]]:
    """(training steps, `per_step` of its kind) of every pack of lamp_grid: epochs x steps per epoch, and
    `per_step(members, meta, x)` computed once per architecture, optimiser and member count."""
    memo: dict[tuple, object] = {}
    out = []
    for pack in packs:
        lead = pack.configs[0]
        if lead.arch not in metas:
            continue
        key = (lead.arch, lead.optimizer, len(pack.configs))
        if key not in memo:
            memo[key] = per_step(list(pack.configs), metas[lead.arch], x)
        out.append((lead.epochs * steps, memo[key]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke-test", action="store_true", help="conv_ae only, packs of 1 and 4: a quick run"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1, 8, 64],
        help="pack member counts of the table (default 1 8 64)",
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="on CUDA: measure step times (replaces the estimate)"
    )
    args = parser.parse_args()
    if args.calibrate and not torch.cuda.is_available():
        print("--calibrate measures on a GPU, and torch sees no CUDA device here", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    _cuda_like_optimizers()
    packs, steps, train_x, metas = _plan(args.smoke_test)
    sizes = (1, 4) if args.smoke_test else tuple(args.sizes)
    if args.calibrate:
        x = train_x[: 11 * 128].cuda()
        measured = grid_steps(packs, metas, x, steps, lambda c, m, d: step_seconds(c, m, d, packed=True))
        total = sum(n * t for n, t in measured)
        print(
            f"lamp_grid training, MEASURED step times on {torch.cuda.get_device_name()}: {total / 3600:.2f} h"
        )
        return 0
    x = train_x[: 2 * 128]
    print(
        "| arch | way | members | kernels per step | GFLOP per step (conv) | ESTIMATED ms/step, 4 / 10 us |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for arch, way, k, c, e4, e10 in count_table(packs, metas, x, sizes):
        gflop = f"{c.flops / 1e9:.1f} ({c.conv_flops / 1e9:.1f})"
        print(f"| {arch} | {way} | {k} | {c.kernels} | {gflop} | {e4:.2f} / {e10:.2f} |")
    if args.smoke_test:
        return 0
    n_trials = sum(len(p.configs) for p in packs)
    print(f"\nlamp_grid: {n_trials} trials in {len(packs)} packs, {steps} steps per epoch, 20 epochs")
    counted = grid_steps(packs, metas, x, steps, lambda c, m, d: step_count(c, m, d, packed=True))
    kernels = sum(n * c.kernels for n, c in counted)
    flops = sum(n * c.flops for n, c in counted)
    print(f"whole grid, training: {kernels:.3e} kernel launches, {flops / 1e15:.1f} PFLOP")
    for us in LAUNCH_US:
        total = sum(n * estimate_s(c, us) for n, c in counted)
        print(
            f"ESTIMATE, one H100, packs in turn, {us:g} us per launch, {EFFICIENCY:g} of peak "
            f"(TF32 convolutions, FP32 otherwise): {total / 3600:.2f} h of training"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
