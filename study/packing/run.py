"""Train a pack of trials as one stacked model, then measure each member as a solo trial.

Seeded equivalence with `study.trial.run_trial`: member k's weights come from
`torch.manual_seed(seed_k)` then `build_model` (what run_trial does; data
loading draws no torch randomness), and its batches from its own generator
seeded with seed_k and `study.training.train.batches`, so it starts from the weights
and sees the batches of the solo trial with its config. Its loss is its own
term of the pack's summed objective (d sum / d theta_k = d g_k / d theta_k),
and the stacked optimisers (study.packing.optim) replay torch.optim per
member. After training each finished member is unstacked into its own
nn.Module and measured by `study.trial.measure_trained`, the code a solo trial
ends with.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from study.core.config import TrialConfig
from study.data import OneClassData, load_dataset
from study.packing.objective import PackObjective
from study.packing.optim import build_stacked_optimizer
from study.packing.plan import check_packable
from study.packing.stack import StackedModel
from study.training.evaluate import detection_metrics
from study.training.models import build_model
from study.training.train import batches, resolve_device
from study.trial import TrialResult, diverged_metrics, evaluation_split, measure_trained, model_meta

Tensor = torch.Tensor

# After every epoch: (epoch, {member index: that epoch's metrics}) for the members still training.
PackReporter = Callable[[int, dict[int, dict[str, float]]], None]


@dataclass
class MemberOutcome:
    """How training ended for one member (index into the pack's configs)."""

    history: list[dict[str, float]] = field(default_factory=list)
    train_time_s: float = 0.0  # the member's share of the pack's training time
    diverged_epoch: int | None = None
    diverged_value: float | None = None


@dataclass
class PackTraining:
    """Outcome of `train_pack`: per-member outcomes and the trained stack of the finished members."""

    outcomes: list[MemberOutcome]
    stack: StackedModel
    finished: list[int]  # member index of each stack slot, in slot order


def run_pack(
    configs: Sequence[TrialConfig | dict[str, Any]], *, reporter: PackReporter | None = None
) -> list[TrialResult]:
    """Train and measure trials that share a pack key; one `TrialResult` per config, in order.

    Each result has the contract of `study.trial.run_trial`'s: a finished member
    has detection, steepness and label-free metrics, scores, model state and
    history; a diverged one its divergence epoch and value. `train_time_s` is
    the member's share of the pack's training time (epoch time / members then
    training). Raises ValueError when the configs cannot share a pack.
    """
    cfgs = [c if isinstance(c, TrialConfig) else TrialConfig.from_dict(c) for c in configs]
    check_packable(cfgs)
    lead = cfgs[0]
    device = resolve_device(lead.device)
    data = load_dataset(lead.data)
    meta = model_meta(lead, data)
    models = []
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)  # as run_trial: the seed fixes the initial weights
        models.append(build_model(**meta))
    stack = StackedModel.from_modules(models, device)
    training = train_pack(stack, data, cfgs, device, reporter=reporter)

    results: list[TrialResult | None] = [None] * len(cfgs)
    for k, (cfg, out) in enumerate(zip(cfgs, training.outcomes, strict=True)):
        if out.diverged_epoch is not None:
            metrics = {"epochs_run": float(out.diverged_epoch), "train_time_s": out.train_time_s}
            metrics |= diverged_metrics(out.diverged_epoch, out.diverged_value)
            results[k] = TrialResult(cfg, "diverged", metrics, out.history, model_meta=meta)
    for slot, k in enumerate(training.finished):
        model = build_model(**meta).to(device)
        model.load_state_dict(training.stack.member_state(slot))
        trained = {"epochs_run": float(cfgs[k].epochs), "train_time_s": training.outcomes[k].train_time_s}
        results[k] = measure_trained(model, data, cfgs[k], device, trained, training.outcomes[k].history)
    return results


def train_pack(
    stack: StackedModel,
    data: OneClassData,
    cfgs: Sequence[TrialConfig],
    device: torch.device,
    *,
    reporter: PackReporter | None = None,
) -> PackTraining:
    """Train the stacked members of `cfgs` (one pack) on `data`; diverged members leave the stack.

    A member whose epoch-mean base or amplified loss is not finite is recorded
    `diverged` at that epoch (as study.training.train.train records a solo trial) and
    dropped from the stack; the others go on untouched.
    """
    lead = cfgs[0]
    members = list(range(len(cfgs)))  # member index of each stack slot
    hyper = {
        name: torch.tensor([float(getattr(c, name)) for c in cfgs], dtype=torch.float64)
        for name in ("lr", "momentum", "weight_decay")
    }
    optimizer = build_stacked_optimizer(lead.optimizer, device, **hyper)
    factors = torch.tensor([c.factor for c in cfgs], dtype=torch.float32, device=device)
    objective = PackObjective([c.metric for c in cfgs], [c.amplification for c in cfgs], factors)
    gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    outcomes = [MemberOutcome() for _ in cfgs]
    validation = _Validation(data, lead, device)
    train_x = data.train.to(device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if lead.bf16 and device.type == "cuda"
        else contextlib.nullcontext()
    )
    stack.train()
    for epoch in range(1, lead.epochs + 1):
        t0 = time.perf_counter()
        batch_order = [batches(len(train_x), lead.batch_size, gens[k], device) for k in members]
        base_mean, amp_mean = _train_epoch(stack, objective, optimizer, train_x, batch_order, autocast)
        share = (time.perf_counter() - t0) / len(members)
        keep = _record_epoch(outcomes, members, epoch, base_mean, amp_mean, share)
        if len(keep) < len(members):
            index = torch.tensor(keep, dtype=torch.long, device=device)
            stack.keep(index)
            optimizer.keep(index)
            objective = objective.keep(index)
            members = [members[s] for s in keep]
        if not members:
            break
        t0 = time.perf_counter()
        per_member = validation(stack, objective, epoch)
        share = (time.perf_counter() - t0) / len(members)
        for slot, k in enumerate(members):
            outcomes[k].history[-1].update(per_member[slot])
            outcomes[k].train_time_s += share
        if reporter is not None:
            reporter(epoch, {k: outcomes[k].history[-1] for k in members})
    return PackTraining(outcomes, stack, members)


def _train_epoch(
    stack: StackedModel,
    objective: PackObjective,
    optimizer: Any,
    train_x: Tensor,
    batch_order: list[Iterator[Tensor]],
    autocast: Any,
) -> tuple[list[float], list[float]]:
    """One epoch of every member at once; (base, amplified) epoch-mean losses per stack slot.

    The loss stepped is the sum of the members' objectives, so no member scales another's gradient.
    """
    base_sum = torch.zeros(len(batch_order), device=train_x.device)
    amp_sum = torch.zeros(len(batch_order), device=train_x.device)
    n_batches = 0
    for idx in zip(*batch_order, strict=True):
        x = train_x[torch.stack(idx)]  # [K, B, C, H, W]
        with autocast:
            x_hat = stack(x)
        base, amp = objective(x_hat.float(), x)
        stack.zero_grad()
        amp.sum().backward()
        optimizer.step(stack.params)
        base_sum += base.detach()
        amp_sum += amp.detach()
        n_batches += 1
    return (base_sum / n_batches).tolist(), (amp_sum / n_batches).tolist()


def _record_epoch(
    outcomes: list[MemberOutcome],
    members: list[int],
    epoch: int,
    base_mean: list[float],
    amp_mean: list[float],
    share: float,
) -> list[int]:
    """Append each member's losses, or record it `diverged` at this epoch; the slots that go on."""
    keep = []
    for slot, k in enumerate(members):
        outcomes[k].train_time_s += share
        if math.isfinite(base_mean[slot]) and math.isfinite(amp_mean[slot]):
            keep.append(slot)
            outcomes[k].history.append({"train_base_loss": base_mean[slot], "train_amp_loss": amp_mean[slot]})
        else:
            bad = amp_mean[slot] if not math.isfinite(amp_mean[slot]) else base_mean[slot]
            outcomes[k].diverged_epoch, outcomes[k].diverged_value = epoch, bad
    return keep


class _Validation:
    """The per-epoch metrics run_trial records, for all members in one batched forward per split."""

    def __init__(self, data: OneClassData, cfg: TrialConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.val_x = data.val.to(device)
        eval_idx, _ = evaluation_split(data, cfg)  # the solo trial's validation subset
        self.eval_x = data.test[torch.from_numpy(eval_idx)].to(device)
        self.eval_y = data.test_labels.numpy()[eval_idx]

    def __call__(self, stack: StackedModel, objective: PackObjective, epoch: int) -> list[dict[str, float]]:
        val = _scores(stack, objective, self.val_x)
        out = [{"val_base_loss": float(s.mean())} for s in val]
        every = self.cfg.eval_every
        if epoch == self.cfg.epochs or (every and epoch % every == 0):  # as run_trial: 0 = only at the end
            for row, s in zip(out, _scores(stack, objective, self.eval_x), strict=True):
                m = detection_metrics(s, self.eval_y)
                row |= {"val_auroc": m["auroc"], "val_ap": m["ap"]}
        return out


def _scores(stack: StackedModel, objective: PackObjective, x: Tensor) -> np.ndarray:
    """Anomaly scores [K, N] (float64) of every member on the same x, as study.training.evaluate.anomaly_scores."""
    return stack.score_shared(x, lambda x_hat, xb: objective.scores(x_hat.float(), xb)).double().cpu().numpy()
