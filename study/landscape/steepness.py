"""A trial's steepness measurement, sized by a budget relative to its training.

The measures themselves live in `study.landscape`; this module decides how
much of them a trial can afford and runs them on the trial's held-out batch.

Why a budget: with fixed counts the measurement cost is constant while the
training cost scales with the training set and epochs, so on a small folder of
images (a few hundred samples) the measurement outweighed a third of the
trial. `landscape.budget` is the measurement's work as a fraction of the
trial's training work; the configured counts are maxima.

Why work units and not seconds: timing the machine would make the counts, and
so the numbers, of two runs with the same seed differ on a loaded machine.
Work is counted in forward passes of one sample (eval mode, no gradient), with
the relative costs below, measured with bench/measure_cost.py on CPU; a plan
is then a pure function of the config and the data sizes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from study.core.config import LandscapeConfig, TrialConfig
from study.data import OneClassData
from study.landscape import measure_steepness
from study.landscape.slices import slice_forwards
from study.training.losses import get_amplification, get_metric

# Work per sample, in forward passes (CPU, conv_ae, 28-128 px; bench/measure_cost.py).
TRAIN_STEP_WORK = 3.0  # one training step: forward, backward, optimiser update
GRAPH_WORK = 3.0  # the gradient graph that Hessian-vector products reuse
HVP_WORK = 4.5  # one Hessian-vector product on that graph
MIN_BATCH = 8  # below this the batch loss is too noisy to call a landscape


@dataclass(frozen=True)
class MeasurementPlan:
    """The counts one trial measures with (each at most the configured one)."""

    batch_size: int
    power_iters: int
    hutchinson_probes: int
    grid_1d: int
    grid_2d: int

    def work(self) -> float:
        """Upper bound of the measurement's work (all Lanczos steps run), in sample forwards."""
        hvps = self.power_iters + self.hutchinson_probes
        per_sample = (GRAPH_WORK + HVP_WORK * hvps if hvps else 1.0) + slice_forwards(
            self.grid_1d, self.grid_2d
        )
        return self.batch_size * per_sample


def training_work(cfg: TrialConfig, data: OneClassData, epochs_run: int) -> float:
    """What the trial's training did, in sample forwards: steps plus per-epoch validation."""
    evals = epochs_run // cfg.eval_every + (epochs_run % cfg.eval_every > 0) if cfg.eval_every else 0
    per_epoch = len(data.train) * TRAIN_STEP_WORK + len(data.val)
    return epochs_run * per_epoch + evals * min(cfg.eval_limit, len(data.test))


def plan_measurement(lc: LandscapeConfig, budget_work: float, available: int) -> MeasurementPlan:
    """The largest plan on a fixed ladder whose work fits `budget_work`.

    Coarsening order, each step only if the previous does not fit with a batch
    of at least half the configured one: the full counts; a 5 x 5 2-D grid, 9
    1-D points, at most 4 probes; then no 2-D grid and 5 1-D points. The
    Lanczos step limit is never cut (a cut would only leave sharpness
    unconverged); the batch takes up what is left, down to MIN_BATCH. A
    budget of 0 means the configured counts.

    Args:
        lc: the configured counts (maxima) and budget.
        budget_work: lc.budget times the training work, in sample forwards.
        available: held-out samples there are for the batch.
    """
    if available < 1 or lc.batch_size < 1:
        msg = (
            f"landscape batch of {min(available, lc.batch_size)} samples ({available} held-out normal samples, "
            f"landscape.batch_size {lc.batch_size}): raise data.val_fraction or landscape.batch_size"
        )
        raise ValueError(msg)
    full = MeasurementPlan(
        min(lc.batch_size, available), lc.power_iters, lc.hutchinson_probes, lc.grid_1d, lc.grid_2d
    )
    if lc.budget <= 0:
        return full
    coarse = replace(
        full,
        hutchinson_probes=min(full.hutchinson_probes, 4),
        grid_1d=min(full.grid_1d, 9),
        grid_2d=min(full.grid_2d, 5),
    )
    minimal = replace(
        coarse, hutchinson_probes=min(full.hutchinson_probes, 4), grid_1d=min(full.grid_1d, 5), grid_2d=0
    )
    floor = max(min(MIN_BATCH, full.batch_size), full.batch_size // 2)
    for plan, lowest in ((full, floor), (coarse, floor), (minimal, min(MIN_BATCH, full.batch_size))):
        per_sample = plan.work() / plan.batch_size
        fits = min(full.batch_size, math.floor(budget_work / per_sample))
        if fits >= lowest or plan is minimal:
            return replace(plan, batch_size=max(fits, lowest))
    raise AssertionError("unreachable: the minimal plan always returns")


def trial_steepness(
    model: nn.Module, data: OneClassData, cfg: TrialConfig, device: torch.device, epochs_run: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Steepness of the base loss and of the amplified objective on a fixed held-out batch.

    The amplified objective g(L) of the same batch-mean base loss L is derived
    from L's measurement exactly (`measure_steepness` transforms), so it costs
    nothing extra. Logs the plan (`steepness_batch_size`, ...) and the time.
    """
    t0 = time.perf_counter()
    lc = cfg.landscape
    plan = plan_measurement(lc, lc.budget * training_work(cfg, data, epochs_run), len(data.val))
    order = torch.randperm(len(data.val), generator=torch.Generator().manual_seed(cfg.seed))
    x = data.val[order[: plan.batch_size].sort().values].to(device)  # fixed seeded held-out batch
    amplify, metric = get_amplification(cfg.amplification).apply, get_metric(cfg.metric)
    transforms = {"amp_": lambda loss: amplify(loss, cfg.factor, metric.upper)} if lc.amplified else {}
    result = measure_steepness(
        model,
        x,
        metric.loss,
        transforms=transforms,
        seed=cfg.seed,
        power_iters=plan.power_iters,
        power_tol=lc.power_tol,
        hutchinson_probes=plan.hutchinson_probes,
        grid_1d=plan.grid_1d,
        grid_2d=plan.grid_2d,
    )
    metrics = dict(result.metrics)
    metrics |= {
        "steepness_batch_size": float(plan.batch_size),
        "steepness_probes": float(plan.hutchinson_probes),
        "steepness_grid_1d": float(plan.grid_1d),
        "steepness_grid_2d": float(plan.grid_2d),
        "steepness_time_s": time.perf_counter() - t0,
    }
    return result.arrays, metrics
