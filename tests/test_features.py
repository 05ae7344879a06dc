from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import pipeline.cli.features as features_cli
import pipeline.features as features_module
from pipeline import io
from pipeline.catalog import (
    DUE_DATES,
    FEATURES,
    MAINTENANCE_DUE,
    NAMES,
    NEXT_DUE,
)
from pipeline.contract import RAW_TABLES, TABLES
from pipeline.features import MissingJump, build_features
from tests import handmade
from tests.conftest import make_params

SETTINGS = make_params().features


@pytest.fixture(scope="module")
def small_features(small_sim, small_params):
    return build_features(small_sim, small_params.label.observation_days, SETTINGS)


def one(tables, bid: int) -> pd.Series:
    frame = build_features(tables, 30, SETTINGS)
    return frame.set_index("borrower_id").loc[bid]


def test_columns_follow_the_catalogue(small_features):
    assert list(small_features.columns) == ["borrower_id", "scoring_date", "jump_date", *DUE_DATES, *NAMES]
    assert small_features["borrower_id"].is_monotonic_increasing
    assert len(FEATURES) == len(set(NAMES))


def test_drew_most_of_the_increase_in_week_two():
    b = handmade.borrower(1, jump="2025-03-01", increase=50_000)
    b["drawdowns"] = [
        dict(borrower_id=1, drawdown_date=d, amount=1500.0, tenor_months=3, apr=0.12,
             monthly_installment=510.0, purpose="purchase")
        for d in ("2024-12-15", "2025-01-15", "2025-02-15")] + [
        dict(borrower_id=1, drawdown_date="2025-03-10", amount=40_000.0, tenor_months=12, apr=0.18,
             monthly_installment=3667.0, purpose="large_purchase"),
        dict(borrower_id=1, drawdown_date="2025-04-05", amount=9_999.0, tenor_months=3, apr=0.12,
             monthly_installment=3400.0, purpose="purchase")]  # after scoring: ignored
    f = one(handmade.tables(b), 1)
    assert f["post_increase_drawn"] == pytest.approx(40_000)
    assert f["post_increase_draw_share"] == pytest.approx(0.8)
    assert f["post_increase_spend_ratio"] == pytest.approx(40_000 / 1500)
    assert f["days_to_first_large_draw"] == 9
    assert f["large_drawdowns_since_jump"] == 1


def test_three_inquiries_last_month():
    b = handmade.borrower(2, jump="2025-03-01")
    b["bureau_inquiries"] = [dict(borrower_id=2, inquiry_date=d, lender_type="online_lender")
                             for d in ("2024-12-01", "2025-03-05", "2025-03-12", "2025-03-20",
                                       "2025-03-31")]  # the last is on the scoring date: ignored
    f = one(handmade.tables(b), 2)
    assert (f["inquiries_1m"], f["inquiries_3m"], f["inquiries_6m"]) == (3, 3, 4)
    assert f["inquiries_since_jump"] == 3
    # the bureau reports late: 14 days on, the inquiry of 03-20 is not known on 03-31 yet, and
    # those that are known still count from their own dates
    late = build_features(handmade.tables(b), 30, SETTINGS.model_copy(update={"bureau_lag_days": 14}))
    f = late.set_index("borrower_id").loc[2]
    counts = ("inquiries_1m", "inquiries_3m", "inquiries_6m", "inquiries_since_jump")
    assert tuple(f[c] for c in counts) == (2, 2, 3, 2)


def statement(bid: int, end: str, **values) -> dict:
    start = (pd.Timestamp(end) - pd.DateOffset(months=1) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    row = dict(borrower_id=bid, statement_date=end, cycle_start_date=start, credit_limit=60_000.0,
               balance=3000.0, purchases=1000.0, installment_due_next=1000.0, overdue_amount=0.0,
               days_past_due=0, credit_score=700, wallet_inflow=9000.0, wallet_balance=8000.0,
               line_status="active")
    return {**row, **values}


def agreement(bid: int, day: str) -> dict:
    return dict(borrower_id=bid, event_date=day, event_type="autodebit_authorised", detail="user_action")


def test_a_reauthorisation_request_is_pending_until_the_agreement_next_changes():
    """A campaign asks to re-authorise by a deadline. An outside check found the request pending
    forever: a borrower revoked at the deadline, who cancelled and paid by hand for months since,
    was still told to re-authorise. Pending while nothing happened since the request (and a request
    of the day an agreement was renewed comes first: the renewal answers it); answered by a
    renewal, a revocation (the agreement has lapsed) or a cancellation."""
    def event(bid, day, kind, detail="user_action"):
        return dict(borrower_id=bid, event_date=day, event_type=kind, detail=detail)

    request = ("2024-10-01", "reauth_required", "reauthorisation_campaign")
    histories = {
        10: [request],
        11: [request, ("2024-10-20", "autodebit_authorised", "reauthorisation_campaign")],
        12: [request, ("2024-11-01", "autodebit_revoked", "campaign_deadline")],
        13: [request, ("2024-11-01", "autodebit_revoked", "campaign_deadline"),
             ("2024-11-28", "debit_failed", "mandate_invalid"), ("2024-11-29", "autodebit_cancelled")],
        14: [("2024-10-01", "autodebit_authorised", "user_action"), request],  # the same day: renewed
    }
    rows = []
    for bid, events in histories.items():
        b = handmade.borrower(bid, jump="2025-03-01")
        b["platform_events"] = [agreement(bid, "2024-01-05"), *(event(bid, *e) for e in events)]
        rows.append(b)
    f = build_features(handmade.tables(*rows), 30, SETTINGS).set_index("borrower_id")
    assert f["reauth_pending"].to_dict() == {10: 1.0, 11: 0.0, 12: 0.0, 13: 0.0, 14: 0.0}
    assert f["autodebit_lapsed"].to_dict() == {10: 0.0, 11: 0.0, 12: 1.0, 13: 0.0, 14: 0.0}
    assert f["autodebit_active"].to_dict() == {10: 1.0, 11: 1.0, 12: 0.0, 13: 0.0, 14: 1.0}


def test_an_announced_window_counts_only_over_the_hours_the_borrowers_channel_pays():
    """The next due dates are 04-09, 05-09 and 06-09. One window on each covers, in turn, the
    02:00 auto-debit batch, the paying hours (08:00-24:00), and neither (03:00-07:00): the
    borrower with an agreement in force counts the first, the one who pays by hand the second."""
    rows = []
    for bid in (3, 4):
        b = handmade.borrower(bid, jump="2025-03-01")
        b["statements"] = [statement(bid, end) for end in ("2025-01-31", "2025-02-28", "2025-03-30")]
        b["installments"] = [dict(borrower_id=bid, due_date=d, scheduled_amount=1000.0, arrears_amount=0.0)
                             for d in ("2025-02-10", "2025-03-10")]
        rows.append(b)
    rows[0]["platform_events"] = [agreement(3, "2025-01-05")]
    hours = (("2025-04-09", "01:00", "03:00"), ("2025-05-09", "12:00", "13:00"),
             ("2025-06-09", "03:00", "07:00"))
    windows = [dict(window_id=i, window_kind="planned", announced_date="2025-03-20",
                    start_time=f"{day} {start}:00", end_time=f"{day} {end}:00")
               for i, (day, start, end) in enumerate(hours)]
    t = handmade.tables(*rows, maintenance_windows=windows)
    by_debit, by_hand = one(t, 3), one(t, 4)
    assert (by_debit["autodebit_active"], by_hand["autodebit_active"]) == (1.0, 0.0)
    assert by_debit["due_dates_in_announced_outage"] == 1 and by_hand["due_dates_in_announced_outage"] == 1
    late = handmade.tables(*rows, maintenance_windows=[w for w in windows if w["window_id"] != 1])
    assert one(late, 4)["due_dates_in_announced_outage"] == 0  # the paying-hours window was the one


def test_next_due_date_in_an_announced_outage_and_a_short_miss():
    b = handmade.borrower(3, jump="2025-03-01")
    # cycles run from the 1st; due dates fall 9 days into each cycle
    b["statements"] = [statement(3, end) for end in ("2025-01-31", "2025-02-28", "2025-03-30")]
    b["installments"] = [dict(borrower_id=3, due_date=d, scheduled_amount=1000.0, arrears_amount=0.0)
                         for d in ("2025-02-10", "2025-03-10")]
    b["repayments"] = [
        dict(borrower_id=3, payment_date="2025-02-12", due_date="2025-02-10", amount=1000.0,
             channel="manual"),
        dict(borrower_id=3, payment_date="2025-03-10", due_date="2025-03-10", amount=1000.0,
             channel="auto_debit")]
    b["platform_events"] = [agreement(3, "2025-01-05")]  # the 02:00 batch pays: 01:00-05:00 blocks it
    windows = [  # the next due date is 2025-03-31 + 9 days
        dict(window_id=0, window_kind="planned", announced_date="2025-03-20",
             start_time="2025-04-09 01:00:00", end_time="2025-04-09 05:00:00"),
        dict(window_id=1, window_kind="planned", announced_date="2025-04-05",  # announced too late
             start_time="2025-05-10 01:00:00", end_time="2025-05-10 05:00:00")]
    f = one(handmade.tables(b, maintenance_windows=windows), 3)
    assert f["due_dates_in_announced_outage"] == 1 and f[NEXT_DUE] == pd.Timestamp("2025-04-09")
    assert f["due_dates_over_0_days_late"] == 1 and f["due_dates_over_5_days_late"] == 0
    assert f["short_misses_cured_3d"] == 1 and f["max_days_late"] == 2
    assert f["days_past_due_now"] == 0 and f["overdue_amount_now"] == 0


def test_maintenance_counts_only_due_dates_that_ask_for_a_payment_and_names_the_first():
    """Known answers from outside: a window on the second due date had been advised as "pay
    before the maintenance on the next due date", with no date for it; a borrower who owed
    nothing had been scored 0.99996 for a window on a due date asking for nothing. Here one
    drawdown of 3 monthly installments taken 2025-02-15 leaves two (04-10, 05-10) after scoring
    (2025-03-31); windows on the second and third due dates: only the second asks for a payment."""
    b = handmade.borrower(8, jump="2025-03-01")
    b["statements"] = [statement(8, end, balance=0.0) for end in ("2025-01-31", "2025-02-28")]
    b["installments"] = [dict(borrower_id=8, due_date="2025-03-10", scheduled_amount=500.0,
                              arrears_amount=0.0)]
    b["repayments"] = [dict(borrower_id=8, payment_date="2025-03-10", due_date="2025-03-10",
                            amount=500.0, channel="auto_debit")]
    b["drawdowns"] = [dict(borrower_id=8, drawdown_date="2025-02-15", amount=1500.0, tenor_months=3,
                           apr=0.12, monthly_installment=500.0, purpose="purchase")]
    b["platform_events"] = [agreement(8, "2025-01-05")]
    windows = [dict(window_id=i, window_kind="planned", announced_date="2025-03-20",
                    start_time=f"{day} 01:00:00", end_time=f"{day} 04:00:00")
               for i, day in enumerate(("2025-05-10", "2025-06-10"))]
    tables = handmade.tables(b, maintenance_windows=windows)
    f = one(tables, 8)
    assert f[NEXT_DUE] == pd.Timestamp("2025-04-10") and f[MAINTENANCE_DUE] == pd.Timestamp("2025-05-10")
    assert f["due_dates_in_announced_outage"] == 1  # 06-10 asks for nothing: no installment left
    paid_off = handmade.tables({**b, "drawdowns": []}, maintenance_windows=windows)
    nothing = one(paid_off, 8)  # no installment, no arrears, no balance: nothing to block
    assert nothing["due_dates_in_announced_outage"] == 0 and pd.isna(nothing[MAINTENANCE_DUE])
    assert one(handmade.tables(b), 8)[MAINTENANCE_DUE] is pd.NaT


def test_forgotten_due_dates_are_those_left_untouched_and_paid_in_full_days_later():
    """Of six due dates, two were forgotten (nothing on the day, paid in full 2 and 4 days
    later). Not forgotten: a part payment on the day, a debit that failed on the day (an outage
    or a broken agreement), a shortfall paid 10 days late, one paid on time; nor one still unpaid
    at scoring and paid after it, nor one after scoring. The chances to forget are the seven due
    dates before scoring but the one whose debit failed."""
    b = handmade.borrower(5, jump="2025-06-01")  # scored 30 days later, on 2025-07-01
    due = ("2025-01-10", "2025-02-10", "2025-03-10", "2025-04-10", "2025-05-10", "2025-06-10",
           "2025-06-28", "2025-07-10")
    b["installments"] = [dict(borrower_id=5, due_date=d, scheduled_amount=1000.0, arrears_amount=0.0)
                         for d in due]
    paid = (("2025-01-12", 1000.0), ("2025-02-10", 300.0), ("2025-02-12", 700.0), ("2025-03-11", 1000.0),
            ("2025-04-20", 1000.0), ("2025-05-10", 1000.0), ("2025-06-14", 1000.0),
            ("2025-07-02", 1000.0), ("2025-07-12", 1000.0))
    b["repayments"] = [dict(borrower_id=5, payment_date=day, due_date=day, amount=amount, channel="manual")
                       for day, amount in paid]
    b["platform_events"] = [dict(borrower_id=5, event_date="2025-03-10", event_type="debit_failed",
                                 detail="system_unavailable")]
    f = one(handmade.tables(b), 5)
    assert f["forgotten_due_dates"] == 2 and f["manual_due_dates"] == 6
    assert f["due_dates_over_0_days_late"] == 6  # 06-28 among them, unpaid at scoring


def test_manual_due_dates_leave_out_debited_days_and_due_dates_asking_nothing():
    """Four due dates before scoring: one paid by a debit, one paid by hand, one asking for 0.50
    CNY (nothing new: no chance to forget), one paid by hand late; and one after scoring."""
    b = handmade.borrower(6, jump="2025-06-01")
    amounts = {"2025-02-10": 500.0, "2025-03-10": 500.0, "2025-04-10": 0.5, "2025-05-10": 500.0,
               "2025-07-10": 500.0}
    b["installments"] = [dict(borrower_id=6, due_date=d, scheduled_amount=a, arrears_amount=0.0)
                         for d, a in amounts.items()]
    paid = (("2025-02-10", "auto_debit"), ("2025-03-10", "manual"), ("2025-05-13", "manual"),
            ("2025-07-10", "manual"))
    b["repayments"] = [dict(borrower_id=6, payment_date=day, due_date=day, amount=500.0, channel=channel)
                       for day, channel in paid]
    f = one(handmade.tables(b), 6)
    assert f["manual_due_dates"] == 2 and f["forgotten_due_dates"] == 1


def test_an_unpaid_due_date_counts_as_overdue_now():
    b = handmade.borrower(4, jump="2025-03-01")
    b["installments"] = [dict(borrower_id=4, due_date="2025-03-10", scheduled_amount=800.0,
                              arrears_amount=0.0)]
    b["repayments"] = [dict(borrower_id=4, payment_date="2025-03-10", due_date="2025-03-10",
                            amount=300.0, channel="auto_debit")]
    f = one(handmade.tables(b), 4)
    assert f["days_past_due_now"] == 21 and f["overdue_amount_now"] == pytest.approx(500)
    assert pd.isna(f[NEXT_DUE])  # no statement yet: the billing cycle, hence the next due date, unknown
    assert f["due_dates_over_15_days_late"] == 1 and f["paid_over_due_6m"] == pytest.approx(300 / 800)


def test_sums_of_money_are_whole_fen_whatever_order_they_are_added_in():
    """Known answers: due dates of 0.10, 0.20 and 0.30 CNY paid in full (added as floats,
    0.6000000000000001 against 0.6) leave exactly nothing overdue and a ratio of exactly 1, and
    one paid a fen short leaves exactly 0.01: a tree's split between float residues would move a
    score once a CSV or a float32 column rounds them."""
    def overdue(short: float) -> dict:
        b = handmade.borrower(7, jump="2025-05-01")
        due = {"2025-02-10": 0.1, "2025-03-10": 0.2, "2025-04-10": 0.3}
        b["installments"] = [dict(borrower_id=7, due_date=d, scheduled_amount=a, arrears_amount=0.0)
                             for d, a in due.items()]
        paid = [("2025-02-10", 0.3), ("2025-03-10", 0.2), ("2025-04-10", 0.1 - short)]
        b["repayments"] = [dict(borrower_id=7, payment_date=d, due_date=d, amount=a, channel="manual")
                           for d, a in paid]
        return one(handmade.tables(b), 7)
    assert 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1  # the residue the features must not keep
    paid = overdue(0.0)
    assert paid["overdue_amount_now"] == 0.0 and paid["paid_over_due_6m"] == 1.0
    assert overdue(0.01)["overdue_amount_now"] == 0.01


def test_a_borrower_without_a_jump_is_reported():
    b = handmade.borrower(5)
    b["limit_events"] = b["limit_events"][:1]
    with pytest.raises(MissingJump) as info:
        build_features(handmade.tables(b), 30, SETTINGS)
    assert info.value.borrower_ids.tolist() == [5]


def rows_before_scoring(tables: dict, scoring: pd.Series) -> dict:
    out = dict(tables)
    for name in RAW_TABLES:
        frame = tables[name]
        cut = frame["borrower_id"].map(scoring)
        out[name] = frame[frame[TABLES[name].date_column] < cut].reset_index(drop=True)
    return out


def test_no_leak_from_rows_dated_on_or_after_scoring(small_sim, small_features):
    scoring = small_features.set_index("borrower_id")["scoring_date"]
    deleted = rows_before_scoring(small_sim, scoring)
    assert sum(len(deleted[n]) for n in RAW_TABLES) < sum(len(small_sim[n]) for n in RAW_TABLES)
    pd.testing.assert_frame_equal(build_features(deleted, 30, SETTINGS), small_features)
    changed = dict(small_sim)
    for name in RAW_TABLES:  # scramble every number of the later rows
        frame = small_sim[name].copy()
        later = frame[TABLES[name].date_column] >= frame["borrower_id"].map(scoring)
        for col in TABLES[name].columns:
            if col.dtype == "float64":
                frame.loc[later, col.name] = frame.loc[later, col.name] * 7.0 + 13.0
        changed[name] = frame
    pd.testing.assert_frame_equal(build_features(changed, 30, SETTINGS), small_features)


def _kept(frame: pd.DataFrame, date: str, gap: str, rng, stop: pd.Series, gone: np.ndarray) -> np.ndarray:
    """Which rows of a raw table a history with the given ``gap`` keeps."""
    if gap == "rows lost":
        return rng.random(len(frame)) > 0.4
    if gap == "records stop early":
        return (frame[date] <= frame["borrower_id"].map(stop)).to_numpy()
    if gap == "tables missing":
        return ~frame["borrower_id"].isin(gone).to_numpy()
    return ~frame.sort_values(date)["borrower_id"].duplicated().sort_index().to_numpy()  # one row each


@pytest.mark.parametrize("gap", ["rows lost", "records stop early", "tables missing", "one row each"])
def test_histories_with_holes_keep_every_borrower(small_sim, small_features, gap):
    """Lenders' exports have holes: rows lost, dormant accounts whose records stopped up to 11
    months before scoring, a table missing for a third of the borrowers, one row each. Features
    still come out for every borrower, and a next due date, where known, is not before scoring
    (records stopping early ran the search for it past its candidates until 2026-12-06)."""
    rng = np.random.default_rng(11)
    scoring = small_features.set_index("borrower_id")["scoring_date"]
    stop = scoring - pd.to_timedelta(rng.integers(0, 330, len(scoring)), "D")
    gone = rng.choice(scoring.index.to_numpy(), len(scoring) // 3, replace=False)
    holed = dict(small_sim)
    for name in sorted(set(RAW_TABLES) - {"borrowers", "limit_events"}):
        frame = small_sim[name]
        kept = _kept(frame, TABLES[name].date_column, gap, rng, stop, gone)
        holed[name] = frame[kept].reset_index(drop=True)
    out = build_features(holed, 30, SETTINGS)
    np.testing.assert_array_equal(out["borrower_id"], small_features["borrower_id"])
    known = out[NEXT_DUE].notna()
    assert known.any() and (out.loc[known, NEXT_DUE] >= out.loc[known, "scoring_date"]).all()


@pytest.mark.parametrize("days_into_cycle", [0, 5, 15])
def test_a_statement_period_straddling_the_scoring_date_leaks_nothing(small_sim, small_params,
                                                                     days_into_cycle):
    """A real account keeps its statement day, so scoring falls mid-period (the simulator's
    statements do so on its own scoring dates). Its steps start on the scoring date, 30 days after
    the jump: a longer observation window moves the features' scoring date into the step, before
    (5 days) or after (15) its due date (9 days in), with its drawdowns, payments and (for some
    accounts) its statement on both sides of it."""
    window = small_params.label.observation_days + days_into_cycle
    mid = build_features(small_sim, window, SETTINGS)
    scoring = mid.set_index("borrower_id")["scoring_date"]
    cut = rows_before_scoring(small_sim, scoring)
    pd.testing.assert_frame_equal(build_features(cut, window, SETTINGS), mid)
    cycle_start = scoring - pd.Timedelta(days=days_into_cycle)
    offset = pd.Timedelta(days=small_params.simulate.calendar.due_day_offset)
    # the part of the cycle before scoring has rows (the due date's payments too, once past),
    # which the features see
    earlier = rows_before_scoring(small_sim, cycle_start)
    assert len(earlier["drawdowns"]) < len(cut["drawdowns"]) or not days_into_cycle
    if days_into_cycle > offset.days:
        assert len(earlier["repayments"]) < len(cut["repayments"])
    # the next due date is this cycle's if scoring came before it, else the next cycle's
    expected = (cycle_start + offset if days_into_cycle <= offset.days
                else cycle_start + pd.DateOffset(months=1) + offset)
    known = mid.set_index("borrower_id")[NEXT_DUE].notna()
    assert known.mean() > 0.95
    pd.testing.assert_series_equal(mid.set_index("borrower_id")[NEXT_DUE][known], expected[known],
                                   check_names=False, check_dtype=False)


def test_features_never_open_the_ground_truth(small_sim, small_features):
    without = {k: v for k, v in small_sim.items() if k != "ground_truth"}
    pd.testing.assert_frame_equal(build_features(without, 30, SETTINGS), small_features)
    for module in (features_module, features_cli):
        assert "truth" not in inspect.getsource(module).lower()


def test_same_inputs_same_bytes(tmp_path, small_sim, small_features):
    io.write_parquet(small_features, tmp_path / "a.parquet")
    io.write_parquet(build_features(small_sim, 30, SETTINGS), tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_partitions_give_the_same_rows(small_sim, small_features):
    parts = []
    for r in range(3):
        part = {name: frame[frame["borrower_id"] % 3 == r] if "borrower_id" in frame else frame
                for name, frame in small_sim.items()}
        parts.append(build_features(part, 30, SETTINGS))
    together = pd.concat(parts).sort_values("borrower_id", ignore_index=True)
    pd.testing.assert_frame_equal(together, small_features)


def test_sparse_ids_give_the_same_rows(small_sim, small_features):
    """Ids far apart take the binary search, a shard's dense ids the lookup table: same rows."""
    spread = {name: frame.assign(borrower_id=frame["borrower_id"] * 1_000 + 7) if "borrower_id" in frame
              else frame for name, frame in small_sim.items()}
    out = build_features(spread, 30, SETTINGS)
    assert (out["borrower_id"] == small_features["borrower_id"] * 1_000 + 7).all()
    pd.testing.assert_frame_equal(out.drop(columns="borrower_id"), small_features.drop(columns="borrower_id"))


@pytest.mark.parametrize("dtype", ["int32", "uint64"])
def test_ids_of_other_integer_types_give_the_same_rows(small_sim, small_features, dtype):
    other = {name: frame.astype({"borrower_id": dtype}) if "borrower_id" in frame else frame
             for name, frame in small_sim.items()}
    out = build_features(other, 30, SETTINGS)
    pd.testing.assert_frame_equal(out.drop(columns="borrower_id"), small_features.drop(columns="borrower_id"))
    assert (out["borrower_id"].to_numpy() == small_features["borrower_id"].to_numpy()).all()


def test_the_columns_read_are_all_the_features_need(small_sim, small_features):
    pruned = {name: small_sim[name][list(columns)] for name, columns in features_module.COLUMNS_READ.items()}
    pd.testing.assert_frame_equal(build_features(pruned, 30, SETTINGS), small_features)
    assert set(features_module.COLUMNS_READ) == {*RAW_TABLES, "maintenance_windows"}


@pytest.mark.parametrize("storage", ["object", "category", "pyarrow string"])
def test_text_in_any_storage_gives_the_same_rows(small_sim, small_features, storage):
    """Text columns as Python objects, categories or Arrow's (non-large) strings: same rows."""
    def convert(frame):
        text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c])]
        dtype = {"object": object, "category": "category",
                 "pyarrow string": pd.ArrowDtype(pa.string())}[storage]
        return frame.astype({c: dtype for c in text})

    out = build_features({name: convert(frame) for name, frame in small_sim.items()}, 30, SETTINGS)
    pd.testing.assert_frame_equal(out, small_features)


def test_positions_of_texts_with_missing_unknown_and_non_text_values():
    positions = features_module._positions
    values = ("a", "b")
    mixed = pd.Series(["b", None, "z", "a", np.nan], dtype=object)
    assert positions(mixed, values).tolist() == [1, -1, -1, 0, -1]
    assert positions(mixed.astype("str"), values).tolist() == [1, -1, -1, 0, -1]
    assert positions(pd.Series([1, 2], dtype="int64"), ("1",)).tolist() == [0, -1]  # compared as text
    assert positions(pd.Series(["a", 1, None, "b"], dtype=object), values).tolist() == [0, -1, -1, 1]
    assert positions(pd.Series(["b", pd.NA], dtype="string"), values).tolist() == [1, -1]
    assert positions(pd.Series([], dtype=object), values).tolist() == []
    assert positions(pd.Series([None, None], dtype=object), values).tolist() == [-1, -1]
    codes = features_module._codes(mixed, values)
    assert codes[0] == 1.0 and codes[3] == 0.0 and np.isnan(codes[[1, 2, 4]]).all()


def test_membership_by_binary_search_is_isin():
    rng = np.random.default_rng(0)
    keys = (rng.integers(0, 50, 2_000).astype(np.int64) << 32) + rng.integers(-5, 400, 2_000)
    for pool in (keys[::7] + 1, keys[:0], np.array([keys.max() + 1]), np.array([keys.min() - 1]),
                 np.repeat(keys[:3], 4)):
        assert np.array_equal(features_module._member(keys, pool), np.isin(keys, pool))
    assert features_module._member(keys[:0], keys).shape == (0,)


def test_windows_met_by_day_count_as_every_window_checked_in_turn():
    """``_dues_in_announced_windows`` pairs each due date with the windows on its day only; on
    random windows (some over midnight or several days, some ending at midnight, some empty; or
    a few hours each, several to a day) and paying hours out to midnight, it counts what checking
    every window against every due date counts."""
    from types import SimpleNamespace
    rng = np.random.default_rng(1)
    day0, n = 20_000, 400
    upcoming = day0 + rng.integers(0, 25, (n, 3))
    asks, active = rng.random((n, 3)) < 0.9, rng.random(n) < 0.5
    spine = SimpleNamespace(score_day=day0 + rng.integers(0, 25, n))
    lengths = ([0, -3_600, 3_600, 5 * 3_600, 30 * 3_600, 3 * 86_400], [3_600, 4 * 3_600, 10 * 3_600])
    for w, length in zip((60, 40), lengths, strict=True):
        start = (day0 + rng.integers(0, 25, w)) * 86_400 + rng.integers(0, 86_400, w)
        end = start + rng.choice(length, w)
        end[:5] = (end[:5] // 86_400 + 1) * 86_400  # to the second at midnight
        announced = (start // 86_400 - rng.integers(-5, 20, w)).astype("datetime64[D]")
        windows = pd.DataFrame({"announced_date": announced, "start_time": start.astype("datetime64[s]"),
                                "end_time": end.astype("datetime64[s]")})
        for settings in (SETTINGS, SETTINGS.model_copy(update={"paying_hours": (0.0, 24.0),
                                                               "debit_batch_hour": 23.5})):
            midnight = upcoming * 86_400
            batch = midnight + settings.debit_batch_hour * 3_600
            opens, closes = (midnight + h * 3_600 for h in settings.paying_hours)
            blocked = np.zeros(upcoming.shape, dtype=bool)
            for a, s, e in zip(features_module.days(windows["announced_date"]), start, end, strict=True):
                visible = asks & (a < spine.score_day)[:, None]
                blocked |= visible & np.where(active[:, None], (s <= batch) & (batch < e),
                                              np.maximum(opens, s) < np.minimum(closes, e))
            counted = features_module._dues_in_announced_windows(spine, upcoming, asks, active,
                                                                 windows, settings)
            assert counted.sum() > 50 and np.array_equal(counted, blocked)
    none = features_module._dues_in_announced_windows(spine, upcoming, asks, active, windows[:0], SETTINGS)
    assert not none.any()
    # the day's second window is the one over the 02:00 debit batch
    day = pd.Timestamp("2025-03-10")
    two = pd.DataFrame({"announced_date": [day - pd.Timedelta(days=9)] * 2,
                        "start_time": [day + pd.Timedelta(hours=3), day + pd.Timedelta(hours=1)],
                        "end_time": [day + pd.Timedelta(hours=7), day + pd.Timedelta(hours=3)]})
    due = features_module.days(np.array([day.to_datetime64()]))
    one_due = SimpleNamespace(score_day=due - 5)
    assert features_module._dues_in_announced_windows(
        one_due, due[:, None], np.array([[True]]), np.array([True]), two, SETTINGS).tolist() == [[True]]
    # a window of a century blocks every due date it covers, at the cost of the days asked about
    long_ago = pd.Timestamp("1990-01-01")
    century = pd.DataFrame({"announced_date": [long_ago], "start_time": [long_ago],
                            "end_time": [pd.Timestamp("2090-01-01")]})
    counted = features_module._dues_in_announced_windows(spine, upcoming, asks, active, century, SETTINGS)
    assert np.array_equal(counted, asks)
    assert features_module._days_touched(np.array([0]), np.array([10**12]), upcoming)[0].size == 25


def test_unsorted_input_gives_the_same_rows(small_sim, small_features):
    rng = np.random.default_rng(0)
    shuffled = {name: frame.sample(frac=1.0, random_state=rng) for name, frame in small_sim.items()}
    pd.testing.assert_frame_equal(build_features(shuffled, 30, SETTINGS), small_features)


def test_no_single_feature_identifies_a_cause(small_sim, small_features):
    """Among borrowers who missed, no one column tells which cause it was (AUC >= 0.95 would)."""
    from sklearn.metrics import roc_auc_score
    truth = small_sim["ground_truth"].set_index("borrower_id").loc[small_features["borrower_id"]]
    missed = (truth["label"] == 1).to_numpy()
    cause = truth["first_miss_cause"].to_numpy()[missed]
    for name_of_cause in ("credit", "liquidity", "technical"):
        y = cause == name_of_cause
        for name in NAMES:
            auc = roc_auc_score(y, np.nan_to_num(small_features[name].to_numpy()[missed], nan=-1e12))
            assert max(auc, 1 - auc) < 0.95, (name_of_cause, name, auc)


def test_next_due_dates_run_on_from_statements_that_stopped_months_before_scoring():
    """A dormant account, or an export that lags: the last statement (2024-11-30) is four months
    before scoring (2025-03-31). The billing cycle (from the 1st, due on the 10th) still gives the
    next three due dates, 04-10, 05-10 and 06-10; it raised IndexError before."""
    b = handmade.borrower(7, jump="2025-03-01")
    b["statements"] = [statement(7, end) for end in ("2024-10-31", "2024-11-30")]
    b["installments"] = [dict(borrower_id=7, due_date=d, scheduled_amount=500.0, arrears_amount=0.0)
                         for d in ("2024-11-10", "2024-12-10")]
    b["platform_events"] = [agreement(7, "2024-10-01")]
    windows = [dict(window_id=i, window_kind="planned", announced_date="2025-03-20",
                    start_time=f"{day} 01:00:00", end_time=f"{day} 04:00:00")
               for i, day in enumerate(("2025-03-10", "2025-05-10", "2025-07-10"))]
    f = one(handmade.tables(b, maintenance_windows=windows), 7)
    assert f[NEXT_DUE] == pd.Timestamp("2025-04-10") and f["due_dates_in_announced_outage"] == 1


def test_past_due_dates_and_overlapping_windows_count_once():
    """Scoring (2025-01-31) falls between a due date (01-25) and the next statement: the next
    three due dates are 02-25, 03-25 and 04-25; three windows on 02-25 count once."""
    b = handmade.borrower(6, jump="2025-01-01")
    b["statements"] = [statement(6, end) for end in ("2024-12-05", "2025-01-05")]
    b["installments"] = [dict(borrower_id=6, due_date=d, scheduled_amount=500.0, arrears_amount=0.0)
                         for d in ("2024-12-25", "2025-01-25")]

    def window(i: int, day: str) -> dict:
        return dict(window_id=i, window_kind="planned", announced_date="2025-01-10",
                    start_time=f"{day} 01:00:00", end_time=f"{day} 04:00:00")
    b["platform_events"] = [agreement(6, "2024-12-01")]
    windows = [window(0, "2025-01-25"), window(1, "2025-02-25"), window(2, "2025-02-25"),
               window(3, "2025-02-25"), window(4, "2025-04-25")]
    f = one(handmade.tables(b, maintenance_windows=windows), 6)
    assert f["due_dates_in_announced_outage"] == 2 and f[NEXT_DUE] == pd.Timestamp("2025-02-25")


def test_every_feature_is_a_float_even_where_no_row_counts():
    """An outside check: a monthly batch of 8 borrowers had no system debit failure, numpy's
    ``bincount`` of no rows counts in int64, and the features table then broke its contract
    (float64) in six columns, stopping ``limitjump monitor`` on its own simulator's stream."""
    frame = build_features(handmade.tables(handmade.borrower(1, jump="2025-03-01", increase=50_000)), 30,
                           SETTINGS)
    wrong = {c: str(t) for c, t in frame[list(NAMES)].dtypes.items() if t != "float64"}
    assert not wrong, wrong
