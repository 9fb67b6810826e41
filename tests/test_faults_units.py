"""Fast checks of the pieces that keep a study recoverable: stratified eval subsets, ASHA's max_t."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from study.runner import max_epochs
from study.spec import load_spec
from study.training.evaluate import stratified_subset
from tests.conftest import SPECS


@pytest.mark.parametrize("limit", [2, 10, 50, 99])
def test_stratified_subset_keeps_both_classes_in_proportion(limit: int) -> None:
    labels = np.array([0] * 97 + [1] * 3)  # 3 % anomalies: a random subset of 10 misses them 73 % of the time
    idx = stratified_subset(labels, limit, seed=0).numpy()
    assert len(idx) == limit and len(set(idx)) == limit and list(idx) == sorted(idx)
    picked = labels[idx]
    assert set(picked) == {0, 1}
    assert picked.sum() <= max(1, round(3 * limit / 100) + 1)  # anomalies keep (about) their share


def test_stratified_subset_is_seeded_and_a_no_op_without_limit() -> None:
    labels = np.array([0, 1] * 50)
    assert stratified_subset(labels, 20, 1).tolist() == stratified_subset(labels, 20, 1).tolist()
    assert stratified_subset(labels, 20, 1).tolist() != stratified_subset(labels, 20, 2).tolist()
    assert stratified_subset(labels, 0, 1).tolist() == list(range(100))
    assert stratified_subset(labels, 500, 1).tolist() == list(range(100))


def test_asha_max_t_follows_an_epochs_dimension(tmp_path: Path) -> None:
    text = (SPECS / "asha_prune.yaml").read_text().replace("fixed: {epochs: 3, ", "fixed: {")
    assert max_epochs(load_spec(SPECS / "asha_prune.yaml")) == 3  # fixed epochs
    grid = tmp_path / "grid.yaml"
    grid.write_text(text.replace("  eval_every: {grid: [1, 3]}", "  epochs: {grid: [2, 7, 5]}"))
    assert max_epochs(load_spec(grid)) == 7
    ranged = tmp_path / "range.yaml"
    ranged.write_text(
        text.replace("{algorithm: grid}", "{algorithm: random, samples: 2, seed: 0}").replace(
            "  eval_every: {grid: [1, 3]}", "  epochs: {int: [2, 9]}"
        )
    )
    assert max_epochs(load_spec(ranged)) == 9
