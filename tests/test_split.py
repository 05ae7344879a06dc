from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import LabelSettings
from pipeline.errors import UsageError
from pipeline.split import (
    EMBARGOED,
    SPLITS,
    SplitError,
    check_both_labels,
    check_labels_known,
    fitted_until,
    label_matures,
    labelled,
    maintenance_miss_rate,
    out_of_time,
    stream_start,
    summary,
    timeline_figure,
)
from tests.conftest import make_params

LABEL = LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=1)
OFFSET = 9


def frame(n: int = 3000, days: int = 900) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    scoring = pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, days, n), unit="D")
    scoring = scoring - pd.to_timedelta(np.maximum(scoring.day - 28, 0), unit="D")  # days 1..28
    return pd.DataFrame({"borrower_id": np.arange(n), "scoring_date": scoring.astype("datetime64[s]"),
                         "jump_date": (scoring - pd.Timedelta(days=30)).astype("datetime64[s]"),
                         "label": rng.integers(0, 2, n)})


def test_a_label_matures_at_the_last_due_date_plus_the_threshold():
    scoring = pd.Series(pd.to_datetime(["2024-01-28", "2024-11-05"]))
    thirty = LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=30)
    assert label_matures(scoring, thirty, OFFSET).dt.date.astype(str).tolist() == ["2024-05-06", "2025-02-13"]


@pytest.mark.parametrize("label", [LABEL, LabelSettings(observation_days=30, performance_cycles=6,
                                                        dpd_threshold=30)])
def test_oldest_train_newest_test_and_no_label_matures_inside_the_next_split(label):
    f = frame()
    f["split"] = out_of_time(f, (0.6, 0.2, 0.2), label, OFFSET)
    matures = label_matures(f["scoring_date"], label, OFFSET)
    first = f.groupby("split")["scoring_date"].min()
    assert matures[f["split"] == "valid"].max() < first["test"]
    assert matures[f["split"] == "train"].max() < first["valid"]
    ranges = f.groupby("split")["jump_date"].agg(["min", "max"])
    assert ranges.loc["train", "max"] < ranges.loc["valid", "min"] <= ranges.loc["valid", "max"] < ranges.loc[
        "test", "min"]
    assert f.groupby("jump_date")["split"].nunique().max() == 1
    shares = f["split"].value_counts(normalize=True)
    assert abs(shares["test"] - 0.2) < 0.02 and abs(shares["valid"] - 0.2) < 0.02
    # the gaps are as long as the label window, so they grow with it
    assert shares[EMBARGOED] > 0.1 * label.performance_cycles / 3


def test_a_label_window_longer_than_the_data_is_refused():
    long = LabelSettings(observation_days=30, performance_cycles=12, dpd_threshold=90)
    with pytest.raises(ValueError, match=r"embargo.*run 2024-01-0\d\.\.2025-0.*a label is known 4\d\d days"):
        out_of_time(frame(days=400), (0.6, 0.2, 0.2), long, OFFSET)


@pytest.mark.parametrize("dates", [1, 2])
def test_rows_on_fewer_than_three_jump_dates_are_refused_for_that_reason(dates):
    f = frame(600, days=900)
    f["jump_date"] = f["jump_date"].min() + pd.to_timedelta(np.arange(600) % dates * 400, unit="D")
    f["scoring_date"] = f["jump_date"] + pd.Timedelta(days=30)
    with pytest.raises(SplitError, match=f"jump on {dates} distinct date.*at least three dates"):
        out_of_time(f, (0.6, 0.2, 0.2), LABEL, OFFSET)


def test_too_few_rows_matured_before_test_is_refused_as_a_window_too_long():
    f = frame(600, days=200)  # test takes the newest 20%; under 20% matured before its first date
    with pytest.raises(SplitError, match="embargo.*take about"):
        out_of_time(f, (0.2, 0.2, 0.6), LABEL, OFFSET)


def test_summary_counts_rows_misses_and_dates_and_the_timeline_draws():
    f = frame(400)
    f["split"] = out_of_time(f, (0.5, 0.25, 0.25), LABEL, OFFSET)
    report = summary(f, label_matures(f["scoring_date"], LABEL, OFFSET))
    assert sum(report[s]["rows"] for s in (*SPLITS, EMBARGOED)) == 400
    assert sum(report[s]["misses"] for s in (*SPLITS, EMBARGOED)) == f["label"].sum()
    assert report["train"]["miss_rate"] == f.loc[f["split"] == "train", "label"].mean()
    assert report["valid"]["last_label_matures"] < report["test"]["first_scoring_date"]
    images = []
    for _ in range(2):
        buffer = io.BytesIO()
        timeline_figure(report).savefig(buffer, format="png", metadata={"Software": None})
        images.append(buffer.getvalue())
    assert images[0][:8] == b"\x89PNG\r\n\x1a\n" and images[0] == images[1]


def test_the_maintenance_history_counts_stopped_debits_whose_outcome_was_known():
    """Only debits stopped on a day of announced maintenance count, each settled on its last
    payment (unpaid: still open at ``known_by``), and only if its outcome was known by then."""
    day = pd.Timestamp
    windows = pd.DataFrame({"announced_date": [day("2024-02-20"), day("2024-03-10")],
                            "start_time": [day("2024-03-01 01:00"), day("2024-03-10 01:00")]})  # unannounced
    failed = pd.DataFrame({
        "borrower_id": [1, 2, 3, 4, 5, 6],
        "event_date": [day("2024-03-01")] * 4 + [day("2024-03-10"), day("2024-03-01")],
        "event_type": ["debit_failed"] * 5 + ["autodebit_revoked"],
        "detail": ["system_unavailable"] * 3 + ["insufficient_funds", "system_unavailable", "user_action"]})
    paid = pd.DataFrame({"borrower_id": [1, 1, 2], "due_date": [day("2024-03-01")] * 3,
                         "payment_date": [day("2024-03-02"), day("2024-03-03"), day("2024-03-08")]})
    known_by = day("2024-03-20")
    counts = {dpd: maintenance_miss_rate(failed, paid, windows, known_by, dpd) for dpd in (1, 3, 7, 19)}
    assert {dpd: (c["due_dates"], c["missed"]) for dpd, c in counts.items()} == {
        1: (3, 3), 3: (3, 2), 7: (3, 2), 19: (3, 1)}  # borrower 3 never paid: 19 days open
    assert counts[3]["rate"] == pytest.approx(2.5 / 4)
    assert maintenance_miss_rate(failed, paid, windows, day("2024-03-20"), 20) is None  # not known yet
    assert maintenance_miss_rate(failed.iloc[3:], paid, windows, day("2024-03-20"), 1) is None


def test_a_split_of_one_label_stops_naming_it():
    """A model learns nothing from one class and a split of one class has no AUC: a team's file
    whose latest months hold no miss stopped training with a traceback naming no split."""
    f = frame(400)
    f["split"] = out_of_time(f, (0.5, 0.25, 0.25), LABEL, OFFSET)
    f.loc[f["split"] == "test", "label"] = 0
    report = summary(f, label_matures(f["scoring_date"], LABEL, OFFSET))
    one_label = r"^test \(\d+ rows, 0 misses, scored .*a split needs both labels"
    with pytest.raises(SplitError, match=one_label) as e:
        check_both_labels(report)
    from pipeline.config import SplitSettings  # the keys named are the params' own
    assert all(f"split.{k}" in str(e.value) for k in SplitSettings.model_fields)
    f["label"] = np.arange(len(f)) % 2
    check_both_labels(summary(f, label_matures(f["scoring_date"], LABEL, OFFSET)))


def test_a_split_error_is_the_users_to_fix():
    """The CLI prints an InputError's message without a traceback (exit 1)."""
    from pipeline.errors import InputError

    assert issubclass(SplitError, InputError) and issubclass(SplitError, ValueError)


def test_labels_whose_window_ends_after_today_are_refused():
    """A team's rows scored last month have labels no one has seen yet: a 0 there means only
    "not yet missed" (the split had said their labels were known by 2028)."""
    f = frame(400)
    matures = label_matures(f["scoring_date"], LABEL, OFFSET)
    f["borrower_id"] = np.arange(len(f)) + 100
    check_labels_known(f, matures, matures.max(), "team.csv: column 'as_of'")
    today = matures.sort_values().iloc[-10] - pd.Timedelta(days=1)
    said = r"^team.csv: column 'as_of': 11 rows \(borrowers \d+, \d+, \d+, \d+, \d+, \.\.\.\) have labels"
    with pytest.raises(SplitError, match=said):
        check_labels_known(f, matures, today, "team.csv: column 'as_of'")


def test_a_row_without_a_label_is_refused_naming_the_file_and_the_borrowers():
    f = frame(20)
    f["label"] = f["label"].astype("float64")
    f.loc[[3, 7], "label"] = np.nan
    with pytest.raises(SplitError, match=r"data/truth: no label for 2 borrowers \(3, 7\)"):
        labelled(f, "data/truth")
    f.loc[[3, 7], "label"] = 1.0
    assert labelled(f, "x").dtype == "int64" and labelled(f, "x").sum() == f["label"].sum()


@pytest.mark.parametrize("last, first", [("2025-05-17", "2025-06-01"), ("2025-07-01", "2025-08-01"),
                                         ("2025-12-31", "2026-01-01")])
def test_a_stream_set_to_auto_starts_the_month_after_the_fitted_period(last, first, tmp_path):
    """Known answers: 'auto' is the first month wholly after validation's last scoring date, read
    from the split's report; a first month given as a date is kept as given where it starts after
    that date, and refused where it does not."""
    report = tmp_path / "split.json"
    report.write_text(json.dumps({"valid": {"last_scoring_date": last}}))
    fitted = fitted_until(report)
    assert fitted == pd.Timestamp(last)
    auto = make_params({"monitor": {"first_month": "auto"}}).monitor
    assert stream_start(auto, fitted).first_month == pd.Timestamp(first).date()
    given = make_params({"monitor": {"first_month": "2026-03-01"}}).monitor
    assert stream_start(given, fitted).first_month == pd.Timestamp("2026-03-01").date()
    early = make_params({"monitor": {"first_month": "2025-03-01"}}).monitor
    with pytest.raises(UsageError, match=f"start the stream in {first[:7]} or later"):
        stream_start(early, fitted)
