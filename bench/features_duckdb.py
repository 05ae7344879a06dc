"""An independent DuckDB SQL implementation of every catalogued feature, to cross-check and
benchmark ``pipeline.features.build_features``.

Same definitions, written from the feature descriptions and the data contract rather than by
calling the pipeline: one row per borrower at the scoring date (latest limit increase plus the
observation window), from raw rows dated strictly before it. Dates become integer day numbers
so that windows compare exactly as in the numpy code (``age <= m * 30.44`` with the same
double constants); a missing value is SQL NULL, which pandas receives as NaN.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
from feature_rules import (
    AGREEMENT_EVENTS,
    DAYS_PER_MONTH,
    EVENT_ORDER,
    FORGOTTEN_MAX_DAYS_LATE,
    RATIO_FLOOR,
    TOLERANCE_CENTS,
)

from pipeline.catalog import NAMES
from pipeline.config import EMPLOYMENT_TYPES, TRIGGERS, FeatureSettings

TABLES = ("borrowers", "statements", "installments", "repayments", "drawdowns", "limit_events",
          "bureau_inquiries", "bureau_loans", "platform_events", "maintenance_windows")
ID_COLUMNS = ("borrower_id", "scoring_date", "jump_date")


def duckdb_features(con_or_tables: duckdb.DuckDBPyConnection | dict[str, pd.DataFrame] | str | Path,
                    observation_days: int, settings: FeatureSettings, part: str = "*") -> pd.DataFrame:
    """Features of every borrower, one row per borrower sorted by id, in the column order of
    ``build_features``. ``con_or_tables`` is a dict of raw DataFrames, a directory of raw
    Parquet tables (``<dir>/<table>/<part>.parquet``: every file, or one shard such as
    ``part-00003``) or a connection that already has them."""
    con = connect(con_or_tables, part)
    frame = con.sql(feature_sql(observation_days, settings)).df()
    missing = frame["jump_date"].isna()
    if missing.any():
        ids = frame.loc[missing, "borrower_id"].tolist()
        raise ValueError(f"{len(ids)} borrowers have no limit increase, e.g. {ids[:5]}")
    for column in ("scoring_date", "jump_date"):
        frame[column] = frame[column].astype("datetime64[s]")
    features = frame[list(NAMES)].astype("float64")
    return pd.concat([frame[list(ID_COLUMNS)], features], axis=1)


def connect(source: duckdb.DuckDBPyConnection | dict[str, pd.DataFrame] | str | Path, part: str = "*"
            ) -> duckdb.DuckDBPyConnection:
    """A connection on which every raw table is a view (DuckDB's default threads); of a
    directory, the files named ``part`` (the maintenance windows are shared by every shard)."""
    if isinstance(source, duckdb.DuckDBPyConnection):
        return source
    con = duckdb.connect()
    if isinstance(source, dict):
        for name in TABLES:
            con.register(name, source[name])
        return con
    for name in TABLES:
        files = "*" if name == "maintenance_windows" else part
        pattern = str(Path(source) / name / f"{files}.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{pattern}')")
    return con


# --- SQL building blocks -------------------------------------------------------------------

def _num(value: float) -> str:
    """A double literal that parses to exactly the Python float (repr round-trips)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _months(m: float) -> str:
    """``m`` months in days, computed in double precision as the numpy code does."""
    return _num(m * DAYS_PER_MONTH)


def _day(column: str) -> str:
    """Day number (days since 1970-01-01) of a date or timestamp, time of day dropped."""
    return f"(CAST({column} AS DATE) - DATE '1970-01-01')"


def _ratio(a: str, b: str) -> str:
    return f"CASE WHEN abs({b}) > {_num(RATIO_FLOOR)} THEN ({a}) / ({b}) END"


def _code(column: str, categories: tuple[str, ...]) -> str:
    """0-based position in ``categories`` as a double (NULL if unknown)."""
    listed = ", ".join(f"'{c}'" for c in categories)
    return f"CAST(nullif(list_position([{listed}], {column}), 0) - 1 AS DOUBLE)"


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _add_months(day: str, months: str) -> str:
    """Day number moved by whole months keeping the day of the month, clamped to the last day
    of a shorter target month (31 Jan + 1 month = 28 or 29 Feb). Spelled out with make_date and
    last_day rather than left to interval arithmetic, so the clamp is visible."""
    date = f"(DATE '1970-01-01' + CAST({day} AS INTEGER))"
    index = f"(year({date}) * 12 + month({date}) - 1 + ({months}))"
    first = f"make_date(CAST({index} // 12 AS BIGINT), CAST({index} % 12 + 1 AS BIGINT), 1)"
    return f"(({first} - DATE '1970-01-01') + least(day({date}), day(last_day({first}))) - 1)"


# --- common tables: the spine and each raw table cut at the scoring date ---------------------

def _spine(observation_days: int) -> str:
    """One row per borrower of ``borrowers``: the jump is the latest increase by day, whatever
    the row order of the file. Two increases on one day (the contract's key allows them only at
    different times) go to the later timestamp here but to the later row in file order in the
    numpy code, which SQL cannot see. Increases of borrowers missing from ``borrowers`` fall out
    at the join, and ``_cut`` drops every other table's rows of them."""
    return f"""
    jump AS (
        SELECT borrower_id, {_day('event_date')} AS jump, "trigger", old_limit, new_limit
        FROM limit_events WHERE event_type = 'increase'
        QUALIFY row_number() OVER (PARTITION BY borrower_id ORDER BY jump DESC, event_date DESC) = 1
    ),
    spine AS (
        SELECT b.borrower_id, {_day('b.onboard_date')} AS onboard, b.age, b.city_tier,
               b.employment_type, CAST(b.declared_monthly_income AS DOUBLE) AS income,
               j.jump, j.jump + {int(observation_days)} AS score, j."trigger",
               j.old_limit, j.new_limit, j.new_limit - j.old_limit AS increase
        FROM borrowers b LEFT JOIN jump j USING (borrower_id)
    )"""


def _cut(name: str, table: str, date_column: str, columns: str, lag_days: int = 0) -> str:
    """Rows of ``table`` known before each borrower's scoring day (dated ``lag_days`` + 1 days
    or more before it), with ``day`` and ``age`` (days before scoring) and the spine's jump and
    scoring days."""
    return f"""
    {name} AS (
        SELECT t.borrower_id, {_day('t.' + date_column)} AS day, s.jump, s.score,
               s.score - {_day('t.' + date_column)} AS age, {columns}
        FROM {table} t JOIN spine s USING (borrower_id)
        WHERE {_day('t.' + date_column)} + {int(lag_days)} < s.score
    )"""


# --- feature groups --------------------------------------------------------------------------

def _spending(large_share: float) -> str:
    return f"""
    spending AS (
        SELECT borrower_id,
               sum(amount) FILTER (day >= jump) AS drawn,
               sum(amount) FILTER (day < jump AND day >= jump - 91) / {_num(3.0)} AS monthly_before,
               min(day) FILTER (day >= jump AND amount >= {_num(large_share)} * increase)
                   - any_value(jump) AS days_to_large,
               count(*) FILTER (day >= jump AND purpose IN ('large_purchase', 'cash_withdrawal'))
                   AS large_draws,
               sum({_due_next_months(3)}) AS due_3,
               max({_months_left()}) AS months_left
        FROM draws GROUP BY borrower_id
    )"""


def _due_next_months(months: int) -> str:
    """Installments of one drawdown or outside loan (paid monthly from the month after it was
    taken) falling in the ``months`` months after scoring: those of its tenor not yet due, as
    counted in whole 30.44-day months since it was taken, at most ``months``."""
    return f"monthly_installment * least({_months_left()}, {months})"


def _months_left() -> str:
    """Monthly installments of one drawdown or outside loan still to fall due after scoring."""
    return f"greatest(tenor_months - floor(age / {_num(DAYS_PER_MONTH)}), 0)"


def _statement_features() -> str:
    """Last-m-statements windows are counted in rows: ``rn`` is 1 for the last statement."""
    slopes = ",\n".join(
        f"CASE WHEN count(*) FILTER (rn <= {m}) >= 3 THEN regr_slope(util, -rn) FILTER (rn <= {m}) END"
        f" AS slope_{m}" for m in (6, 12))
    means = ",\n".join(f"avg(util) FILTER (rn <= {m}) AS mean_{m}" for m in (3, 6, 12))
    return f"""
    stmt_ranked AS (
        SELECT *, row_number() OVER (PARTITION BY borrower_id ORDER BY day DESC) AS rn FROM stmt
    ),
    stmt_f AS (
        SELECT borrower_id, {means}, {slopes},
               max(util) FILTER (rn = 1) AS util_last,
               max(util) FILTER (rn = 2) AS util_prev,
               max(credit_score) FILTER (rn = 1) AS score_last,
               max(credit_score) FILTER (rn = 4) AS score_back_3,
               max(credit_score) FILTER (rn = 7) AS score_back_6,
               avg(wallet_inflow) FILTER (rn <= 3) AS inflow_3,
               avg(wallet_inflow) FILTER (rn BETWEEN 4 AND 6) AS inflow_prev_3,
               max(wallet_balance) FILTER (rn = 1) AS wallet_balance,
               max(balance) FILTER (rn = 1) AS balance_last,
               max(installment_due_next) FILTER (rn = 1) AS due_next_now,
               arg_max(installment_due_next, day) FILTER (day < jump) AS due_next_then
        FROM stmt_ranked GROUP BY borrower_id
    )"""


def _outside_running(at: str) -> str:
    """Outside loans opened before day ``at`` and still running then."""
    return f"day < {at} AND {at} - day < tenor_months * {_num(DAYS_PER_MONTH)}"


def _lending() -> str:
    return f"""
    loans_f AS (
        SELECT borrower_id,
               sum(monthly_installment) FILTER ({_outside_running('score')}) AS outside_now,
               sum(monthly_installment) FILTER ({_outside_running('jump')}) AS outside_then,
               count(*) FILTER (age <= {_months(3)}) AS loans_3,
               count(*) FILTER (age <= {_months(6)}) AS loans_6,
               count(*) FILTER (day >= jump) AS loans_since_jump,
               sum(amount) FILTER (age <= {_months(6)}) AS borrowed_6,
               sum({_due_next_months(3)}) AS outside_due_3
        FROM loans GROUP BY borrower_id
    ),
    inquiries_f AS (
        SELECT borrower_id,
               count(*) FILTER (age <= {_months(1)}) AS inq_1,
               count(*) FILTER (age <= {_months(3)}) AS inq_3,
               count(*) FILTER (age <= {_months(6)}) AS inq_6,
               count(*) FILTER (day >= jump) AS inq_since_jump
        FROM inquiries GROUP BY borrower_id
    ),
    restrictions_f AS (
        SELECT borrower_id, count(*) AS restrictions
        FROM limits WHERE event_type = 'restriction' AND age <= 365 GROUP BY borrower_id
    )"""


def _settlement() -> str:
    """First in, first out: a due date is paid in full on the first day the borrower's
    cumulative payments (integer cents, summed per day) reach its cumulative scheduled amount
    less the tolerance; an ASOF join finds the smallest cumulative total at or above the target.
    No match (or no payments at all) means still unpaid at scoring. A due date that asks for at
    most the tolerance itself (only arrears carried into it) is settled on its own day, whatever
    was paid."""
    return f"""
    due_targets AS (
        SELECT *, sum(cents) OVER (PARTITION BY borrower_id ORDER BY day ROWS UNBOUNDED PRECEDING)
                  - {TOLERANCE_CENTS} AS target
        FROM (SELECT *, CAST(round_even(scheduled_amount * 100, 0) AS BIGINT) AS cents FROM dues)
    ),
    paid_by_day AS (
        SELECT borrower_id, day,
               sum(sum(CAST(round_even(amount * 100, 0) AS BIGINT)))
                   OVER (PARTITION BY borrower_id ORDER BY day) AS cum_cents
        FROM pays GROUP BY borrower_id, day
    ),
    acted AS (  -- days a borrower paid something or a debit was tried (and failed)
        SELECT DISTINCT borrower_id, day FROM pays
        UNION SELECT DISTINCT borrower_id, day FROM events WHERE event_type = 'debit_failed'
    ),
    debited AS (  -- days a debit was tried, whether it went through or failed
        SELECT DISTINCT borrower_id, day FROM pays WHERE channel = 'auto_debit'
        UNION SELECT DISTINCT borrower_id, day FROM events WHERE event_type = 'debit_failed'
    ),
    settled AS (
        SELECT s.*, a.day IS NULL AS untouched, b.day IS NULL AS no_debit
        FROM (SELECT *, greatest(coalesce(paid_day, score) - day, 0) AS late
              FROM (SELECT d.*, CASE WHEN d.cents <= {TOLERANCE_CENTS} THEN d.day ELSE p.day END AS paid_day
                    FROM due_targets d ASOF LEFT JOIN paid_by_day p
                        ON d.borrower_id = p.borrower_id AND d.target <= p.cum_cents)) s
            LEFT JOIN acted a ON s.borrower_id = a.borrower_id AND s.day = a.day
            LEFT JOIN debited b ON s.borrower_id = b.borrower_id AND s.day = b.day
    )"""


def _repayment(decay_days: float) -> str:
    over = ",\n".join(f"count(*) FILTER (late > {d}) AS over_{d}" for d in (0, 5, 15, 30))
    return f"""
    {_settlement()},
    dues_f AS (
        SELECT borrower_id,
               count(*) FILTER (late > 0 AND age <= {_months(3)}) AS missed_3,
               count(*) FILTER (late > 0 AND age <= {_months(6)}) AS missed_6,
               {over},
               max(late) AS max_late,
               sum(late * exp(-age / {_num(decay_days)})) AS decayed,
               any_value(score) - min(day) FILTER (paid_day IS NULL) AS dpd_now,
               sum(scheduled_amount) AS total_due,
               sum(scheduled_amount) FILTER (age <= {_months(6)}) AS due_6,
               count(*) FILTER (late > 0 AND paid_day IS NOT NULL AND late <= 3) AS cured_3,
               count(*) FILTER (late > 0 AND paid_day IS NOT NULL AND late <= {FORGOTTEN_MAX_DAYS_LATE}
                                AND untouched) AS forgotten,
               count(*) FILTER (cents > {TOLERANCE_CENTS} AND no_debit) AS manual
        FROM settled GROUP BY borrower_id
    ),
    pays_f AS (
        SELECT borrower_id, sum(amount) AS total_paid,
               sum(amount) FILTER (age <= 183) AS paid_6
        FROM pays GROUP BY borrower_id
    )"""


def _platform() -> str:
    """Same-day events are ordered by EVENT_ORDER: ``seq`` sorts events as they took effect."""
    order = ", ".join(f"'{e}'" for e in EVENT_ORDER)
    failed = ",\n".join(
        f"count(*) FILTER (event_type = 'debit_failed' AND age <= 183 AND detail = '{d}') AS fail_{d}"
        for d in ("mandate_invalid", "system_unavailable", "insufficient_funds"))
    return f"""
    events_seq AS (
        SELECT *, day * 8 + list_position([{order}], event_type) AS seq FROM events
    ),
    events_f AS (
        SELECT borrower_id,
               arg_max(event_type, seq) FILTER (event_type IN {_in(AGREEMENT_EVENTS)}) AS status,
               count(*) FILTER (event_type IN {_in(AGREEMENT_EVENTS)} AND age <= 30) AS changed_30,
               max(seq) FILTER (event_type = 'reauth_required') AS last_request,
               max(seq) FILTER (event_type IN {_in(AGREEMENT_EVENTS)}) AS last_agreement_event,
               {failed}
        FROM events_seq GROUP BY borrower_id
    )"""


def _outages(settings: FeatureSettings) -> str:
    """The next three due dates come from the billing cycle, anchored on statements: a cycle
    starts the day after a statement and its due date falls a fixed number of days later. So
    the next cycle starts the day after the last statement before scoring, and the offset is
    the last due date before scoring minus the start of its own cycle (the day after the last
    statement strictly before it); cycle k starts k months on (day of month clamped). Borrowers
    without such a statement or due date get none; due dates already past (scoring between a due
    date and the next statement) are skipped. A due date counts once, for each channel, if any
    maintenance window announced before scoring covers the day's auto-debit batch hour, or
    overlaps its paying hours (a window ending at midnight does not cover the next day); windows
    are expanded to the days they cover (a few each) so the match is an equi-join."""
    batch = round(settings.debit_batch_hour * 3600)
    opens, closes = (round(h * 3600) for h in settings.paying_hours)
    return f"""
    last_due AS (
        SELECT borrower_id, max(day) AS last_due FROM dues GROUP BY borrower_id
    ),
    cycle AS (
        SELECT borrower_id, any_value(s.score) AS score, max(s.day) + 1 AS next_start,
               any_value(d.last_due) AS last_due,
               any_value(d.last_due) - (max(s.day) FILTER (s.day < d.last_due) + 1) AS due_offset
        FROM stmt s JOIN last_due d USING (borrower_id)
        GROUP BY borrower_id
    ),
    candidates AS (
        SELECT borrower_id, score, step, {_add_months('next_start', 'step')} + due_offset AS due,
               last_due
        FROM cycle, range(5) r(step)
        WHERE due_offset IS NOT NULL
    ),
    next_three AS (
        SELECT borrower_id, score, due,
               row_number() OVER (PARTITION BY borrower_id ORDER BY step) - 1 AS k
        FROM candidates
        WHERE due >= score AND due > last_due
        QUALIFY k < 3
    ),
    asking AS (
        -- a due date asks for a payment: an installment of the drawdowns is left for it, arrears
        -- are owed (to the fen), or the last statement's balance with no installment to explain it
        SELECT n.borrower_id, n.score, n.due
        FROM next_three n
        LEFT JOIN spending sp USING (borrower_id)
        LEFT JOIN stmt_f f USING (borrower_id)
        LEFT JOIN dues_f d USING (borrower_id)
        LEFT JOIN pays_f p USING (borrower_id)
        WHERE coalesce(sp.months_left, 0) > n.k
           OR round(coalesce(d.total_due, 0) - coalesce(p.total_paid, 0), 2) > 0
           OR (coalesce(f.balance_last, 0) > 0 AND coalesce(sp.months_left, 0) = 0)
    ),
    window_days AS (
        SELECT {_day('announced_date')} AS announced, epoch(start_time) AS w_start,
               epoch(end_time) AS w_end,
               unnest(range({_day('start_time')}, {_day("end_time - INTERVAL 1 SECOND")} + 1)) AS day
        FROM maintenance_windows
    ),
    window_hours AS (
        SELECT day, announced,
               w_start <= day * 86400 + {batch} AND day * 86400 + {batch} < w_end AS over_batch,
               greatest(day * 86400 + {opens}, w_start) < least(day * 86400 + {closes}, w_end)
                   AS over_paying
        FROM window_days
    ),
    outages_f AS (
        SELECT n.borrower_id,
               count(DISTINCT n.due) FILTER (WHERE w.over_batch) AS in_batch,
               count(DISTINCT n.due) FILTER (WHERE w.over_paying) AS in_paying
        FROM asking n JOIN window_hours w ON w.day = n.due AND w.announced < n.score
        GROUP BY n.borrower_id
    )"""


def _select() -> str:
    """The output columns, in catalogue order."""
    dti_now = "coalesce(f.due_next_now, 0) + coalesce(l.outside_now, 0)"
    dti_then = "coalesce(f.due_next_then, 0) + coalesce(l.outside_then, 0)"
    drawn = "coalesce(sp.drawn, 0)"
    columns = {
        "trigger": _code('s."trigger"', TRIGGERS),
        "increase_amount": "s.increase",
        "limit_before_jump": "s.old_limit",
        "new_over_old_limit": _ratio("s.new_limit", "s.old_limit"),
        "months_of_history": f"(s.score - s.onboard) / {_num(DAYS_PER_MONTH)}",
        "post_increase_drawn": drawn,
        "post_increase_draw_share": _ratio(drawn, "s.increase"),
        # the 100 CNY floor of the numpy code keeps the ratio finite for light spenders
        "post_increase_spend_ratio": f"{drawn} / greatest(coalesce(sp.monthly_before, 0), 100)",
        "days_to_first_large_draw": "sp.days_to_large",
        "large_drawdowns_since_jump": "coalesce(sp.large_draws, 0)",
        "installments_to_income": _ratio("coalesce(f.due_next_now, 0)", "s.income"),
        "dti_before_jump": _ratio(dti_then, "s.income"),
        "dti_at_scoring": _ratio(dti_now, "s.income"),
        "dti_change": f"{_ratio(dti_now, 's.income')} - {_ratio(dti_then, 's.income')}",
        "outside_installments": "coalesce(l.outside_now, 0)",
        "installments_next_3_cycles": "coalesce(sp.due_3, 0)",
        "outside_installments_next_3_cycles": "coalesce(l.outside_due_3, 0)",
        **{f"utilisation_mean_{m}m": f"f.mean_{m}" for m in (3, 6, 12)},
        "utilisation_last": "f.util_last",
        **{f"utilisation_slope_{m}m": f"f.slope_{m}" for m in (6, 12)},
        **{f"utilisation_last_minus_mean_{m}m": f"f.util_last - f.mean_{m}" for m in (3, 6, 12)},
        "utilisation_last_minus_previous": "f.util_last - f.util_prev",
        **{f"missed_due_dates_{m}m": f"coalesce(d.missed_{m}, 0)" for m in (3, 6)},
        **{f"due_dates_over_{x}_days_late": f"coalesce(d.over_{x}, 0)" for x in (0, 5, 15, 30)},
        "max_days_late": "coalesce(d.max_late, 0)",
        "decayed_days_late": "coalesce(d.decayed, 0)",
        "days_past_due_now": "coalesce(d.dpd_now, 0)",
        "overdue_amount_now": "greatest(coalesce(d.total_due, 0) - coalesce(p.total_paid, 0), 0)",
        "paid_over_due_6m": _ratio("coalesce(p.paid_6, 0)", "coalesce(d.due_6, 0)"),
        "short_misses_cured_3d": "coalesce(d.cured_3, 0)",
        "forgotten_due_dates": "coalesce(d.forgotten, 0)",
        "manual_due_dates": "coalesce(d.manual, 0)",
        **{f"inquiries_{m}m": f"coalesce(q.inq_{m}, 0)" for m in (1, 3, 6)},
        "inquiries_since_jump": "coalesce(q.inq_since_jump, 0)",
        **{f"new_outside_loans_{m}m": f"coalesce(l.loans_{m}, 0)" for m in (3, 6)},
        "new_outside_loans_since_jump": "coalesce(l.loans_since_jump, 0)",
        "new_outside_borrowing_6m": "coalesce(l.borrowed_6, 0)",
        "credit_score": "f.score_last",
        **{f"credit_score_change_{m}m": f"f.score_last - f.score_back_{m}" for m in (3, 6)},
        "restrictions_12m": "coalesce(r.restrictions, 0)",
        "declared_income": "s.income",
        "inflow_mean_3m": "f.inflow_3",
        "inflow_trend": _ratio("f.inflow_3", "f.inflow_prev_3"),
        "inflow_over_declared_income": _ratio("f.inflow_3", "s.income"),
        "wallet_balance": "f.wallet_balance",
        "wallet_over_inflow": "f.wallet_balance / greatest(f.inflow_3, 100)",
        # the 100 CNY floor keeps the ratio finite for borrowers with nothing due
        "cash_buffer_over_installments": "f.wallet_balance / greatest(coalesce(sp.due_3, 0) "
                                         "+ coalesce(l.outside_due_3, 0), 100)",
        "autodebit_active": "CASE WHEN e.status = 'autodebit_authorised' THEN 1 ELSE 0 END",
        "autodebit_lapsed": "CASE WHEN e.status = 'autodebit_revoked' THEN 1 ELSE 0 END",
        "autodebit_changed_30d": "coalesce(e.changed_30, 0)",
        "reauth_pending": "CASE WHEN e.last_request IS NOT NULL AND (e.last_agreement_event IS NULL OR "
                          "e.last_agreement_event < e.last_request) THEN 1 ELSE 0 END",
        "debit_failures_mandate_6m": "coalesce(e.fail_mandate_invalid, 0)",
        "debit_failures_system_6m": "coalesce(e.fail_system_unavailable, 0)",
        "debit_failures_funds_6m": "coalesce(e.fail_insufficient_funds, 0)",
        "due_dates_in_announced_outage": "CASE WHEN e.status = 'autodebit_authorised' "
                                         "THEN coalesce(o.in_batch, 0) ELSE coalesce(o.in_paying, 0) END",
        "age": "s.age",
        "city_tier": "s.city_tier",
        "employment_type": _code("s.employment_type", EMPLOYMENT_TYPES),
    }
    assert tuple(columns) == NAMES, "the SQL columns must follow the catalogue"
    return ",\n       ".join(f"CAST({expr} AS DOUBLE) AS {name}" for name, expr in columns.items())


def feature_sql(observation_days: int, settings: FeatureSettings) -> str:
    """The whole feature query over the raw tables (views named as the contract's tables)."""
    ctes = [
        _spine(observation_days),
        _cut("draws", "drawdowns", "drawdown_date",
             "t.amount, t.purpose, t.tenor_months, t.monthly_installment, s.increase"),
        _cut("stmt", "statements", "statement_date",
             "coalesce(" + _ratio("t.balance", "t.credit_limit") + ", 0) AS util, "
             "CAST(t.credit_score AS DOUBLE) AS credit_score, t.wallet_inflow, t.wallet_balance, "
             "t.installment_due_next, t.balance"),
        _cut("loans", "bureau_loans", "open_date", "t.amount, t.tenor_months, t.monthly_installment",
             settings.bureau_lag_days),
        _cut("inquiries", "bureau_inquiries", "inquiry_date", "t.lender_type", settings.bureau_lag_days),
        _cut("limits", "limit_events", "event_date", "t.event_type"),
        _cut("dues", "installments", "due_date", "t.scheduled_amount"),
        _cut("pays", "repayments", "payment_date", "t.amount, t.channel"),
        _cut("events", "platform_events", "event_date", "t.event_type, t.detail"),
        _spending(settings.large_draw_share),
        _statement_features(),
        _lending(),
        _repayment(settings.decay_days),
        _platform(),
        _outages(settings),
    ]
    return f"""
    WITH {','.join(ctes)}
    SELECT s.borrower_id,
           DATE '1970-01-01' + CAST(s.score AS INTEGER) AS scoring_date,
           DATE '1970-01-01' + CAST(s.jump AS INTEGER) AS jump_date,
           {_select()}
    FROM spine s
    LEFT JOIN spending sp USING (borrower_id)
    LEFT JOIN stmt_f f USING (borrower_id)
    LEFT JOIN loans_f l USING (borrower_id)
    LEFT JOIN inquiries_f q USING (borrower_id)
    LEFT JOIN restrictions_f r USING (borrower_id)
    LEFT JOIN dues_f d USING (borrower_id)
    LEFT JOIN pays_f p USING (borrower_id)
    LEFT JOIN events_f e USING (borrower_id)
    LEFT JOIN outages_f o USING (borrower_id)
    ORDER BY s.borrower_id"""
