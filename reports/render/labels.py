"""Short human labels for trials and metrics, shared by captions, tables and hover text."""

from __future__ import annotations

import math

import pandas as pd

from reports.stats.aggregate import fmt_factor
from study.core.metrics import OBJECTIVES, higher_is_better

# Params a reader needs to recognise a trial, in reading order.
CORE_PARAMS = ("arch", "optimizer", "metric", "amplification", "factor", "lr", "twin_of", "seed")

HIGHER_IS_BETTER = {m: higher_is_better(m) for m in OBJECTIVES}


def describe(row: pd.Series) -> str:
    """`conv_ae sgd ssim exp λ=10 lr=0.001 seed 1` (twins say `twin of λ=10`)."""
    parts: list[str] = []
    for key in ("arch", "optimizer", "metric", "amplification"):
        if key in row and isinstance(row[key], str):
            parts.append(row[key])
    if _finite(row.get("factor")):
        parts.append(f"λ={fmt_factor(float(row['factor']))}")
    if _finite(row.get("lr")):
        parts.append(f"lr={float(row['lr']):.3g}")
    if _finite(row.get("twin_of")) and float(row["twin_of"]) > 0:
        parts.append(f"(twin of λ={fmt_factor(float(row['twin_of']))})")
    if _finite(row.get("seed")):
        parts.append(f"seed {int(row['seed'])}")
    return " ".join(parts) or str(row.get("trial_id", "?"))


def fmt_p(p: float) -> str:
    """A p-value for prose: `p = 0.003`, `p = 2.1e-05`, `p < 1e-300` (underflow)."""
    if not math.isfinite(p):
        return "p n/a"
    if p == 0.0:
        return "p < 1e-300"
    return f"p = {p:.2g}" if p < 0.001 else f"p = {p:.3f}"


def _finite(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
