"""Loss-landscape pictures of the few trials a report shows: 1-D slices and 2-D surfaces of the base loss.

Part of the steepness section. `landscape.npz` is downloaded for the baseline
of the best setting and the best trial of each amplified factor only (see
`reports.sections.showcase`), so a 1,000-trial study costs a few downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reports.render.section import Panel
from reports.sections.showcase import Shown, pick_baseline_and_best, pick_best_per_factor
from reports.source.extract import ArtifactLoader, Study

LANDSCAPE = "landscape.npz"
COLOURS = qualitative.Plotly


@dataclass(frozen=True)
class Slice1D:
    """Base loss along one filter-normalised direction of one trial."""

    role: str
    trial_id: str
    setting: str
    alphas: list[float]
    loss: list[float]
    rise: float  # mean loss at the ends of the slice minus loss at the centre


@dataclass(frozen=True)
class Surface2D:
    """Base loss on a 2-D grid of two filter-normalised directions."""

    role: str
    trial_id: str
    setting: str
    alphas: list[float]
    loss: list[list[float]]


@dataclass(frozen=True)
class SliceData:
    """The shown trials' slices and surfaces, and which of them lacked the artifact."""

    slices: list[Slice1D]
    surfaces: list[Surface2D]
    missing: list[str]  # "role (trial): landscape.npz" for the 1-D panel's trials without it
    surfaces_missing: list[str]  # the same for the 2-D panel's trials


def extract_slices(study: Study, artifacts: ArtifactLoader) -> SliceData:
    """Load `landscape.npz` of the baseline, the best trial and the best trial of each factor."""
    baseline, best = pick_baseline_and_best(study)
    shown = ([baseline] if baseline else []) + pick_best_per_factor(study)
    missing: list[str] = []
    slices = [s for s in (_slice(artifacts, t, missing) for t in _unique(shown)) if s is not None]
    surfaces_missing: list[str] = []
    pair = _unique([baseline, best])
    surfaces = [s for s in (_surface(artifacts, t, surfaces_missing) for t in pair) if s is not None]
    return SliceData(slices, surfaces, missing, surfaces_missing)


def draw_slices(data: SliceData) -> list[Panel]:
    """The 1-D slices panel and the 2-D surfaces panel (each says which artifacts were missing)."""
    missing = f" Missing artifacts: {'; '.join(data.missing)}." if data.missing else ""
    if data.slices:
        panels = [Panel("slices-1d", _slices_caption(data) + missing, _slices_figure(data))]
    else:
        panels = [
            Panel("slices-1d", f"No 1-D loss slice to show (no {LANDSCAPE} among the trials shown).{missing}")
        ]
    missing_2d = f" Missing artifacts: {'; '.join(data.surfaces_missing)}." if data.surfaces_missing else ""
    if data.surfaces:
        panels.append(Panel("surfaces-2d", _surfaces_caption(data) + missing_2d, _surfaces_figure(data)))
    else:
        panels.append(Panel("surfaces-2d", f"No 2-D loss surface to show.{missing_2d}"))
    return panels


def _unique(trials: list[Shown | None]) -> list[Shown]:
    seen, out = set(), []
    for t in trials:
        if t is not None and t.run_id not in seen:
            seen.add(t.run_id)
            out.append(t)
    return out


def _slice(artifacts: ArtifactLoader, trial: Shown, missing: list[str]) -> Slice1D | None:
    arrays = artifacts.npz(trial.run_id, LANDSCAPE)
    if arrays is None or "alphas_1d" not in arrays or "loss_1d" not in arrays:
        missing.append(f"{trial.role} ({trial.trial_id}): {LANDSCAPE}")
        return None
    alphas, loss = arrays["alphas_1d"].astype(float).ravel(), arrays["loss_1d"].astype(float).ravel()
    centre = int(np.argmin(np.abs(alphas)))
    rise = float((loss[0] + loss[-1]) / 2 - loss[centre])
    return Slice1D(trial.role, trial.trial_id, trial.setting, alphas.tolist(), loss.tolist(), rise)


def _surface(artifacts: ArtifactLoader, trial: Shown, missing: list[str]) -> Surface2D | None:
    arrays = artifacts.npz(trial.run_id, LANDSCAPE)
    if arrays is None:
        missing.append(f"{trial.role} ({trial.trial_id}): {LANDSCAPE}")
        return None
    if "loss_2d" not in arrays:
        missing.append(
            f"{trial.role} ({trial.trial_id}): no 2-D slice in its {LANDSCAPE} (landscape.grid_2d is 0, or "
            f"landscape.budget left no room for one at this trial's size; raise the budget to get it)"
        )
        return None
    loss = arrays["loss_2d"].astype(float)
    alphas = arrays.get("alphas_2d")
    if alphas is None or alphas.ndim != 1 or alphas.size != loss.shape[0]:
        alphas = np.linspace(-1.0, 1.0, loss.shape[0])
    return Surface2D(trial.role, trial.trial_id, trial.setting, alphas.astype(float).tolist(), loss.tolist())


def _slices_figure(data: SliceData) -> go.Figure:
    fig = go.Figure()
    for i, s in enumerate(data.slices):
        fig.add_trace(
            go.Scatter(
                x=np.array(s.alphas),
                y=np.array(s.loss),
                mode="lines",
                name=f"{s.role}: {s.setting}",
                line={"color": COLOURS[i % len(COLOURS)], "width": 3 if s.role.startswith("baseline") else 2},
            )
        )
    fig.update_layout(
        height=380, xaxis_title="α (filter-normalised direction)", yaxis_title="base loss", margin={"t": 20}
    )
    return fig


def _surfaces_figure(data: SliceData) -> go.Figure:
    titles = [f"{s.role}: {s.trial_id}" for s in data.surfaces]
    fig = make_subplots(rows=1, cols=len(data.surfaces), subplot_titles=titles, horizontal_spacing=0.1)
    log = all(np.min(s.loss) > 0 for s in data.surfaces)  # one shared log scale keeps a flat bowl readable
    grids = [np.log10(np.array(s.loss)) if log else np.array(s.loss) for s in data.surfaces]
    lo, hi = min(float(g.min()) for g in grids), max(float(g.max()) for g in grids)
    for i, (s, z) in enumerate(zip(data.surfaces, grids, strict=True), start=1):
        fig.add_trace(
            go.Contour(
                x=np.array(s.alphas),
                y=np.array(s.alphas),
                z=z,
                zmin=lo,
                zmax=hi,
                colorscale="Viridis",
                showscale=i == len(data.surfaces),
                colorbar={"title": {"text": "log10 base loss" if log else "base loss"}},
                name=s.role,
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="α₁", row=1, col=i)
        fig.update_yaxes(title_text="α₂", row=1, col=i)
    fig.update_layout(height=400, margin={"t": 40})
    return fig


def _slices_caption(data: SliceData) -> str:
    rises = "; ".join(f"{s.role} {s.rise:.3g}" for s in data.slices)
    return (
        "Base loss along one filter-normalised random direction through the final weights (α = 0), for the "
        "baseline of the best setting and the best trial of each amplified factor. A steeper bowl means a "
        f"larger rise of the loss at |α| = 1 over its value at α = 0: {rises}."
    )


def _surfaces_caption(data: SliceData) -> str:
    ranges = "; ".join(
        f"{s.role} ({s.setting}) {np.min(s.loss):.3g} to {np.max(s.loss):.3g}" for s in data.surfaces
    )
    return (
        "Base loss on a plane of two filter-normalised directions around the final weights, on one shared colour "
        f"scale (logarithmic when every loss is positive). Loss range over the grid: {ranges}."
    )
