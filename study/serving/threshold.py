"""An alarm threshold for a trial's scores: a chosen false-alarm rate on normal images, and its evidence.

Set on the held-out normals of the validation part (the samples that already
picked the trial; no anomaly is used) as a split-conformal bound: with `n`
normals, the score of rank ceil((n + 1)(1 - alpha)) makes the chance that a new
normal image (exchangeable with them) scores above it at most `alpha`. Then
checked on the test part's normals, which set nothing: the share above it, with
a 95% Clopper-Pearson interval (a few dozen normals leave it wide; the
interval says so). tests/test_threshold.py simulates both claims.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from study.core.errors import LampError

DEFAULT_FALSE_ALARM = 0.01
TAG_PREFIX = "lamp.threshold"  # model-version tags: lamp.threshold, lamp.threshold.false_alarm, ...


class ThresholdError(LampError):
    """A threshold that cannot be set or read (bad rate, no held-out normals, no stored threshold)."""


@dataclass(frozen=True)
class Threshold:
    """Scores above `value` raise an alarm; the rest of the fields are what the rate claim rests on."""

    value: float
    false_alarm: float  # the rate asked for
    bound: float  # the rate guaranteed by the conformal rank: <= false_alarm, or 1/(n+1) with too few normals
    n_calibration: int  # validation-part normals that set it
    n_check: int  # test-part normals that checked it
    alarms_check: int  # of those, how many score above it
    interval: tuple[float, float]  # 95% Clopper-Pearson interval of the check's false-alarm rate

    def sentence(self) -> str:
        """The claim in words, with its uncertainty."""
        low, high = self.interval
        rate = self.alarms_check / self.n_check if self.n_check else math.nan
        text = (
            f"threshold {self.value:.6g}: at most {self.bound:.3g} of normal images raise an alarm "
            f"(set on {self.n_calibration} held-out normals for a target of {self.false_alarm:g})"
        )
        if self.bound > self.false_alarm:
            text += (
                f"; {self.n_calibration} normals cannot guarantee {self.false_alarm:g}, only {self.bound:.3g}"
            )
        if self.n_check:
            text += (
                f"; on {self.n_check} other held-out normals {self.alarms_check} alarmed ({rate:.3g}, "
                f"95% interval {low:.3g}-{high:.3g})"
            )
        return text

    def tags(self) -> dict[str, str]:
        """As model-version tags (strings)."""
        out = {TAG_PREFIX: repr(self.value)}
        for key, value in asdict(self).items():
            if key != "value":
                out[f"{TAG_PREFIX}.{key}"] = (
                    ",".join(map(repr, value)) if isinstance(value, tuple) else repr(value)
                )
        return out

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Threshold | None:
        """The threshold stored on a model version, or None when it has none."""
        if TAG_PREFIX not in tags:
            return None
        low, high = (float(x) for x in tags[f"{TAG_PREFIX}.interval"].split(","))
        return cls(
            float(tags[TAG_PREFIX]),
            float(tags[f"{TAG_PREFIX}.false_alarm"]),
            float(tags[f"{TAG_PREFIX}.bound"]),
            int(tags[f"{TAG_PREFIX}.n_calibration"]),
            int(tags[f"{TAG_PREFIX}.n_check"]),
            int(tags[f"{TAG_PREFIX}.alarms_check"]),
            (low, high),
        )


def alarm_threshold(
    scores: np.ndarray, labels: np.ndarray, test_part: np.ndarray, false_alarm: float = DEFAULT_FALSE_ALARM
) -> Threshold:
    """The threshold of a trial's `scores.npz` arrays (labels 1 = anomalous; test_part marks the reported part)."""
    if not 0 < false_alarm < 1:
        raise ThresholdError(
            f"--false-alarm {false_alarm}: a rate strictly between 0 and 1 is needed, e.g. 0.01"
        )
    normal = np.asarray(labels) == 0
    part = np.asarray(test_part, dtype=bool)
    calibration = np.sort(np.asarray(scores, dtype=float)[normal & ~part])
    check = np.asarray(scores, dtype=float)[normal & part]
    n = len(calibration)
    if n == 0:
        raise ThresholdError(
            "the trial has no held-out normal scores in its validation part to set a threshold on"
        )
    rank = math.ceil((n + 1) * (1 - false_alarm))  # 1-based; beyond n no rank guarantees the rate
    value = float(calibration[min(rank, n) - 1])
    bound = false_alarm if rank <= n else 1 / (n + 1)
    alarms = int((check > value).sum())
    return Threshold(value, false_alarm, bound, n, len(check), alarms, clopper_pearson(alarms, len(check)))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a rate seen as k of n (0-1 when n is 0)."""
    from scipy.stats import beta

    if n == 0:
        return 0.0, 1.0
    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def alarms(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 where a score raises an alarm (strictly above the threshold), else 0."""
    return (np.asarray(scores, dtype=float) > threshold).astype(int)
