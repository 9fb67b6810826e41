"""What a study's final counts say when most trials did not train: the sentence and the concrete fix.

A newcomer's first study (few epochs on a small folder) can end with every
trial collapsed (the reconstruction ignores its input: too few optimizer
steps) or diverged (the loss left the floats: too large a step). Such a study
still "finishes"; the driver and the report both say so, with the same words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from study.core.vocab import TERMINAL, TrialStatus

MOST = 0.5  # share of ended trials collapsed or diverged above which the study is flagged


@dataclass(frozen=True)
class Outcome:
    """The flag of a study whose trials mostly failed to train."""

    sentence: str  # what happened, with the counts
    hint: str  # what to change

    def message(self) -> str:
        return f"{self.sentence}; {self.hint}"


def study_outcome(counts: dict[str, int]) -> Outcome | None:
    """An `Outcome` when more than half of the ended trials collapsed or diverged, else None."""
    collapsed, diverged = counts.get(TrialStatus.COLLAPSED, 0), counts.get(TrialStatus.DIVERGED, 0)
    ended = sum(n for s, n in counts.items() if s in TERMINAL)
    bad = collapsed + diverged
    if ended == 0 or bad <= MOST * ended:
        return None
    kinds = " and ".join(
        f"{n} {s}" for s, n in ((TrialStatus.COLLAPSED, collapsed), (TrialStatus.DIVERGED, diverged)) if n
    )
    scope = f"all {ended} trials" if bad == ended else f"{bad} of {ended} trials"
    sentence = f"{scope} did not train ({kinds}), so there is {'no' if bad == ended else 'little'} comparison to make"
    hints = []
    if collapsed:
        hints.append(
            "collapsed trials (output independent of input) had too few optimizer steps or too small a learning "
            "rate: raise `epochs`, lower `batch_size` (more steps per epoch) or raise `lr`"
        )
    if diverged:
        hints.append(
            "diverged trials took too large a step: lower `lr`, or drop the largest amplification factors"
        )
    return Outcome(sentence, "; ".join(hints))


def study_status(ended: int, planned: int, statuses: Iterable[str]) -> str:
    """The study's final status from its trials: ended trials, trials planned, the statuses of its runs.

    Tune stops gracefully on Ctrl-C and fit() returns without the trials it never
    created, so fewer ended trials than planned is `interrupted` (resume finishes
    it). With none finished, collapsed, diverged or pruned there is nothing to
    compare: `failed`, so the caller sees an error rather than a finished study.
    A degenerate trial trained and ended, so it counts like a collapsed one.
    """
    if ended < planned:
        return "interrupted"
    if not set(statuses) & {"finished", "collapsed", "degenerate", "diverged", "pruned"}:
        return "failed"
    return "finished"
