"""The trial runs `register` ranks: every child run of a study, read page after page, as a frame.

`search_runs` returns one page (at most `max_results` runs); a study can hold
more trials than any page (`lamp_grid`: 12,960), so a single call ranks an
arbitrary subset. `trial_runs` follows the page tokens to the end.
"""

from __future__ import annotations

import math
from typing import Any

from study.core.vocab import GROUP_TAG, PARENT_TAG, TRIAL_ID_TAG
from study.selection.best_setting import setting_key

PAGE_SIZE = 1000  # runs per search_runs page


def trial_runs(client: Any, experiment_id: str, parent_id: str, page_size: int = PAGE_SIZE) -> list[Any]:
    """Every child run of the study's parent run, page after page (a study can hold >10,000 trials)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
            max_results=page_size,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def trial_frame(runs: list[Any], metric: str) -> Any:
    """run_id, trial_id, group (setting) and `metric` of each run, for study/selection/best_setting.py."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "run_id": r.info.run_id,
                "trial_id": r.data.tags.get(TRIAL_ID_TAG, r.info.run_id),
                "group": r.data.tags.get(GROUP_TAG) or setting_key(r.data.params),
                metric: r.data.metrics.get(metric, math.nan),
            }
            for r in runs
        ],
        columns=["run_id", "trial_id", "group", metric],
    )


def setting_label(run: Any) -> str:
    """`sgd ssim linear λ=100 lr=0.005` (twins: `twin of λ=…`): a setting as `register` names it."""
    p = run.data.params
    twin = f" twin of λ={p['twin_of']}" if p.get("twin_of") not in (None, "0", "0.0") else ""
    parts = (p.get("arch"), p.get("optimizer"), p.get("metric"), p.get("amplification"))
    return f"{' '.join(x for x in parts if x)} λ={p.get('factor')} lr={p.get('lr')}{twin}"
