from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.contract import (
    TABLES,
    ContractError,
    _duplicated_keys,
    history_violations,
    validate,
    violations,
)


def borrowers(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({
        "borrower_id": np.arange(n, dtype="int64"),
        "onboard_date": pd.to_datetime(["2024-01-05"] * n).astype("datetime64[s]"),
        "age": np.full(n, 30, dtype="int64"),
        "city_tier": np.full(n, 2, dtype="int64"),
        "employment_type": pd.array(["salaried"] * n, dtype="str"),
        "declared_monthly_income": np.full(n, 8000.0),
    })


def test_valid_frame_passes():
    validate(borrowers(), "borrowers", "borrowers.parquet")
    assert violations(borrowers(), "borrowers").empty


def test_error_names_file_column_and_rows():
    frame = borrowers()
    frame.loc[[1, 3], "declared_monthly_income"] = -10.0
    with pytest.raises(ContractError) as info:
        validate(frame, "borrowers", "in/borrowers.parquet")
    message = str(info.value)
    assert "in/borrowers.parquet" in message
    assert "declared_monthly_income" in message
    assert "rows [1, 3]" in message


def test_violations_give_positional_rows_whatever_the_index():
    frame = borrowers().set_axis([10, 11, 12, 13, 14])
    frame.loc[12, "employment_type"] = "astronaut"
    found = violations(frame, "borrowers")
    assert found["row"].tolist() == [2]
    assert found["column"].tolist() == ["employment_type"]


def test_missing_column_and_duplicate_key_are_caught():
    frame = borrowers().drop(columns="age")
    found = violations(frame, "borrowers")
    assert "age" in found["column"].tolist()
    dup = borrowers()
    dup.loc[4, "borrower_id"] = 0
    assert not violations(dup, "borrowers").empty


def test_every_column_has_unit_and_description():
    for table in TABLES.values():
        for col in table.columns:
            assert col.unit and col.description, (table.name, col.name)
        assert set(table.key) <= set(table.names)
        assert table.date_column is None or table.date_column in table.names


def test_a_monte_carlo_standard_error_may_pass_one_half_but_not_go_below_zero():
    """Replicates are weighted by likelihood ratios, so with a six-cycle label at 30 days past due
    the spread of 16 of them reached 0.73 (a standard error, not a probability)."""
    frame = pd.DataFrame({"borrower_id": np.arange(3, dtype="int64"), "amount": [0.0, 5000.0, 5000.0],
                          "granted": np.array([0, 0, 1], dtype="int64"), "p_miss": [0.1, 0.9, 0.9],
                          "p_miss_se": [0.02, 0.73, 0.73], "p_miss_change_se": [0.0, 0.58, 0.58],
                          "balance_months": [1e4, 2e4, 2e4], "exposure_at_miss": [0.0, 500.0, 500.0]})
    assert violations(frame, "counterfactual").empty
    frame.loc[0, "p_miss_se"] = -0.01
    assert violations(frame, "counterfactual")["column"].tolist() == ["p_miss_se"]


@pytest.mark.parametrize(("ids", "days", "kinds", "expected"), [
    ([1, 1, 2], [1, 2, 1], ["a", "a", "a"], []),  # sorted and unique: one pass decides
    ([1, 1, 2], [1, 1, 1], ["a", "b", "a"], []),  # the text decides a tie of id and day
    ([1, 1, 2], [1, 1, 1], ["b", "a", "a"], []),  # not in order: pandas' hashing decides
    ([1, 1, 2], [1, 1, 1], ["a", "a", "a"], [0, 1]),  # in order, but equal
    ([2, 1, 2], [1, 1, 1], ["a", "a", "a"], [0, 2]),  # equal, apart
    ([1, 1, 2], [1, None, 1], ["a", "a", "a"], []),  # a missing day: hashing decides
])
def test_duplicated_keys_whatever_the_order(ids, days, kinds, expected):
    frame = pd.DataFrame({"borrower_id": np.array(ids, dtype="int64"),
                          "day": pd.to_datetime([None if d is None else f"2025-01-0{d}" for d in days]),
                          "kind": pd.array(kinds, dtype="str")})
    assert _duplicated_keys(frame, ["borrower_id", "day", "kind"]).tolist() == expected
    assert (frame.duplicated(["borrower_id", "day", "kind"], keep=False).to_numpy().nonzero()[0].tolist()
            == expected)


@pytest.mark.parametrize(("values", "ids", "bad"), [
    (pd.Series([3, 1, 2]), [3, 1, 2], {}),
    (pd.Series([3.0, np.nan, 2.5, np.inf]), None, {"has no id": [1], "must be a whole number": [2, 3]}),
    (pd.Series([2.0 ** 53, 7.0]), None, {"holds ids of 2**53": [0]}),
    (pd.Series(["12", "7", "", "NULL"], dtype=object), [12, 7, 0, 0], {"has no id": [2, 3]}),
    (pd.Series(["C01", " ", None], dtype=object), None, {"has no id": [1, 2]}),
    (pd.Series(["0012", "7"], dtype=object), ["0012", "7"], {}),
    # a number would change these: kept as written, '1e5' apart from '100000'
    (pd.Series(["1e5", "100000", "12E3"], dtype=object), ["1e5", "100000", "12E3"], {}),
    (pd.Series(["12345678901234567890123", "7"], dtype=object), ["12345678901234567890123", "7"], {}),
    (pd.Series(["9223372036854775808", "7"], dtype=object), ["9223372036854775808", "7"], {}),  # int64 + 1
    (pd.Series(["9223372036854775807", "7"], dtype=object), [2 ** 63 - 1, 7], {}),  # fits: a number
    (pd.Series([2 ** 62, 1], dtype="int64"), [2 ** 62, 1], {}),  # whole numbers stay exact
])
def test_borrower_ids_are_whole_numbers_or_a_lenders_text_and_say_which_rows_are_not(values, ids, bad):
    from pipeline.contract import borrower_ids

    got, problems = borrower_ids(values)
    found = {rule: np.flatnonzero(mask).tolist() for rule, mask in problems.items() if mask.any()}
    assert {next(r for r in found if r.startswith(k)): v for k, v in bad.items()} == found
    if ids is not None:
        assert got.tolist() == ids


def test_a_window_that_ends_before_it_starts_breaks_the_contract_for_simulator_and_scorer_alike():
    start = pd.to_datetime(["2025-03-01 01:00", "2025-04-01 01:00"]).astype("datetime64[s]")
    windows = pd.DataFrame({"window_id": [1, 2], "window_kind": ["planned", "unplanned"],
                            "announced_date": start, "start_time": start,
                            "end_time": start + pd.to_timedelta([2, -1], unit="h")})
    found = violations(windows, "maintenance_windows")
    assert found[["row", "column", "check"]].astype(str).values.tolist() == [
        ["1", "end_time", "not_before(start_time)"]]
    with pytest.raises(ContractError, match="end_time': fails not_before\\(start_time\\); rows \\[1\\]"):
        validate(windows, "maintenance_windows", "maintenance_windows (simulated)")
    assert violations(windows.head(1), "maintenance_windows").empty


def test_cross_table_rules_hold_in_a_batch_in_which_nobody_had_an_increase(small_sim):
    """pandas cast an empty mapping of dates to floats and raised a traceback ("Cannot cast
    DatetimeArray to dtype float64") for a batch of borrowers with initial limits only; the
    features then reject them as having no increase."""
    ids = small_sim["borrowers"]["borrower_id"].iloc[:3]
    batch = {name: frame[frame["borrower_id"].isin(ids)] for name, frame in small_sim.items()
             if "borrower_id" in frame}
    events = batch["limit_events"]
    batch["limit_events"] = events[events["event_type"] == "initial"]
    assert len(batch["limit_events"]) == 3
    found = history_violations(batch, 30, pd.Timestamp("2030-01-01"))
    assert found.empty and list(found.columns) == ["borrower_id", "reason"]
