"""What every step of the simulation shares: the world, one cycle's dates and working values,
the states and causes, and the money a borrower owes on the line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import CAUSES, LabelSettings, SimulateSettings
from pipeline.simulate.calendar import day_number, shift_months
from pipeline.simulate.outages import OutageCalendar
from pipeline.simulate.state import State, due_in

MANUAL, ACTIVE, KNOWN_LAPSE, SILENT_FAILURE = 0, 1, 2, 3
NO_CAUSE = -1
CREDIT, LIQUIDITY, TECHNICAL = (CAUSES.index(c) for c in ("credit", "liquidity", "technical"))
TECH_KNOWN, TECH_SILENT, TECH_OUTAGE, TECH_FORGOTTEN = 0, 1, 2, 3
# Technical misses are paid after the reminder: a broken agreement within Geometric(p) days (at
# most MAX days), an outage the next day or, for some, the day after.
MANDATE_CURE_P, MANDATE_CURE_MAX, OUTAGE_SECOND_DAY = 0.45, 14, 0.2
LENDERS = np.array(["bank", "consumer_finance", "online_lender"])
SEASON = {6: 1.35, 11: 1.6, 12: 1.1}  # 618 and Double 11 shopping festivals
# Truth replicates draw the rare events that drive 30-day misses of safe borrowers at least this
# often in the label window, weighted by their likelihood ratio (see rare_event)
MIN_JOB_LOSS_PROPOSAL, MIN_EMERGENCY_PROPOSAL = 0.05, 0.1


@dataclass(frozen=True)
class World:
    """What every borrower shares: settings, the outage calendar, and the key dates."""

    settings: SimulateSettings
    label: LabelSettings
    outages: OutageCalendar
    horizon: int  # last cycle the label needs

    @property
    def campaigns(self) -> list[tuple[int, int, float]]:
        """(announce day, deadline day, share) of every re-authorisation campaign."""
        return [(day_number(c.announce_date), day_number(c.deadline), c.share)
                for c in self.settings.technical.reauthorisation_campaigns]


@dataclass
class Cycle:
    """Per-borrower dates of cycle k and what happened at its due date."""

    k: int
    integrate_technical: bool  # truth replicates: carry technical misses as probabilities
    condition_misses: bool  # truth replicates, label window: integrate or importance-sample shortfalls
    boost_rare: bool  # ... and draw job losses and emergencies more often (rare_event)
    start: np.ndarray
    end: np.ndarray
    due_day: np.ndarray
    length: np.ndarray
    # filled in as the cycle unfolds
    shock: np.ndarray | None = None  # standard normal transitory income shock
    income_fixed: np.ndarray | None = None
    income_scale: np.ndarray | None = None
    income: np.ndarray | None = None
    income_before_due: np.ndarray | None = None  # share of the cycle's income paid before the due date
    # truth replicates: the share if the salary comes late, and P(it does not) (repayment.pay_due)
    income_before_due_late: np.ndarray | None = None
    salary_before_due_prob: np.ndarray | None = None
    living: np.ndarray | None = None
    emergency: np.ndarray | None = None
    emergency_before_due: np.ndarray | None = None
    outside_due: np.ndarray | None = None
    outside_missed: np.ndarray | None = None
    weight: np.ndarray | float = 1.0  # likelihood ratio of the cycle's importance-sampled draws
    shortfall: list[np.ndarray] | None = None  # truth, label due date: weight, credit, liquidity
    p_broken: np.ndarray | None = None  # P(agreement broken at the due date), truth replicates
    pay: dict[str, np.ndarray] | None = None  # what happened at the due date
    stressed: np.ndarray | None = None
    inquiries: np.ndarray | None = None
    loan_cash: np.ndarray | None = None
    purchases: np.ndarray | None = None
    # logged runs: drawn by the account's statement day (amounts; installments they add)
    drawn_by_statement: np.ndarray | None = None
    owed_by_statement: np.ndarray | None = None
    miss_kind: np.ndarray | None = None


def cycle_dates(s: State, k: int, due_offset: int, integrate_technical: bool = False,
                condition_misses: bool = False, boost_rare: bool = False) -> Cycle:
    start = cycle_start(s, k)
    end = cycle_start(s, k + 1) - 1
    return Cycle(k, integrate_technical, condition_misses, boost_rare, start, end, start + due_offset,
                 end - start + 1)


def cycle_start(s: State, k: int) -> np.ndarray:
    """First day of cycle k of every borrower (cycle 0 starts on the scoring date)."""
    return shift_months(s.scoring_month, s.scoring_day_in_month, k)


def balance(s: State) -> np.ndarray:
    """Installments not yet due plus arrears: what the borrower owes on the line."""
    return s.own_remaining + s.arrears


def due_next_cycle(s: State, k: int) -> np.ndarray:
    """Installments scheduled for the due date of cycle k + 1, as known in cycle k."""
    return due_in(s.own_due, s.own_changes, k + 1)


def rare_event(p: np.ndarray, floor: float, u: np.ndarray, c: Cycle) -> np.ndarray:
    """Bernoulli(p) from uniforms ``u``. In the truth's label window, when a label needs a
    shortfall that lasts (``c.boost_rare``), the event is drawn with probability max(p, floor)
    instead and the draw's likelihood ratio joins ``c.weight``: the replicates then see enough job
    losses and emergencies to estimate small probabilities. (When every shortfall counts, the
    closed-form shortfall already does that and the extra weights only add noise.)"""
    if not c.boost_rare:
        return u < p
    proposal = np.where(p > 0, np.maximum(p, floor), 0.0)
    hit = u < proposal
    chosen = np.where(hit, proposal, 1.0 - proposal)
    c.weight = c.weight * np.where(hit, p, 1.0 - p) / np.where(chosen > 0, chosen, 1.0)
    return hit
