"""A study's trials as a table: one row per trial, for pandas, a parquet file or a CSV file.

The table is `reports.source.extract.Study.trials`, the same one the report reads:
`run_id, trial_id, status, error, group, start_time`, then one typed column
per trial param, then one float column per metric (its last logged value:
the final metric, or the last epoch's for a per-epoch one), NaN when absent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports.source.extract import load_study
from study.core.errors import LampError

FORMATS = (".parquet", ".csv")


class ExportError(LampError):
    """The output file's format is not one `export` writes."""


def trials_frame(name: str, *, tracking_uri: str) -> pd.DataFrame:
    """Every trial of study `name` as a DataFrame (see the module docstring for the columns).

    Raises:
        reports.source.extract.StudyNotFoundError: no such study; the message lists the existing ones.

    Example:
        >>> trials_frame("quickstart", tracking_uri="sqlite:///mlflow.db")  # doctest: +SKIP
    """
    return load_study(name, tracking_uri=tracking_uri).trials.copy()


def export_trials(name: str, *, tracking_uri: str, out: str | Path) -> Path:
    """Write the trials of study `name` to `out`: parquet or CSV, by the file's suffix; its path."""
    path = Path(out)
    if path.suffix.lower() not in FORMATS:
        raise ExportError(
            f"--out {path}: unknown format {path.suffix or '(no suffix)'!r}; allowed: a file ending in "
            f"{' or '.join(FORMATS)}, e.g. --out trials.parquet"
        )
    frame = trials_frame(name, tracking_uri=tracking_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        # params keep their types; a column mixing types (an unknown param) is written as text
        mixed = [c for c in frame.columns if frame[c].dtype == object and _mixed(frame[c])]
        frame.astype(dict.fromkeys(mixed, "string")).to_parquet(path, index=False)
    return path


def _mixed(column: pd.Series) -> bool:
    """Whether an object column holds values of more than one type (None aside)."""
    return len({type(v) for v in column if v is not None and v == v}) > 1
