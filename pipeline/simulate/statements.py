"""Statements on each account's own fixed day of the month.

The simulation steps month by month from each borrower's scoring date (``calendar``), but a real
account is billed on a statement day of its own, so the scoring date usually falls inside a
statement period. An account's statement is issued ``offset`` days after its cycle starts (the
same day of every month, or the last day of every month for an offset of -1 from cycles that
start on the 1st), where the offset is drawn once per account between -1 (the last day of
the cycle before, the day before the scoring date's day of month) and the last day that leaves
``statement_min_grace_days`` before the due date. A statement issued inside cycle k reports the
account as it stood at the cycle's start (nothing is paid or cured before the due date), plus the
drawdowns dated on or before the statement day; what was drawn after it waits for the next one.

Statements only record: the simulated borrowers behave the same whatever their statement day,
and the truth, which starts from the state at the scoring date, never sees a statement.
"""

from __future__ import annotations

import numpy as np

from pipeline.catalog import TOLERANCE
from pipeline.config import CalendarSettings
from pipeline.simulate.calendar import day_in_month
from pipeline.simulate.cycle import Cycle, balance, cycle_start, due_next_cycle
from pipeline.simulate.events import EventLog
from pipeline.simulate.state import State

# 0-based: the day after the statement, where the next period starts, is at most the 28th, a day
# every month has
LAST_STATEMENT_DAY = 26

# what a statement issued after its cycle's start carries over from the cycle before
CARRIED = ("balance", "arrears", "arrears_since", "installment_due_next", "score", "wallet_inflow",
           "wallet_balance", "unbilled")


def draw_offsets(scoring_day: np.ndarray, calendar: CalendarSettings,
                 rng: np.random.Generator) -> np.ndarray:
    """Each account's statement day as days after its cycle start, uniform on -1 ..
    ``due_day_offset - statement_min_grace_days`` and never past the 27th of a month (int16)."""
    latest = np.minimum(calendar.due_day_offset - calendar.statement_min_grace_days,
                        LAST_STATEMENT_DAY - day_in_month(scoring_day))
    return np.floor(-1 + rng.random(scoring_day.size) * (latest + 2)).astype("int16")


class StatementBook:
    """The statement each account with a statement day after its cycle start still owes: its
    figures at the close of the last cycle, indexed by the simulation's borrower index."""

    def __init__(self, n: int) -> None:
        self.carried = {name: np.zeros(n) for name in CARRIED}
        self.pending = np.zeros(n, dtype=bool)

    def issue(self, s: State, c: Cycle, log: EventLog, closing: dict[str, np.ndarray]) -> None:
        """Log the statements issued in cycle ``c`` and carry what the next ones need.
        ``closing``: the account at the cycle's close (the CARRIED figures but the unbilled)."""
        ids, late = s.borrower_id, s.statement_offset >= 0
        now = late & self.pending[ids]
        # the first statement covers the account from its opening
        opened = cycle_start(s, s.onboard_cycle.astype("int64"))
        since = np.where(c.k - 1 == s.onboard_cycle, opened, cycle_start(s, c.k - 1) + s.statement_offset + 1)
        _log(log, s, now, c.start + s.statement_offset, since, {k: v[ids] for k, v in self.carried.items()},
             c.drawn_by_statement, c.owed_by_statement)
        _log(log, s, ~late, c.end, c.start, {**closing, "unbilled": np.zeros(len(s))}, c.purchases, 0.0)
        for name in CARRIED[:-1]:
            self.carried[name][ids] = closing[name]
        self.carried["unbilled"][ids] = c.purchases - np.where(now, c.drawn_by_statement, 0.0)
        self.pending[ids] |= late


def closing_figures(s: State, c: Cycle, inflow: np.ndarray, wallet: np.ndarray) -> dict[str, np.ndarray]:
    """The account at the close of cycle ``c``: what its next statement reports."""
    return dict(balance=balance(s), arrears=s.arrears, arrears_since=s.arrears_since.astype(float),
                installment_due_next=due_next_cycle(s, c.k), score=s.score,
                wallet_inflow=inflow, wallet_balance=wallet)


def _log(log: EventLog, s: State, rows: np.ndarray, day: np.ndarray, since: np.ndarray,
         figures: dict[str, np.ndarray], drawn: np.ndarray, owed: np.ndarray | float) -> None:
    """Statements of ``rows`` dated ``day`` for the period from ``since``: ``figures`` as the
    account stood before ``drawn`` (amounts) and ``owed`` (the installments they add)."""
    if not rows.any():
        return
    owed = np.broadcast_to(owed, rows.shape)
    arrears = figures["arrears"][rows]
    overdue = arrears > TOLERANCE
    day = day[rows]
    log.add("statements", borrower_id=s.borrower_id[rows], statement_date=day, cycle_start_date=since[rows],
            credit_limit=s.limit[rows], balance=figures["balance"][rows] + owed[rows],
            purchases=figures["unbilled"][rows] + drawn[rows],
            installment_due_next=figures["installment_due_next"][rows], overdue_amount=arrears,
            days_past_due=np.where(overdue, day - figures["arrears_since"][rows], 0).astype("int64"),
            credit_score=np.round(figures["score"][rows]),
            wallet_inflow=figures["wallet_inflow"][rows], wallet_balance=figures["wallet_balance"][rows],
            line_status=np.where(overdue, "frozen", np.where(s.restricted[rows], "restricted", "active")))
