"""Know the cost before launching: time one pack per kind for one epoch on the cluster, extrapolate.

Packs that share their pack key apart from the data (same architecture,
width, batch size, optimizer, epochs, measurement settings) cost about the
same per member, so one pack of each such kind is run for one epoch, as a Ray
task with the study's per-trial resources, on the cluster the study will use.
Its time splits into the epoch (data load, model build, one training epoch and
its validation: an upper bound of a later epoch) and the measurement after it
(detection, steepness, label-free). A whole pack then costs

    epochs x epoch time + measurement x (epochs if a budget scales it, else 1)

scaled by its member count (measurement is per member; training a stacked
model grows at most linearly), and the study costs that sum over packs spread
over the concurrent slots the cluster has. Solo studies are packs of one.
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
    epoch_s: float
    measure_s: float


@dataclass(frozen=True)
class Estimate:
    """What the whole study should cost."""

    pack_seconds: float  # sum over packs of each pack's run time
    longest_s: float  # the longest pack: no schedule ends before it
    slots: int  # packs (or trials) the cluster runs at once
    gpu_per_slot: float

    @property
    def wall_s(self) -> float:
        return max(self.pack_seconds / self.slots, self.longest_s)

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
    per_pack = epochs * timing.epoch_s + timing.measure_s * (epochs if budgeted else 1)
    return per_pack * pack_members / timing.members


def estimate(packs: list[Pack], timings: dict[str, KindTiming], slots: int, gpu_per_slot: float) -> Estimate:
    """The study's cost from the calibrated kinds: every pack's estimated time, spread over `slots`."""
    seconds = []
    for pack in packs:
        cfg = pack.configs[0]
        budgeted = cfg.landscape.budget > 0 or (cfg.label_free.enabled and bool(cfg.label_free.budget))
        seconds.append(pack_seconds(len(pack), timings[kind_of(cfg)], cfg.epochs, budgeted))
    return Estimate(sum(seconds), max(seconds, default=0.0), max(slots, 1), gpu_per_slot)


def time_one_epoch(configs: list[dict[str, Any]]) -> tuple[float, float]:
    """(epoch s, measurement s) of a pack trained for one epoch (runs where it is called: a Ray task)."""
    from study.packing import run_pack

    cfgs = [replace(TrialConfig.from_dict(c), epochs=1) for c in configs]
    t0 = time.perf_counter()
    marks: list[float] = []
    run_pack(cfgs, reporter=lambda epoch, rows: marks.append(time.perf_counter()))
    end = time.perf_counter()
    epoch_end = marks[0] if marks else end  # every member diverged: all of it was the epoch
    return epoch_end - t0, end - epoch_end


def calibrate(spec: Any, address: str | None = None) -> tuple[list[Pack], dict[str, KindTiming], Estimate]:
    """Run one pack of each kind for one epoch on the cluster; the plan, the timings and the estimate."""
    import ray

    from study.runner._cluster import _init_ray, check_resources

    packed, _ = spec.packing_decision()
    packs = pack_plan(spec.expand(), spec.packing.max_members if packed else 1)
    _init_ray(address)
    check_resources(spec)
    task = ray.remote(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu)(time_one_epoch)
    largest: dict[str, Pack] = {}
    for pack in packs:
        kind = kind_of(pack.configs[0])
        if kind not in largest or len(pack) > len(largest[kind]):
            largest[kind] = pack
    futures = {kind: task.remote([c.to_dict() for c in p.configs]) for kind, p in largest.items()}
    timings = {}
    for kind, future in futures.items():
        epoch_s, measure_s = ray.get(future)
        pack = largest[kind]
        timings[kind] = KindTiming(describe_kind(pack.configs[0]), len(pack), epoch_s, measure_s)
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
