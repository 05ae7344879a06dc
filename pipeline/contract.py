"""The data contract: every table the simulator writes and the scorer reads, written once.

Each column has a dtype, a unit, an allowed range or set of values and a nullability; each table
has a key. ``validate`` checks a frame (on whole columns, or with pandera) and raises
``ContractError`` naming the file, the column and the first offending rows; ``violations`` returns
every failing row, which the scorer uses to reject borrowers instead of stopping. ``features_table``
is the features table's contract, read off the feature catalogue; ``history_violations`` holds the
rules across tables (dates in order, one jump per borrower, nothing after the run date).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pandera.pandas as pa

from pipeline.catalog import AGE_RANGE, BY_NAME, DUE_HORIZON_DAYS, MAX_AMOUNT, MAX_RATIO, SCORE_RANGE
from pipeline.cells import blank_cells
from pipeline.config import CAUSES, EMPLOYMENT_TYPES, TRIGGERS
from pipeline.errors import InputError

# Dates outside this range are impossible for this product (a typo, an epoch-zero default).
FIRST_DATE, LAST_DATE = pd.Timestamp("2000-01-01"), pd.Timestamp("2100-12-31")
MAX_ROWS_IN_MESSAGE = 5
# The label and the features are defined around one limit jump per borrower; a second increase
# would make the scoring date ambiguous. None would let the latest increase count as the jump.
JUMPS_PER_BORROWER: int | None = 1
# The platform's own records of a borrower start when the line is opened; the bureau's (loans
# elsewhere) may be older.
OWN_RECORDS = ("statements", "installments", "repayments", "drawdowns", "limit_events",
               "platform_events")


class ContractError(InputError, ValueError):
    """A table that breaks the contract; the message names file, column and rows."""


@dataclass(frozen=True)
class Col:
    name: str
    dtype: str  # int64 | float64 | str | datetime64[s]
    unit: str
    description: str
    min: float | None = None
    max: float | None = None
    allowed: tuple[str | float, ...] | None = None
    nullable: bool = False
    whole: bool = False
    missing_check: str = "not_nullable"  # what a missing value fails, named in a reject's reason

    def rules(self) -> list[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
        """(name, test) of each check of a value; a test maps an array of values to True where
        they pass (a missing value passes: nullability is checked apart)."""
        out = []
        if self.dtype == "datetime64[s]":
            out.append((f"in_range({FIRST_DATE}, {LAST_DATE})",
                        lambda v: (v >= FIRST_DATE) & (v <= LAST_DATE)))
        if self.min is not None and self.max is not None:
            out.append((f"in_range({self.min}, {self.max})", lambda v: (v >= self.min) & (v <= self.max)))
        elif self.min is not None:
            out.append((f"greater_than_or_equal_to({self.min})", lambda v: v >= self.min))
        if self.allowed is not None:
            # by hashing, a Series or an array alike (np.isin would sort Python strings); an array
            # back, so that the result is positional wherever it goes
            out.append((f"isin({list(self.allowed)})",
                        lambda v: pd.Series(v, copy=False).isin(self.allowed).to_numpy()))
        if self.whole or self.dtype == "int64":  # an integer column read from text as floats
            out.append(("whole_number", lambda v: np.floor(v) == v))
        return out

    def checks(self) -> list[pa.Check]:
        import pandera.pandas as pa

        return [pa.Check(lambda s, test=test: pd.Series(test(s.to_numpy()), index=s.index), name=name)
                for name, test in self.rules()]


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Col, ...]
    key: tuple[str, ...]
    date_column: str | None  # the column that dates a row for point-in-time use
    sort: tuple[str, ...] = field(default=())
    # (later, earlier): a row's ``later`` may not come before its ``earlier``
    ordered: tuple[tuple[str, str], ...] = field(default=())

    def column(self, name: str) -> Col:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _id() -> Col:
    return Col("borrower_id", "int64", "id", "Borrower identifier", min=0)


LEADING_ZERO = r"^\s*0\d"  # digits that a number would lose
EXPONENT = r"\d[eE][+-]?\d"  # '1e5' is not the id '100000' to whoever wrote both
LARGEST_INT64 = "9223372036854775807"


def ids_written_as_text(values: pd.Series) -> bool:
    """Whether a lender writes its ids as text rather than numbers: any id that is no number
    ('C0012'), or digits a number would change and so match no record of the lender's: a leading
    zero ('000123'), an exponent ('1e5' would become 100000), digits beyond int64 (22 digits would
    lose the last ones as a float). Such ids are carried as the text they are; a blank cell
    ('', 'NULL') is a missing id, not text."""
    if pd.api.types.is_numeric_dtype(values):
        return False
    text = values[~blank_cells(values)].astype("str").str.strip()
    digits = text.str.fullmatch(r"\d+")
    beyond_int64 = digits & ((text.str.len() > len(LARGEST_INT64))
                             | ((text.str.len() == len(LARGEST_INT64)) & (text > LARGEST_INT64)))
    return bool(pd.to_numeric(text, errors="coerce").isna().any() or beyond_int64.any()
                or text.str.contains(LEADING_ZERO).any() or text.str.contains(EXPONENT).any())


# above 2**53 a float has lost an id's last digits, and two borrowers may share one
LARGEST_FLOAT_ID = 2.0 ** 53
ID_PROBLEMS = {"blank": "has no id", "fraction": "must be a whole number",
               "lost_digits": "holds ids of 2**53 or more written as decimals, which have lost digits "
                              "(two borrowers may share one); write them as whole numbers or text"}


def borrower_ids(values: pd.Series) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Ids as int64, or as the text a lender writes (``ids_written_as_text``), and per problem of
    ``ID_PROBLEMS`` a boolean mask of the rows that hold no usable id (a blank; no finite whole
    number; a decimal of 2**53 or more). Where a mask is set, the id returned means nothing."""
    blank = blank_cells(values)
    if ids_written_as_text(values):
        return values.astype("str"), {ID_PROBLEMS["blank"]: blank}
    parsed = pd.to_numeric(values, errors="coerce")
    numbers = parsed.astype("float64")
    broken = (~np.isfinite(numbers) | (numbers != numbers.round())).to_numpy()
    problems = {ID_PROBLEMS["blank"]: blank, ID_PROBLEMS["fraction"]: ~blank & broken}
    if pd.api.types.is_integer_dtype(parsed):  # exact, whatever their size
        return parsed.astype("int64"), problems
    finite = np.isfinite(numbers)
    problems[ID_PROBLEMS["lost_digits"]] = (finite & (numbers.abs() >= LARGEST_FLOAT_ID)).to_numpy()
    usable = ~np.logical_or.reduce(list(problems.values()))
    return numbers.where(usable, 0.0).astype("int64"), problems


def _date(name: str, description: str, nullable: bool = False) -> Col:
    return Col(name, "datetime64[s]", "date", description, nullable=nullable)


def _cny(name: str, description: str, nullable: bool = False) -> Col:
    return Col(name, "float64", "CNY", description, min=0.0, max=MAX_AMOUNT, nullable=nullable)


def _prob(name: str, description: str) -> Col:
    return Col(name, "float64", "probability", description, min=0.0, max=1.0)


def _standard_error(name: str, description: str) -> Col:
    """A Monte-Carlo standard error of a probability. No upper bound: a replicate's estimate is
    weighted by the likelihood ratio of the shortfall branches it took (``shortfall_shock``),
    which over a six-cycle label can exceed 1, and so can the spread of the estimates."""
    return Col(name, "float64", "probability", description, min=0.0)


LENDER_TYPES = ("bank", "consumer_finance", "online_lender")
LINE_STATUSES = ("active", "restricted", "frozen")
LIMIT_EVENT_TYPES = ("initial", "increase", "restriction", "restoration")
TEST_CELLS = ("policy", "line_test")
PLATFORM_EVENT_TYPES = ("autodebit_authorised", "autodebit_revoked", "autodebit_cancelled",
                        "reauth_required", "debit_failed")
PLATFORM_EVENT_DETAILS = ("onboarding", "user_action", "expired", "campaign_deadline",
                          "insufficient_funds", "mandate_invalid", "system_unavailable",
                          "reauthorisation_campaign")
# in the simulator's order of codes (pipeline.simulate.cycle.TECH_*): a forgotten payment is a
# manual payer's, who could have paid and did not (a lender sees it as no debit attempt at all)
TECHNICAL_KINDS = ("mandate_known", "mandate_silent", "outage", "forgotten")

TABLES: dict[str, Table] = {t.name: t for t in (
    Table("borrowers", "One row per borrower: what the application recorded.", (
        _id(),
        _date("onboard_date", "Date the credit line was opened"),
        Col("age", "int64", "years", "Age at onboarding", min=AGE_RANGE[0], max=AGE_RANGE[1]),
        Col("city_tier", "int64", "tier", "City tier, 1 (largest cities) to 4", min=1, max=4),
        Col("employment_type", "str", "category", "Employment type as declared",
            allowed=EMPLOYMENT_TYPES),
        _cny("declared_monthly_income", "Monthly income the borrower declared"),
    ), key=("borrower_id",), date_column="onboard_date"),
    Table("statements", "One row per borrower and billing cycle, issued on the account's statement day.", (
        _id(),
        _date("statement_date", "The account's statement day (fixed day of the month), the cycle's last"),
        _date("cycle_start_date", "First day of the billing cycle: the day after the last statement"),
        _cny("credit_limit", "Credit limit at the statement date"),
        _cny("balance", "Outstanding principal plus overdue amount at the statement date"),
        _cny("purchases", "Amount drawn on the line since the last statement"),
        _cny("installment_due_next", "Scheduled installments due at the next due date"),
        _cny("overdue_amount", "Amount past due at the statement date"),
        Col("days_past_due", "int64", "days", "Days the oldest unpaid amount is past due", min=0,
            max=10_000),
        Col("credit_score", "int64", "points", "Bureau credit score pulled at the statement date",
            min=SCORE_RANGE[0], max=SCORE_RANGE[1]),
        _cny("wallet_inflow", "Inflows to the borrower's wallet seen by the platform in the cycle"),
        _cny("wallet_balance", "Wallet balance seen by the platform at the statement date"),
        Col("line_status", "str", "category", "Line status at the statement date",
            allowed=LINE_STATUSES),
    ), key=("borrower_id", "statement_date"), date_column="statement_date"),
    Table("installments", "One row per borrower and due date: what the platform asked to be paid.", (
        _id(),
        _date("due_date", "Due date"),
        _cny("scheduled_amount", "Installments of drawdowns falling due on this date"),
        _cny("arrears_amount", "Overdue amount carried into this due date, with late fees"),
    ), key=("borrower_id", "due_date"), date_column="due_date"),
    Table("repayments", "One row per payment received.", (
        _id(),
        _date("payment_date", "Date the payment was received"),
        _date("due_date", "Due date of the cycle the payment settles"),
        Col("amount", "float64", "CNY", "Amount paid", min=0.01, max=MAX_AMOUNT),
        Col("channel", "str", "category", "How the payment came in",
            allowed=("auto_debit", "manual")),
    ), key=("borrower_id", "due_date", "payment_date"), date_column="payment_date"),
    Table("drawdowns", "One row per drawdown, converted into equal monthly installments.", (
        _id(),
        _date("drawdown_date", "Date of the drawdown"),
        Col("amount", "float64", "CNY", "Amount drawn", min=0.01, max=MAX_AMOUNT),
        Col("tenor_months", "int64", "months", "Number of monthly installments", min=3, max=12),
        Col("apr", "float64", "rate per year", "Annual percentage rate", min=0.0, max=1.0),
        Col("monthly_installment", "float64", "CNY", "Equal monthly installment", min=0.0,
            max=MAX_AMOUNT),
        Col("purpose", "str", "category", "Kind of drawdown",
            allowed=("purchase", "large_purchase", "cash_withdrawal")),
    ), key=(), date_column="drawdown_date", sort=("borrower_id", "drawdown_date", "purpose", "amount")),
    Table("limit_events", "Every change of the credit limit.", (
        _id(),
        _date("event_date", "Date the limit changed"),
        Col("event_type", "str", "category", "Kind of change", allowed=LIMIT_EVENT_TYPES),
        Col("trigger", "str", "category", "What triggered an increase (increases only)",
            allowed=TRIGGERS, nullable=True),
        _cny("old_limit", "Limit before the change"),
        _cny("new_limit", "Limit after the change"),
        Col("test_cell", "str", "category", "Who chose an increase's amount: the platform's "
            "policy, or a randomised line test that drew it from a grid (increases only)",
            allowed=TEST_CELLS, nullable=True),
    ), key=("borrower_id", "event_date", "event_type"), date_column="event_date"),
    Table("bureau_inquiries", "Credit inquiries by other lenders, from the credit bureau.", (
        _id(),
        _date("inquiry_date", "Date of the inquiry"),
        Col("lender_type", "str", "category", "Kind of lender", allowed=LENDER_TYPES),
    ), key=(), date_column="inquiry_date", sort=("borrower_id", "inquiry_date", "lender_type")),
    Table("bureau_loans", "Loans opened at other lenders, from the credit bureau.", (
        _id(),
        _date("open_date", "Date the loan was opened"),
        Col("lender_type", "str", "category", "Kind of lender", allowed=LENDER_TYPES),
        Col("amount", "float64", "CNY", "Principal", min=0.01, max=MAX_AMOUNT),
        Col("tenor_months", "int64", "months", "Number of monthly installments", min=1, max=36),
        Col("monthly_installment", "float64", "CNY", "Monthly installment", min=0.0,
            max=MAX_AMOUNT),
    ), key=(), date_column="open_date", sort=("borrower_id", "open_date", "amount")),
    Table("platform_events", "Auto-debit agreements and payment-system events per borrower.", (
        _id(),
        _date("event_date", "Date of the event"),
        Col("event_type", "str", "category", "Kind of event", allowed=PLATFORM_EVENT_TYPES),
        Col("detail", "str", "category", "Reason or context", allowed=PLATFORM_EVENT_DETAILS),
    ), key=(), date_column="event_date", sort=("borrower_id", "event_date", "event_type", "detail")),
    Table("maintenance_windows", "Platform maintenance windows and outages (all borrowers).", (
        Col("window_id", "int64", "id", "Window identifier", min=0),
        Col("window_kind", "str", "category", "Planned (announced ahead) or unplanned",
            allowed=("planned", "unplanned")),
        _date("announced_date", "Date the window became known"),
        _date("start_time", "Start of the window (timestamp)"),
        _date("end_time", "End of the window (timestamp)"),
    ), key=("window_id",), date_column="announced_date",
        # a window swapped or cut short by its export would hold no due date, without a word
        ordered=(("end_time", "start_time"),)),
    Table("ground_truth", "Simulator-only truth per borrower; features never read it.", (
        _id(),
        _date("scoring_date", "Jump date plus the observation window"),
        _date("jump_date", "Date of the limit increase"),
        Col("label", "int64", "flag", "1 if an installment due in the performance window stayed "
            "unpaid for at least dpd_threshold days", min=0, max=1),
        Col("first_miss_cause", "str", "category", "Cause of the first such miss",
            allowed=CAUSES, nullable=True),
        _date("first_miss_due_date", "Due date of the first such miss", nullable=True),
        Col("first_miss_days_past_due", "float64", "days", "Days the first such miss stayed unpaid "
            "(censored at the end of the simulation)", min=0, nullable=True),
        Col("technical_kind", "str", "category", "What broke, for a technical first miss",
            allowed=TECHNICAL_KINDS, nullable=True),
        _prob("p_true", "Probability of the label given the full simulated state at scoring"),
        _prob("p_true_credit", "Part of p_true whose first miss is credit deterioration"),
        _prob("p_true_liquidity", "Part of p_true whose first miss is liquidity"),
        _prob("p_true_technical", "Part of p_true whose first miss is technical"),
        _standard_error("p_true_se", "Monte-Carlo standard error of p_true"),
        _prob("p_true_spared", "p_true were no outage to come that was unannounced at scoring: what "
              "the realism report judges the borrowers no such outage struck by"),
        Col("trigger", "str", "category", "Trigger of the jump", allowed=TRIGGERS),
        _cny("increase_amount", "Size of the limit increase"),
        Col("score_at_jump", "float64", "points", "Credit score at the jump", min=SCORE_RANGE[0],
            max=SCORE_RANGE[1]),
        Col("utilisation_at_jump", "float64", "ratio", "Balance over the old limit at the jump",
            min=0.0, max=100.0),
        Col("drawdown_propensity_12m", "float64", "share", "Hidden: share of the increase the "
            "borrower intends to draw within 12 months", min=0.0, max=1.0),
        Col("drawn_share_first_quarter", "float64", "share", "Drawn in the jump cycle and the two "
            "after it, over the increase (missing for an increase of 0)", min=0.0, max=MAX_RATIO,
            nullable=True),
        Col("drawn_share_12m", "float64", "share", "Drawn in the 12 cycles from the jump, over the "
            "increase (missing if not simulated that far, or for an increase of 0)", min=0.0, max=MAX_RATIO,
            nullable=True),
        Col("dti_at_scoring", "float64", "ratio", "All monthly installments over true income",
            min=0.0, max=1000.0),
        Col("inquiries_since_jump", "int64", "count", "Bureau inquiries from jump to scoring",
            min=0),
        _cny("true_income_at_scoring", "Hidden: true monthly income at scoring"),
        _cny("cash_at_scoring", "Hidden: liquid cash at scoring"),
        _prob("spend_propensity", "Hidden: propensity to spend out of new credit"),
        Col("employed_at_scoring", "int64", "flag", "Hidden: 1 if employed at scoring", min=0,
            max=1),
    ), key=("borrower_id",), date_column=None),
    Table("counterfactual", "Simulator-only truth of the increase decision, for a random sample of "
          "borrowers: from the jump, the outcome at every line-test amount and at the amount "
          "granted.", (
        _id(),
        _cny("amount", "Increase of the limit at the jump"),
        Col("granted", "int64", "flag", "1 on the extra row of the amount actually granted", min=0,
            max=1),
        _prob("p_miss", "Probability of the label at this amount, given what was known at the jump"),
        _standard_error("p_miss_se", "Monte-Carlo standard error of p_miss"),
        _standard_error("p_miss_change_se", "Monte-Carlo standard error of p_miss minus p_miss with no "
                        "increase (the amounts share their random numbers)"),
        Col("balance_months", "float64", "CNY x months", "Expected balance on the line summed over "
            "the cycles from the jump to the last label due date", min=0.0, max=1e9),
        _cny("exposure_at_miss", "Expected balance at the first bad miss, 0 on paths without one"),
    ), key=("borrower_id", "amount", "granted"), date_column=None),
)}

TRUTH_TABLES = ("ground_truth", "counterfactual")
RAW_TABLES = tuple(name for name in TABLES if name not in (*TRUTH_TABLES, "maintenance_windows"))


def _truth_columns(*names: str) -> tuple[Col, ...]:
    return tuple(TABLES["ground_truth"].column(name) for name in names)


LABEL_MATURES = "label_matures"
# the monthly stream the monitor reads: its labels apart from the truth, each label with the day
# it is known, so that a month's figures use only the labels known by then
STREAM_TABLES = {
    "labels": Table("stream_labels", "The monthly stream's labels and the day each is known.", (
        *_truth_columns("borrower_id", "scoring_date", "label", "first_miss_cause"),
        _date(LABEL_MATURES, "Last due date of the performance window plus dpd_threshold days"),
    ), key=("borrower_id",), date_column=None),
    "truth": Table("stream_truth", "The monthly stream's true probabilities of the label.",
                   _truth_columns("borrower_id", "p_true", *(f"p_true_{c}" for c in CAUSES)),
                   key=("borrower_id",), date_column=None),
}


FLOAT_MAX = float(np.finfo("float64").max)
NEVER_MISSING = "known_in_every_training_row"  # the check a blank fails where training had none


def features_table(columns: list[str], text: tuple[str, ...] = (),
                   never_missing: tuple[str, ...] = ()) -> Table:
    """The features table of a model with these feature columns: each catalogue feature with its
    domain; a column the catalogue does not know (a team's own feature) need only be a finite
    number or missing; a ``text`` column (categories the model learned as text) any text or missing.
    A number in ``never_missing`` (no training row of the model lacked it) may not be missing:
    LightGBM reads a missing value it never saw in training as 0, so a blank credit score was
    scored as a score of 0, very high risk, where it should be rejected."""
    def column(name: str) -> Col:
        if name in text:  # an unseen category is scored as a missing value, not rejected
            return Col(name, "str", "category", "Text categories", nullable=True)
        col = numeric(name)
        if col.nullable and name in never_missing:
            return replace(col, nullable=False, missing_check=NEVER_MISSING)
        return col

    def numeric(name: str) -> Col:
        if name not in BY_NAME:
            return Col(name, "float64", "unknown", "Not in the feature catalogue", min=-FLOAT_MAX,
                       max=FLOAT_MAX, nullable=True)
        f, d = BY_NAME[name], BY_NAME[name].domain
        if d.codes:  # the codes are the whole domain: a reject names them, not a range
            return Col(name, "float64", f.unit, f.description, allowed=d.codes, nullable=d.nullable)
        return Col(name, "float64", f.unit, f.description, min=d.low, max=d.high, nullable=d.nullable,
                   whole=d.whole)

    return Table("features", "One row per borrower at the scoring date: what the model reads.",
                 (_id(), _date("scoring_date", "Jump date plus the observation window"),
                  *map(column, columns)), key=("borrower_id",), date_column="scoring_date")


@functools.cache  # building a schema costs more than checking a batch with it
def schema(table: str | Table) -> pa.DataFrameSchema:
    # imported here: a command whose frames are all conformed never pays for pandera (0.15 s of
    # start-up; 6 MB of the features command's memory)
    import pandera.pandas as pa

    spec = TABLES[table] if isinstance(table, str) else table
    columns = {c.name: pa.Column(c.dtype, c.checks(), nullable=c.nullable, title=c.unit,
                                 description=c.description) for c in spec.columns}
    return pa.DataFrameSchema(columns, strict=True, ordered=False,
                              unique=list(spec.key) or None, name=spec.name)


def conformed(frame: pd.DataFrame, spec: Table) -> bool:
    """Whether ``frame`` holds exactly the table's columns, in order and in its dtypes (as the
    simulator writes them and a reader conforms a batch). An integer column may hold floats: a
    reader's whole numbers with a blank or a fraction among them, whose rows the checks reject
    (``not_nullable``, ``whole_number``) rather than the whole file."""
    return list(frame.columns) == spec.names and all(
        str(frame[c.name].dtype) in (c.dtype, "float64" if c.dtype == "int64" else c.dtype)
        for c in spec.columns)


def violations(frame: pd.DataFrame, table: str | Table) -> pd.DataFrame:
    """Every failing (row, column, check, value); empty if the frame passes. ``row`` is the
    positional row number; it is missing for frame-level failures (a missing column, say).

    A ``conformed`` frame is checked on whole columns (``row_violations``): the same failures as
    pandera's, which on a simulated shard of 25,000 borrowers took 1.3 s against 0.2 s. Pandera
    checks any other frame, whose dtypes and columns it names when they are wrong."""
    spec = TABLES[table] if isinstance(table, str) else table
    found = row_violations(frame, spec) if conformed(frame, spec) else pandera_violations(frame, table)
    return pd.concat([found, _out_of_order(frame, spec)], ignore_index=True) if spec.ordered else found


def _out_of_order(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """``violations`` of the table's ordered pairs of columns, where both are dates (a column
    that is not is named by the column checks)."""
    cases = []
    for later, earlier in table.ordered:
        if later in frame and earlier in frame and all(
                pd.api.types.is_datetime64_any_dtype(frame[c]) for c in (later, earlier)):
            rows = np.flatnonzero((frame[later] < frame[earlier]).to_numpy())
            cases.append(pd.DataFrame({"row": pd.array(rows, dtype="Int64"), "column": later,
                                       "check": f"not_before({earlier})",
                                       "value": frame[later].iloc[rows].astype("str").to_numpy()}))
    return pd.concat(cases, ignore_index=True) if cases else pd.DataFrame(
        {"row": pd.array([], dtype="Int64"), "column": [], "check": [], "value": []})


def pandera_violations(frame: pd.DataFrame, table: str | Table) -> pd.DataFrame:
    """``violations`` found by pandera, whatever the frame's dtypes."""
    from pandera.errors import SchemaErrors

    try:
        schema(table).validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        index = pd.to_numeric(cases["index"], errors="coerce")
        positions = pd.Series(np.nan, index=cases.index)
        known = index.notna()
        if known.any():
            positions[known] = frame.index.get_indexer(index[known].astype("int64"))
        # frame-level failures (a missing or unexpected column) name the column as the value
        frame_level = cases["schema_context"].astype("str") == "DataFrameSchema"
        column = cases["column"].astype("str").where(~frame_level, cases["failure_case"].astype("str"))
        return pd.DataFrame({
            "row": positions.astype("Int64"),
            "column": column,
            "check": cases["check"].astype("str"),
            "value": cases["failure_case"].astype("str"),
        })
    return pd.DataFrame({"row": pd.array([], dtype="Int64"), "column": pd.array([], dtype="str"),
                         "check": pd.array([], dtype="str"), "value": pd.array([], dtype="str")})


def row_violations(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """``violations`` of a frame already in the table's dtypes (any numbers for float columns):
    each column's rules and nullability, and the key, on whole columns at once. A scorer checks
    features batch by batch, where pandera's overhead per check would cost more than scoring."""
    found = [case for col in table.columns for case in _failing(col, _values(frame[col.name], col))]
    if table.key:
        rows = _duplicated_keys(frame, list(table.key))
        found.append((rows, ", ".join(table.key), "multiple_fields_uniqueness",  # as pandera names it
                      frame[table.key[0]].to_numpy()[rows]))
    found = [case for case in found if case[0].size]
    sizes = [rows.size for rows, *_ in found]  # one entry per failing check, repeated per row
    return pd.DataFrame({
        "row": pd.array(np.concatenate([rows for rows, *_ in found] or [[]]), dtype="Int64"),
        "column": pd.array(np.repeat([column for _, column, *_ in found], sizes), dtype="str"),
        "check": pd.array(np.repeat([check for _, _, check, _ in found], sizes), dtype="str"),
        "value": pd.array(np.concatenate([np.asarray(values, dtype=object) for *_, values in found]
                                         or [[]]).astype(str), dtype="str")})


def _duplicated_keys(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Positions of the rows whose key another row shares. Rows already in strictly increasing
    key order (as the simulator and most exports write them) have none, which one pass over the
    key's columns shows; only other orders pay for pandas' hashing."""
    undecided = np.ones(max(len(frame) - 1, 0), dtype=bool)  # neighbours equal on the key so far
    for name in key:
        pairs = np.flatnonzero(undecided)
        if not pairs.size:
            break
        later, earlier = _neighbours(frame[name], pairs)
        if pd.isna(later).any() or pd.isna(earlier).any() or (later < earlier).any():
            return np.flatnonzero(frame.duplicated(key, keep=False).to_numpy())
        undecided[pairs] = later == earlier
    if not undecided.any():
        return np.flatnonzero(undecided)
    return np.flatnonzero(frame.duplicated(key, keep=False).to_numpy())


def _neighbours(column: pd.Series, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values of rows ``pairs + 1`` and ``pairs``."""
    if column.dtype.kind in "iufM":
        values = column.to_numpy()
        return values[pairs + 1], values[pairs]
    return column.iloc[pairs + 1].to_numpy(), column.iloc[pairs].to_numpy()


def _values(column: pd.Series, col: Col) -> np.ndarray | pd.Series:
    """The values the rules test: floats as float64; text stays a Series, compared in its own
    storage rather than as a Python string per row."""
    if col.dtype == "str":
        return column
    return column.to_numpy(dtype="float64") if col.dtype == "float64" else column.to_numpy()


def _failing(col: Col, values: np.ndarray | pd.Series) -> list[tuple[np.ndarray, str, str, np.ndarray]]:
    """(rows, column, check, values) of each check of ``col``."""
    missing = np.asarray(pd.isna(values))
    found = [] if col.nullable else [(np.flatnonzero(missing), col.name, col.missing_check,
                                      _at(values, missing))]
    for name, test in col.rules():
        rows = np.flatnonzero(~np.asarray(test(values)) & ~missing)
        found.append((rows, col.name, name, _at(values, rows)))
    return found


def _at(values: np.ndarray | pd.Series, rows: np.ndarray) -> np.ndarray:
    return values.iloc[rows].to_numpy() if isinstance(values, pd.Series) else values[rows]


def validate(frame: pd.DataFrame, table: str | Table, source: str) -> None:
    """Raise ContractError naming ``source``, each failing column and its first rows."""
    found = violations(frame, table)
    if found.empty:
        return
    lines = [f"{source}: table '{table if isinstance(table, str) else table.name}' breaks the data contract"]
    for (column, check), group in found.groupby(["column", "check"], sort=True):
        rows = group["row"].dropna().astype("int64").tolist()
        values = group["value"].tolist()[:MAX_ROWS_IN_MESSAGE]
        where = f"rows {rows[:MAX_ROWS_IN_MESSAGE]}" + (f" and {len(rows) - MAX_ROWS_IN_MESSAGE} more"
                                                        if len(rows) > MAX_ROWS_IN_MESSAGE else "")
        lines.append(f"  column '{column}': fails {check}; {where if rows else 'whole column'}; "
                     f"values {values}")
    raise ContractError("\n".join(lines))


def history_violations(tables: dict[str, pd.DataFrame], observation_days: int,
                       today: pd.Timestamp) -> pd.DataFrame:
    """(borrower_id, reason) of every break of the rules across a borrower's tables, which put
    onboarding <= the platform's records, the initial limit <= the jump <= the scoring date <= the
    run date (``today``): records dated before onboarding, rows dated after the run date, more
    jumps than ``JUMPS_PER_BORROWER``, an increase without its trigger, an initial limit after the
    jump, a scoring date after the run date. Rows dated after the scoring date break no rule:
    features never read them."""
    borrowers = tables["borrowers"]
    onboard = borrowers.drop_duplicates("borrower_id").set_index("borrower_id")["onboard_date"]
    found = [_dated_after(borrowers, "borrowers", today)]
    for name in RAW_TABLES[1:]:
        frame, column = tables[name], TABLES[name].date_column
        found.append(_dated_after(frame, name, today))
        if name in OWN_RECORDS:
            start = _per_row(frame["borrower_id"], onboard)
            early = (frame[column] < start).to_numpy()
            found.append(_broken(frame["borrower_id"][early], f"{name}.{column}: before onboarding on "
                                 + _day(start[early]) + " (value " + _day(frame[column][early]) + ")"))
    events = tables["limit_events"]
    per_borrower = events[events["event_type"] == "increase"].groupby("borrower_id")["event_date"].agg(
        ["size", "max"])
    if JUMPS_PER_BORROWER is not None:
        many = per_borrower[per_borrower["size"] > JUMPS_PER_BORROWER]
        found.append(_broken(many.index, "limit_events.event_type: " + many["size"].astype("str")
                             + f" limit increases (the contract allows {JUMPS_PER_BORROWER})"))
    increases = events[events["event_type"] == "increase"]
    untold = increases["trigger"].isna().to_numpy()  # the features and the decision read it
    found.append(_broken(increases["borrower_id"][untold], "limit_events.trigger: missing on the limit "
                         "increase of " + _day(increases["event_date"][untold])))
    initial = events[events["event_type"] == "initial"]
    jump = _per_row(initial["borrower_id"], per_borrower["max"])
    late = (initial["event_date"] > jump).to_numpy()
    found.append(_broken(initial["borrower_id"][late], "limit_events.event_date: initial limit after "
                         "the jump on " + _day(jump[late]) + " (value " + _day(initial["event_date"][late])
                         + ")"))
    scoring = per_borrower["max"] + pd.Timedelta(days=observation_days)
    found.append(future_scoring(per_borrower.index, scoring, today))
    return pd.concat(found, ignore_index=True)


def _per_row(ids: pd.Series, dates: pd.Series) -> pd.Series:
    """``dates`` (by borrower id) on each row of ``ids``; NaT for an id without one. Not
    ``Series.map``: pandas casts an empty mapping of dates to floats and fails, as in a batch in
    which nobody's limit was increased."""
    return pd.Series(dates.reindex(ids.to_numpy()).to_numpy(), index=ids.index, dtype=dates.dtype)


def future_scoring(borrower_ids, scoring_dates: pd.Series, today: pd.Timestamp) -> pd.DataFrame:
    """(borrower_id, reason) of scoring dates after the run date: their observation window is
    not over, so their features would not mean what the model learnt."""
    late = (scoring_dates >= _next_day(today)).to_numpy()
    return _broken(np.asarray(borrower_ids)[late], f"scoring_date: after the run date {today:%Y-%m-%d}"
                   " (value " + _day(scoring_dates[late]) + ")")


def due_out_of_reach(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """(borrower_id, reason) of rows whose due date ``column`` (if the frame has one) falls before
    their scoring date, so cannot be the next one, or more than ``DUE_HORIZON_DAYS`` after it,
    beyond the next three (a '9999-12-31' had gone into the output as the date to remind by)."""
    if column not in frame:
        return _broken([], [])
    due, scoring = frame[column], frame["scoring_date"]  # a missing date compares False
    early = (due < scoring).to_numpy()
    late = (due > scoring + pd.Timedelta(days=DUE_HORIZON_DAYS)).to_numpy()
    return pd.concat([
        _broken(frame["borrower_id"][early], f"{column}: before the scoring date (value "
                + _day(due[early]) + ")"),
        _broken(frame["borrower_id"][late], f"{column}: more than {DUE_HORIZON_DAYS} days after the scoring "
                "date, beyond the next three due dates (value " + _day(due[late]) + ")")], ignore_index=True)


def _dated_after(frame: pd.DataFrame, name: str, today: pd.Timestamp) -> pd.DataFrame:
    column = TABLES[name].date_column
    late = (frame[column] >= _next_day(today)).to_numpy()
    return _broken(frame["borrower_id"][late], f"{name}.{column}: after the run date {today:%Y-%m-%d}"
                   " (value " + _day(frame[column][late]) + ")")


def _next_day(today: pd.Timestamp) -> pd.Timestamp:
    return today.normalize() + pd.Timedelta(days=1)


def _day(dates: pd.Series) -> pd.Series:
    return pd.Series(dates).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)


def _broken(borrower_ids, reasons) -> pd.DataFrame:
    ids = np.asarray(borrower_ids, dtype="int64")
    return pd.DataFrame({"borrower_id": ids,
                         "reason": pd.array(np.broadcast_to(np.asarray(reasons, dtype=object), ids.shape),
                                            dtype="str")})
