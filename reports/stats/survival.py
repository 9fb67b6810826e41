"""Survivorship: which seeds of a setting did not finish, what a comparison then conditions on, and the rates.

A diverged or collapsed trial has no detection value, so every comparison uses the
seeds that finished. That is a conditional comparison — among the runs that
survived — and a setting that loses seeds is unstable, which is a finding in its
own right. These helpers count the seeds each setting lost (by status), write the
note a verdict carries, and tabulate the instability rate of every setting.
"""

from __future__ import annotations

import pandas as pd

LOST = ("diverged", "collapsed", "failed")  # statuses of a trial that started and gave no value
Losses = dict[str, dict[str, int]]  # setting -> status -> distinct seeds lost


def losses_by_setting(keys: pd.Series, lost: pd.DataFrame) -> Losses:
    """Distinct seeds lost per setting and status; `keys` names each row of `lost` by its setting."""
    if lost.empty:
        return {}
    frame = pd.DataFrame(
        {"setting": keys.to_numpy(), "status": lost["status"].to_numpy(), "seed": lost["seed"]}
    )
    counts = frame.groupby(["setting", "status"], sort=True)["seed"].nunique()
    out: Losses = {}
    for (setting, status), n in counts.items():
        out.setdefault(str(setting), {})[str(status)] = int(n)
    return out


def _what(finished: int, lost: dict[str, int]) -> str:
    """`1 of 2 seeds diverged` or `2 of 3 seeds did not finish (1 diverged, 1 collapsed)`."""
    n = sum(lost.values())
    head = f"{n} of {finished + n} seed{'s' if finished + n != 1 else ''}"
    if len(lost) == 1:
        return f"{head} {next(iter(lost))}"
    return f"{head} did not finish ({', '.join(f'{c} {s}' for s, c in sorted(lost.items()))})"


def lost_note(amplified: str, partner: str, kind: str, finished: dict[str, int], losses: Losses) -> str:
    """What the two settings of a comparison lost: "" when every seed of both finished."""
    names = (
        (amplified, "the amplified setting"),
        (partner, "its baseline" if kind == "gain" else "its lr twin"),
    )
    return "; ".join(
        f"{_what(finished.get(key, 0), losses[key])} in {name}" for key, name in names if key in losses
    )


def instability_table(keys: pd.Series, trials: pd.DataFrame) -> pd.DataFrame:
    """Per setting that lost a trial: trials run, diverged, collapsed, failed and the lost rate.

    `trials` are every trial that ended (finished or lost), `keys` their settings. Sorted by rate,
    highest first; empty when nothing was lost.
    """
    ended = pd.DataFrame({"setting": keys.to_numpy(), "status": trials["status"].to_numpy()})
    table = pd.crosstab(ended["setting"], ended["status"])
    for status in ("finished", *LOST):
        if status not in table:
            table[status] = 0
    table["trials"] = table[["finished", *LOST]].sum(axis=1)
    table["rate"] = table[list(LOST)].sum(axis=1) / table["trials"]
    table = table[table["rate"] > 0].sort_values(["rate", "trials"], ascending=[False, False], kind="stable")
    return table.reset_index()[["setting", "trials", *LOST, "rate"]]
