"""One billing cycle of every active borrower, vectorised.

Order inside cycle k (days counted from the cycle start): the platform's risk review on day 0, the
limit jump if it falls in this cycle, income for the cycle, auto-debit agreement changes, the due
date (day ``due_day_offset``) with payment, miss, cause and cure, borrowing at other lenders,
drawdowns on the line, and the statements, each on its account's own day (``statements``). Each
cause of a miss is a mechanism: a broken agreement or an outage blocks a payment the borrower
could make (technical); a cash shortfall that the borrower's outside debt or a restricted line
explains is credit deterioration; any other shortfall (spending, installments, income) is liquidity.
"""

from __future__ import annotations

import numpy as np

from pipeline.catalog import SCORE_RANGE, TOLERANCE
from pipeline.config import TRIGGERS, DrawdownSettings, JumpSettings, needs_lasting_shortfall
from pipeline.simulate.agreements import update_agreements
from pipeline.simulate.borrowing import borrow_elsewhere, draw_on_line
from pipeline.simulate.calendar import spring_festival_cycle
from pipeline.simulate.cycle import (
    MIN_EMERGENCY_PROPOSAL,
    MIN_JOB_LOSS_PROPOSAL,
    Cycle,
    World,
    balance,
    cycle_dates,
    cycle_start,
    rare_event,
)
from pipeline.simulate.events import EventLog
from pipeline.simulate.repayment import cure_or_carry, pay_due
from pipeline.simulate.state import SCORE_RING, State, start_cycle
from pipeline.simulate.statements import closing_figures

__all__ = ["World", "advance", "balance", "cycle_start"]


def advance(s: State, k: int, world: World, rng: np.random.Generator, log: EventLog | None,
            integrate_technical: bool = False, label_only: bool = False) -> None:
    """Simulate cycle ``k`` for every borrower in ``s`` (all active) in place.

    With ``integrate_technical`` (the truth replicates) no technical block is drawn: the path
    continues as if none happened and each due date records the probability that one would
    have, which removes that part of the Monte-Carlo noise (see ``truth.expected_outcome``); at
    the due dates of the label window a cash shortfall is importance-sampled
    (``repayment.shortfall_shock``). With ``label_only`` (the truth's last cycle) the cycle stops
    once the due date is paid or cured: nothing after it changes the label.
    """
    in_window = integrate_technical and 0 <= k < world.label.performance_cycles
    c = cycle_dates(s, k, world.settings.calendar.due_day_offset, integrate_technical, in_window,
                    in_window and needs_lasting_shortfall(world.label))
    for total, changes in ((s.own_due, s.own_changes), (s.outside_due, s.outside_changes),
                           (s.outside_new_due, s.outside_new_changes)):
        start_cycle(total, changes, k)
    risk_review(s, c, world, log)
    jump(s, c, world, rng, log)
    earn_income(s, c, world, rng)
    update_agreements(s, c, world, rng, log)
    pay_due(s, c, world, rng)
    borrow_elsewhere(s, c, world, rng, log)
    cure_or_carry(s, c, world, rng, log)
    if label_only:
        return
    draw_on_line(s, c, world, rng, log)
    close_cycle(s, c, rng, log)


def risk_review(s: State, c: Cycle, world: World, log: EventLog | None) -> None:
    """The platform restricts a line whose score falls or whose arrears age; it lifts the
    restriction once the borrower has recovered."""
    rules = world.settings.risk_rules
    changed = c.start >= s.rule_change_day  # per borrower: truth replicates redraw an unknown one
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
                old_limit=s.limit[changed_rows], new_limit=new_limit[changed_rows],
                test_cell=np.full(changed_rows.sum(), None, dtype=object))
    s.pre_restriction_limit = np.where(restrict, s.limit, s.pre_restriction_limit)
    s.limit = new_limit
    s.restricted = (s.restricted | restrict) & ~restore


def jump(s: State, c: Cycle, world: World, rng: np.random.Generator, log: EventLog | None) -> None:
    """The one limit increase: its trigger (with each trigger's selection), size and the
    borrower's hidden intention to draw on it. The helpers draw from ``rng`` in turn, in this
    order: the same seed gives the same increases."""
    rows = np.flatnonzero(s.k_jump == c.k)
    if rows.size == 0:
        return
    jset = world.settings.jump
    income = np.exp(s.log_perm[rows])
    s.eligible[rows] = (s.arrears[rows] <= TOLERANCE) & ~s.restricted[rows]
    old = np.where(s.restricted[rows], s.pre_restriction_limit[rows], s.limit[rows])
    trigger, forced = _draw_trigger(s, c, rows, jset, income, rng)
    increase, tested = _draw_increase(s, rows, jset, trigger, forced, old, rng)
    utilisation = balance(s)[rows] / np.maximum(old, 1.0)
    _intend_to_draw(s, rows, world.settings.drawdown, trigger, utilisation, income)
    s.trigger[rows] = trigger
    s.line_test[rows] = tested
    s.increase[rows] = increase
    s.score_at_jump[rows] = s.score[rows]
    s.util_at_jump[rows] = utilisation
    s.limit[rows] = old + increase
    s.pre_restriction_limit[rows] = old + increase
    s.restricted[rows] = False
    if log is not None:
        log.add("limit_events", borrower_id=s.borrower_id[rows], event_date=s.jump_day[rows],
                event_type=np.full(rows.size, "increase"), trigger=np.array(TRIGGERS)[trigger],
                old_limit=old, new_limit=old + increase,
                test_cell=np.where(tested, "line_test", "policy").astype(object))


def _draw_trigger(s: State, c: Cycle, rows: np.ndarray, jset: JumpSettings, income: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each increase's trigger (index into TRIGGERS: new users' is 0) chosen among the others with
    each one's selection (a risen score, a campaign, a need for money), and whether it is forced
    (the counterfactual truth: trigger as it was)."""
    score, prop = s.score[rows], s.propensity[rows]
    need = np.clip(1.0 - s.cash[rows] / income, 0.0, 1.0) + 3.0 * (prop - 1 / 3)
    logits = np.column_stack([
        np.log(jset.trigger_weights["score_improvement"] + 1e-12)
        + jset.score_selection * (score - s.past_score[c.k % SCORE_RING, rows]) / SCORE_RISE
        - 3.0 * (s.clean_cycles[rows] < 6),
        np.full(rows.size, np.log(jset.trigger_weights["marketing_campaign"] + 1e-12)),
        np.log(jset.trigger_weights["user_request"] + 1e-12) + jset.need_selection * need,
    ])
    chosen = 1 + np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    forced = ~np.isnan(s.forced_amount[rows])
    return np.where(forced, s.trigger[rows], np.where(s.new_user[rows], 0, chosen)), forced


def _draw_increase(s: State, rows: np.ndarray, jset: JumpSettings, trigger: np.ndarray, forced: np.ndarray,
                   old: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each increase's amount as its trigger sizes it, or from the line-test grid, and whether it
    was a line test; a forced one keeps its amount and cell."""
    score, declared = s.score[rows], s.declared_income[rows]
    full = declared * np.clip((score - 450.0) / 80.0, 0.5, 4.0)
    marketing = rng.choice(np.array([3000.0, 5000.0, 10000.0, 20000.0]), rows.size,
                           p=[0.3, 0.35, 0.25, 0.1])
    requested = declared * rng.uniform(1.0, 5.0, rows.size) * np.clip((score - 500.0) / 250.0, 0.2, 1.0)
    increase = np.select([trigger == 0, trigger == 1, trigger == 2],
                         [full - old, old * rng.uniform(0.3, 1.0, rows.size) + 0.5 * declared,
                          marketing], requested)
    increase = np.clip(np.round(increase / 500.0) * 500.0, 1000.0, jset.max_increase)
    # randomised line tests: a share of the reviewed borrowers (new users' jump is their first
    # real limit) gets an amount drawn from the grid, whatever the policy would have given
    grid = np.asarray(jset.line_test_amounts)
    tested = (trigger != 0) & (rng.random(rows.size) < jset.line_test_share)
    tested = np.where(forced, s.line_test[rows], tested)
    increase = np.where(tested, grid[rng.integers(0, grid.size, rows.size)], increase)
    return np.where(forced, s.forced_amount[rows], increase), tested


def _intend_to_draw(s: State, rows: np.ndarray, dset: DrawdownSettings, trigger: np.ndarray,
                    utilisation: np.ndarray, income: np.ndarray) -> None:
    """The borrower's hidden intention to draw on the increase: the share of it drawn over 12
    months (``m12``) and how fast the drawing decays (``draw_tau``)."""
    score, prop = s.score[rows], s.propensity[rows]
    logit = (dset.intercept + dset.low_score_effect * (660.0 - score) / 60.0
             + dset.near_limit_effect * (np.minimum(utilisation, 1.2) - 0.5)
             + dset.propensity_effect * (prop - 1 / 3) / 0.15
             + dset.thin_buffer_effect * (s.cash[rows] < 0.5 * income)
             + dset.user_request_effect * (trigger == 3) + 0.3 * (trigger == 0))
    s.m12[rows] = dset.max_share / (1.0 + np.exp(-logit))
    s.draw_tau[rows] = np.where(trigger == 3, dset.decay_months / 2.0, dset.decay_months)


# the score-improvement trigger selects on the rise of the score over SCORE_RING cycles, in units
# of this many points (about its spread over six months for a borrower in steady state)
SCORE_RISE = 15.0
LATE_SALARY_DAYS = (3, 12)  # a late salary arrives this many days late (uniform, inclusive)
EMERGENCY_SD = 0.6  # of the log of an emergency's size
# Truth replicates of a label that needs a lasting shortfall: half the emergencies are drawn this
# many standard deviations larger, and at least this share of them before the due date
SEVERE_SHIFT, MIN_BEFORE_DUE_PROPOSAL = 2.5, 0.5


def earn_income(s: State, c: Cycle, world: World, rng: np.random.Generator) -> None:
    """Permanent and transitory income shocks, job loss and re-employment, the spring-festival
    bonus; salary arrives on the borrower's payday, other income spread over the cycle."""
    inc = world.settings.income
    n = len(s)
    u = rng.random(n)
    lose_job = rare_event(np.where(s.employed, s.job_loss_hazard, 0.0), MIN_JOB_LOSS_PROPOSAL, u, c)
    s.employed = np.where(s.employed, ~lose_job, u < inc.reemployment_rate)
    s.log_perm = s.log_perm + rng.normal(0.0, inc.permanent_sd, n)
    perm = np.exp(s.log_perm)
    # income = fixed part + scale x lognormal transitory shock; the truth draws the shock of a
    # due date of the label window itself, at the due date (repayment.shortfall_shock)
    c.shock = None if c.condition_misses else rng.normal(0.0, 1.0, n)
    c.income_scale = np.where(s.employed, perm, 0.0)
    festival = spring_festival_cycle(c.start, c.end) & (s.employment == 0) & s.employed
    c.income_fixed = (np.where(s.employed, 0.0, perm * inc.unemployed_income_share)
                      + festival * inc.spring_festival_bonus_months * perm)
    due_offset = world.settings.calendar.due_day_offset
    spread = due_offset / c.length  # income other than a salary arrives evenly over the cycle
    if c.condition_misses:  # the truth integrates over a late salary at the due date (repayment)
        still_before = np.clip(due_offset - s.payday - LATE_SALARY_DAYS[0], 0, 10) / 10
        on_time = (1 - inc.late_salary_prob) * (s.payday < due_offset) + inc.late_salary_prob * still_before
        c.salary_before_due_prob = np.where(s.payday >= 0, on_time, 1.0)
        c.income_before_due = np.where(s.payday >= 0, 1.0, spread)
        c.income_before_due_late = np.zeros(n)  # a late salary: nothing before the due date
    else:
        late_salary = rng.random(n) < inc.late_salary_prob
        payday = s.payday + late_salary * rng.integers(LATE_SALARY_DAYS[0], LATE_SALARY_DAYS[1] + 1, n)
        c.income_before_due = np.where(s.payday >= 0, (payday < due_offset).astype(float), spread)
    # emergencies (medical bills, repairs): cash out, before the due date or after it
    hit = rare_event(np.full(n, inc.emergency_prob), MIN_EMERGENCY_PROPOSAL, rng.random(n), c)
    size, u, before_due_prob = rng.normal(0.0, 1.0, n), rng.random(n), due_offset / c.length
    if c.boost_rare:
        size, c.emergency_before_due, ratio = severe_emergency(hit, size, u, before_due_prob, rng)
        c.weight = c.weight * ratio
    else:
        c.emergency_before_due = u < before_due_prob
    c.emergency = np.where(hit, perm * np.exp(np.log(inc.emergency_months) + EMERGENCY_SD * size), 0.0)
    # the unemployed and those in arrears cut back
    cut_back = np.where(s.employed, 1.0, 0.75) * np.where(s.arrears > TOLERANCE, 0.85, 1.0)
    c.living = s.living_share * perm * cut_back


def severe_emergency(hit: np.ndarray, size: np.ndarray, u: np.ndarray, before_due_prob: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Importance sampling of the emergencies that leave a cash-rich borrower short, which plain
    draws reach too rarely (most such borrowers got p_true exactly 0 at dpd 30): the size's
    standard normal ``size`` is drawn from the defensive mixture N(0, 1) / 2 + N(SEVERE_SHIFT, 1) / 2
    and the timing before the due date (from the uniforms ``u``) with probability
    max(p, MIN_BEFORE_DUE_PROPOSAL). Returns the size's normal, whether the emergency comes before
    the due date, and the likelihood ratio (1 where no emergency ``hit``, else at most 2 x 2)."""
    size = size + SEVERE_SHIFT * (rng.random(hit.size) < 0.5)
    mixture = 0.5 + 0.5 * np.exp(SEVERE_SHIFT * size - SEVERE_SHIFT ** 2 / 2)  # q(z) / phi(z)
    proposal = np.maximum(before_due_prob, MIN_BEFORE_DUE_PROPOSAL)
    before = u < proposal
    timing = np.where(before, before_due_prob / proposal, (1 - before_due_prob) / (1 - proposal))
    return size, before, np.where(hit, timing / mixture, 1.0)


def close_cycle(s: State, c: Cycle, rng: np.random.Generator,
                 log: EventLog | None) -> None:
    """Cash after the rest of the cycle, buffer-stock spending of excess cash, the bureau score,
    the statements (``statements``), and the drawdown shares the realism report needs."""
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
    s.score = np.clip(s.score + delta, *SCORE_RANGE)
    s.past_score[k % SCORE_RING] = s.score
    since = k - s.k_jump
    with np.errstate(divide="ignore", invalid="ignore"):  # a line test of 0 has no drawn share
        share = np.where(s.increase > 0, s.drawn_since_jump / s.increase, np.nan)
    s.drawn_q1 = np.where(since == 2, share, s.drawn_q1)
    s.drawn_12m = np.where(since == 11, share, s.drawn_12m)
    if log is None:
        return
    visible = s.observed_share
    inflow = c.income * visible * np.exp(rng.normal(0.0, 0.05, n))
    wallet = s.cash * visible * np.exp(rng.normal(0.0, 0.1, n))
    log.book.issue(s, c, log, closing_figures(s, c, inflow, wallet))
