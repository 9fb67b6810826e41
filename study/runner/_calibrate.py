"""Know the cost before launching: time one pack per kind for two epochs on the cluster, extrapolate.

Packs that share their pack key apart from the data (same architecture,
width, batch size, optimizer, epochs, measurement settings) cost about the
same per member, so one pack of each such kind is run for two epochs, as a Ray
task with the study's per-trial resources, on the cluster the study will use.
Its time splits into the first epoch, the second and the measurement after
them (detection, steepness, label-free). The first epoch holds the costs a
worker pays once (data load, first calls, allocator warm-up), since Tune reuses
its actors; the second is what every later epoch costs. A whole pack then costs

    epochs x second-epoch time + measurement x (epochs / 2 if a budget scales it, else 1)

scaled by its member count (measurement is per member; training a stacked
model grows at most linearly), and the study costs that sum over packs spread
over the concurrent slots the cluster has, plus what is paid once before the
packs run: a worker's start (measured as the calibration task's own wait from
submission to its first line) and the first epoch's excess over the second.
Solo studies are packs of one. Timing one cold epoch alone overcounted the
work by 4x and left out the start-up (bench/RESULTS.md, issue 24).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from typing import Any

from study.core.config import TrialConfig
from study.packing.plan import Pack, pack_key_fields, pack_plan


@dataclass(frozen=True)
class KindTiming:
    """One calibrated pack: its kind, members, and seconds for one epoch and for the measurement after it."""

    label: str
    members: int
    epoch_s: float  # a warm epoch (the second)
    measure_s: float  # the measurement after `trained` epochs
    cold_s: float = 0.0  # the first epoch's excess over a warm one: paid once per worker
    start_s: float = 0.0  # from submitting the calibration task to its first line: a worker's start
    trained: int = 1  # epochs the calibration trained: a budgeted measurement is that many epochs' share


@dataclass(frozen=True)
class Estimate:
    """What the whole study should cost."""

    pack_seconds: float  # sum over packs of each pack's run time
    longest_s: float  # the longest pack: no schedule ends before it
    slots: int  # packs (or trials) the cluster runs at once
    gpu_per_slot: float
    once_s: float = 0.0  # paid once before the packs run: a worker's start and its cold first epoch

    @property
    def wall_s(self) -> float:
        return self.once_s + max(self.pack_seconds / self.slots, self.longest_s)

    @property
    def gpu_hours(self) -> float:
        return self.pack_seconds * self.gpu_per_slot / 3600


def kind_of(cfg: TrialConfig) -> str:
    """A pack's kind: its key without the data (normal classes etc. cost the same)."""
    fields = pack_key_fields(cfg)
    fields.pop("data")
    return json.dumps(fields, sort_keys=True)


def describe_kind(cfg: TrialConfig) -> str:
    return f"{cfg.arch} width {cfg.width}, batch {cfg.batch_size}, {cfg.optimizer}, {cfg.epochs} epochs"


def pack_seconds(pack_members: int, timing: KindTiming, epochs: int, budgeted: bool) -> float:
    """Estimated run time of a pack of `pack_members` of a calibrated kind."""
    per_pack = epochs * timing.epoch_s + timing.measure_s * (epochs / timing.trained if budgeted else 1)
    return per_pack * pack_members / timing.members


def estimate(packs: list[Pack], timings: dict[str, KindTiming], slots: int, gpu_per_slot: float) -> Estimate:
    """The study's cost from the calibrated kinds: every pack's estimated time, spread over `slots`."""
    seconds = []
    for pack in packs:
        cfg = pack.configs[0]
        budgeted = cfg.landscape.budget > 0 or (cfg.label_free.enabled and bool(cfg.label_free.budget))
        seconds.append(pack_seconds(len(pack), timings[kind_of(cfg)], cfg.epochs, budgeted))
    # the kinds' tasks may queue behind each other: the quickest start is the worker's own
    once = min((t.start_s for t in timings.values()), default=0.0) + max(
        (t.cold_s for t in timings.values()), default=0.0
    )
    return Estimate(sum(seconds), max(seconds, default=0.0), max(slots, 1), gpu_per_slot, once)


def time_two_epochs(
    configs: list[dict[str, Any]], submitted: float
) -> tuple[float, float, float, float, int]:
    """(wait from `submitted`, first epoch s, warm epoch s, measurement s, epochs) of a pack trained two epochs.

    Runs where it is called (a Ray task); `submitted` is the caller's `time.time()`, so the wait spans
    the worker's start and imports. A study of one epoch is timed for one, its warm epoch the first.
    """
    started = time.time()
    from study.packing import run_pack

    cfgs = [TrialConfig.from_dict(c) for c in configs]
    cfgs = [replace(c, epochs=min(c.epochs, 2)) for c in cfgs]
    t0 = time.perf_counter()
    marks: list[float] = []
    run_pack(cfgs, reporter=lambda epoch, rows: marks.append(time.perf_counter()))
    end = time.perf_counter()
    marks = marks or [end]  # every member diverged in its first epoch: all of it was the epoch
    first = marks[0] - t0
    warm = marks[1] - marks[0] if len(marks) > 1 else first
    return max(started - submitted, 0.0), first, warm, end - marks[-1], cfgs[0].epochs


def calibrate(spec: Any, address: str | None = None) -> tuple[list[Pack], dict[str, KindTiming], Estimate]:
    """Run one pack of each kind for two epochs on the cluster; the plan, the timings and the estimate."""
    import ray

    from study.runner._cluster import _init_ray, check_resources

    packed, _ = spec.packing_decision()
    packs = pack_plan(spec.expand(), spec.packing.max_members if packed else 1)
    _init_ray(address)
    check_resources(spec)
    task = ray.remote(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu)(time_two_epochs)
    largest: dict[str, Pack] = {}
    for pack in packs:
        kind = kind_of(pack.configs[0])
        if kind not in largest or len(pack) > len(largest[kind]):
            largest[kind] = pack
    futures = {
        kind: task.remote([c.to_dict() for c in p.configs], time.time()) for kind, p in largest.items()
    }
    timings = {}
    for kind, future in futures.items():
        start_s, first_s, epoch_s, measure_s, trained = ray.get(future)
        pack = largest[kind]
        timings[kind] = KindTiming(
            describe_kind(pack.configs[0]),
            len(pack),
            epoch_s,
            measure_s,
            max(first_s - epoch_s, 0.0),
            start_s,
            trained,
        )
    return packs, timings, estimate(packs, timings, _slots(spec), spec.resources.gpu)


def _slots(spec: Any) -> int:
    """Packs the cluster runs at once: max_concurrent, or fewer when CPUs or GPUs run out first."""
    import ray

    total = ray.cluster_resources()
    fits = [spec.max_concurrent]
    if spec.resources.cpu > 0:
        fits.append(math.floor(total.get("CPU", 0) / spec.resources.cpu))
    if spec.resources.gpu > 0:
        fits.append(math.floor(total.get("GPU", 0) / spec.resources.gpu))
    return max(min(fits), 1)
