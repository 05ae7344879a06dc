"""The due date: payment from the cash at hand, the miss and its cause, the cure or the arrears,
and the performance-window slots the label is read from."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from pipeline.catalog import TOLERANCE
from pipeline.config import SHORTFALL_MIN_DAYS_PAST_DUE
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
    TECH_FORGOTTEN,
    TECH_KNOWN,
    TECH_OUTAGE,
    TECH_SILENT,
    TECHNICAL,
    Cycle,
    World,
    due_next_cycle,
)
from pipeline.simulate.events import EventLog
from pipeline.simulate.state import State

# Truth replicates follow a cash shortfall at a label due date at least this often (see
# shortfall_shock): rarer shortfalls would leave p_true at exactly 0 for most borrowers at dpd 30.
MIN_SHORTFALL_PROPOSAL = 0.25


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
    cash_at_due = _cash_at_due(s, c, offset, owed, arrears_before, reserve, rng)
    c.outside_missed = cash_at_due < 0
    capacity = np.maximum(cash_at_due - reserve, 0.0)

    manual = s.mandate == MANUAL
    outage_p = _outage_probability(s, c, world, manual)
    broken = (s.mandate == KNOWN_LAPSE) | (s.mandate == SILENT_FAILURE)
    if c.integrate_technical:
        outage = forgot = np.zeros(n, dtype=bool)
    else:
        outage = rng.random(n) < outage_p
        forgot = manual & (rng.random(n) < s.forget_prob)
    blocked = broken | outage | forgot
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
        technical=technical, blocked=blocked, broken=broken, manual=manual, forgot=forgot,
        cause=np.select([technical, credit, miss], [TECHNICAL, CREDIT, LIQUIDITY], NO_CAUSE),
        tech_kind=np.select([outage & ~broken, s.mandate == KNOWN_LAPSE, forgot & ~broken],
                            [TECH_OUTAGE, TECH_KNOWN, TECH_FORGOTTEN], TECH_SILENT),
        later_cash=(cash_at_due - paid + (1.0 - c.income_before_due) * c.income
                    - (1.0 - offset / c.length) * c.living - c.emergency * ~c.emergency_before_due
                    - reserve),
    )
    if c.integrate_technical:
        could_pay = (owed > TOLERANCE) & (shortfall <= TOLERANCE)
        c.pay["technical_risk"] = could_pay * _technical_block(s, c, world, manual, outage_p)
        foreseen_p = _outage_probability(s, c, world, manual, foreseen_only=True)
        c.pay["technical_risk_foreseen"] = could_pay * _technical_block(s, c, world, manual, foreseen_p)
    if c.condition_misses:
        weight, short_credit, short_liquidity = c.shortfall
        c.pay.update(weight=c.weight * weight, short_credit=c.weight * short_credit,
                     short_liquidity=c.weight * short_liquidity)


def _outage_probability(s: State, c: Cycle, world: World, manual: np.ndarray,
                        foreseen_only: bool = False) -> np.ndarray:
    """P(an outage blocks the payment): the realised calendar, or for the truth only the windows
    announced before scoring with the rest averaged out (``truth.add_known_outages``), or with
    ``foreseen_only`` none of the rest to come."""
    if c.integrate_technical:
        suffix = "_foreseen" if foreseen_only else ""
        return np.where(manual, s["outage_manual" + suffix][c.k], s["outage_auto" + suffix][c.k])
    return np.where(manual, world.outages.lookup(c.due_day, world.outages.manual_block),
                    world.outages.lookup(c.due_day, world.outages.auto_block))


def _technical_block(s: State, c: Cycle, world: World, manual: np.ndarray,
                     outage_p: np.ndarray) -> np.ndarray:
    """Truth replicates: P(a payment the borrower could make is blocked and stays unpaid for the
    label's days): a broken agreement, else an outage, else a manual payer who forgets."""
    bad_mandate, bad_outage = technical_bad_share(world.label.dpd_threshold)
    forget = manual * s.forget_prob
    return (c.p_broken * bad_mandate
            + (1.0 - c.p_broken) * (outage_p * bad_outage + (1.0 - outage_p) * forget * bad_mandate))


def _threshold(need: np.ndarray, scale: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """z* such that the shock income scale x exp(z sd - sd^2 / 2) is below ``need`` iff z < z*."""
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = (np.log(need / scale) + sd * sd / 2.0) / sd
    deterministic = np.where(need > scale, np.inf, -np.inf)  # no shock to integrate over
    return np.where(need <= 0, -np.inf, np.where((scale > 0) & (sd > 0), exact, deterministic))


def _cash_at_due(s: State, c: Cycle, offset: int, owed: np.ndarray, arrears_before: np.ndarray,
                 reserve: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cash at the due date, the cycle's income so far included. At a label due date the truth
    draws the income's timing and shock itself (``shortfall_shock``) and keeps on the cycle the
    branch's likelihood ratio and the closed-form shortfall probabilities."""
    if c.condition_misses:
        # per income timing (salary on time, late): the shock income that avoids a miss, and the
        # one above which a shortfall is what new outside loans or a restricted line take (credit)
        timing = np.stack([c.income_before_due, c.income_before_due_late])
        need = owed - TOLERANCE + reserve - _cash_before_shock(s, c, offset, timing)
        room = np.where(arrears_before > TOLERANCE, np.inf,
                        np.maximum(s.outside_new_due, s.restricted_burden))
        c.shock, on_time, *c.shortfall = shortfall_shock(
            c.salary_before_due_prob, need, need + TOLERANCE - room, timing[0] * c.income_scale,
            s.transitory_sd, owed > TOLERANCE, not c.boost_rare, rng)
        c.income_before_due = np.where(on_time, timing[0], timing[1])
    sd = s.transitory_sd
    c.income = c.income_fixed + c.income_scale * np.exp(c.shock * sd - sd * sd / 2.0)
    return (_cash_before_shock(s, c, offset, c.income_before_due)
            + c.income_before_due * (c.income - c.income_fixed))


def _cash_before_shock(s: State, c: Cycle, offset: int, before_due: np.ndarray) -> np.ndarray:
    """Cash at the due date but for the part of the income the transitory shock scales."""
    return (s.cash + before_due * c.income_fixed - offset / c.length * c.living - c.outside_due
            - c.emergency * c.emergency_before_due)


def shortfall_shock(on_time_prob: np.ndarray, need: np.ndarray, credit_need: np.ndarray,
                    scale: np.ndarray, sd: np.ndarray, owes: np.ndarray, certain_bad: bool,
                    rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Truth replicates: whether the salary comes on time, and the transitory income shock z, at
    a label due date. ``need`` and ``credit_need`` have one row per income timing (on time, with
    probability ``on_time_prob``; late, when no shock income arrives before the due date).

    On time, the payment falls short when the shock income scale x exp(z sd - sd^2 / 2) is below
    ``need``: z < z*, with probability Phi(z*) in closed form; late, it falls short when anything
    is needed. A shortfall is credit deterioration when the shock income still reaches
    ``credit_need``. m mixes the timings. When every shortfall stays unpaid long enough to count
    (``certain_bad``), m is added in closed form, split by cause, and the replicate continues on
    the path where no shortfall happened (weight 1 - m). Otherwise the replicate takes the
    shortfall branch with probability max(m, MIN_SHORTFALL_PROPOSAL), so that even borrowers who
    almost never fall short show how a shortfall would end (cured in days or carried for 30).
    Either way the timing is drawn given the branch and z from the normal truncated to it.
    Returns z, the timing (True: on time), the branch's likelihood ratio and the closed-form
    credit and liquidity shortfall probabilities.
    """
    n = len(on_time_prob)
    z_on = np.where(owes, _threshold(need[0], scale, sd), -np.inf)
    late_short = owes & (need[1] > 0)
    by_timing = np.stack([ndtr(z_on), late_short.astype(float)])
    prior = np.stack([on_time_prob, 1.0 - on_time_prob])
    m = (prior * by_timing).sum(axis=0)
    closed_form = certain_bad & (m < 1.0)
    credit = np.zeros(n)
    if certain_bad:
        on_time_credit = np.where(credit_need[0] > need[0], 0.0,
                                  np.clip(by_timing[0] - ndtr(_threshold(credit_need[0], scale, sd)), 0, 1))
        late_credit = late_short & (credit_need[1] <= 0)
        credit = np.where(closed_form, prior[0] * on_time_credit + prior[1] * late_credit, 0.0)
    liquidity = np.where(closed_form, m, 0.0) - credit
    proposal = np.where(closed_form, 0.0, np.where(m > 0, np.maximum(m, MIN_SHORTFALL_PROPOSAL), 0.0))
    short = rng.random(n) < proposal
    joint = prior * np.where(short, by_timing, 1.0 - by_timing)  # P(timing, branch)
    on_time = rng.random(n) * joint.sum(axis=0) < joint[0]
    z_at = np.where(on_time, z_on, np.where(late_short, np.inf, -np.inf))
    m_at = np.where(on_time, by_timing[0], by_timing[1])
    u = 1.0 - rng.random(n)  # (0, 1]: the truncated draws stay finite
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(short, ndtri(u * m_at), -ndtri(u * ndtr(-z_at)))
    chosen = np.where(short, proposal, 1.0 - proposal)
    return z, on_time, np.where(short, m, 1.0 - m) / np.where(chosen > 0, chosen, 1.0), credit, liquidity


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
    spread = rng.integers(SHORTFALL_MIN_DAYS_PAST_DUE, np.maximum(c.length - offset - 1, 4))
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
    # the platform grants an increase only in good standing on the day (``dynamics.jump`` reads
    # the arrears at the cycle's start): a due date of the jump's cycle missed before the jump and
    # unpaid before it (a payment on the day may come after the decision) rules the borrower out
    # (82 of 150,000 had their limit raised 20 days past due)
    due_before_jump = (s.k_jump == c.k) & (c.due_day < s.jump_day)
    s.eligible = s.eligible & ~(due_before_jump & miss & (carried | (clear_day >= s.jump_day)))
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
    failed = d["miss"] & ~d["forgot"] & (d["blocked"] | ~d["manual"])  # a forgotten payment: no debit
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
            s.slot_technical_risk_foreseen[j] = d["technical_risk_foreseen"]
            s.slot_weight[j] = d["weight"]
            s.slot_shortfall[:, j] = d["short_credit"], d["short_liquidity"]
