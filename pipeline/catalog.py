"""The feature catalogue: every feature once, with what it means and how it is used.

``cause`` groups features for reason codes (credit deterioration, liquidity, technical, profile);
``direction`` is the expected effect on risk (+1 more risk as the value grows, -1 less, 0 no
constraint) and becomes LightGBM's monotone constraint; ``reason`` is how a scorer explains a
high value to a risk officer, in the terms of the source article. ``domain`` is what a value
may be (range, whole number, codes, missing or not): the features table's contract, which the
scorer checks row by row on a features file and on features computed from raw tables alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pipeline.config import EMPLOYMENT_TYPES, TRIGGERS

CAUSE_CATEGORIES = ("credit", "liquidity", "technical", "profile")
MAX_AMOUNT = 10_000_000.0  # CNY, one amount of a raw table; anything above is a unit error (fen for yuan)
# Sums over a window of such amounts: beyond this, the amounts are in the wrong unit or garbage.
MAX_CNY = 1e9
MAX_RATIO = 1e6  # ratios of plausible amounts; beyond it a denominator is a unit error
SCORE_RANGE = (300.0, 950.0)  # bureau credit score points (the raw tables' contract uses it too)
AGE_RANGE = (18.0, 80.0)  # years at onboarding (likewise)
FORGOTTEN_MAX_DAYS_LATE = 7  # a forgotten due date is paid once reminded; a shortfall lasts longer
DAYS_PER_MONTH = 30.44  # a month in the features' windows and the simulator's calendar
SECONDS_PER_DAY = 86_400
UTILISATION_RISE = 0.02  # of the limit: the least rise of utilisation a reason calls one
TOLERANCE = 1.0  # CNY left unpaid that still counts as paid, by the simulator and the features alike


@dataclass(frozen=True)
class Domain:
    """The values a feature may take, bounds inclusive; ``codes``, if given, are the only ones."""

    low: float
    high: float
    whole: bool = False
    nullable: bool = False
    codes: tuple[float, ...] | None = None


def _codes(n: int, first: int = 0) -> Domain:
    return Domain(first, first + n - 1, whole=True, codes=tuple(float(c) for c in range(first, first + n)))


# what each unit allows; a ratio is missing when its denominator is zero (no income, no limit)
UNITS = {
    "CNY": Domain(0.0, MAX_CNY),
    "ratio": Domain(0.0, MAX_RATIO, nullable=True),
    "ratio/month": Domain(0.0, MAX_RATIO, nullable=True),
    "months": Domain(0.0, 1200.0),
    "days": Domain(0.0, 36_500.0),
    "count": Domain(0.0, 1e6, whole=True),
    "points": Domain(*SCORE_RANGE, whole=True),
    "years": Domain(*AGE_RANGE, whole=True),
    "flag": _codes(2),
    "tier": _codes(4, first=1),
}
ONE_AMOUNT = Domain(0.0, MAX_AMOUNT)  # a feature that is one amount of the raw tables


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    window: str
    unit: str
    cause: str
    direction: int
    reason: str
    categorical: bool
    domain: Domain
    # where the reason's words are true: above (+1) or below (-1) ``reason_beyond`` where the
    # words name a bound ("utilisation rose on the last statement": above 0.02), else the
    # edge of the training rows' upper or lower third (``score.reason_edges``), or
    # of these codes only ("asked for the increase": a user request)
    reason_side: int
    reason_codes: tuple[float, ...] | None
    reason_beyond: float | None


def _f(name, description, window, unit, cause, direction, reason="", categorical=False, *,
       domain: Domain | None = None, signed: bool = False, nullable: bool | None = None,
       reason_side: int | None = None, reason_codes: tuple[float, ...] | None = None,
       reason_beyond: float | None = None) -> Feature:
    """A feature whose domain is its unit's unless given (code features list their codes).
    ``signed``: a change of such a value, anywhere within plus or minus the unit's width;
    ``nullable``: missing when there is nothing to compute it from (no statement, no large draw);
    ``reason_side`` (the direction unless given), ``reason_beyond`` and ``reason_codes``: where
    the reason holds."""
    d = domain or UNITS[unit]
    if signed:
        d = replace(d, low=d.low - d.high, high=d.high - d.low)
    if nullable is not None:
        d = replace(d, nullable=nullable)
    side = direction if reason_side is None else reason_side
    return Feature(name, description, window, unit, cause, direction, reason, categorical, d, side,
                   reason_codes, reason_beyond)


FEATURES: tuple[Feature, ...] = (
    # the jump
    _f("trigger", "What triggered the increase: 0 new user, 1 score improvement, 2 marketing, "
       "3 user request", "at jump", "code", "profile", 0, "asked for the increase", True,
       domain=_codes(len(TRIGGERS)), reason_codes=(float(TRIGGERS.index("user_request")),)),
    # one amount of the raw tables each: capped as the contract caps those (a features file's limit
    # of 1e9 had been recommended an increase that the same limit in raw tables was rejected for)
    _f("increase_amount", "Size of the limit increase", "at jump", "CNY", "profile", 0, domain=ONE_AMOUNT),
    _f("limit_before_jump", "Credit limit just before the increase", "at jump", "CNY", "profile", 0,
       domain=ONE_AMOUNT),
    _f("new_over_old_limit", "New limit over old limit", "at jump", "ratio", "profile", 0),
    # no direction: risk rises over the first year (new users start on small limits) and
    # levels off after it, so a monotone constraint would contradict the data (train.direction_check)
    _f("months_of_history", "Months from onboarding to the scoring date", "since onboarding",
       "months", "profile", 0, "has little history with us", reason_side=-1),
    # post-increase spending
    _f("post_increase_drawn", "Amount drawn from the jump to the scoring date", "jump to scoring",
       "CNY", "liquidity", 1, "drew heavily right after the increase"),
    _f("post_increase_draw_share", "Amount drawn since the jump over the increase",
       "jump to scoring", "ratio", "liquidity", 1, "drew most of the new limit within weeks",
       reason_beyond=0.5),
    _f("post_increase_spend_ratio", "Amount drawn since the jump over the average monthly amount "
       "drawn in the 3 months before it", "jump to scoring vs 3m before", "ratio", "liquidity", 1,
       "spending jumped after the increase"),
    _f("days_to_first_large_draw", "Days from the jump to the first drawdown of at least "
       "features.large_draw_share of the increase (20% by default; missing if none)", "jump to scoring",
       "days", "liquidity", -1,
       "made a large drawdown days after the increase", nullable=True),
    _f("large_drawdowns_since_jump", "Large purchases and withdrawals to invest since the jump",
       "jump to scoring", "count", "liquidity", 1, "made a large one-off purchase or investment "
       "with the new limit"),
    # debt to income
    _f("installments_to_income", "Our next monthly installment over declared income", "at scoring",
       "ratio", "liquidity", 1, "monthly installments are high for the declared income"),
    _f("dti_before_jump", "All monthly installments (ours and other lenders') over declared "
       "income, at the jump", "at jump", "ratio", "liquidity", 1),
    _f("dti_at_scoring", "All monthly installments over declared income, at scoring", "at scoring",
       "ratio", "liquidity", 1, "total debt payments are high for the income"),
    _f("dti_change", "Change of debt-to-income from the jump to scoring", "jump to scoring", "ratio",
       "liquidity", 1, "monthly installments rose relative to declared income", signed=True,
       reason_beyond=0.0),
    _f("outside_installments", "Monthly installments owed to other lenders at scoring",
       "at scoring", "CNY", "credit", 1, "owes a lot to other lenders"),
    _f("installments_next_3_cycles", "Our installments scheduled in the 3 months after scoring, "
       "from drawdowns made before it", "next 3 months", "CNY", "liquidity", 1,
       "large installments fall due in the coming months"),
    _f("outside_installments_next_3_cycles", "Other lenders' installments scheduled in the 3 "
       "months after scoring", "next 3 months", "CNY", "credit", 1,
       "large repayments to other lenders fall due soon"),
    # utilisation
    *(_f(f"utilisation_mean_{m}m", f"Mean balance over limit, last {m} statements",
         f"{m} months", "ratio", "liquidity", 1, "uses most of the credit line", reason_beyond=0.5)
      for m in (3, 6, 12)),
    _f("utilisation_last", "Balance over limit on the last statement", "1 month", "ratio",
       "liquidity", 1, "uses most of the credit line", reason_beyond=0.5),
    # each measure of a rise in its own words, said from a rise of UTILISATION_RISE on: one
    # "utilisation is climbing" for all had been told of 1,432 borrowers of an incoming batch
    # whose only rise was a 12-month slope of a few tenths of a point a month
    *(_f(f"utilisation_slope_{m}m", f"Least-squares slope of utilisation per month, last {m} "
         "statements", f"{m} months", "ratio/month", "liquidity", 1,
         f"utilisation has climbed over the last {m} months", signed=True,
         reason_beyond=UTILISATION_RISE / (m - 1)) for m in (6, 12)),  # m statements: m - 1 months apart
    *(_f(f"utilisation_last_minus_mean_{m}m", f"Last utilisation minus its mean over {m} statements",
         f"{m} months", "ratio", "liquidity", 1, f"utilisation is above its {m}-month average",
         signed=True, reason_beyond=UTILISATION_RISE) for m in (3, 6, 12)),
    _f("utilisation_last_minus_previous", "Last utilisation minus the one before", "2 months",
       "ratio", "liquidity", 1, "utilisation rose on the last statement", signed=True,
       reason_beyond=UTILISATION_RISE),
    # repayment history
    *(_f(f"missed_due_dates_{m}m", f"Due dates not paid in full on the day, last {m} months",
         f"{m} months", "count", "credit", 1, "missed payments recently") for m in (3, 6)),
    *(_f(f"due_dates_over_{d}_days_late", f"Due dates paid more than {d} days late or still unpaid "
         f"more than {d} days later", "all history", "count", "credit", 1,
         "has paid long overdue before" if d >= 15 else "has paid late before") for d in (0, 5, 15, 30)),
    # 30 days or more: the industry's first serious delinquency bucket (M1)
    _f("max_days_late", "Most days any due date was late (or is unpaid at scoring)", "all history",
       "days", "credit", 1, "has been seriously overdue", reason_beyond=29.0),
    _f("decayed_days_late", "Days late summed over due dates, each weighted exp(-age/features.decay_days) "
       "(180 days by default)",
       # all history, recent lateness weighing more: "missed payments recently" had been told of
       # borrowers whose one late day was 570 days old (762 of 2,994 in an incoming batch)
       "all history", "days", "credit", 1, "has paid late before"),
    _f("days_past_due_now", "Days past due at scoring", "at scoring", "days", "credit", 1,
       "is overdue now"),
    _f("overdue_amount_now", "Amount past due at scoring", "at scoring", "CNY", "credit", 1,
       "is overdue now"),
    _f("paid_over_due_6m", "Amount paid over amount due, due dates of the last 6 months",
       "6 months", "ratio", "credit", -1, "paid less than was due", reason_beyond=1.0),
    _f("short_misses_cured_3d", "Due dates missed but paid within 3 days", "all history", "count",
       "technical", 1, "payments have failed briefly before (a technical pattern)"),
    _f("forgotten_due_dates", "Due dates with nothing paid and no debit tried on the day, paid in "
       f"full within {FORGOTTEN_MAX_DAYS_LATE} days", "all history", "count", "technical", 1,
       "has forgotten due dates before (paid in full days later)"),
    # no direction and no reason: the chances behind forgotten_due_dates, read by the floor
    _f("manual_due_dates", "Due dates asking for a payment on which no auto-debit was tried (paid by "
       "hand, or not on the day)", "all history", "count", "technical", 0),
    # multi-lending
    *(_f(f"inquiries_{m}m", f"Credit inquiries by other lenders, last {m} months", f"{m} months",
         "count", "credit", 1, "applied for credit elsewhere more than once recently",
         reason_beyond=1.0) for m in (1, 3, 6)),
    _f("inquiries_since_jump", "Credit inquiries by other lenders since the jump", "jump to scoring",
       "count", "credit", 1, "applied for new loans elsewhere since the increase"),
    *(_f(f"new_outside_loans_{m}m", f"Loans opened at other lenders, last {m} months",
         f"{m} months", "count", "credit", 1, "took new loans at other lenders")
      for m in (3, 6)),
    # no direction: a loan taken since the jump is debt to come and cash now, which pays the next
    # due dates, and lenders approve the better scores. Held monotone, the model scored validation
    # borrowers with one such loan 0.157 where 0.104 missed; released, the validation log loss fell
    # 0.2486 -> 0.2466. Releasing the 3- and 6-month loan counts too gained nothing more (0.2466),
    # and the inquiry counts as well lost some (0.2468) (2026-12-06, defaults)
    _f("new_outside_loans_since_jump", "Loans opened at other lenders since the jump",
       "jump to scoring", "count", "credit", 0, "took new loans elsewhere since the increase",
       reason_side=1),
    _f("new_outside_borrowing_6m", "Principal of loans opened elsewhere, last 6 months", "6 months",
       "CNY", "credit", 1, "borrowed heavily elsewhere"),
    # score
    _f("credit_score", "Bureau credit score on the last statement", "at scoring", "points",
       "credit", -1, "credit score is low", nullable=True),
    # "falling" from a fall of 5 points on: 1 or 2 are the bureau's noise
    *(_f(f"credit_score_change_{m}m", f"Change of the credit score over {m} statements",
         f"{m} months", "points", "credit", -1, "credit score is falling", signed=True,
         nullable=True, reason_beyond=-4.0) for m in (3, 6)),
    _f("restrictions_12m", "Times the platform restricted the line, last 12 months", "12 months",
       "count", "credit", 1, "the line was restricted by the risk rules"),
    # income and cash
    _f("declared_income", "Monthly income declared at onboarding", "at onboarding", "CNY",
       "profile", -1, domain=ONE_AMOUNT),
    _f("inflow_mean_3m", "Mean monthly wallet inflow, last 3 statements", "3 months", "CNY",
       "liquidity", -1, nullable=True),
    # "dropped" from a drop of 5% on (0.9994 had been called one)
    _f("inflow_trend", "Wallet inflow of the last 3 statements over the 3 before", "6 months",
       "ratio", "liquidity", -1, "income coming in has dropped", reason_beyond=0.95),
    _f("inflow_over_declared_income", "Mean wallet inflow, last 3 statements, over declared income",
       "3 months", "ratio", "liquidity", -1, "less money comes in than declared", reason_beyond=1.0),
    _f("wallet_balance", "Wallet balance on the last statement", "at scoring", "CNY", "liquidity",
       -1, "keeps little cash", nullable=True),
    _f("wallet_over_inflow", "Wallet balance on the last statement over the mean monthly wallet "
       "inflow of the last 3 (at least 100 CNY): months of income kept as cash", "3 months", "ratio",
       "liquidity", -1,
       "keeps little cash for what comes in"),
    # the bound its words name: below 1 the cash does not cover them (the training median, 2.2
    # on the defaults, had told 310 of 4,073 borrowers whose cash covered them all)
    _f("cash_buffer_over_installments", "Wallet balance over all installments (ours and other "
       "lenders') of the next 3 months", "at scoring", "ratio", "liquidity", -1,
       "has less cash than the next 3 months' installments", reason_beyond=1.0),
    # technical
    _f("autodebit_active", "1 if an auto-debit agreement is in force at scoring", "at scoring",
       "flag", "technical", -1, "pays by hand, with no auto-debit agreement in force"),
    _f("autodebit_lapsed", "1 if the agreement was revoked or expired and not renewed",
       "at scoring", "flag", "technical", 1, "auto-debit agreement has lapsed"),
    _f("autodebit_changed_30d", "Auto-debit agreement events in the last 30 days", "30 days",
       "count", "technical", 1, "auto-debit agreement changed recently"),
    _f("reauth_pending", "1 if the platform asked to re-authorise auto-debit and the agreement was "
       "neither renewed, revoked nor cancelled since",
       "at scoring", "flag", "technical", 1, "auto-debit needs re-authorisation"),
    _f("debit_failures_mandate_6m", "Debits that failed on an invalid agreement, last 6 months",
       "6 months", "count", "technical", 1, "debits failed on an invalid agreement"),
    _f("debit_failures_system_6m", "Debits that failed on a platform outage, last 6 months",
       "6 months", "count", "technical", 1, "debits failed during outages"),
    _f("debit_failures_funds_6m", "Debits that failed for insufficient funds, last 6 months",
       "6 months", "count", "liquidity", 1, "debits bounced for lack of funds"),
    _f("due_dates_in_announced_outage", "Of the next 3 due dates that ask for a payment (an "
       "installment left, or arrears), those on which a maintenance window announced before scoring "
       "blocks it: the auto-debit batch's hour with an agreement in force, else the paying hours",
       "next 3 cycles", "count", "technical", 1,
       "a due date falls in announced system maintenance"),
    # profile
    _f("age", "Age at onboarding", "at onboarding", "years", "profile", 0),
    _f("city_tier", "City tier, 1 (largest) to 4", "at onboarding", "tier", "profile", 0),
    _f("employment_type", "0 salaried, 1 self-employed, 2 gig worker, 3 student", "at onboarding",
       "code", "profile", 0, "", True, domain=_codes(len(EMPLOYMENT_TYPES))),
)

BY_NAME = {f.name: f for f in FEATURES}
NAMES = tuple(BY_NAME)
# not a feature: the date a scorer's action is for ("remind before the next due date"); a date
# column beside the features, so training never reads it
NEXT_DUE = "next_due_date"
# likewise the date "pay before the announced maintenance" is for: the first of the next three
# due dates that asks for a payment inside an announced window (empty if none does)
MAINTENANCE_DUE = "maintenance_due_date"
DUE_DATES = (NEXT_DUE, MAINTENANCE_DUE)
# the third due date after the scoring date falls within three billing months of it: a later one
# is a database's "no date" (9999-12-31) or a wrong year, not a date an action can be for
DUE_HORIZON_DAYS = 100

# Reasons that say the same thing to a borrower or a risk officer share a group; a scorer gives at
# most one reason per group (the one that raised the risk most), so no two reasons repeat.
REASON_GROUPS = {
    "asked for the increase": "request",
    "has little history with us": "history",
    "drew heavily right after the increase": "drawdown",
    "drew most of the new limit within weeks": "drawdown",
    "spending jumped after the increase": "drawdown",
    "made a large drawdown days after the increase": "drawdown",
    "made a large one-off purchase or investment with the new limit": "large_spend",
    "monthly installments are high for the declared income": "debt_burden",
    "total debt payments are high for the income": "debt_burden",
    "monthly installments rose relative to declared income": "debt_burden",
    "large installments fall due in the coming months": "debt_burden",
    "uses most of the credit line": "utilisation",
    "utilisation has climbed over the last 6 months": "utilisation",
    "utilisation has climbed over the last 12 months": "utilisation",
    "utilisation is above its 3-month average": "utilisation",
    "utilisation is above its 6-month average": "utilisation",
    "utilisation is above its 12-month average": "utilisation",
    "utilisation rose on the last statement": "utilisation",
    "owes a lot to other lenders": "outside_debt",
    "large repayments to other lenders fall due soon": "outside_debt",
    "borrowed heavily elsewhere": "outside_debt",
    "took new loans at other lenders": "multi_lending",
    "took new loans elsewhere since the increase": "multi_lending",
    "applied for credit elsewhere more than once recently": "multi_lending",
    "applied for new loans elsewhere since the increase": "multi_lending",
    "missed payments recently": "arrears",
    "has paid long overdue before": "arrears",
    "has paid late before": "arrears",
    "has been seriously overdue": "arrears",
    "is overdue now": "arrears",
    "paid less than was due": "arrears",
    "credit score is low": "score",
    "credit score is falling": "score",
    "the line was restricted by the risk rules": "restricted",
    "income coming in has dropped": "income",
    "less money comes in than declared": "income",
    "keeps little cash": "cash",
    "keeps little cash for what comes in": "cash",
    "has less cash than the next 3 months' installments": "cash",
    "debits bounced for lack of funds": "cash",
    "pays by hand, with no auto-debit agreement in force": "autodebit",
    "auto-debit agreement has lapsed": "autodebit",
    "auto-debit agreement changed recently": "autodebit",
    "auto-debit needs re-authorisation": "autodebit",
    "debits failed on an invalid agreement": "autodebit",
    "debits failed during outages": "technical_misses",
    "a due date falls in announced system maintenance": "maintenance",
    "payments have failed briefly before (a technical pattern)": "technical_misses",
    "has forgotten due dates before (paid in full days later)": "technical_misses",
}

# A due date paid a few days late is counted by the technical features (forgotten: nothing tried
# on the day; a brief miss, paid within 3 days, whatever its cause) and by the arrears counts
# too: where every late due date is such a one, the arrears reasons would tell the same day again
# (an outside check found one late day told as three reasons, "forgotten", "failed briefly" and
# "paid late", 2026-12-07)
TECHNICAL_LATENESS = ("forgotten_due_dates", "short_misses_cured_3d")
LATENESS_COUNTS = ("due_dates_over_0_days_late", "due_dates_over_5_days_late", "decayed_days_late",
                   "missed_due_dates_3m", "missed_due_dates_6m")


def reason_group(feature: Feature) -> str | None:
    """The group of a feature's reason (its own text if the table above does not list it)."""
    return REASON_GROUPS.get(feature.reason, feature.reason) if feature.reason else None


def codes_hint(column: str) -> str:
    """What the codes of a coded feature mean, for an error about text found in its column (a
    team that writes 'user_request' where the features hold its code)."""
    feature = BY_NAME.get(column)
    if feature is None or feature.domain.codes is None:
        return ""
    return f"; it holds codes: {feature.description}"


def monotone_constraints(columns: list[str]) -> list[int]:
    """LightGBM's monotone constraint per column; columns outside the catalogue (a team's own
    features) and categorical ones get none."""
    out = []
    for c in columns:
        f = BY_NAME.get(c)
        out.append(0 if f is None or f.categorical else f.direction)
    return out


def markdown_table() -> str:
    """The feature table of docs/features.md."""
    rows = ["| feature | cause | direction | window | unit | description |",
            "|---|---|---|---|---|---|"]
    sign = {1: "+", -1: "−", 0: "0"}
    rows += [f"| `{f.name}` | {f.cause} | {sign[f.direction]} | {f.window} | {f.unit} | {f.description} |"
             for f in FEATURES]
    return "\n".join(rows)


def reasons_table() -> str:
    """The reasons table of docs/features.md: each reason, its group, cause, the features that
    give it and where its words hold."""
    rows = ["| reason | group | cause | features | said where the value is |", "|---|---|---|---|---|"]
    by_reason: dict[str, list[Feature]] = {}
    for f in FEATURES:
        if f.reason:
            by_reason.setdefault(f.reason, []).append(f)
    for text, features in by_reason.items():
        names = ", ".join(f"`{f.name}`" for f in features)
        rows.append(f"| {text} | {reason_group(features[0])} | {features[0].cause} | {names} | "
                    f"{_where_said(features[0])} |")
    return "\n".join(rows)


def _where_said(f: Feature) -> str:
    if f.reason_codes is not None:
        return "code " + ", ".join(f"{c:g}" for c in f.reason_codes)
    side = "above" if f.reason_side > 0 else "below"
    if f.reason_beyond is None:
        return f"in the training rows' {'upper' if f.reason_side > 0 else 'lower'} third"
    if f.domain.whole:  # whole numbers: the first one beyond the bound
        first = math.floor(f.reason_beyond) + 1 if f.reason_side > 0 else math.ceil(f.reason_beyond) - 1
        return f"{first:g} or {'more' if f.reason_side > 0 else 'less'}"
    return f"{side} {f.reason_beyond:.3g}"


# the generated tables of the features page, each between its markers
TABLES = {"feature-table": markdown_table, "reason-table": reasons_table}
FEATURES_PAGE = "docs/features.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def sync_docs(path: str = FEATURES_PAGE) -> bool:
    """Rewrite the generated tables between the page's markers; True if one changed."""
    from pathlib import Path

    page = Path(path)
    text = new = page.read_text()
    for name, table in TABLES.items():
        start, end = markers(name)
        head, rest = new.split(start, 1)
        _, tail = rest.split(end, 1)
        new = f"{head}{start}\n{table()}\n{end}{tail}"
    page.write_text(new)
    return new != text


if __name__ == "__main__":  # python -m pipeline.catalog: regenerate the docs' feature table
    print(f"{FEATURES_PAGE} updated" if sync_docs() else f"{FEATURES_PAGE} already up to date")
