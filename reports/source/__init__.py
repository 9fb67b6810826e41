"""Where the report's data comes from: one sweep over a study's MLflow runs, read only.

`runs` (the runs, from the SQL store in bulk or through the client) and
`extract` (`Study`: the parent run and one typed row per trial;
`ArtifactLoader`: the few artifacts a figure needs). The input contract is
docs/mlflow_schema.md.
"""

from __future__ import annotations

from reports.source.extract import ArtifactLoader, Study, StudyNotFoundError, load_study

__all__ = ["ArtifactLoader", "Study", "StudyNotFoundError", "load_study"]
