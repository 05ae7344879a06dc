"""The independent implementations of the features, DuckDB SQL (bench/features_duckdb.py) and
polars (bench/features_polars.py), each agree with pipeline.features on every column: a check of
the feature definitions from two other idioms. Every test runs once per implementation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from pipeline.catalog import DUE_DATES, NAMES
from pipeline.features import build_features
from tests import handmade
from tests.conftest import bench_module, make_params, simulate_tables

SETTINGS = make_params().features
REFERENCES = {"duckdb": bench_module("features_duckdb").duckdb_features,
              "polars": bench_module("features_polars").polars_features}
Reference = Callable[..., pd.DataFrame]


@pytest.fixture(params=list(REFERENCES))
def reference(request) -> Reference:
    """Each independent implementation in turn: (source, observation_days, settings) -> features."""
    return REFERENCES[request.param]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    params = make_params({"engine": {"workers": 1},
                          "simulate": {"n_borrowers": 3000, "shard_size": 3000, "truth_replicates": 2}})
    sim = simulate_tables(params)
    return {name: frame for name, frame in sim.items() if name != "ground_truth"}


def assert_same_features(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    ours = ours.drop(columns=list(DUE_DATES))  # not features: the references leave them out
    assert list(theirs.columns) == list(ours.columns) == ["borrower_id", "scoring_date", "jump_date",
                                                          *NAMES]
    for column in ("borrower_id", "scoring_date", "jump_date"):
        np.testing.assert_array_equal(theirs[column].to_numpy(), ours[column].to_numpy(), err_msg=column)
    for name in NAMES:
        assert theirs[name].dtype == np.float64, name
        np.testing.assert_allclose(theirs[name].to_numpy(), ours[name].to_numpy(dtype=float),
                                   rtol=0, atol=1e-9, equal_nan=True, err_msg=name)


def test_reference_agrees_on_simulated_borrowers(tables, reference):
    assert_same_features(build_features(tables, 30, SETTINGS), reference(tables, 30, SETTINGS))


def test_reference_reads_parquet_directories(tables, reference, tmp_path):
    few = {name: frame[frame["borrower_id"] < 200] if name != "maintenance_windows" else frame
           for name, frame in tables.items()}
    for name, frame in few.items():
        (tmp_path / name).mkdir()
        frame.to_parquet(tmp_path / name / "part-00000.parquet", index=False)
    assert_same_features(build_features(few, 30, SETTINGS), reference(tmp_path, 30, SETTINGS))


def agree(tables: dict[str, pd.DataFrame], reference: Reference) -> pd.DataFrame:
    """The pipeline and ``reference`` on ``tables``; the pipeline's rows, indexed by borrower."""
    ours = build_features(tables, 30, SETTINGS)
    assert_same_features(ours, reference(tables, 30, SETTINGS))
    return ours.set_index("borrower_id")


def _due(bid: int, day: str, amount: float) -> dict:
    return dict(borrower_id=bid, due_date=day, scheduled_amount=amount, arrears_amount=0.0)


def _paid(bid: int, day: str, amount: float, due: str | None = None) -> dict:
    return dict(borrower_id=bid, payment_date=day, due_date=due or day, amount=amount, channel="manual")


def _event(bid: int, day: str, kind: str, detail: str = "user_action") -> dict:
    return dict(borrower_id=bid, event_date=day, event_type=kind, detail=detail)


def _draw(bid: int, day: str, tenor: int, installment: float, purpose: str = "purchase") -> dict:
    return dict(borrower_id=bid, drawdown_date=day, amount=tenor * installment * 0.95, tenor_months=tenor,
                apr=0.15, monthly_installment=installment, purpose=purpose)


def _loan(bid: int, day: str, tenor: int, installment: float) -> dict:
    return dict(borrower_id=bid, open_date=day, lender_type="bank", amount=tenor * installment * 0.9,
                tenor_months=tenor, monthly_installment=installment)


def _statement(bid: int, day: str, **values) -> dict:
    row = dict(borrower_id=bid, statement_date=day, cycle_start_date=day, credit_limit=60_000.0,
               balance=3000.0, purchases=1000.0, installment_due_next=1000.0, overdue_amount=0.0,
               days_past_due=0, credit_score=700, wallet_inflow=9000.0, wallet_balance=8000.0,
               line_status="active")
    return {**row, **values}


def _window(wid: int, announced: str, day: str, hours: tuple[str, str] = ("01:00", "13:00")) -> dict:
    """By default over both the 02:00 auto-debit batch and some paying hours: blocks either channel."""
    return dict(window_id=wid, window_kind="planned", announced_date=announced,
                start_time=f"{day} {hours[0]}:00", end_time=f"{day} {hours[1]}:00")


def test_reference_agrees_on_edge_cases(reference):
    """Same-day platform events in the wrong file order, due dates on the 31st, due dates of
    zero, a loan ending exactly at the jump, a borrower with no rows at all and a maintenance
    window over several days."""
    first = handmade.borrower(1, jump="2025-01-15")
    first["platform_events"] = [
        _event(1, "2025-01-20", "autodebit_authorised"),
        _event(1, "2025-01-20", "reauth_required", "reauthorisation_campaign"),
        _event(1, "2025-02-01", "autodebit_authorised"),
        _event(1, "2025-02-01", "autodebit_revoked", "expired")]
    first["installments"] = [_due(1, "2024-12-31", 500.0), _due(1, "2025-01-31", 500.0)]
    first["repayments"] = [_paid(1, "2024-12-31", 200.0), _paid(1, "2024-12-31", 300.0, "2025-01-31"),
                           _paid(1, "2025-02-03", 499.5)]
    first["statements"] = [_statement(1, day) for day in ("2024-12-21", "2025-01-21")]
    second = handmade.borrower(2, jump="2025-03-01")
    second["installments"] = [_due(2, "2024-11-29", 0.0), _due(2, "2024-12-29", 100.0)]
    second["repayments"] = [_paid(2, "2025-01-05", 100.0)]
    second["bureau_loans"] = [dict(borrower_id=2, open_date="2023-01-30", lender_type="bank",
                                   amount=1000.0, tenor_months=25, monthly_installment=50.0)]
    second["statements"] = [_statement(2, day) for day in ("2024-11-19", "2024-12-19", "2025-02-19")]
    empty = handmade.borrower(3, old_limit=0.0, trigger="new_user")
    windows = [dict(window_id=0, window_kind="planned", announced_date="2025-01-01",
                    start_time="2025-02-27 22:00:00", end_time="2025-03-04 02:00:00")]
    agree(handmade.tables(first, second, empty, maintenance_windows=windows), reference)


def _stranger(bid: int) -> dict[str, list[dict]]:
    """Rows in every per-borrower table of a borrower missing from ``borrowers``, dated so that
    they would enter the features of whichever borrower they were wrongly given to."""
    rows = handmade.borrower(bid, jump="2025-02-20")
    del rows["borrowers"]
    return {**rows,
            "statements": [_statement(bid, "2025-01-15", wallet_balance=1.0, credit_score=400)],
            "installments": [_due(bid, "2025-01-10", 900.0)],
            "repayments": [_paid(bid, "2025-01-20", 50.0, "2025-01-10")],
            "drawdowns": [_draw(bid, "2025-02-25", 12, 4000.0, "cash_withdrawal")],
            "bureau_inquiries": [dict(borrower_id=bid, inquiry_date="2025-02-22", lender_type="bank")],
            "bureau_loans": [_loan(bid, "2025-02-22", 12, 700.0)],
            "platform_events": [_event(bid, "2025-02-23", "debit_failed", "mandate_invalid")]}


def test_latest_increase_by_date_and_rows_of_unknown_borrowers(reference):
    """The jump is the latest increase by date though the file lists it first; rows of
    borrowers missing from ``borrowers`` (one between two known ids, one after the last) are
    ignored, increases included."""
    first = handmade.borrower(1, jump="2024-10-01")
    initial, earlier = first["limit_events"]
    later = dict(earlier, event_date="2025-02-01", trigger="user_request", old_limit=60_000.0,
                 new_limit=80_000.0)
    first["limit_events"] = [initial, later, earlier]
    first["drawdowns"] = [_draw(1, "2025-02-10", 6, 2_600.0, "large_purchase")]
    third = handmade.borrower(3, jump="2025-02-01")
    third["statements"] = [_statement(3, "2025-01-15")]
    known = (first, third)
    strangers = [_stranger(2), _stranger(99)]
    extra = {name: [row for s in strangers for row in s[name]] for name in strangers[0]}
    ours = agree(handmade.tables(*known, **extra), reference)
    pd.testing.assert_frame_equal(ours, build_features(handmade.tables(*known), 30, SETTINGS)
                                  .set_index("borrower_id"))
    assert list(ours.index) == [1, 3]
    assert ours.loc[1, "jump_date"] == pd.Timestamp("2025-02-01")
    assert (ours.loc[1, "increase_amount"], ours.loc[1, "limit_before_jump"]) == (20_000.0, 60_000.0)
    assert ours.loc[1, "large_drawdowns_since_jump"] == 1


def test_due_dates_of_at_most_one_cny_are_paid_on_the_day(reference):
    """A due date asking for at most 1 CNY is paid on its own day even behind an unpaid one
    (first in, first out would leave it open) or before a later payment settles it; 1.01 CNY is
    not. The same holds in a batch without a single payment."""
    arrears = handmade.borrower(1, jump="2025-02-01")
    arrears["installments"] = [_due(1, "2025-01-10", 500.0), _due(1, "2025-02-10", 0.8),
                               _due(1, "2025-02-20", 1.0), _due(1, "2025-02-25", 1.01)]
    arrears["repayments"] = [_paid(1, "2025-01-10", 200.0)]
    nothing = handmade.borrower(2, jump="2025-02-01")
    nothing["installments"] = [_due(2, "2025-02-10", 0.0)]
    paid_later = handmade.borrower(3, jump="2025-02-01")
    paid_later["installments"] = [_due(3, "2025-01-10", 0.5), _due(3, "2025-02-10", 300.0)]
    paid_later["repayments"] = [_paid(3, "2025-02-15", 300.5, "2025-02-10")]
    ours = agree(handmade.tables(arrears, nothing, paid_later), reference)
    # scoring is 2025-03-03: the 500 is 52 days late, the 1.01 six, the small ones not at all
    assert ours.loc[1, "due_dates_over_0_days_late"] == 2 and ours.loc[1, "days_past_due_now"] == 52
    assert ours.loc[2, "due_dates_over_0_days_late"] == 0 and ours.loc[2, "days_past_due_now"] == 0
    assert ours.loc[3, "max_days_late"] == 5 and ours.loc[3, "short_misses_cured_3d"] == 0
    for b in (arrears, nothing, paid_later):
        b.pop("repayments", None)
    unpaid = agree(handmade.tables(arrears, nothing, paid_later), reference)
    assert list(unpaid["due_dates_over_0_days_late"]) == [2, 0, 1]


def test_next_due_dates_follow_the_statement_anchor(reference):
    """The next cycle starts the day after the last statement; the due offset is the last due
    date minus the day after the statement strictly before it; later cycles start whole months
    on, clamped to the month's end (31 Jan -> 28 Feb, or 29 Feb in a leap year)."""
    jump = "2025-01-01"  # scoring 2025-01-31
    anchored = handmade.borrower(1, jump=jump)  # due 2025-02-08, 03-08, 04-08
    anchored["statements"] = [_statement(1, d) for d in ("2024-11-30", "2025-01-30")]
    anchored["installments"] = [_due(1, "2024-12-09", 100.0)]
    same_day = handmade.borrower(2, jump=jump)  # offset from 12-05, not 12-20: due 02-04, 03-07, 04-04
    same_day["statements"] = [_statement(2, d) for d in ("2024-12-05", "2024-12-20", "2025-01-20")]
    same_day["installments"] = [_due(2, "2024-12-20", 100.0)]
    no_anchor = handmade.borrower(3, jump=jump)  # no statement before its last due date
    no_anchor["statements"] = [_statement(3, "2025-01-05")]
    no_anchor["installments"] = [_due(3, "2024-12-20", 100.0)]
    no_due = handmade.borrower(4, jump=jump)
    no_due["statements"] = [_statement(4, "2025-01-05")]
    no_statement = handmade.borrower(5, jump=jump)
    no_statement["installments"] = [_due(5, "2025-01-06", 100.0)]
    leap = handmade.borrower(6, jump="2024-01-01")  # due 2024-02-08, 03-08, 04-08
    leap["statements"] = [_statement(6, d) for d in ("2023-11-29", "2024-01-30")]
    leap["installments"] = [_due(6, "2023-12-08", 100.0)]
    windows = [_window(0, "2025-01-15", "2025-03-08"),  # anchored, second cycle
               _window(1, "2025-01-15", "2025-02-09"),  # the last due date moved on by a month
               _window(2, "2025-01-15", "2025-03-11"),  # 31 Jan + 1 month run over into March
               _window(3, "2025-02-15", "2025-04-08"),  # announced after scoring
               _window(4, "2025-01-15", "2025-03-07"),  # same_day, second cycle
               _window(5, "2025-01-15", "2025-03-06"),  # no_anchor, if it had offset 0
               _window(6, "2024-01-10", "2024-03-08"),  # leap, second cycle
               _window(7, "2024-01-10", "2024-03-07")]  # leap, with a 28 February
    ours = agree(handmade.tables(anchored, same_day, no_anchor, no_due, no_statement, leap,
                                 maintenance_windows=windows), reference)
    assert list(ours["due_dates_in_announced_outage"]) == [1, 1, 0, 0, 0, 1]


def test_a_window_blocks_only_the_channel_whose_hours_it_covers(reference):
    """Due 02-08, 03-08, 04-08 (as ``anchored`` above) for a borrower paying by auto-debit and one
    paying by hand; windows over the batch only, the paying hours only, neither, and the batch
    from the evening before."""
    rows = []
    for bid in (1, 2):
        b = handmade.borrower(bid, jump="2025-01-01")
        b["statements"] = [_statement(bid, d) for d in ("2024-11-30", "2025-01-30")]
        b["installments"] = [_due(bid, "2024-12-09", 100.0)]
        rows.append(b)
    rows[0]["platform_events"] = [_event(1, "2024-12-01", "autodebit_authorised")]
    windows = [_window(0, "2025-01-15", "2025-02-08", ("01:30", "02:30")),
               _window(1, "2025-01-15", "2025-03-08", ("23:00", "23:59")),
               _window(2, "2025-01-15", "2025-04-08", ("03:00", "07:59")),
               dict(window_id=3, window_kind="unplanned", announced_date="2025-01-15",
                    start_time="2025-03-07 22:00:00", end_time="2025-03-08 02:00:01")]
    ours = agree(handmade.tables(*rows, maintenance_windows=windows), reference)
    assert list(ours["due_dates_in_announced_outage"]) == [2, 1]


def test_installments_of_the_next_three_months(reference):
    """Drawdowns and outside loans add their installments not yet due (months elapsed counted
    in whole 30.44-day months), at most three each; the cash buffer divides the last wallet
    balance by their sum, floored at 100 CNY, and is missing without a statement."""
    b = handmade.borrower(1, jump="2025-03-01")  # scoring 2025-03-31
    b["drawdowns"] = [_draw(1, "2025-03-20", 3, 340.0),  # 0 months elapsed: 3 x 340
                      _draw(1, "2025-01-15", 6, 200.0),  # 2 elapsed, 4 left: 3 x 200
                      _draw(1, "2024-10-15", 6, 100.0),  # 5 elapsed, 1 left: 1 x 100
                      _draw(1, "2024-01-10", 12, 50.0),  # finished
                      _draw(1, "2025-03-31", 3, 999.0)]  # on the scoring date: ignored
    b["bureau_loans"] = [_loan(1, "2025-02-28", 1, 500.0),  # 31 days: its one installment is due
                         _loan(1, "2024-12-31", 24, 250.0)]  # 3 x 250
    b["statements"] = [_statement(1, "2025-02-28", wallet_balance=5000.0)]
    idle = handmade.borrower(2, jump="2025-03-01")
    idle["statements"] = [_statement(2, "2025-02-28", wallet_balance=50.0)]
    silent = handmade.borrower(3, jump="2025-03-01")
    silent["drawdowns"] = [_draw(3, "2025-03-02", 3, 400.0)]
    ours = agree(handmade.tables(b, idle, silent), reference)
    assert list(ours["installments_next_3_cycles"]) == [1720.0, 0.0, 1200.0]
    assert list(ours["outside_installments_next_3_cycles"]) == [750.0, 0.0, 0.0]
    np.testing.assert_allclose(ours["cash_buffer_over_installments"], [5000 / 2470, 0.5, np.nan])


def test_wallet_over_inflow_is_the_last_balance_over_three_statements_of_inflow(reference):
    """Months of income kept as cash: the last statement's wallet balance over the mean inflow of
    the last three statements (a fourth, older one is left out), which counts as 100 CNY when less
    came in (so the ratio stays within the contract), and missing without a statement."""
    b = handmade.borrower(1, jump="2025-03-01")  # scoring 2025-03-31
    b["statements"] = [_statement(1, "2024-11-28", wallet_inflow=90_000.0),
                       *(_statement(1, day, wallet_inflow=inflow, wallet_balance=balance)
                         for day, inflow, balance in (("2024-12-28", 3000.0, 100.0),
                                                      ("2025-01-28", 6000.0, 200.0),
                                                      ("2025-02-28", 9000.0, 12_000.0)))]
    dry = handmade.borrower(2, jump="2025-03-01")
    dry["statements"] = [_statement(2, "2025-02-28", wallet_inflow=0.01, wallet_balance=500.0)]
    silent = handmade.borrower(3, jump="2025-03-01")
    ours = agree(handmade.tables(b, dry, silent), reference)
    np.testing.assert_allclose(ours["wallet_over_inflow"], [2.0, 5.0, np.nan])
