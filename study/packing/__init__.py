"""Packed trials: many trial configurations trained as one stacked model.

On a GPU a small autoencoder trained alone is kernel-launch bound; K trials
that differ only in per-member hyperparameters (`plan.BATCHABLE`: amplification
form, factor, base metric, lr, momentum, weight decay, seed) run one
forward/backward/optimizer step for all K instead (stack.py says how and why
torch.func). Each member is still a trial: `run_pack(configs)` returns one
`study.trial.TrialResult` per config with run_trial's contract, and a member
equals the solo trial of its config up to float rounding (tests/test_packed.py).

Modules: `plan` (pack key, `pack_plan`), `stack` (the stacked model),
`objective` (per-member losses), `optim` (per-member optimiser steps), `run`
(training loop, `run_pack`).

How the runner uses it (study/runner/_packed.py): `pack_plan(trials,
spec.packing.max_members)` groups a study's trials; one Tune trial runs
`run_pack` per pack, reports every member's epochs in one row and saves each
member's `TrialResult` in its own folder of the final checkpoint; the driver
gives each member its own MLflow child run (tag `lamp.pack_id`). A cut pack
restarts from epoch 1 (no stacked checkpoint); TPE and ASHA do not fit packs
and are refused with them (study/spec/_checks.py).
"""

from __future__ import annotations

from study.packing.plan import (
    BATCHABLE,
    DEFAULT_MAX_MEMBERS,
    Pack,
    check_packable,
    pack_key,
    pack_key_fields,
    pack_plan,
)
from study.packing.run import PackReporter, run_pack, train_pack

__all__ = [
    "BATCHABLE",
    "DEFAULT_MAX_MEMBERS",
    "Pack",
    "PackReporter",
    "check_packable",
    "pack_key",
    "pack_key_fields",
    "pack_plan",
    "run_pack",
    "train_pack",
]
