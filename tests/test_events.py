"""The simulator's event log (pipeline/simulate/events.py): rows in, warehouse tables out."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.contract import TABLES, conformed
from pipeline.simulate.calendar import day_number
from pipeline.simulate.events import EventLog

DAY = day_number(dt.date(2025, 3, 1))


def _limit_events(log: EventLog, index: list[int], days: list[int], kind: str | np.ndarray,
                  trigger: np.ndarray, cell: np.ndarray) -> None:
    n = len(index)
    log.add("limit_events", borrower_id=np.array(index), event_date=DAY + np.array(days),
            event_type=kind, trigger=trigger, old_limit=np.full(n, 1000.0),
            new_limit=np.full(n, 2000.0), test_cell=cell)


def test_a_table_is_in_published_ids_sorted_by_borrower_and_date_with_late_rows_dropped():
    log = EventLog()
    log.add("platform_events", borrower_id=np.array([2, 0, 1]), event_date=DAY + np.array([5, 9, 1]),
            event_type="debit_failed", detail=np.array(["insufficient_funds", "mandate_invalid",
                                                        "system_unavailable"]))
    log.add("platform_events", borrower_id=np.array([0, 2]), event_date=DAY + np.array([3, 40]),
            event_type=np.array(["autodebit_authorised", "reauth_required"]), detail="user_action")
    id_map = np.array([10, -1, 7])  # index 1 is not published
    last_day = np.full(3, DAY + 30)  # index 2's event on day 40 comes after its export ends
    frame = log.frame("platform_events", id_map, last_day)
    assert conformed(frame, TABLES["platform_events"])
    assert frame["borrower_id"].tolist() == [7, 10, 10]
    assert frame["event_date"].tolist() == [pd.Timestamp("2025-03-06"), pd.Timestamp("2025-03-04"),
                                            pd.Timestamp("2025-03-10")]
    assert frame["event_type"].tolist() == ["debit_failed", "autodebit_authorised", "debit_failed"]
    assert frame["detail"].tolist() == ["insufficient_funds", "user_action", "mandate_invalid"]


def test_text_comes_back_as_given_a_single_string_for_every_row_and_missing_where_allowed():
    log = EventLog()
    _limit_events(log, [0, 1], [0, 0], "initial", np.array([None, None], dtype=object),
                  np.array([None, None], dtype=object))
    _limit_events(log, [0, 1], [30, 31], np.array(["increase", "increase"]),
                  np.array(["marketing_campaign", "user_request"]),
                  np.array(["line_test", "policy"], dtype=object))
    frame = log.frame("limit_events", np.array([0, 1]), np.full(2, DAY + 60))
    assert conformed(frame, TABLES["limit_events"])
    assert frame["event_type"].tolist() == ["initial", "increase", "initial", "increase"]
    assert frame["trigger"].isna().tolist() == [True, False, True, False]
    assert frame["trigger"].dropna().tolist() == ["marketing_campaign", "user_request"]
    assert frame["test_cell"].dropna().tolist() == ["line_test", "policy"]


@pytest.mark.parametrize("values", ["refund", np.array(["purchase", "refund"])])
def test_text_outside_the_contract_is_refused_naming_the_table_and_column(values):
    with pytest.raises(ValueError, match=r"drawdowns\.purpose: values outside the contract.*refund"):
        EventLog().add("drawdowns", borrower_id=np.array([0, 1]), drawdown_date=DAY + np.array([1, 2]),
                       amount=np.array([10.0, 20.0]), tenor_months=np.array([3, 3]),
                       apr=np.array([0.2, 0.2]), monthly_installment=np.array([3.5, 7.0]),
                       purpose=values)


def test_a_missing_value_is_refused_where_the_column_needs_one():
    with pytest.raises(ValueError, match=r"platform_events\.detail: values outside the contract"):
        EventLog().add("platform_events", borrower_id=np.array([0]), event_date=np.array([DAY]),
                       event_type="debit_failed", detail=np.array([None], dtype=object))


def test_a_table_nothing_was_logged_for_comes_out_empty_in_the_contract():
    frame = EventLog().frame("bureau_loans", np.array([0]), np.array([DAY]))
    assert len(frame) == 0
    assert conformed(frame, TABLES["bureau_loans"])
