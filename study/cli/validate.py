"""`lamp-study validate`: a one-screen summary of a study file (trials, pack plan, data), and its cost."""

from __future__ import annotations

from typing import Any

from study.core.errors import LampError


def print_validation(path: str, *, no_data: bool, calibrate: bool, address: str | None) -> None:
    """The spec, its pack plan, optionally a calibration on Ray, and its data (errors raise LampError)."""
    from study.spec import load_spec

    spec = load_spec(path)
    n = spec.n_trials
    print(f"{path}: ok")
    print(
        f"  study    {spec.name}: {spec.search.algorithm} search, {n if n is not None else 'open-ended'} trials, "
        f"seeds {spec.seeds}, objective {spec.objective.metric} ({spec.objective.mode})"
    )
    _print_packing(spec)
    if not no_data:  # before calibrating: a missing file fails here in a second, not in a Ray task
        _print_data(spec)
    if calibrate:
        _print_calibration(spec, address)


def _print_data(spec: Any) -> None:
    """Open every dataset setting (the first 8 described): what the trials will read."""
    from study.data import load_dataset
    from study.data.summary import describe

    configs = spec.data_configs()
    for i, cfg in enumerate(configs[:8]):
        lines = describe(cfg, load_dataset(cfg))
        print(f"  {'data' if i == 0 else '':<8} {lines[0]}")
        for line in lines[1:]:
            print(f"  {'':<8}   {line}")
    if len(configs) > 8:
        print(f"  ... and {len(configs) - 8} more dataset settings")


def _print_packing(spec: Any) -> None:
    """Whether trials run packed and, for a trial list, the pack plan."""
    packed, why = spec.packing_decision()
    if not packed:
        print(f"  packing  off ({why})")
        return
    from study.packing.plan import describe_plan, pack_plan

    configs = spec.expand()
    plan = describe_plan(pack_plan(configs, spec.packing.max_members), configs)
    print(f"  packing  on ({why}): {plan}")


def _print_calibration(spec: Any, address: str | None) -> None:
    """Two epochs of one pack per kind on the cluster, and the whole study's estimated cost."""
    from study.runner import calibrate

    if spec.search.algorithm == "tpe":
        raise LampError(
            "--calibrate needs the study's trial list, and tpe proposes trials as it runs; use grid or random"
        )
    packs, timings, est = calibrate(spec, address)
    print(f"  calibrate two epochs of the largest pack of each of {len(timings)} kinds, on the cluster:")
    for t in timings.values():
        print(
            f"  {'':<8}   {t.label}: {t.members} members, worker start {t.start_s:.1f} s, first epoch "
            f"{t.epoch_s + t.cold_s:.1f} s, later epochs {t.epoch_s:.1f} s, measurement {t.measure_s:.1f} s"
        )
    gpu = f", {est.gpu_hours:.2f} GPU-hours" if spec.resources.gpu else ""
    print(
        f"  estimate  {len(packs)} {'packs' if len(packs) < spec.n_trials else 'trials'}, {est.slots} at once: "
        f"about {_duration(est.wall_s)} wall{gpu} ({_duration(est.once_s)} once, {_duration(est.pack_seconds)} "
        f"of pack time; "
        f"scaled to every pack as study/runner/_calibrate.py says)"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
