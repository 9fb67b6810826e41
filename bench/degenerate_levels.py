"""Levels and power of the degenerate rule's tests and of "distinguishable", by simulation.

Runs the draws of tests/test_degenerate.py and tests/test_best_setting.py (nulls
with heavy tails, ties and skew) with more repetitions than the tests can afford
and prints each rejection rate (bench/RESULTS.md).

    .venv/bin/python bench/degenerate_levels.py      # ~1 min on 2 cores
"""

from __future__ import annotations

from tests.test_best_setting import distinguishable_rate
from tests.test_degenerate import chance_null, paired_gain, paired_null, rejections


def main() -> None:
    print(f"paired DeLong, null (alpha 0.05): {rejections(paired_null, 4000, 11):.4f} of 4000")
    print(f"paired DeLong, 0.1 AUROC gain: {rejections(paired_gain, 1000, 12):.4f} of 1000")
    print(f"above chance, null (alpha 0.05): {rejections(chance_null, 4000, 13):.4f} of 4000")
    for k in (2, 5):
        print(f"distinguishable, {k} equal settings: {distinguishable_rate(k, 1000, 100 + k):.4f} of 1000")


if __name__ == "__main__":
    main()
