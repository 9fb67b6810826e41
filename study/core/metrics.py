"""Which way each comparable metric is better: the one definition the spec, registry and reports share.

Kept free of heavy imports so the CLI, the spec checks and the report builder
can all read it at no cost.
"""

from __future__ import annotations

from study.core.vocab import FAMILY_NAMES, MEAN_METRIC, UNLABELLED_METRIC, Direction, family_metric

Mode = Direction  # "min" or "max" (a `StrEnum`: equal to the strings Tune and Optuna take)
MIN, MAX = Direction.MIN, Direction.MAX

# Study objectives (what "best trial" means) and the direction in which each is better.
OBJECTIVES: dict[str, Mode] = {
    "auroc": MAX,
    "ap": MAX,
    "synthetic_auroc": MAX,
    "synthetic_auroc_tuned": MAX,
    "alignment_loss": MIN,
    "alignment_loss_tuned": MIN,
    # Label-free per-trial metrics (study.selection.TRIAL_METRICS; tests/test_selection.py checks they match).
    MEAN_METRIC: MAX,
    **{family_metric(name): MAX for name in FAMILY_NAMES},
    UNLABELLED_METRIC: MAX,
}
# Per-epoch metrics an early-stopping scheduler may compare across trials.
EARLY_STOPPING_METRICS: dict[str, Mode] = {"val_auroc": MAX, "val_ap": MAX}
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
    return MIN if "loss" in metric else MAX


def higher_is_better(metric: str) -> bool:
    return mode_of(metric) == MAX
