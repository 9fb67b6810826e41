"""Score-distribution section: normal vs anomalous reconstruction errors of the baseline and the best trial.

Histograms are computed here (shared bins, one share per class) so the page
carries a few hundred numbers instead of every test score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import roc_auc_score

from reports.render.section import Panel
from reports.sections.showcase import Shown, pick_baseline_and_best
from reports.source.extract import ArtifactLoader, Study

SCORES = "scores.npz"
N_BINS = 40


@dataclass(frozen=True)
class ScoreHistogram:
    """Per-class share of test samples in each bin, for one trial."""

    role: str
    trial_id: str
    setting: str
    normal: list[float]  # share of normal samples per bin (sums to 1)
    anomalous: list[float]
    n_normal: int
    n_anomalous: int
    auroc: float  # AUROC of these scores (NaN when a class is empty)
    above_p95: float  # share of anomalies scoring above the 95th percentile of normal scores


@dataclass(frozen=True)
class ScoresData:
    """Histograms on shared bin edges (of log10 score when every score is positive)."""

    log10: bool
    edges: list[float]
    histograms: list[ScoreHistogram]
    missing: list[str]  # "role (trial): scores.npz"


def extract_scores(study: Study, artifacts: ArtifactLoader) -> ScoresData:
    """Load `scores.npz` of the baseline and the best trial and bin both classes."""
    return histograms_of([t for t in pick_baseline_and_best(study) if t is not None], artifacts)


def histograms_of(trials: list[Shown], artifacts: ArtifactLoader) -> ScoresData:
    """Per-class histograms of these trials' test scores on shared bins (the drill-down names its own)."""
    shown: list[Shown] = []
    for t in trials:
        if t is not None and t.run_id not in {s.run_id for s in shown}:
            shown.append(t)
    loaded, missing = [], []
    for t in shown:
        arrays = artifacts.npz(t.run_id, SCORES)
        if arrays is None or "scores" not in arrays or "labels" not in arrays:
            missing.append(f"{t.role} ({t.trial_id}): {SCORES}")
            continue
        scores = arrays["scores"].astype(float).ravel()
        labels = arrays["labels"].astype(int).ravel()
        # the reported test part only (older runs hold no mask: all of it)
        keep = np.isfinite(scores) & arrays.get("test_part", np.ones_like(scores, dtype=bool)).ravel()
        loaded.append((t, scores[keep], labels[keep]))
    if not loaded:
        return ScoresData(False, [], [], missing)
    log10 = all((s > 0).all() for _, s, _ in loaded)
    values = [np.log10(s) if log10 else s for _, s, _ in loaded]
    everything = np.concatenate(values)
    edges = np.linspace(everything.min(), everything.max(), N_BINS + 1) if everything.size else np.zeros(2)
    histograms = [
        _histogram(t, v, labels, s, edges) for (t, s, labels), v in zip(loaded, values, strict=True)
    ]
    return ScoresData(log10, edges.tolist(), histograms, missing)


def draw_scores(data: ScoresData) -> list[Panel]:
    """Overlaid per-class histograms, one panel per shown trial."""
    missing = f" Missing artifacts: {'; '.join(data.missing)}." if data.missing else ""
    if not data.histograms:
        return [
            Panel(
                "histograms",
                f"No test-score distribution to show (no {SCORES} among the trials shown).{missing}",
            )
        ]
    return [Panel("histograms", _caption(data) + missing, _figure(data))]


def _histogram(
    t: Shown, values: np.ndarray, labels: np.ndarray, raw: np.ndarray, edges: np.ndarray
) -> ScoreHistogram:
    normal, anomalous = values[labels == 0], values[labels == 1]
    has_both = normal.size > 0 and anomalous.size > 0
    return ScoreHistogram(
        role=t.role,
        trial_id=t.trial_id,
        setting=t.setting,
        normal=_share(normal, edges),
        anomalous=_share(anomalous, edges),
        n_normal=int(normal.size),
        n_anomalous=int(anomalous.size),
        auroc=float(roc_auc_score(labels, raw)) if has_both else float("nan"),
        above_p95=float((raw[labels == 1] > np.percentile(raw[labels == 0], 95)).mean())
        if has_both
        else float("nan"),
    )


def _share(values: np.ndarray, edges: np.ndarray) -> list[float]:
    counts, _ = np.histogram(values, bins=edges)
    return (counts / max(values.size, 1)).tolist()


def _figure(data: ScoresData) -> go.Figure:
    edges = np.array(data.edges)
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0]) if edges.size > 1 else 1.0
    titles = [f"{h.role}: {h.trial_id}" for h in data.histograms]
    fig = make_subplots(rows=1, cols=len(data.histograms), subplot_titles=titles, shared_yaxes=True)
    for i, h in enumerate(data.histograms, start=1):
        for name, share, colour in (("normal", h.normal, "#2ca02c"), ("anomalous", h.anomalous, "#d62728")):
            fig.add_trace(
                go.Bar(
                    x=centres,
                    y=np.array(share),
                    width=width,
                    name=name,
                    legendgroup=name,
                    showlegend=i == 1,
                    marker_color=colour,
                    opacity=0.55,
                ),
                row=1,
                col=i,
            )
        fig.update_xaxes(title_text="log10 anomaly score" if data.log10 else "anomaly score", row=1, col=i)
    fig.update_yaxes(title_text="share of class", row=1, col=1)
    fig.update_layout(barmode="overlay", bargap=0, height=360, margin={"t": 40})
    return fig


def _caption(data: ScoresData) -> str:
    parts = [
        f"{h.role} ({h.setting}): {h.above_p95:.0%} of {h.n_anomalous} anomalous samples score above the 95th "
        f"percentile of {h.n_normal} normal ones, AUROC of these scores {h.auroc:.3f}"
        for h in data.histograms
    ]
    return (
        "Test-set anomaly scores (reconstruction error under the trial's base metric) of normal (green) and "
        "anomalous (red) samples, each class normalised to share 1; less overlap means better detection. "
        f"{'; '.join(parts)}."
    )
