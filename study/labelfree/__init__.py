"""Label-free selection scores: what a trial is worth without labelled anomalies.

Modules: `stssad` (ST-SSAD's CutDiff patch, alignment loss and self-tuning),
`unlabelled` (held-out normals against the unlabelled pool: the test AUROC up
to an affine map), `perlin` (seeded Perlin noise), `families` (the synthetic-anomaly registry),
`calibration` (one severity per family and study, from the data alone) and
`trial_scores` (a trial's label-free metrics within a cost budget). Ranking
trials by these metrics is study/selection/rules.py's job.

Contract: nothing here receives test labels; the test pool enters as images only.
"""

from __future__ import annotations

from study.core.vocab import (  # the metrics' names
    FAMILY_PREFIX,
    MEAN_METRIC,
    UNLABELLED_METRIC,
    family_metric,
)
from study.labelfree.calibration import Calibration, calibrate_severity, reference_auroc, reference_scores
from study.labelfree.families import FAMILIES, Family, corrupt, get_family
from study.labelfree.perlin import fractal_noise, perlin_noise
from study.labelfree.stssad import (
    LabelFreeResult,
    PatchDraw,
    alignment_loss,
    cutdiff,
    draw_patches,
    embed_errors,
    label_free_scores,
    normalise_embeddings,
    patch_shape,
    score_and_embed,
    separation_auroc,
    soft_patch_mask,
    tune_augmentation,
)
from study.labelfree.trial_scores import Plan, label_free_metrics, plan_budget
from study.labelfree.unlabelled import unlabelled_auroc

__all__ = [
    "FAMILIES",
    "FAMILY_PREFIX",
    "MEAN_METRIC",
    "UNLABELLED_METRIC",
    "Calibration",
    "Family",
    "LabelFreeResult",
    "PatchDraw",
    "Plan",
    "alignment_loss",
    "calibrate_severity",
    "corrupt",
    "cutdiff",
    "draw_patches",
    "embed_errors",
    "family_metric",
    "fractal_noise",
    "get_family",
    "label_free_metrics",
    "label_free_scores",
    "normalise_embeddings",
    "patch_shape",
    "perlin_noise",
    "plan_budget",
    "reference_auroc",
    "reference_scores",
    "score_and_embed",
    "separation_auroc",
    "soft_patch_mask",
    "tune_augmentation",
    "unlabelled_auroc",
]
