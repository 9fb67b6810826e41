"""How many settings beat the best model-free baseline on the validation part.

Each trial logs `beats_baseline`: a one-sided paired DeLong test, at 5%, that its
validation AUROC exceeds the better model-free score's (distance to the mean
training image, or the mean-intensity deviation) on the same validation samples
(study/selection/degeneracy.py). A setting (every param but the seed) beats the baseline
when every one of its finished seeds does: each seed's test covers the
validation samples' noise, and requiring all seeds covers the seed-to-seed
spread (an intersection-union rule, so no correction is needed and a lucky seed
cannot carry a setting).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class BaselineCount:
    """Settings of the finished trials by how their seeds compare with the best model-free baseline."""

    n_settings: int
    n_beat: int  # every seed beats the baseline
    n_some: int  # some seeds do, not all
    n_none: int  # no seed does
    n_degenerate: int  # degenerate trials (not in any count above)

    def sentence(self) -> str:
        if not self.n_settings:
            return "No finished trial logged a comparison with the model-free baselines (beats_baseline)."
        return (
            f"Model-free baselines on the validation part: {self.n_beat} of {self.n_settings} setting(s) beat the "
            "best model-free score (distance to the mean training image or mean-intensity deviation) with "
            f"every seed (one-sided paired DeLong test at 5% per seed); {self.n_some} with some seeds only; "
            f"{self.n_none} with none. {self.n_degenerate} degenerate trial(s), which score like the identity or "
            "the mean image and no better than these baselines, are left out of the comparisons below."
        )


def count_settings(trials: pd.DataFrame) -> BaselineCount:
    """Count a study's settings (`trials`: the report's trial table) against the best model-free baseline."""
    degenerate = int((trials["status"] == "degenerate").sum())
    done = trials[trials["status"] == "finished"]
    if "beats_baseline" not in done or done["beats_baseline"].isna().all():
        return BaselineCount(0, 0, 0, 0, degenerate)
    done = done[done["beats_baseline"].notna()]
    share = done.groupby(done["group"].fillna(done["run_id"]))["beats_baseline"].mean()
    return BaselineCount(
        n_settings=len(share),
        n_beat=int((share == 1.0).sum()),
        n_some=int(((share > 0) & (share < 1)).sum()),
        n_none=int((share == 0).sum()),
        n_degenerate=degenerate,
    )
