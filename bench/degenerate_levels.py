"""Levels and power of the degenerate rule's tests and of "distinguishable", by simulation.

Runs the draws of tests/test_degenerate.py and tests/test_best_setting.py (nulls
with heavy tails, ties and skew) with more repetitions than the tests can afford
and prints each rejection rate (bench/RESULTS.md).

    .venv/bin/python bench/degenerate_levels.py      # ~1 min on 2 cores
"""

from __future__ import annotations

import argparse

from tests.test_best_setting import distinguishable_rate
from tests.test_degenerate import chance_null, paired_gain, paired_null, rejections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="a twentieth of the draws (seconds)")
    args = parser.parse_args()
    null, alt = (200, 50) if args.smoke_test else (4000, 1000)
    print(f"paired DeLong, null (alpha 0.05): {rejections(paired_null, null, 11):.4f} of {null}")
    print(f"paired DeLong, 0.1 AUROC gain: {rejections(paired_gain, alt, 12):.4f} of {alt}")
    print(f"above chance, null (alpha 0.05): {rejections(chance_null, null, 13):.4f} of {null}")
    for k in (2, 5):
        print(f"distinguishable, {k} equal settings: {distinguishable_rate(k, alt, 100 + k):.4f} of {alt}")


if __name__ == "__main__":
    main()
