"""Borrowing: inquiries and loans at other lenders, and drawdowns on our line turned into
equal monthly installments."""

from __future__ import annotations

import numpy as np

from pipeline.catalog import DAYS_PER_MONTH, TOLERANCE
from pipeline.simulate.calendar import month_of_year, spring_festival_cycle
from pipeline.simulate.cycle import (
    LENDERS,
    SEASON,
    Cycle,
    World,
    balance,
)
from pipeline.simulate.events import EventLog
from pipeline.simulate.state import INQUIRY_RING, State, annuity_factor, schedule


def borrow_elsewhere(s: State, c: Cycle, world: World, rng: np.random.Generator,
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
    count = _inverse_cdf(rng.random(n), *_poisson_pmf(rate))
    recent = s.inquiries.sum(axis=0)
    p_ok = 0.85 / (1.0 + np.exp(-(s.score - lend.approval_midpoint_score) / 40.0)) * 0.8 ** recent
    approved = np.minimum(_inverse_cdf(rng.random(n), *_binomial_pmf(count, np.clip(p_ok, 0.0, 0.99))),
                          count)  # round-off can leave the distribution function a hair below 1
    s.inquiries[k % INQUIRY_RING] = count
    before_scoring = (since_jump >= 0) & (k < 0)
    s.inquiries_since_jump = (s.inquiries_since_jump + count * before_scoring).astype("int16")
    c.inquiries = count

    # every borrower draws the terms of as many loans as could be approved, used or not
    z, u = rng.standard_normal((MAX_INQUIRIES, n)), rng.random((MAX_INQUIRIES, n))
    rows = np.repeat(np.arange(n), approved)
    nth = np.arange(rows.size) - (np.cumsum(approved) - approved)[rows]  # a borrower's nth loan
    perm = np.exp(s.log_perm[rows])
    amount = np.round(perm * np.exp(np.log(1.2) + 0.5 * z[nth, rows]), -2) + 100.0
    tenor = np.array([6, 12, 24])[np.searchsorted([0.3, 0.8], u[nth, rows], side="right")]
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
    src = first_inq[rows] + nth
    open_day = np.minimum(inq_day[src] + rng.integers(1, 8, rows.size), c.end[rows])
    log.add("bureau_loans", borrower_id=s.borrower_id[rows], open_date=open_day,
            lender_type=lender[src], amount=amount, tenor_months=tenor, monthly_installment=monthly)


# At most this many inquiries a cycle. Counts and approvals are drawn by inverting their
# distribution functions with one uniform per borrower, and loan terms from a fixed block per
# borrower: every borrower uses the same random numbers whatever the others do, which the
# counterfactual's common random numbers need (numpy's own Poisson and binomial samplers use a
# number of draws that depends on their parameters).
MAX_INQUIRIES = 6


def _poisson_pmf(rate: np.ndarray) -> tuple[np.ndarray, ...]:
    """P(0), ..., P(MAX_INQUIRIES - 1) of a Poisson(rate) count; the rest is MAX_INQUIRIES."""
    p = [np.exp(-rate)]
    for j in range(1, MAX_INQUIRIES):
        p.append(p[-1] * rate / j)
    return tuple(p)


def _binomial_pmf(trials: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """P(0), ..., P(MAX_INQUIRIES - 1) of a Binomial(trials, p) count (trials <= MAX_INQUIRIES,
    p < 1), each from the one before: P(j + 1) = P(j) (trials - j) / (j + 1) p / (1 - p)."""
    odds = p / (1.0 - p)
    pmf = [(1.0 - p) ** trials]
    for j in range(MAX_INQUIRIES - 1):
        pmf.append(pmf[-1] * np.maximum(trials - j, 0) / (j + 1) * odds)
    return tuple(pmf)


def _inverse_cdf(u: np.ndarray, *pmf: np.ndarray) -> np.ndarray:
    """The count whose distribution function first exceeds ``u`` (MAX_INQUIRIES if none does)."""
    count, cdf = np.zeros(u.shape, dtype="int64"), np.zeros(u.shape)
    for p in pmf:
        cdf = cdf + p
        count += u >= cdf
    return count


def draw_on_line(s: State, c: Cycle, world: World, rng: np.random.Generator,
                 log: EventLog | None) -> None:
    """Spending on the line: everyday purchases (seasonal), the extra drawn out of a new limit,
    and occasional large one-off purchases or withdrawals to invest; each becomes 3/6/12-month
    equal installments. A frozen or restricted line pushes everyday spending onto cash. The
    helpers draw from ``rng`` in turn, in this order: the same seed gives the same spending."""
    dset = world.settings.drawdown
    n, k = len(s), c.k
    frozen = (s.arrears > TOLERANCE) | s.restricted
    available = np.where(frozen, 0.0, np.maximum(s.limit - balance(s), 0.0))
    everyday = _everyday_spending(s, c, rng)
    after = s.trigger >= 0
    extra = _drawn_from_new_limit(s, c, after, rng)
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
    if log is not None:
        _log_drawdowns(s, c, (regular, tenor_regular), (large, tenor_large), dset.apr, rng, log)


def _everyday_spending(s: State, c: Cycle, rng: np.random.Generator) -> np.ndarray:
    """This cycle's everyday purchases: a share of permanent income, seasonal (the Spring
    Festival's cycle most of all), with noise."""
    month = month_of_year(s.scoring_month + c.k)  # a cycle starts in its scoring month + k
    season = np.ones(len(s))
    for m, factor in SEASON.items():
        season = np.where(month == m, factor, season)
    season = np.where(spring_festival_cycle(c.start, c.end), 1.25, season)
    return s.purchase_share * np.exp(s.log_perm) * season * np.exp(rng.normal(-0.06, 0.35, len(s)))


def _drawn_from_new_limit(s: State, c: Cycle, after: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The extra drawn this cycle out of an increase (``after`` it): the share of the 12 months'
    drawdown (``m12``) that the decaying curve puts in the cycle, with noise; 0 before one."""
    t0 = np.clip((c.start - s.jump_day) / DAYS_PER_MONTH, 0.0, 12.0)
    t1 = np.clip((c.end + 1 - s.jump_day) / DAYS_PER_MONTH, 0.0, 12.0)
    tau = s.draw_tau
    drawn_curve = (np.exp(-t0 / tau) - np.exp(-t1 / tau)) / (1.0 - np.exp(-12.0 / tau))
    return np.where(after, s.m12 * s.increase * drawn_curve * np.exp(rng.normal(-0.045, 0.3, len(s))), 0.0)


def _log_drawdowns(s: State, c: Cycle, regular: tuple[np.ndarray, np.ndarray],
                   large: tuple[np.ndarray, np.ndarray], apr: float, rng: np.random.Generator,
                   log: EventLog) -> None:
    """The cycle's drawdown rows (``regular`` and ``large``: amount and tenor of each borrower's),
    on days drawn in the cycle (a large one after the jump), and what the statement bills."""
    n = len(s)
    day_regular = c.start + np.floor(rng.random(n) * c.length).astype("int32")
    first_day = np.maximum(c.start, s.jump_day)
    day_large = first_day + np.floor(rng.random(n) * (c.end + 1 - first_day)).astype("int32")
    invest = rng.random(n) < 0.4
    by_statement = c.start + s.statement_offset
    c.drawn_by_statement, c.owed_by_statement = np.zeros(n), np.zeros(n)
    for (amount, tenor), day, purpose, sparse in (
            (regular, day_regular, np.full(n, "purchase"), False),
            (large, day_large, np.where(invest, "cash_withdrawal", "large_purchase"), True)):
        rows = amount > 0.5
        monthly, rate = _installment(amount[rows], tenor[rows], apr)
        log.add("drawdowns", borrower_id=s.borrower_id[rows], drawdown_date=day[rows],
                amount=amount[rows], tenor_months=tenor[rows], apr=rate, monthly_installment=monthly,
                purpose=purpose[rows])
        # billed by the statement day: the drawdowns the schedule counts (_schedule)
        billed = (day <= by_statement) & (rows | (not sparse))
        c.drawn_by_statement += np.where(billed, amount, 0.0)
        c.owed_by_statement += np.where(billed, _installment(amount, tenor, apr)[0] * tenor, 0.0)


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
