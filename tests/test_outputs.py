"""What a scoring run writes (``pipeline.outputs``): CSV and Parquet outputs written batch by
batch, the rejects' reasons and the share of rejects that stops a run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import outputs
from pipeline.contract import ContractError


def test_a_csv_output_writes_dates_as_dates_and_keeps_a_time_of_day(tmp_path):
    days = pd.to_datetime(["2025-11-18", None]).astype("datetime64[s]")
    times = pd.to_datetime(["2025-11-18 05:30", "2025-11-19 00:00"]).astype("datetime64[s]")
    path = tmp_path / "out.csv"
    with outputs.Writer(path, csv=True) as out:
        out.write(pd.DataFrame({"borrower_id": [1, 2], "scoring_date": days, "event_time": times}))
        out.write(pd.DataFrame({"borrower_id": [3], "scoring_date": days[:1], "event_time": times[:1]}))
    lines = path.read_text().splitlines()
    assert lines[1] == '1,2025-11-18,2025-11-18 05:30:00'
    assert lines[2] == '2,,2025-11-19 00:00:00'
    assert len(lines) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # the rows' Parquet file is gone


def test_a_time_of_day_in_a_later_batch_makes_the_whole_csv_column_times(tmp_path):
    days = pd.to_datetime(["2025-11-18", "2025-11-19"]).astype("datetime64[s]")
    times = pd.to_datetime(["2025-11-20 13:45"]).astype("datetime64[s]")
    path = tmp_path / "late.csv"
    with outputs.Writer(path, csv=True) as out:
        out.write(pd.DataFrame({"borrower_id": [1, 2], "scoring_date": days}))
        out.write(pd.DataFrame({"borrower_id": [3], "scoring_date": times}))
    assert path.read_text().splitlines() == ['"borrower_id","scoring_date"', "1,2025-11-18 00:00:00",
                                             "2,2025-11-19 00:00:00", "3,2025-11-20 13:45:00"]


def test_a_failed_csv_output_leaves_no_file(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), outputs.Writer(path, csv=True) as out:
        out.write(pd.DataFrame({"borrower_id": [1]}))
        raise RuntimeError("a batch failed")
    assert list(tmp_path.iterdir()) == []


def test_a_parquet_output_keeps_its_timestamps(tmp_path):
    days = pd.to_datetime(["2025-11-18", None]).astype("datetime64[s]")
    with outputs.Writer(tmp_path / "out.parquet", csv=False) as out:
        out.write(pd.DataFrame({"scoring_date": days}))
    assert pa.types.is_timestamp(pq.read_schema(tmp_path / "out.parquet").field("scoring_date").type)


def test_reject_reasons_count_borrowers_per_reason_without_the_value():
    rejects = pd.DataFrame({"borrower_id": [1, 2, 3, 4, 5, 6], "reason": [
        "repayments.channel: fails isin(['auto_debit', 'manual']) (value AUTO_DEBIT)",
        "repayments.channel: fails isin(['auto_debit', 'manual']) (value MANUAL)",
        "borrowers.onboard_date: not a date (value 15/01/2024)",
        "limit_events.event_type: no limit increase",
        "scoring_date: not a date (value 06/10/2025); write dates as ISO, 2025-01-31",
        "scoring_date: not a date (value 07/10/2025); write dates as ISO, 2025-01-31"]})
    assert outputs.reject_reasons(rejects) == {
        "repayments.channel: fails isin(['auto_debit', 'manual'])": 2,
        "scoring_date: not a date; write dates as ISO, 2025-01-31": 2,
        "borrowers.onboard_date: not a date": 1, "limit_events.event_type: no limit increase": 1}
    assert outputs.reject_reasons(rejects.iloc[:0]) == {}


@pytest.mark.parametrize(("rejected", "stops"), [(0, False), (5, False), (6, True), (10, True)])
def test_more_rejected_borrowers_than_the_limit_stop_naming_the_commonest_reason(rejected, stops):
    summary = {"borrowers_in": 10, "rejected": rejected, "input": "in.csv", "rejects": "out.rejects.csv",
               "reject_reasons": {"borrowers.age: fails in_range(18.0, 80.0)": rejected}}
    if not stops:
        outputs.check_rejected_share(summary, 0.5)
        return
    with pytest.raises(ContractError) as err:
        outputs.check_rejected_share(summary, 0.5)
    assert str(err.value).startswith(f"in.csv: {rejected} of 10 borrowers rejected")
    assert f"most for: borrowers.age: fails in_range(18.0, 80.0) ({rejected})" in str(err.value)
    assert "out.rejects.csv" in str(err.value)


def test_an_output_has_row_groups_of_one_size_whatever_the_batches(monkeypatch, tmp_path):
    """Known answer: 25 rows in row groups of 10 are groups of 10, 10 and 5, the same bytes
    whether they come in batches of 7 or all at once; an empty output keeps its columns."""
    monkeypatch.setattr(outputs, "ROW_GROUP", 10)
    frame = pd.DataFrame({"borrower_id": np.arange(25), "probability": np.linspace(0, 1, 25)})
    for name, size in (("batches", 7), ("whole", 25)):
        with outputs.Writer(tmp_path / f"{name}.parquet", csv=False) as out:
            for start in range(0, 25, size):
                out.write(frame.iloc[start:start + size])
    written = pq.ParquetFile(tmp_path / "batches.parquet")
    assert [written.metadata.row_group(g).num_rows for g in range(written.num_row_groups)] == [10, 10, 5]
    assert (tmp_path / "batches.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "batches.parquet"), frame)
    with outputs.Writer(tmp_path / "empty.parquet", csv=False) as out:
        out.ensure({"borrower_id": "int64", "probability": "float64"})
    empty = pq.read_schema(tmp_path / "empty.parquet")
    assert empty.equals(pq.read_schema(tmp_path / "whole.parquet")), empty
    with outputs.Writer(tmp_path / "text_ids.parquet", csv=False) as out:
        out.ensure({"borrower_id": "int64", "reason": "str"}, pa.large_string())
    assert out.id_type() == pa.large_string()
    assert pq.read_schema(tmp_path / "text_ids.parquet").types == [pa.large_string(), pa.large_string()]
