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

How the runner should wire it (not done yet):
- `pack_plan(trial_configs, max_members)` groups the expanded grid by
  `pack_key`; `max_members` comes from the spec's `packing.max_members`
  (memory bound: K x batch activations must fit the device).
- One Tune trial per pack: its config carries the member configs (and the
  pack id); the trainable calls `run_pack(configs, reporter=...)`, reports one
  result per epoch holding every member's metrics (keyed by member index) and
  saves each member's `TrialResult` into its own sub-folder of the checkpoint.
- The driver callback opens one MLflow child run per member, with the
  member's params exactly as for a solo trial plus a tag `lamp.pack_id`
  (`Pack.pack_id`), logs each member's per-epoch metrics from the pack's
  result rows and its final result from its sub-folder; a member that diverged
  is a child run with status `diverged`, the others finish normally.
- Resume: a pack restarts from epoch 1 when cut (no stacked checkpoint yet);
  search algorithms that propose one config at a time (TPE) and ASHA's
  per-trial stopping do not fit packs as they stand.
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
