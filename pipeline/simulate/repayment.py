"""The due date: payment from the cash at hand, the miss and its cause, the cure or the arrears,
and the performance-window slots the label is read from."""

from __future__ import annotations

import numpy as np

from pipeline.simulate.agreements import log_platform, technical_bad_share
from pipeline.simulate.cycle import (
    ACTIVE,
    CREDIT,
    KNOWN_LAPSE,
    LIQUIDITY,
    MANDATE_CURE_MAX,
    MANDATE_CURE_P,
    MANUAL,
    NO_CAUSE,
    OUTAGE_SECOND_DAY,
    SILENT_FAILURE,
    TECH_KNOWN,
    TECH_OUTAGE,
    TECH_SILENT,
    TECHNICAL,
    TOLERANCE,
    Cycle,
    World,
    due_next_cycle,
)
from pipeline.simulate.events import EventLog
from pipeline.simulate.state import State


def pay_due(s: State, c: Cycle, world: World, rng: np.random.Generator) -> None:
    """The due date: pay what is owed from the cash at hand, or miss, and say why."""
    n, k = len(s), c.k
    offset = world.settings.calendar.due_day_offset
    scheduled = s.own_due.copy()
    s.own_remaining = np.maximum(s.own_remaining - scheduled, 0.0)  # no round-off below zero
    arrears_before = s.arrears.copy()
    owed = scheduled + arrears_before
    c.outside_due = s.outside_due.copy()
    outside_new_due = s.outside_new_due
    reserve = 0.05 * np.exp(s.log_perm)
    cash_at_due = (s.cash + c.income_before_due * c.income - offset / c.length * c.living
                   - c.outside_due - c.emergency * c.emergency_before_due)
    c.outside_missed = cash_at_due < 0
    capacity = np.maximum(cash_at_due - reserve, 0.0)

    manual = s.mandate == MANUAL
    if c.integrate_technical:  # the truth knows only the windows announced before scoring
        outage_p = np.where(manual, s.outage_manual[k], s.outage_auto[k])
    else:
        outage_p = np.where(manual, world.outages.lookup(c.due_day, world.outages.manual_block),
                            world.outages.lookup(c.due_day, world.outages.auto_block))
    outage = np.zeros(n, dtype=bool) if c.integrate_technical else rng.random(n) < outage_p
    broken = (s.mandate == KNOWN_LAPSE) | (s.mandate == SILENT_FAILURE)
    blocked = broken | outage
    pays_partial = rng.random(n) < 0.6
    paid = np.where(manual & (capacity < owed - TOLERANCE), capacity * pays_partial,
                    np.minimum(owed, capacity))
    paid = np.where(blocked, 0.0, paid)
    miss = (owed > TOLERANCE) & (paid < owed - TOLERANCE)
    shortfall = np.maximum(owed - capacity, 0.0)
    technical = miss & blocked & (shortfall <= TOLERANCE)
    credit = miss & ~technical & ((arrears_before > TOLERANCE) | (outside_new_due >= shortfall)
                                  | (s.restricted_burden >= shortfall))
    s.cash = s.cash - paid
    c.stressed = (miss & ~technical) | (capacity - paid < due_next_cycle(s, k))
    c.pay = dict(
        scheduled=scheduled, arrears_before=arrears_before, owed=owed, paid=paid, miss=miss,
        technical=technical, blocked=blocked, broken=broken, manual=manual,
        cause=np.select([technical, credit, miss], [TECHNICAL, CREDIT, LIQUIDITY], NO_CAUSE),
        tech_kind=np.select([outage & ~broken, s.mandate == KNOWN_LAPSE], [TECH_OUTAGE, TECH_KNOWN],
                            TECH_SILENT),
        later_cash=(cash_at_due - paid + (1.0 - c.income_before_due) * c.income
                    - (1.0 - offset / c.length) * c.living - c.emergency * ~c.emergency_before_due
                    - reserve),
    )
    if c.integrate_technical:
        bad_mandate, bad_outage = technical_bad_share(world.label.dpd_threshold)
        could_pay = (owed > TOLERANCE) & (shortfall <= TOLERANCE)
        c.pay["technical_risk"] = could_pay * (c.p_broken * bad_mandate
                                               + (1.0 - c.p_broken) * outage_p * bad_outage)


def cure_or_carry(s: State, c: Cycle, world: World, rng: np.random.Generator,
                   log: EventLog | None) -> None:
    """After a miss: a technical one is paid within days of the reminder; a shortfall is paid
    when enough money arrives later in the cycle (a late payday, a loan from elsewhere), or
    is carried into the next cycle as arrears with a late fee."""
    n, d = len(s), c.pay
    offset = world.settings.calendar.due_day_offset
    miss, technical = d["miss"], d["technical"]
    remaining = d["owed"] - d["paid"]
    tech_days = np.where(d["tech_kind"] == TECH_OUTAGE, 1 + (rng.random(n) < OUTAGE_SECOND_DAY),
                         np.minimum(rng.geometric(MANDATE_CURE_P, n), MANDATE_CURE_MAX))
    payday_gap = np.where(s.payday > offset, s.payday - offset, 0)
    spread = rng.integers(3, np.maximum(c.length - offset - 1, 4))
    cure_days = np.where(technical, tech_days, np.maximum(payday_gap + rng.integers(0, 3, n), spread))
    cure_days = np.minimum(cure_days, c.end - c.due_day)
    cured = miss & (technical | (d["later_cash"] + c.loan_cash >= remaining))
    cure_paid = np.where(cured, remaining, 0.0)
    s.cash = s.cash - cure_paid
    carried = miss & ~cured
    s.arrears = np.where(carried, remaining * 1.015, 0.0)
    clear_day = np.where(miss, c.due_day + cure_days, c.due_day)
    before = d["arrears_before"]
    older_cleared = (before > TOLERANCE) & ((d["paid"] >= before - TOLERANCE) | cured)
    s.arrears_since = np.where(carried, np.where(older_cleared | (s.arrears_since < 0), c.due_day,
                                                 s.arrears_since), -1).astype("int32")
    _track_label_slots(s, c, world, cured, clear_day, older_cleared, cure_days)

    # a debit that failed on a broken agreement makes the borrower fix it or go manual
    fixed_after = technical & d["broken"]
    fix = rng.random(n) < world.settings.technical.reauthorise_after_miss_prob
    s.mandate = np.where(fixed_after, np.where(fix, ACTIVE, MANUAL), s.mandate).astype("int8")
    s.clean_cycles = np.where(miss, 0, s.clean_cycles + 1).astype("int16")
    c.miss_kind = np.select([technical & (tech_days <= 3), miss & ~carried, carried], [1, 2, 3], 0)
    if log is not None:
        _log_due(log, s, c, cured, cure_paid, clear_day, fixed_after & fix, fixed_after & ~fix)


def _log_due(log: EventLog, s: State, c: Cycle, cured, cure_paid, clear_day, reauthorised,
             cancelled) -> None:
    d, ids = c.pay, s.borrower_id
    has_due = d["owed"] > TOLERANCE
    log.add("installments", borrower_id=ids[has_due], due_date=c.due_day[has_due],
            scheduled_amount=d["scheduled"][has_due], arrears_amount=d["arrears_before"][has_due])
    at_due = d["paid"] > 0.005
    log.add("repayments", borrower_id=ids[at_due], payment_date=c.due_day[at_due],
            due_date=c.due_day[at_due], amount=d["paid"][at_due],
            channel=np.where(d["manual"], "manual", "auto_debit")[at_due])
    later = cured & (cure_paid > 0.005)
    log.add("repayments", borrower_id=ids[later], payment_date=clear_day[later],
            due_date=c.due_day[later], amount=cure_paid[later], channel=np.full(later.sum(), "manual"))
    failed = d["miss"] & (d["blocked"] | ~d["manual"])
    reason = np.where(d["broken"], "mandate_invalid",
                      np.where(d["blocked"], "system_unavailable", "insufficient_funds"))
    log_platform(log, s, failed, c.due_day, "debit_failed", reason)
    log_platform(log, s, reauthorised, clear_day, "autodebit_authorised", "user_action")
    log_platform(log, s, cancelled, clear_day, "autodebit_cancelled", "user_action")


def _track_label_slots(s: State, c: Cycle, world: World, cured, clear_day, older_cleared,
                       cure_days) -> None:
    """For the label: each due date of the performance window remembers whether it was missed,
    why, and when it was finally paid (a carried amount is paid when the arrears clear)."""
    if "slot_paid" not in s:
        return
    d = c.pay
    pending = (s.slot_paid < 0) & s.slot_missed
    s.slot_paid = np.where(older_cleared & pending, clear_day, s.slot_paid)
    j = c.k
    if 0 <= j < world.label.performance_cycles:
        s.slot_due[j] = c.due_day
        s.slot_missed[j] = d["miss"]
        s.slot_cause[j] = d["cause"]
        s.slot_tech[j] = d["tech_kind"]
        s.slot_paid[j] = np.where(d["miss"], np.where(cured, c.due_day + cure_days, -1), c.due_day)
        if c.integrate_technical:
            s.slot_technical_risk[j] = d["technical_risk"]
