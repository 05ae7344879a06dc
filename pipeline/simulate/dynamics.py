"""One billing cycle of every active borrower, vectorised.

Order inside cycle k (days counted from the cycle start): the platform's risk review on day 0, the
limit jump if it falls in this cycle, income for the cycle, auto-debit agreement changes, the due
date (day ``due_day_offset``) with payment, miss, cause and cure, borrowing at other lenders,
drawdowns on the line, and the statement on the last day. Each cause of a miss is a mechanism:
a broken agreement or an outage blocks a payment the borrower could make (technical); a cash
shortfall that the borrower's outside debt or a restricted line explains is credit deterioration;
any other shortfall (spending, installments, income) is liquidity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import CAUSES, TRIGGERS, LabelSettings, SimulateSettings
from pipeline.simulate.calendar import day_number, month_of_year, shift_months, spring_festival_cycle
from pipeline.simulate.events import EventLog
from pipeline.simulate.outages import OutageCalendar
from pipeline.simulate.state import INQUIRY_RING, State, annuity_factor, due_in, schedule, start_cycle

MANUAL, ACTIVE, KNOWN_LAPSE, SILENT_FAILURE = 0, 1, 2, 3
NO_CAUSE = -1
CREDIT, LIQUIDITY, TECHNICAL = (CAUSES.index(c) for c in ("credit", "liquidity", "technical"))
TECH_KNOWN, TECH_SILENT, TECH_OUTAGE = 0, 1, 2
DAYS_PER_MONTH = 30.44
TOLERANCE = 1.0  # CNY left unpaid that still counts as paid
# Technical misses are paid after the reminder: a broken agreement within Geometric(p) days (at
# most MAX days), an outage the next day or, for some, the day after.
MANDATE_CURE_P, MANDATE_CURE_MAX, OUTAGE_SECOND_DAY = 0.45, 14, 0.2
LENDERS = np.array(["bank", "consumer_finance", "online_lender"])
SEASON = {6: 1.35, 11: 1.6, 12: 1.1}  # 618 and Double 11 shopping festivals


@dataclass(frozen=True)
class World:
    """What every borrower shares: settings, the outage calendar, and the key dates."""

    settings: SimulateSettings
    label: LabelSettings
    outages: OutageCalendar
    horizon: int  # last cycle the label needs

    @property
    def rule_change_day(self) -> int:
        return day_number(self.settings.risk_rules.rule_change_date)

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
    start: np.ndarray
    end: np.ndarray
    due_day: np.ndarray
    length: np.ndarray
    # filled in as the cycle unfolds
    income: np.ndarray | None = None
    income_before_due: np.ndarray | None = None
    living: np.ndarray | None = None
    emergency: np.ndarray | None = None
    emergency_before_due: np.ndarray | None = None
    outside_due: np.ndarray | None = None
    outside_missed: np.ndarray | None = None
    p_broken: np.ndarray | None = None  # P(agreement broken at the due date), truth replicates
    pay: dict[str, np.ndarray] | None = None  # what happened at the due date
    stressed: np.ndarray | None = None
    inquiries: np.ndarray | None = None
    loan_cash: np.ndarray | None = None
    purchases: np.ndarray | None = None
    miss_kind: np.ndarray | None = None


def cycle_dates(s: State, k: int, due_offset: int, integrate_technical: bool = False) -> Cycle:
    start = cycle_start(s, k)
    end = cycle_start(s, k + 1) - 1
    return Cycle(k, integrate_technical, start, end, start + due_offset, end - start + 1)


def cycle_start(s: State, k: int) -> np.ndarray:
    """First day of cycle k of every borrower (cycle 0 starts on the scoring date)."""
    return shift_months(s.scoring_month, s.scoring_day_in_month, k)


def advance(s: State, k: int, world: World, rng: np.random.Generator, log: EventLog | None,
            integrate_technical: bool = False) -> None:
    """Simulate cycle ``k`` for every borrower in ``s`` (all active) in place.

    With ``integrate_technical`` (the truth replicates) no technical block is drawn: the path
    continues as if none happened and each due date records the probability that one would
    have, which removes that part of the Monte-Carlo noise (see ``truth.expected_outcome``).
    """
    c = cycle_dates(s, k, world.settings.calendar.due_day_offset, integrate_technical)
    for total, changes in ((s.own_due, s.own_changes), (s.outside_due, s.outside_changes),
                           (s.outside_new_due, s.outside_new_changes)):
        start_cycle(total, changes, k)
    _risk_review(s, c, world, log)
    _jump(s, c, world, rng, log)
    _earn_income(s, c, world, rng)
    _update_agreements(s, c, world, rng, log)
    _pay_due(s, c, world, rng)
    _borrow_elsewhere(s, c, world, rng, log)
    _cure_or_carry(s, c, world, rng, log)
    _draw_on_line(s, c, world, rng, log)
    _close_cycle(s, c, world, rng, log)


def balance(s: State) -> np.ndarray:
    """Installments not yet due plus arrears: what the borrower owes on the line."""
    return s.own_remaining + s.arrears


def due_next_cycle(s: State, k: int) -> np.ndarray:
    """Installments scheduled for the due date of cycle k + 1, as known in cycle k."""
    return due_in(s.own_due, s.own_changes, k + 1)


def _risk_review(s: State, c: Cycle, world: World, log: EventLog | None) -> None:
    """The platform restricts a line whose score falls or whose arrears age; it lifts the
    restriction once the borrower has recovered."""
    rules = world.settings.risk_rules
    changed = c.start >= world.rule_change_day
    floor = np.where(changed, rules.restrict_below_score_after_change, rules.restrict_below_score)
    old_arrears = (s.arrears > TOLERANCE) & (s.arrears_since <= c.start - 30)
    many_inquiries = changed & (s.inquiries.sum(axis=0) >= rules.restrict_inquiries_after_change)
    restrict = ~s.restricted & ((s.score < floor) | old_arrears | many_inquiries)
    restore = (s.restricted & (s.score >= floor + 20) & (s.arrears <= TOLERANCE)
               & (s.clean_cycles >= 3) & ~many_inquiries)
    owed = balance(s)
    new_limit = np.where(restrict, np.minimum(np.ceil(owed / 100.0) * 100.0, s.limit),
                         np.where(restore, s.pre_restriction_limit, s.limit))
    changed_rows = restrict | restore
    if log is not None and changed_rows.any():
        log.add("limit_events", borrower_id=s.borrower_id[changed_rows], event_date=c.start[changed_rows],
                event_type=np.where(restrict, "restriction", "restoration")[changed_rows],
                trigger=np.full(changed_rows.sum(), None, dtype=object),
                old_limit=s.limit[changed_rows], new_limit=new_limit[changed_rows])
    s.pre_restriction_limit = np.where(restrict, s.limit, s.pre_restriction_limit)
    s.limit = new_limit
    s.restricted = (s.restricted | restrict) & ~restore


def _jump(s: State, c: Cycle, world: World, rng: np.random.Generator, log: EventLog | None) -> None:
    """The one limit increase: its trigger (with each trigger's selection), size and the
    borrower's hidden intention to draw on it."""
    rows = np.flatnonzero(s.k_jump == c.k)
    if rows.size == 0:
        return
    jset, dset = world.settings.jump, world.settings.drawdown
    score, prop = s.score[rows], s.propensity[rows]
    income = np.exp(s.log_perm[rows])
    declared = s.declared_income[rows]
    s.eligible[rows] = (s.arrears[rows] <= TOLERANCE) & ~s.restricted[rows]
    old = np.where(s.restricted[rows], s.pre_restriction_limit[rows], s.limit[rows])
    need = np.clip(1.0 - s.cash[rows] / income, 0.0, 1.0) + 3.0 * (prop - 1 / 3)
    logits = np.column_stack([
        np.log(jset.trigger_weights["score_improvement"] + 1e-12)
        + jset.score_selection * (score - 650.0) / 50.0 - 3.0 * (s.clean_cycles[rows] < 6),
        np.full(rows.size, np.log(jset.trigger_weights["marketing_campaign"] + 1e-12)),
        np.log(jset.trigger_weights["user_request"] + 1e-12) + jset.need_selection * need,
    ])
    chosen = 1 + np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    trigger = np.where(s.new_user[rows], 0, chosen)

    full = declared * np.clip((score - 450.0) / 80.0, 0.5, 4.0)
    marketing = rng.choice(np.array([3000.0, 5000.0, 10000.0, 20000.0]), rows.size,
                           p=[0.3, 0.35, 0.25, 0.1])
    requested = declared * rng.uniform(1.0, 5.0, rows.size) * np.clip((score - 500.0) / 250.0, 0.2, 1.0)
    increase = np.select([trigger == 0, trigger == 1, trigger == 2],
                         [full - old, old * rng.uniform(0.3, 1.0, rows.size) + 0.5 * declared,
                          marketing], requested)
    increase = np.clip(np.round(increase / 500.0) * 500.0, 1000.0, jset.max_increase)

    utilisation = balance(s)[rows] / np.maximum(old, 1.0)
    logit = (dset.intercept + dset.low_score_effect * (660.0 - score) / 60.0
             + dset.near_limit_effect * (np.minimum(utilisation, 1.2) - 0.5)
             + dset.propensity_effect * (prop - 1 / 3) / 0.15
             + dset.thin_buffer_effect * (s.cash[rows] < 0.5 * income)
             + dset.user_request_effect * (trigger == 3) + 0.3 * (trigger == 0))
    s.m12[rows] = dset.max_share / (1.0 + np.exp(-logit))
    s.draw_tau[rows] = np.where(trigger == 3, dset.decay_months / 2.0, dset.decay_months)
    s.trigger[rows] = trigger
    s.increase[rows] = increase
    s.score_at_jump[rows] = score
    s.util_at_jump[rows] = utilisation
    s.limit[rows] = old + increase
    s.pre_restriction_limit[rows] = old + increase
    s.restricted[rows] = False
    if log is not None:
        log.add("limit_events", borrower_id=s.borrower_id[rows], event_date=s.jump_day[rows],
                event_type=np.full(rows.size, "increase"), trigger=np.array(TRIGGERS)[trigger],
                old_limit=old, new_limit=old + increase)


def _earn_income(s: State, c: Cycle, world: World, rng: np.random.Generator) -> None:
    """Permanent and transitory income shocks, job loss and re-employment, the spring-festival
    bonus; salary arrives on the borrower's payday, other income spread over the cycle."""
    inc = world.settings.income
    n = len(s)
    u = rng.random(n)
    s.employed = np.where(s.employed, u >= s.job_loss_hazard, u < inc.reemployment_rate)
    s.log_perm = s.log_perm + rng.normal(0.0, inc.permanent_sd, n)
    perm = np.exp(s.log_perm)
    sd = s.transitory_sd
    income = perm * np.exp(rng.normal(0.0, 1.0, n) * sd - sd * sd / 2.0)
    income = np.where(s.employed, income, perm * inc.unemployed_income_share)
    festival = spring_festival_cycle(c.start, c.end) & (s.employment == 0) & s.employed
    income = income + festival * inc.spring_festival_bonus_months * perm
    due_offset = world.settings.calendar.due_day_offset
    late_salary = rng.random(n) < inc.late_salary_prob
    payday = s.payday + late_salary * rng.integers(3, 13, n)
    c.income = income
    c.income_before_due = np.where(s.payday >= 0, (payday < due_offset).astype(float),
                                   due_offset / c.length)
    # emergencies (medical bills, repairs): cash out, before the due date or after it
    hit = rng.random(n) < inc.emergency_prob
    c.emergency = np.where(hit, perm * np.exp(rng.normal(np.log(inc.emergency_months), 0.6, n)), 0.0)
    c.emergency_before_due = rng.random(n) < due_offset / c.length
    # the unemployed and those in arrears cut back
    cut_back = np.where(s.employed, 1.0, 0.75) * np.where(s.arrears > TOLERANCE, 0.85, 1.0)
    c.living = s.living_share * perm * cut_back


def _update_agreements(s: State, c: Cycle, world: World, rng: np.random.Generator,
                       log: EventLog | None) -> None:
    """Auto-debit agreements lapse (the platform sees it) or fail silently (a changed card);
    a known lapse may be fixed before the due date; a re-authorisation campaign asks borrowers to
    renew by a deadline and lapses those who do not."""
    tech = world.settings.technical
    n = len(s)
    u = rng.random(n)
    active = s.mandate == ACTIVE
    lapse_rate = tech.known_lapse_rate + tech.silent_failure_rate
    known = active & (u < tech.known_lapse_rate)
    silent = active & ~known & (u < lapse_rate)
    lapse_day = c.start + rng.integers(0, world.settings.calendar.due_day_offset, n)

    announced = _announce_campaigns(s, c, world, rng, active)
    pending = s.reauth_deadline > 0
    window_start = np.maximum(c.start, s.reauth_since)
    window_end = np.minimum(c.end + 1, s.reauth_deadline)
    in_window = pending & (window_start < window_end)
    reauthorised = in_window & (rng.random(n) < tech.reauthorise_prob_per_cycle)
    prev_due = cycle_start(s, c.k - 1) + world.settings.calendar.due_day_offset
    at_deadline = pending & (prev_due < s.reauth_deadline) & (s.reauth_deadline <= c.due_day)
    if c.integrate_technical:
        _condition_on_working_agreement(s, c, tech, lapse_rate, active, in_window, at_deadline,
                                        reauthorised)
        return
    deadline_lapse = at_deadline & ~reauthorised & active
    done = reauthorised | at_deadline
    deadline_day = s.reauth_deadline.copy()
    s.reauth_since = np.where(done, 0, s.reauth_since).astype("int32")
    s.reauth_deadline = np.where(done, 0, s.reauth_deadline).astype("int32")

    fixed = (s.mandate == KNOWN_LAPSE) & (rng.random(n) < tech.fix_before_due_prob)
    s.mandate = np.select([known | deadline_lapse, silent, fixed],
                          [KNOWN_LAPSE, SILENT_FAILURE, ACTIVE], s.mandate).astype("int8")
    if log is None:
        return
    window_days = np.maximum(window_end - window_start, 1)
    reauth_day = window_start + np.floor(rng.random(n) * window_days).astype("int32")
    fix_day = c.start + rng.integers(0, world.settings.calendar.due_day_offset, n)
    why = np.where(rng.random(n) < 0.5, "expired", "user_action")
    campaign = "reauthorisation_campaign"
    _log_platform(log, s, known, lapse_day, "autodebit_revoked", why)
    _log_platform(log, s, deadline_lapse, deadline_day, "autodebit_revoked", "campaign_deadline")
    _log_platform(log, s, announced >= 0, announced, "reauth_required", campaign)
    _log_platform(log, s, reauthorised, reauth_day, "autodebit_authorised", campaign)
    _log_platform(log, s, fixed, fix_day, "autodebit_authorised", "user_action")


def _announce_campaigns(s: State, c: Cycle, world: World, rng: np.random.Generator,
                        active: np.ndarray) -> np.ndarray:
    """Start the campaigns announced in this cycle for the share of active agreements they
    cover; returns the announcement day per borrower (-1 if none)."""
    announced = np.full(len(s), -1, dtype="int32")
    for announce, deadline, share in world.campaigns:
        rows = np.flatnonzero(active & (c.start <= announce) & (announce <= c.end))
        if rows.size == 0:
            continue
        rows = rows[rng.random(rows.size) < share]
        announced[rows] = announce
        s.reauth_since[rows] = announce
        s.reauth_deadline[rows] = deadline
    return announced


def _condition_on_working_agreement(s: State, c: Cycle, tech, lapse_rate: float, active,
                                    in_window, at_deadline, reauthorised) -> None:
    """Truth replicates: the probability that the agreement is broken at the due date, and the
    path on which it is not (lapses that did not happen, fixes and renewals that did)."""
    deadline_lapse = np.where(at_deadline & active,
                              np.where(in_window, 1.0 - tech.reauthorise_prob_per_cycle, 1.0), 0.0)
    works = np.select([active, s.mandate == KNOWN_LAPSE, s.mandate == SILENT_FAILURE],
                      [(1.0 - lapse_rate) * (1.0 - deadline_lapse), tech.fix_before_due_prob, 0.0],
                      1.0)
    c.p_broken = 1.0 - works
    done = reauthorised | at_deadline
    s.reauth_since = np.where(done, 0, s.reauth_since).astype("int32")
    s.reauth_deadline = np.where(done, 0, s.reauth_deadline).astype("int32")
    s.mandate = np.where(s.mandate == MANUAL, MANUAL, ACTIVE).astype("int8")


def _technical_bad_share(dpd_threshold: int) -> tuple[float, float]:
    """P(a technical miss stays unpaid dpd_threshold days or more): broken agreement, outage."""
    mandate = (1.0 - MANDATE_CURE_P) ** (dpd_threshold - 1) * (dpd_threshold <= MANDATE_CURE_MAX)
    outage = 1.0 if dpd_threshold <= 1 else (OUTAGE_SECOND_DAY if dpd_threshold == 2 else 0.0)
    return mandate, outage


def _log_platform(log: EventLog, s: State, rows: np.ndarray, day: np.ndarray, kind: str,
                  detail: str | np.ndarray) -> None:
    if not rows.any():
        return
    detail = np.broadcast_to(np.asarray(detail, dtype=object), rows.shape)[rows]
    log.add("platform_events", borrower_id=s.borrower_id[rows], event_date=day[rows],
            event_type=np.full(rows.sum(), kind), detail=detail)


def _pay_due(s: State, c: Cycle, world: World, rng: np.random.Generator) -> None:
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
        bad_mandate, bad_outage = _technical_bad_share(world.label.dpd_threshold)
        could_pay = (owed > TOLERANCE) & (shortfall <= TOLERANCE)
        c.pay["technical_risk"] = could_pay * (c.p_broken * bad_mandate
                                               + (1.0 - c.p_broken) * outage_p * bad_outage)


def _cure_or_carry(s: State, c: Cycle, world: World, rng: np.random.Generator,
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
    _log_platform(log, s, failed, c.due_day, "debit_failed", reason)
    _log_platform(log, s, reauthorised, clear_day, "autodebit_authorised", "user_action")
    _log_platform(log, s, cancelled, clear_day, "autodebit_cancelled", "user_action")


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


def _borrow_elsewhere(s: State, c: Cycle, world: World, rng: np.random.Generator,
                      log: EventLog | None) -> None:
    """Inquiries at other lenders: more after an approval (the promotions that follow it) and
    under cash stress; approved loans bring cash now and installments later."""
    lend = world.settings.lending
    n, k = len(s), c.k
    since_jump = k - s.k_jump
    boost = np.where(since_jump >= 0, 1.0 + lend.post_approval_boost
                     * np.exp(-np.maximum(since_jump, 0) / lend.post_approval_decay_months), 1.0)
    stress = 1.0 + lend.stress_multiplier * c.stressed
    rate = lend.inquiry_rate * (0.3 + 3.0 * s.propensity) * boost * stress
    count = np.minimum(rng.poisson(rate), 6)
    recent = s.inquiries.sum(axis=0)
    p_ok = 0.85 / (1.0 + np.exp(-(s.score - lend.approval_midpoint_score) / 40.0)) * 0.8 ** recent
    approved = rng.binomial(count, np.clip(p_ok, 0.0, 1.0))
    s.inquiries[k % INQUIRY_RING] = count
    before_scoring = (since_jump >= 0) & (k < 0)
    s.inquiries_since_jump = (s.inquiries_since_jump + count * before_scoring).astype("int16")
    c.inquiries = count

    rows = np.repeat(np.arange(n), approved)
    perm = np.exp(s.log_perm[rows])
    amount = np.round(perm * np.exp(rng.normal(np.log(1.2), 0.5, rows.size)), -2) + 100.0
    tenor = rng.choice(np.array([6, 12, 24]), rows.size, p=[0.3, 0.5, 0.2])
    monthly = amount * annuity_factor(lend.loan_apr / 12.0, tenor)
    schedule(s.outside_changes, k + 1, monthly, tenor, rows)
    schedule(s.outside_new_changes, k + 1, monthly, tenor, rows)
    proceeds = np.bincount(rows, weights=amount, minlength=n)
    c.loan_cash = proceeds * (1.0 - 0.5 * s.propensity)  # the rest is spent at once
    s.cash = s.cash + c.loan_cash
    if log is None:
        return
    inq_rows = np.repeat(np.arange(n), count)
    inq_day = c.start[inq_rows] + np.floor(rng.random(inq_rows.size) * c.length[inq_rows]).astype("int32")
    lender = LENDERS[rng.choice(3, inq_rows.size, p=[0.25, 0.35, 0.40])]
    log.add("bureau_inquiries", borrower_id=s.borrower_id[inq_rows], inquiry_date=inq_day,
            lender_type=lender)
    first_inq = np.cumsum(count) - count  # position of each borrower's first inquiry
    nth = np.arange(rows.size) - (np.cumsum(approved) - approved)[rows]
    src = first_inq[rows] + nth
    open_day = np.minimum(inq_day[src] + rng.integers(1, 8, rows.size), c.end[rows])
    log.add("bureau_loans", borrower_id=s.borrower_id[rows], open_date=open_day,
            lender_type=lender[src], amount=amount, tenor_months=tenor, monthly_installment=monthly)


def _draw_on_line(s: State, c: Cycle, world: World, rng: np.random.Generator,
                  log: EventLog | None) -> None:
    """Spending on the line: everyday purchases (seasonal), the extra drawn out of a new limit,
    and occasional large one-off purchases or withdrawals to invest; each becomes 3/6/12-month
    equal installments. A frozen or restricted line pushes everyday spending onto cash."""
    dset = world.settings.drawdown
    n, k = len(s), c.k
    perm = np.exp(s.log_perm)
    frozen = (s.arrears > TOLERANCE) | s.restricted
    available = np.where(frozen, 0.0, np.maximum(s.limit - balance(s), 0.0))
    month = month_of_year(s.scoring_month + k)  # a cycle starts in its scoring month + k
    season = np.ones(n)
    for m, factor in SEASON.items():
        season = np.where(month == m, factor, season)
    season = np.where(spring_festival_cycle(c.start, c.end), 1.25, season)
    everyday = s.purchase_share * perm * season * np.exp(rng.normal(-0.06, 0.35, n))

    after = s.trigger >= 0
    t0 = np.clip((c.start - s.jump_day) / DAYS_PER_MONTH, 0.0, 12.0)
    t1 = np.clip((c.end + 1 - s.jump_day) / DAYS_PER_MONTH, 0.0, 12.0)
    tau = s.draw_tau
    drawn_curve = (np.exp(-t0 / tau) - np.exp(-t1 / tau)) / (1.0 - np.exp(-12.0 / tau))
    extra = np.where(after, s.m12 * s.increase * drawn_curve * np.exp(rng.normal(-0.045, 0.3, n)), 0.0)
    early = (k - s.k_jump) < 6
    # those keen to draw on the new limit are the ones who make large one-off purchases
    p_large = dset.large_spend_prob * 4.0 * s.m12 * np.where(early, 2.0, 1.0)
    large_wish = after & (rng.random(n) < p_large)
    large = np.where(large_wish, rng.uniform(0.2, 0.6, n) * available, 0.0)
    regular = np.minimum(everyday + extra, available - large)
    regular = np.maximum(regular, 0.0)
    unmet_everyday = np.maximum(everyday - regular, 0.0)
    cash_burden = 0.4 * unmet_everyday
    s.restricted_burden = np.where(s.restricted, cash_burden, 0.0)
    s.cash = s.cash - cash_burden
    c.purchases = regular + large
    extra_drawn = regular + large - np.minimum(everyday, regular)  # beyond everyday spending
    s.drawn_since_jump = s.drawn_since_jump + np.where(after, extra_drawn, 0.0)

    tenor_regular = rng.choice(np.array([3, 6, 12]), n, p=[0.6, 0.3, 0.1])
    tenor_large = rng.choice(np.array([6, 12]), n, p=[0.4, 0.6])
    _schedule(s, k, regular, tenor_regular, dset.apr, sparse=False)
    _schedule(s, k, large, tenor_large, dset.apr, sparse=True)
    if log is None:
        return
    day_regular = c.start + np.floor(rng.random(n) * c.length).astype("int32")
    first_day = np.maximum(c.start, s.jump_day)
    day_large = first_day + np.floor(rng.random(n) * (c.end + 1 - first_day)).astype("int32")
    invest = rng.random(n) < 0.4
    for amount, tenor, day, purpose in (
            (regular, tenor_regular, day_regular, np.full(n, "purchase")),
            (large, tenor_large, day_large, np.where(invest, "cash_withdrawal", "large_purchase"))):
        rows = amount > 0.5
        log.add("drawdowns", borrower_id=s.borrower_id[rows], drawdown_date=day[rows],
                amount=amount[rows], tenor_months=tenor[rows],
                apr=_installment(amount[rows], tenor[rows], dset.apr)[1],
                monthly_installment=_installment(amount[rows], tenor[rows], dset.apr)[0],
                purpose=purpose[rows])


TENORS = np.array([3, 6, 12])


def _installment(amount: np.ndarray, tenor: np.ndarray,
                 apr: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Equal monthly installment of each drawdown, and its annual rate."""
    rate = np.array([apr[3], apr[6], apr[12]])[np.searchsorted(TENORS, tenor)]
    return amount * annuity_factor(rate / 12.0, tenor), rate


def _schedule(s: State, k: int, amount: np.ndarray, tenor: np.ndarray, apr: dict[int, float],
              sparse: bool) -> None:
    """Equal installments of the drawdowns of cycle k, due from cycle k + 1."""
    rows = np.flatnonzero(amount > 0.5) if sparse else None
    if sparse:
        amount, tenor = amount[rows], tenor[rows]
    monthly, _ = _installment(amount, tenor, apr)
    schedule(s.own_changes, k + 1, monthly, tenor, rows)
    remaining = monthly * tenor
    if sparse:
        np.add.at(s.own_remaining, rows, remaining)
    else:
        s.own_remaining += remaining


def _close_cycle(s: State, c: Cycle, world: World, rng: np.random.Generator,
                 log: EventLog | None) -> None:
    """Cash after the rest of the cycle, buffer-stock spending of excess cash, the bureau score,
    the statement, and the drawdown shares the realism report needs."""
    n, k = len(s), c.k
    perm = np.exp(s.log_perm)
    s.cash = s.cash + c.income - c.living - c.outside_due - c.emergency
    saving_up = s.arrears > TOLERANCE
    s.cash = s.cash - 0.25 * ~saving_up * np.maximum(s.cash - s.buffer_months * perm, 0.0)
    s.cash = np.maximum(s.cash, 0.0)
    limit = np.maximum(s.limit, 1.0)
    owed = balance(s)
    utilisation = owed / limit
    miss_kind = c.miss_kind
    delta = (0.06 * (s.score_anchor - s.score) + rng.normal(0.0, 5.0, n) - 5.0 * c.inquiries
             - np.select([miss_kind == 1, miss_kind == 2, miss_kind == 3], [6.0, 25.0, 45.0], 0.0)
             - 30.0 * c.outside_missed - 20.0 * np.clip(utilisation - 0.8, 0.0, 0.4) / 0.2
             + 1.5 * ((miss_kind == 0) & (utilisation < 0.5)))
    s.score = np.clip(s.score + delta, 300.0, 950.0)
    since = k - s.k_jump
    s.drawn_q1 = np.where(since == 2, s.drawn_since_jump / np.maximum(s.increase, 1.0), s.drawn_q1)
    s.drawn_12m = np.where(since == 11, s.drawn_since_jump / np.maximum(s.increase, 1.0), s.drawn_12m)
    if log is None:
        return
    status = np.where(s.arrears > TOLERANCE, "frozen", np.where(s.restricted, "restricted", "active"))
    dpd = np.where(s.arrears > TOLERANCE, c.end - s.arrears_since, 0)
    visible = s.observed_share
    log.add("statements", borrower_id=s.borrower_id, statement_date=c.end, cycle_start_date=c.start,
            credit_limit=s.limit, balance=owed, purchases=c.purchases,
            installment_due_next=due_next_cycle(s, k),
            overdue_amount=s.arrears, days_past_due=dpd, credit_score=np.round(s.score),
            wallet_inflow=c.income * visible * np.exp(rng.normal(0.0, 0.05, n)),
            wallet_balance=s.cash * visible * np.exp(rng.normal(0.0, 0.1, n)), line_status=status)
