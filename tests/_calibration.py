"""Simulated studies whose noise breaks the one-noise-level assumption (issue 20): the calibration harness.

A study here is a value per trial of a fixed grid — metric (mse, ssim) x optimizer
(adam, sgd) x form (linear, exp) x λ (1, 10, 100), SGD lr twins for λ 10 and 100:
28 settings, 28 comparisons — drawn as 0.85 + seed effect (σ 0.01, shared by every
setting of a seed) + the setting's planted shift + noise of the setting's own σ.
Scenarios set each setting's σ; survivorship removes seeds from settings. The
values of many studies are drawn at once (numpy), and each study is analysed by
the report's own code (`reports.stats.fit_codes` + `model_effects`, what
`amplification_effects` runs after keying the frame), so the rates measured are
the report's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import beta

from reports.stats.effects import fit_codes, model_effects, setting_keys

BASE_SIGMA = 0.01
SEED_SIGMA = 0.01
NOISY = ("mse", "sgd", "exp", 100.0)  # the near-divergent cell
# four noisy cells of four different amplifications: nothing for the unstable-amplification prior to share
SCATTERED = {
    ("mse", "adam", "exp", 10.0),
    ("ssim", "adam", "linear", 100.0),
    ("mse", "sgd", "linear", 10.0),
    ("ssim", "sgd", "exp", 100.0),
}


def grid(seeds: int = 2) -> pd.DataFrame:
    """One row per trial: metric, optimizer, arch, amplification, factor, twin_of, seed."""
    rows = []
    for metric, opt, seed in itertools.product(("mse", "ssim"), ("adam", "sgd"), range(seeds)):
        cells = [(form, f, 0.0) for form in ("linear", "exp") for f in (1.0, 10.0, 100.0)]
        if opt == "sgd":
            cells += [("linear", 1.0, 10.0), ("linear", 1.0, 100.0)]
        for form, factor, twin_of in cells:
            rows.append(
                dict(metric=metric, optimizer=opt, arch="conv_ae", amplification=form, factor=factor,
                     twin_of=twin_of, seed=seed)
            )  # fmt: skip
    return pd.DataFrame(rows)


def cell_of(frame: pd.DataFrame) -> list[tuple]:
    """(metric, optimizer, form, factor) of each trial; a twin is (metric, optimizer, "twin", twin_of)."""
    return [
        (r.metric, r.optimizer, "twin", r.twin_of)
        if r.twin_of
        else (r.metric, r.optimizer, r.amplification, r.factor)
        for r in frame.itertuples()
    ]


@dataclass(frozen=True)
class Scenario:
    """A noise structure: σ of each trial's cell, and which trials are removed (did not finish)."""

    name: str
    seeds: int
    sigma: Callable[[tuple], float]  # cell -> noise σ
    lost: Callable[[tuple, int], bool] = lambda cell, seed: False  # (cell, seed) -> removed


SCENARIOS = (
    Scenario("equal noise", 2, lambda c: BASE_SIGMA),
    Scenario("one cell 5x noisier", 2, lambda c: BASE_SIGMA * (5 if c == NOISY else 1)),
    Scenario("sgd cells 6x noisier", 2, lambda c: BASE_SIGMA * (6 if c[1] == "sgd" else 1)),
    Scenario("3 seeds, exp λ=100 cells 5x", 3, lambda c: BASE_SIGMA * (5 if c[2:] == ("exp", 100.0) else 1)),
    Scenario("3 seeds, four scattered cells 5x", 3, lambda c: BASE_SIGMA * (5 if c in SCATTERED else 1)),
    Scenario(
        "survivorship: noisy cells lose a seed",
        3,
        lambda c: BASE_SIGMA * (5 if c[2:] == ("exp", 100.0) else 1),
        lambda c, seed: c[2:] == ("exp", 100.0) and c[1] == "sgd" and seed == 2,
    ),
)


class Design:
    """A study's trials keyed once; `draw` makes values, `effects` analyses one study's values."""

    def __init__(self, frame: pd.DataFrame, sigma: np.ndarray, unstable: frozenset[str] = frozenset()):
        """`frame`: one row per finished trial (setting columns, seed); `sigma`: each trial's noise σ;
        `unstable`: settings that lost seeds, as the report would know them."""
        self.frame = frame
        codes, names = pd.factorize(setting_keys(frame), sort=True)
        self.s_code, self.names = codes, [str(n) for n in names]
        self.d_code = pd.factorize(frame["seed"], sort=True)[0]
        self.cells = cell_of(frame)
        self.sigma = np.asarray(sigma, float)
        self.unstable = unstable

    @classmethod
    def of(cls, scenario: Scenario) -> Design:
        """The grid of a scenario, its seeds removed where the scenario loses them."""
        full = grid(scenario.seeds)
        gone = np.array([scenario.lost(c, s) for c, s in zip(cell_of(full), full["seed"], strict=True)])
        frame = full[~gone].reset_index(drop=True)
        return cls(frame, [scenario.sigma(c) for c in cell_of(frame)], frozenset(setting_keys(full[gone])))

    def draw(
        self, rng: np.random.Generator, studies: int, shifts: dict[tuple, float] | None = None
    ) -> np.ndarray:
        """studies x trials values: 0.85 + seed effect + planted shift + the cell's noise."""
        seed = rng.normal(0, SEED_SIGMA, (studies, int(self.d_code.max()) + 1))[:, self.d_code]
        shift = np.array([(shifts or {}).get(c, 0.0) for c in self.cells])
        return 0.85 + seed + shift + rng.normal(0, 1, (studies, len(self.cells))) * self.sigma

    def effects(self, y: np.ndarray, figures: bool = True) -> pd.DataFrame:
        """The report's effects table of one study's values (`figures=False`: verdicts only, faster)."""
        return model_effects(
            fit_codes(self.s_code, self.names, self.d_code, y, self.unstable), figures=figures
        )


def any_verdict_rate(design: Design, values: np.ndarray) -> tuple[int, int]:
    """(studies with any gain or harm verdict, studies)."""
    hits = sum(bool((design.effects(y, figures=False)["verdict"] != "not detectable").any()) for y in values)
    return hits, len(values)


def rate_bound(hits: int, n: int, level: float = 0.99) -> float:
    """One-sided Clopper–Pearson upper bound of a binomial rate."""
    return float(beta.ppf(level, hits + 1, n - hits)) if hits < n else 1.0


def noise_design(record: dict) -> Design:
    """The null of a real study from its bench/data/stats_noise_*.json record (bench/stats_calibration.py):
    its finished trials, each setting at its observed seed spread, its settings that lost seeds."""
    frame = pd.DataFrame(record["trials"])
    sigma = [record["settings"][str(k)] for k in setting_keys(frame)]
    return Design(frame, sigma, frozenset(record["unstable"]))
