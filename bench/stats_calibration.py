"""Calibration of the effects verdicts and the steepness ρ under nulls that break their assumptions (issue 20).

    PYTHONPATH=. python bench/stats_calibration.py --studies 300 \
        --real sqlite:////tmp/qs/mlflow.db:quickstart        # optional: a real study's noise structure

Before: the pooled analysis of commit 2d95fc0 (`reports/stats.py`, one noise level, power at unadjusted
alpha, trial-level Fisher z), loaded from git. After: this tree. With `--real`, the study's per-setting
seed spread (after removing seed effects) is written to bench/data/stats_noise_<study>.json and its null
(same settings, seeds and lost seeds; every setting at 0.85 + seed effect + normal noise of its own
observed spread) is simulated too. Prints a markdown table (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports.stats.rank import stratified_spearman  # noqa: E402
from tests._calibration import SCENARIOS, Design, noise_design, rate_bound  # noqa: E402
from tests.test_stats import _setting_null  # noqa: E402

BEFORE = "2d95fc0"
DATA = Path(__file__).parent / "data"


def before_module() -> types.ModuleType:
    """reports/stats.py as it was before issue 20, importable under the current layout."""
    src = subprocess.run(
        ["git", "show", f"{BEFORE}:reports/stats.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    module = types.ModuleType("stats_before")
    sys.modules["stats_before"] = module  # its dataclasses look their module up
    exec(compile(src.replace("from study.train import", "from study.core.vocab import"), "stats_before", "exec"),
         module.__dict__)  # fmt: skip
    return module


def rates(design: Design, values: np.ndarray, old: types.ModuleType) -> tuple[int, int]:
    """Studies with any gain or harm: (before, after)."""
    before = after = 0
    for y in values:
        frame = design.frame.assign(auroc=y)
        before += bool((old.amplification_effects(frame)["verdict"] != "not detectable").any())
        after += bool((design.effects(y, figures=False)["verdict"] != "not detectable").any())
    return before, after


def real_design(spec: str) -> tuple[str, Design]:
    """The null of a real study: its settings, seeds and lost seeds, each setting at its observed spread."""
    from reports.sections.effects import lost_frame, model_frame
    from reports.source.extract import load_study
    from reports.stats.effects import setting_keys

    uri, name = spec.rsplit(":", 1)
    study = load_study(name, tracking_uri=uri)
    frame, extra = model_frame(study)
    frame = frame.reset_index(drop=True)
    keys = setting_keys(frame, extra)
    seed_free = frame[study.detection] - frame.groupby("seed")[study.detection].transform("mean")
    spread = seed_free.groupby(keys.to_numpy()).std(ddof=1)
    sd = spread.fillna(spread.median())  # a setting with one finished seed: the median spread
    lost = lost_frame(study)
    unstable = sorted(set(setting_keys(lost, extra))) if len(lost) else []
    DATA.mkdir(exist_ok=True)
    record = {
        "source": f"study {name!r} ({study.detection}, {len(frame)} finished trials), {uri}",
        "settings": {k: float(v) for k, v in sd.items()},
        "unstable": unstable,
        "trials": frame[["metric", "optimizer", "arch", "amplification", "factor", "twin_of", "seed"]]
        .astype({"seed": int, "twin_of": float, "factor": float})
        .to_dict("records"),
    }
    (DATA / f"stats_noise_{name}.json").write_text(json.dumps(record, indent=1))
    return name, noise_design(record)


def rho_rates(seeds: int, n: int, old: types.ModuleType) -> tuple[int, int]:
    """Setting-level null: combined p < 0.05, before (trial-level Fisher z) and after (permutation)."""
    rng = np.random.default_rng(40 + seeds)
    before = after = 0
    for _ in range(n):
        frame = _setting_null(rng, seeds)
        before += old.stratified_spearman(frame).combined_p < 0.05
        after += stratified_spearman(frame, permutations=199).combined_p < 0.05
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--real", action="append", default=[], help="URI:study of a real study")
    parser.add_argument("--smoke-test", action="store_true", help="10 studies per scenario (seconds)")
    args = parser.parse_args()
    if args.smoke_test:
        args.studies = 10
    gc.freeze()  # statsmodels' Holm (the before code) runs gc.collect() on every call
    old, n = before_module(), args.studies
    print("| null | before | after | after 99% bound |\n|---|---|---|---|")
    designs = [(s.name, Design.of(s)) for s in SCENARIOS] + [real_design(spec) for spec in args.real]
    measured = {name for name, _ in designs}
    for path in sorted(DATA.glob("stats_noise_*.json")):  # real studies recorded by earlier --real runs
        name = path.stem.removeprefix("stats_noise_")
        if name not in measured:
            designs.append((name, noise_design(json.loads(path.read_text()))))
    for i, (name, design) in enumerate(designs):
        b, a = rates(design, design.draw(np.random.default_rng(100 + i), n), old)
        print(f"| {name} | {b / n:.1%} | {a / n:.1%} | {rate_bound(a, n):.1%} |", flush=True)
    for seeds in (2, 3):
        b, a = rho_rates(seeds, n, old)
        print(f"| steepness ρ, setting-level null, {seeds} seeds | {b / n:.1%} | {a / n:.1%} | "
              f"{rate_bound(a, n):.1%} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
