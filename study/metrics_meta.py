"""Which way each comparable metric is better: the one definition the spec, registry and reports share.

Kept free of heavy imports so the CLI, the spec checks and the report builder
can all read it at no cost.
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["min", "max"]

# Study objectives (what "best trial" means) and the direction in which each is better.
OBJECTIVES: dict[str, Mode] = {
    "auroc": "max",
    "ap": "max",
    "synthetic_auroc": "max",
    "synthetic_auroc_tuned": "max",
    "alignment_loss": "min",
    "alignment_loss_tuned": "min",
    # Label-free per-trial metrics (study.selection.TRIAL_METRICS; listed, not imported, to keep this
    # module free of pandas/scipy; tests/test_selection.py checks they match).
    "synthetic_auroc_mean": "max",
    "synthetic_auroc_cutdiff": "max",
    "synthetic_auroc_cutpaste": "max",
    "synthetic_auroc_perlin": "max",
    "synthetic_auroc_intensity": "max",
    "synthetic_auroc_rotate": "max",
    "synthetic_auroc_mix": "max",
    "unlabelled_auroc": "max",
}
# Per-epoch metrics an early-stopping scheduler may compare across trials.
EARLY_STOPPING_METRICS: dict[str, Mode] = {"val_auroc": "max", "val_ap": "max"}
# Metrics computed from anomaly labels; every other objective is label-free.
LABEL_BASED = frozenset({"auroc", "ap", "val_auroc", "val_ap"})
# Per-epoch training losses: logged, never used to compare trials (an amplified loss is not comparable).
TRAINING_LOSSES = ("train_amp_loss", "train_base_loss")
# Per-defect-type test AUROC of MVTec-style folders: `auroc_defect_<type>` (study.evaluate.defect_aurocs).
DEFECT_PREFIX = "auroc_defect_"


def mode_of(metric: str) -> Mode:
    """`max` or `min`: the direction in which `metric` is better (an unknown `*loss*` is lower-better)."""
    known = OBJECTIVES.get(metric) or EARLY_STOPPING_METRICS.get(metric)
    if known:
        return known
    return "min" if "loss" in metric else "max"


def higher_is_better(metric: str) -> bool:
    return mode_of(metric) == "max"
