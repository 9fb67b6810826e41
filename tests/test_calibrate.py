"""Cost estimates before launching: the extrapolation's arithmetic, and one real calibration on local Ray."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from study.packing import pack_plan
from study.runner._calibrate import KindTiming, calibrate, estimate, kind_of, pack_seconds
from study.spec import load_spec

TIMING = KindTiming("k", members=8, epoch_s=2.0, measure_s=3.0)


def test_a_pack_costs_its_epochs_and_its_measurement_per_member() -> None:
    assert pack_seconds(8, TIMING, epochs=5, budgeted=False) == pytest.approx(5 * 2.0 + 3.0)
    assert pack_seconds(8, TIMING, epochs=5, budgeted=True) == pytest.approx(
        5 * (2.0 + 3.0)
    )  # budget grows with training
    assert pack_seconds(4, TIMING, epochs=5, budgeted=False) == pytest.approx((5 * 2.0 + 3.0) / 2)
    # measured after two epochs, a budgeted measurement is two epochs' share of the work
    two = dataclasses.replace(TIMING, trained=2)
    assert pack_seconds(8, two, epochs=5, budgeted=True) == pytest.approx(5 * 2.0 + 3.0 * 5 / 2)


SPEC = """
name: cal
dataset: {name: digits, normal_classes: 0, test_limit: 200}
fixed: {epochs: 3, width: 4, latent_dim: 4, eval_limit: 100, batch_size: 32}
dimensions:
  factor: {grid: [1, 10, 100]}
  arch: {grid: [mlp_ae, conv_ae]}
seeds: [0, 1]
packing: {enabled: true, max_members: 4}
max_concurrent: 2
landscape: {batch_size: 16, power_iters: 2, hutchinson_probes: 1, grid_1d: 3, grid_2d: 0}
label_free: {enabled: false}
"""


def test_estimate_spreads_every_pack_over_the_slots_and_never_beats_the_longest(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    packs = pack_plan(spec.expand(), spec.packing.max_members)
    timings = {kind_of(p.configs[0]): TIMING for p in packs}
    one, many = estimate(packs, timings, 1, 0.5), estimate(packs, timings, 100, 0.5)
    per_pack = [pack_seconds(len(p), TIMING, 3, budgeted=True) for p in packs]
    assert (
        one.pack_seconds == pytest.approx(sum(per_pack)) == one.wall_s
    )  # nothing paid once: TIMING has none
    assert many.wall_s == pytest.approx(max(per_pack))  # more slots than packs: the longest pack decides
    assert one.gpu_hours == pytest.approx(sum(per_pack) * 0.5 / 3600)


@pytest.fixture
def own_ray() -> Iterator[None]:
    """Ray started here stops here: later tests check that validate alone never starts Ray."""
    import ray

    running = ray.is_initialized()
    yield
    if not running:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.usefixtures("own_ray")
def test_calibration_times_one_pack_per_architecture_on_ray(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    packs, timings, est = calibrate(spec)
    assert {t.label.split()[0] for t in timings.values()} == {
        "mlp_ae",
        "conv_ae",
    }  # one kind per architecture
    assert all(
        t.members == spec.packing.max_members and t.epoch_s > 0 and t.measure_s > 0 and t.start_s > 0
        for t in timings.values()
    )
    assert len(packs) == 4 and est.slots == spec.max_concurrent
    # three epochs per pack: the estimate cannot be less than three calibrated epochs of each pack
    assert est.pack_seconds >= sum(3 * t.epoch_s * 2 for t in timings.values())
    # paid once: the quickest worker start and the coldest first epoch's excess, before the packs' share
    once = min(t.start_s for t in timings.values()) + max(t.cold_s for t in timings.values())
    assert est.once_s == pytest.approx(once) and est.wall_s >= once + est.pack_seconds / est.slots


@pytest.mark.slow
@pytest.mark.usefixtures("own_ray")
def test_validate_calibrate_prints_the_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from study.cli import EXIT_OK, main

    path = tmp_path / "cal.yaml"
    path.write_text(SPEC)
    assert main(["validate", str(path), "--no-data", "--calibrate"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "12 trials in 4 packs of 2-4 members" in out
    assert "calibrate two epochs of the largest pack of each of 2 kinds" in out
    assert "estimate  4 packs, 2 at once: about" in out
