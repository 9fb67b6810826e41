"""How steepness is measured: Hessian top eigenvalue and trace, loss slices, and each trial's budget.

`hessian` (Hessian-vector products, Lanczos, Hutchinson), `slices`
(filter-normalised directions and the loss along them), `measure` (the
steepness of a trained model's objective) and `steepness` (what a trial
measures within its compute budget).
"""

from __future__ import annotations

from study.landscape.measure import SteepnessResult, measure_steepness
from study.landscape.steepness import MeasurementPlan, plan_measurement, trial_steepness

__all__ = ["MeasurementPlan", "SteepnessResult", "measure_steepness", "plan_measurement", "trial_steepness"]
