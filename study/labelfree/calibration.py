"""Severity calibration: one severity per family and study, from the data alone.

Synthetic AUROC only ranks trials if it is not saturated: at a gross severity
every trained model scores ~1 (issue 12). The severity must also be the *same*
for every trial of a study, or trials would be judged on different exams. So it
is chosen without any model: the smallest severity at which a model-free
reference — the squared distance to the mean training image, the "no learning"
baseline — separates normal held-out images from their corrupted copies with
AUROC `target`. Trained models that beat that baseline then spread above the
target instead of piling up at 1. The choice depends only on the normal images,
the family, the target and the seed, so every trial of a study computes the
same severity (cached per process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from study.labelfree.families import corrupt, get_family
from study.labelfree.stssad import separation_auroc

Tensor = torch.Tensor

_CACHE: dict[tuple, Calibration] = {}


@dataclass(frozen=True)
class Calibration:
    """A family's calibrated severity and the reference AUROC it gives."""

    family: str
    severity: float
    reference_auroc: float
    reached: bool  # False: even severity 1 stays below the target (the reference cannot see this family)


def reference_scores(x: Tensor, mean_image: Tensor) -> Tensor:
    """Model-free anomaly score: mean squared distance of each image to the mean training image."""
    return (x - mean_image).pow(2).flatten(1).mean(1)


def reference_auroc(normal: Tensor, mean_image: Tensor, family: str, severity: float, seed: int) -> float:
    """AUROC of the model-free reference on normal images against their `family` copies."""
    aug = corrupt(family, normal, severity, seed)
    return separation_auroc(reference_scores(normal, mean_image), reference_scores(aug, mean_image))


def _reference_curve(normal: Tensor, mean_image: Tensor, family: str, seed: int) -> Callable[[float], float]:
    """severity -> reference AUROC; a linear family is drawn once at severity 1 and scaled (same values)."""
    if not get_family(family).linear:
        return lambda severity: reference_auroc(normal, mean_image, family, severity, seed)
    clean = reference_scores(normal, mean_image)
    delta = corrupt(family, normal, 1.0, seed) - normal
    return lambda severity: separation_auroc(clean, reference_scores(normal + severity * delta, mean_image))


def calibrate_severity(
    normal: Tensor, mean_image: Tensor, family: str, *, target_auroc: float, seed: int, iters: int = 7
) -> Calibration:
    """Smallest severity (bisection to 2^-iters) whose reference AUROC reaches `target_auroc`.

    Assumes the reference AUROC grows with severity (it does for every shipped
    family up to sampling noise; the same seed is used at every step, so the
    noise is common to all steps). When severity 1 stays below target the family
    is used at severity 1 and `reached` is False.
    """
    key = (family, target_auroc, seed, iters, _fingerprint(normal), _fingerprint(mean_image))
    if key in _CACHE:
        return _CACHE[key]
    curve = _reference_curve(normal, mean_image, family, seed)
    top = curve(1.0)
    if top < target_auroc:
        result = Calibration(family, 1.0, top, False)
    else:
        lo, hi, at_hi = 0.0, 1.0, top
        for _ in range(iters):
            mid = (lo + hi) / 2
            value = curve(mid)
            if value >= target_auroc:
                hi, at_hi = mid, value
            else:
                lo = mid
        result = Calibration(family, hi, at_hi, True)
    _CACHE[key] = result
    return result


def _fingerprint(x: Tensor) -> tuple:
    """Cheap content key of a tensor: shape and two moments (float64)."""
    d = x.detach().double()
    return (tuple(x.shape), str(x.device), float(d.sum()), float(d.pow(2).sum()))
