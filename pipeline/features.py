"""Point-in-time features: one row per borrower at the scoring date (jump date + observation
window), computed only from raw rows dated strictly before it.

Every computation is per borrower (no statistic crosses borrowers), so any partition of the
borrowers gives the same rows: the same function runs per shard locally and per bucket on Dask.
Rows are processed as numpy arrays sorted by (borrower, date); per-borrower sums, counts, first
and last values come from ``bincount``, cumulative sums and ``searchsorted``, never a Python
loop over borrowers.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.catalog import (
    DAYS_PER_MONTH,
    DUE_DATES,
    FORGOTTEN_MAX_DAYS_LATE,
    MAINTENANCE_DUE,
    NAMES,
    NEXT_DUE,
    SECONDS_PER_DAY,
    TOLERANCE,
)
from pipeline.config import EMPLOYMENT_TYPES, TRIGGERS, FeatureSettings

SECONDS_PER_HOUR = 3_600
# CNY: the least a ratio to an amount divides by, which keeps it finite (and within the contract)
# for borrowers who barely spent before, have nothing due or see next to nothing come in
AMOUNT_FLOOR = 100.0
ID_COLUMNS = ("borrower_id", "scoring_date", "jump_date")
DENSE_IDS = 4  # ids spanning at most this many times the borrowers are looked up in a table
# The raw columns some feature reads: a reader that loads only these saves the time and memory
# of the rest (statement purchases, loan lender types, ...).
COLUMNS_READ = {
    "borrowers": ("borrower_id", "onboard_date", "age", "city_tier", "employment_type",
                  "declared_monthly_income"),
    "limit_events": ("borrower_id", "event_date", "event_type", "trigger", "old_limit", "new_limit"),
    "statements": ("borrower_id", "statement_date", "credit_limit", "balance", "installment_due_next",
                   "credit_score", "wallet_inflow", "wallet_balance"),
    "installments": ("borrower_id", "due_date", "scheduled_amount"),
    "repayments": ("borrower_id", "payment_date", "amount", "channel"),
    "drawdowns": ("borrower_id", "drawdown_date", "amount", "tenor_months", "monthly_installment", "purpose"),
    "bureau_inquiries": ("borrower_id", "inquiry_date"),
    "bureau_loans": ("borrower_id", "open_date", "amount", "tenor_months", "monthly_installment"),
    "platform_events": ("borrower_id", "event_date", "event_type", "detail"),
    "maintenance_windows": ("announced_date", "start_time", "end_time"),
}


class MissingJump(ValueError):
    """Borrowers with no limit increase: there is no scoring date to compute features at."""

    def __init__(self, borrower_ids: np.ndarray):
        self.borrower_ids = borrower_ids
        super().__init__(f"{len(borrower_ids)} borrowers have no limit increase, e.g. "
                         f"{borrower_ids[:5].tolist()}")


def days(values: pd.Series | np.ndarray) -> np.ndarray:
    """Dates to int64 day numbers."""
    return np.asarray(values).astype("datetime64[D]").astype("int64")


class Spine:
    """The borrowers, their jump and scoring dates; maps any table's rows to borrower slots."""

    def __init__(self, borrowers: pd.DataFrame, limit_events: pd.DataFrame, observation_days: int):
        self.ids = np.sort(borrowers["borrower_id"].to_numpy())
        self.n = self.ids.size
        self.table, self._order = borrowers, self.slot(borrowers["borrower_id"])[0]
        increase = np.flatnonzero(_positions(limit_events["event_type"], ("increase",)) == 0)
        slot, known = self.slot(limit_events["borrower_id"].to_numpy()[increase])
        jump_day = days(limit_events["event_date"])[increase]
        # the jump is each borrower's latest increase by date, whatever the row order
        rows = np.flatnonzero(known)
        rows = rows[np.lexsort((jump_day[rows], slot[rows]))]
        latest = np.full(self.n, -1)
        last_of_borrower = np.r_[slot[rows][1:] != slot[rows][:-1], True][:rows.size]
        latest[slot[rows][last_of_borrower]] = rows[last_of_borrower]
        missing = latest < 0
        if missing.any():
            raise MissingJump(self.ids[missing])
        at_jump = increase[latest]
        self.jump = jump_day[latest]
        self.score_day = self.jump + observation_days
        self.trigger_code = _codes(limit_events["trigger"], TRIGGERS)[at_jump]
        self.old_limit = limit_events["old_limit"].to_numpy()[at_jump]
        self.new_limit = limit_events["new_limit"].to_numpy()[at_jump]

    def in_slot_order(self, values: np.ndarray) -> np.ndarray:
        """``values`` given per row of the borrowers table (``self.table``), in slot order."""
        out = np.empty(self.n, dtype=values.dtype)
        out[self._order] = values
        return out

    def slot(self, borrower_id: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's borrower slot, and whether the borrower is one of ours at all."""
        ids = np.asarray(borrower_id)
        signed = ids.dtype.kind == self.ids.dtype.kind == "i"  # differences stay integers
        if self.n and signed and self.ids[-1] - self.ids[0] < DENSE_IDS * self.n:
            return self._dense_slot(ids)
        slot = np.minimum(np.searchsorted(self.ids, ids), max(self.n - 1, 0))
        return slot, (self.ids[slot] == ids) if self.n else np.zeros(ids.size, dtype=bool)

    def _dense_slot(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``slot`` through a table indexed by id: one gather per row instead of a binary search,
        for ids that fill their range densely (a shard's, typically)."""
        table = self._slot_table
        slot = table[np.clip(ids - self.ids[0], -1, table.size - 1)]
        return np.maximum(slot, 0), slot >= 0

    @cached_property
    def _slot_table(self) -> np.ndarray:
        """Slot by id minus the lowest id, -1 for an id not ours; built once per spine, as every
        table of the shard is looked up in it. The last entry stands for any id out of range."""
        table = np.full(int(self.ids[-1] - self.ids[0]) + 2, -1, dtype=np.int64)
        table[self.ids - self.ids[0]] = np.arange(self.n)
        return table


class Rows:
    """The rows of one table dated before a per-borrower cut-off day, grouped by borrower and
    sorted by date within each borrower."""

    def __init__(self, frame: pd.DataFrame, date_column: str, spine: Spine, cutoff: np.ndarray,
                 same_day_order: np.ndarray | None = None, lag_days: int = 0):
        group, known = spine.slot(frame["borrower_id"])
        day = days(frame[date_column])
        # a row reported ``lag_days`` after its date is known only from then; windows still count
        # from its own date, as the record reads once it arrives
        keep = known & (day + lag_days < cutoff[group]) if spine.n else np.zeros(day.size, dtype=bool)
        group, day = group[keep], day[keep]
        if same_day_order is not None:  # rows of one day in a fixed order, whatever the input's
            order = np.lexsort((same_day_order[keep], day, group))
        elif _unsorted(group, day):
            order = np.lexsort((day, group))
        else:
            order = np.arange(group.size)
        self.frame, self.lag_days, self._columns = frame, lag_days, {}
        self.index = np.flatnonzero(keep)[order]
        self.group, self.day = group[order], day[order]
        self._index_groups(spine.n, cutoff)

    def _index_groups(self, n: int, cutoff: np.ndarray) -> None:
        self.n = n
        self.age = cutoff[self.group] - self.day  # days before the cut-off, >= 1
        self.first = np.searchsorted(self.group, np.arange(self.n), side="left")
        self.last = np.searchsorted(self.group, np.arange(self.n), side="right") - 1
        self.count = self.last - self.first + 1

    def col(self, name: str) -> np.ndarray:
        """Column ``name`` of these rows, gathered once: several features read the same column,
        and each look-up in the frame costs pandas' overhead under Python's lock."""
        if name not in self._columns:
            self._columns[name] = self.frame[name].to_numpy()[self.index]
        return self._columns[name]

    def matches(self, name: str, values: tuple[str, ...]) -> np.ndarray:
        """Whether each row's text in column ``name`` is one of ``values`` (``_positions``)."""
        return _positions(self.frame[name], values)[self.index] >= 0

    def before(self, cutoff: np.ndarray) -> Rows:
        """These rows cut again at an earlier per-borrower day: the same order, no new sort."""
        rows = object.__new__(Rows)
        keep = self.day + self.lag_days < cutoff[self.group]
        rows.frame, rows.lag_days, rows._columns = self.frame, self.lag_days, {}
        rows.index, rows.group, rows.day = self.index[keep], self.group[keep], self.day[keep]
        rows._index_groups(self.n, cutoff)
        return rows

    def sum(self, values: np.ndarray | float = 1.0, mask: np.ndarray | None = None) -> np.ndarray:
        weights = np.broadcast_to(np.asarray(values, dtype=float), self.group.shape)
        group = self.group if mask is None else self.group[mask]
        # numpy sums no rows to int64 zeros: a batch without a row of a table broke the contract
        return np.bincount(group, weights if mask is None else weights[mask],
                           minlength=self.n).astype(float, copy=False)

    def day_keys(self, mask: np.ndarray | None = None) -> np.ndarray:
        """One int64 per (borrower, day) of the rows (those in ``mask``)."""
        keys = (self.group.astype(np.int64) << 32) + self.day
        return keys if mask is None else keys[mask]

    def within(self, n_days: float) -> np.ndarray:
        """Rows dated in the last ``n_days`` before the cut-off."""
        return self.age <= n_days

    def last_value(self, values: np.ndarray, back: int = 0) -> np.ndarray:
        """Each borrower's value ``back`` rows before the last one (NaN if there is none)."""
        if values.size == 0:
            return np.full(self.n, np.nan)
        pos = self.last - back
        ok = pos >= self.first
        return np.where(ok, values[np.where(ok, pos, 0)], np.nan)

    def window(self, values: np.ndarray, m: int, skip: int = 0) -> np.ndarray:
        """Each borrower's ``m`` rows ending ``skip`` rows before the last, oldest first, as an
        (n, m) matrix padded with NaN. Only the borrower's own values enter, so results do not
        depend on which other borrowers are in the batch."""
        pos = (self.last - skip)[:, None] - np.arange(m - 1, -1, -1)[None, :]
        ok = pos >= self.first[:, None]
        if values.size == 0:
            return np.full(pos.shape, np.nan)
        return np.where(ok, values[np.clip(pos, 0, values.size - 1)], np.nan)

    def mean_last(self, values: np.ndarray, m: int, skip: int = 0) -> np.ndarray:
        """Mean of the ``m`` rows ending ``skip`` rows before each borrower's last one (fewer
        if there are fewer; NaN if none)."""
        mat = self.window(values.astype(float), m, skip)
        k = np.sum(~np.isnan(mat), axis=1)
        return np.where(k > 0, np.nansum(mat, axis=1) / np.maximum(k, 1), np.nan)

    def slope_last(self, values: np.ndarray, m: int) -> np.ndarray:
        """Least-squares slope per row over each borrower's last ``m`` rows (needs 3)."""
        mat = self.window(values.astype(float), m)
        valid = ~np.isnan(mat)
        k = valid.sum(axis=1)
        x = np.where(valid, np.arange(m, dtype=float)[None, :], 0.0)
        y = np.where(valid, mat, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            dx = np.where(valid, x - (x.sum(axis=1) / k)[:, None], 0.0)
            dy = np.where(valid, y - (y.sum(axis=1) / k)[:, None], 0.0)
            slope = (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
        return np.where(k >= 3, slope, np.nan)

    def max(self, values: np.ndarray) -> np.ndarray:
        """Largest value per borrower (0 for borrowers without rows)."""
        out = np.zeros(self.n)
        has = self.count > 0
        if has.any():
            out[has] = np.maximum.reduceat(values, self.first[has])
        return out

    def at(self, values: np.ndarray, positions: np.ndarray, missing: float = np.nan) -> np.ndarray:
        """``values`` at per-borrower row positions, ``missing`` where the position is -1."""
        if values.size == 0:
            return np.full(positions.shape, missing)
        return np.where(positions >= 0, values[np.maximum(positions, 0)], missing)

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """Row position of each borrower's first row satisfying ``mask`` (-1 if none)."""
        rows = np.flatnonzero(mask)
        groups = self.group[rows]
        first = _group_starts(groups)
        out = np.full(self.n, -1)
        out[groups[first]] = rows[first]
        return out


def _unsorted(group: np.ndarray, day: np.ndarray) -> bool:
    if group.size < 2:
        return False
    dg, dd = np.diff(group), np.diff(day)
    return bool(np.any((dg < 0) | ((dg == 0) & (dd < 0))))


def build_features(tables: dict[str, pd.DataFrame], observation_days: int,
                   settings: FeatureSettings) -> pd.DataFrame:
    """Features of every borrower in ``tables`` (raw tables of the data contract, all rows of
    each borrower present), one row per borrower, sorted by borrower id."""
    spine = Spine(tables["borrowers"], tables["limit_events"], observation_days)
    cut = spine.score_day
    stmt = Rows(tables["statements"], "statement_date", spine, cut)
    loans = Rows(tables["bureau_loans"], "open_date", spine, cut, lag_days=settings.bureau_lag_days)
    dues = Rows(tables["installments"], "due_date", spine, cut)
    draws = Rows(tables["drawdowns"], "drawdown_date", spine, cut)
    pays = Rows(tables["repayments"], "payment_date", spine, cut)
    events, event_code = _platform_rows(spine, tables["platform_events"], cut)
    upcoming, known = _next_due_days(spine, stmt, dues, 3)
    scheduled = _scheduled(spine, draws, loans)
    out = {
        "borrower_id": spine.ids,
        "scoring_date": _dates(cut),
        "jump_date": _dates(spine.jump),
        **_jump_features(spine),
        **_spending(spine, draws, settings.large_draw_share),
        **_debt_to_income(spine, stmt, loans),
        **scheduled,
        **_utilisation(stmt),
        **_repayment_history(spine, dues, pays, events.day_keys(event_code == DEBIT_FAILED),
                             settings.decay_days),
        **_multi_lending(spine, Rows(tables["bureau_inquiries"], "inquiry_date", spine, cut,
                                     lag_days=settings.bureau_lag_days), loans),
        **_bureau_score(stmt, Rows(tables["limit_events"], "event_date", spine, cut)),
        **_income_and_cash(spine, stmt, scheduled),
        **_technical(events, event_code),
        **_profile(spine),
    }
    owing = _asks_for_payment(draws, cut, upcoming.shape[1], out["overdue_amount_now"],
                              stmt.last_value(stmt.col("balance")))
    blocked = _dues_in_announced_windows(spine, upcoming, known[:, None] & owing,
                                         out["autodebit_active"] == 1.0, tables["maintenance_windows"],
                                         settings)
    out["due_dates_in_announced_outage"] = blocked.sum(axis=1).astype(float)
    out[NEXT_DUE] = np.where(known, _dates(upcoming[:, 0]), np.datetime64("NaT", "s"))
    first = np.take_along_axis(upcoming, blocked.argmax(axis=1)[:, None], axis=1)[:, 0]
    out[MAINTENANCE_DUE] = np.where(blocked.any(axis=1), _dates(first), np.datetime64("NaT", "s"))
    # built in its final order: a selection of the columns afterwards copies them all again
    return pd.DataFrame({name: out[name] for name in (*ID_COLUMNS, *DUE_DATES, *NAMES)})


def _codes(column: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    """Position of each text in ``categories`` as a float (NaN if unknown or missing)."""
    codes = _positions(column, categories).astype(float)
    return np.where(codes < 0, np.nan, codes)


def _dates(day_numbers: np.ndarray) -> np.ndarray:
    return day_numbers.astype("datetime64[D]").astype("datetime64[s]")


def _ratio(a: np.ndarray, b: np.ndarray, floor: float = 1e-9) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(b) > floor, a / b, np.nan)


def _fen(amount: np.ndarray) -> np.ndarray:
    """Sums of amounts, which are whole fen (0.01 CNY), back on whole fen. Summed as floats they
    carry residues (1 fen overdue as 0.0100000000002 or 0.0099999999998, all paid as a ratio of
    0.9999999999998) that a tree splits on: a CSV written to the fen, or float32, then moved
    scores by up to 0.17 (2026-12-06)."""
    return np.round(amount, 2)


def _jump_features(spine: Spine) -> dict[str, np.ndarray]:
    onboard = days(spine.in_slot_order(spine.table["onboard_date"].to_numpy()))
    return {
        "trigger": spine.trigger_code,
        "increase_amount": spine.new_limit - spine.old_limit,
        "limit_before_jump": spine.old_limit,
        "new_over_old_limit": _ratio(spine.new_limit, spine.old_limit),
        "months_of_history": (spine.score_day - onboard) / DAYS_PER_MONTH,
    }


def _spending(spine: Spine, draws: Rows, large_share: float) -> dict[str, np.ndarray]:
    amount = draws.col("amount")
    jump = spine.jump[draws.group]
    after = draws.day >= jump
    before_3m = (draws.day < jump) & (draws.day >= jump - 91)
    increase = spine.new_limit - spine.old_limit
    drawn = _fen(draws.sum(amount, after))
    monthly_before = draws.sum(amount, before_3m) / 3.0
    large = after & (amount >= large_share * increase[draws.group])
    days_to_large = draws.at(draws.day, draws.first_where(large)) - spine.jump
    return {
        "post_increase_drawn": drawn,
        "post_increase_draw_share": _ratio(drawn, increase),
        "post_increase_spend_ratio": drawn / np.maximum(monthly_before, AMOUNT_FLOOR),
        "days_to_first_large_draw": days_to_large,
        "large_drawdowns_since_jump": draws.sum(1.0, after & draws.matches("purpose", ("large_purchase",
                                                                                       "cash_withdrawal"))),
    }


def _outside_installments(loans: Rows, at_day: np.ndarray) -> np.ndarray:
    """Monthly installments of outside loans still running on ``at_day`` (per borrower)."""
    opened = loans.day < at_day[loans.group]
    running = (at_day[loans.group] - loans.day) < loans.col("tenor_months") * DAYS_PER_MONTH
    return _fen(loans.sum(loans.col("monthly_installment"), opened & running))


def _debt_to_income(spine: Spine, stmt: Rows, loans: Rows) -> dict[str, np.ndarray]:
    income = _declared_income(spine)
    ours_now = np.nan_to_num(stmt.last_value(stmt.col("installment_due_next")))
    before = stmt.before(spine.jump)
    ours_then = np.nan_to_num(before.last_value(before.col("installment_due_next")))
    outside_now = _outside_installments(loans, spine.score_day)
    outside_then = _outside_installments(loans, spine.jump)
    dti_now = _ratio(ours_now + outside_now, income)
    dti_then = _ratio(ours_then + outside_then, income)
    return {
        "installments_to_income": _ratio(ours_now, income),
        "dti_before_jump": dti_then,
        "dti_at_scoring": dti_now,
        "dti_change": dti_now - dti_then,
        "outside_installments": outside_now,
    }


def _due_in_next_months(rows: Rows, at_day: np.ndarray, months: int) -> np.ndarray:
    """Installments of ``rows`` (each with a monthly_installment and tenor_months, paid from the
    month after it was taken) that fall in the ``months`` months after ``at_day``."""
    remaining = np.minimum(_months_left(rows, at_day), months)
    return _fen(rows.sum(rows.col("monthly_installment") * remaining))


def _months_left(rows: Rows, at_day: np.ndarray) -> np.ndarray:
    """Per row of ``rows``, the monthly installments still to fall due after ``at_day``."""
    elapsed = np.floor((at_day[rows.group] - rows.day) / DAYS_PER_MONTH)
    return np.maximum(rows.col("tenor_months") - elapsed, 0)


def _scheduled(spine: Spine, draws: Rows, loans: Rows) -> dict[str, np.ndarray]:
    return {"installments_next_3_cycles": _due_in_next_months(draws, spine.score_day, 3),
            "outside_installments_next_3_cycles": _due_in_next_months(loans, spine.score_day, 3)}


def _utilisation(stmt: Rows) -> dict[str, np.ndarray]:
    util = _ratio(stmt.col("balance"), stmt.col("credit_limit"))
    util = np.nan_to_num(util, nan=0.0)
    last = stmt.last_value(util)
    out = {f"utilisation_mean_{m}m": stmt.mean_last(util, m) for m in (3, 6, 12)}
    out["utilisation_last"] = last
    out.update({f"utilisation_slope_{m}m": stmt.slope_last(util, m) for m in (6, 12)})
    out.update({f"utilisation_last_minus_mean_{m}m": last - out[f"utilisation_mean_{m}m"]
                for m in (3, 6, 12)})
    out["utilisation_last_minus_previous"] = last - stmt.last_value(util, back=1)
    return out


def _paid_in_full(spine: Spine, dues: Rows, pays: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Payments settle due dates first in, first out: a due date is paid in full on the first
    day the borrower's cumulative payments reach its cumulative scheduled amount. Returns, per
    due date, whether that happened before scoring and the day (the scoring day if not)."""
    # cumulative cents, each borrower offset by 2^40 so one sorted array serves all borrowers
    offset = np.arange(spine.n, dtype="int64") << 40
    cents = _cents(dues.col("scheduled_amount"))
    target = _group_cumsum(cents, dues.group) + offset[dues.group] - int(TOLERANCE * 100)
    still_open = spine.score_day[dues.group]
    nothing_new = _nothing_new(dues)
    if pays.group.size == 0:
        return nothing_new, np.where(nothing_new, dues.day, still_open)
    cum_paid = _group_cumsum(_cents(pays.col("amount")), pays.group) + offset[pays.group]
    hit = np.minimum(np.searchsorted(cum_paid, target, side="left"), cum_paid.size - 1)
    found = (pays.group[hit] == dues.group) & (cum_paid[hit] >= target)
    paid_day = np.where(found, pays.day[hit], still_open)
    return found | nothing_new, np.where(nothing_new, dues.day, paid_day)


def _cents(amount: np.ndarray) -> np.ndarray:
    return np.round(amount * 100).astype("int64")


def _nothing_new(dues: Rows) -> np.ndarray:
    """Due dates that asked for nothing new (only arrears carried into them): settled on the day,
    and no chance to miss or forget."""
    return _cents(dues.col("scheduled_amount")) <= int(TOLERANCE * 100)


def _repayment_history(spine: Spine, dues: Rows, pays: Rows, debits_failed: np.ndarray,
                       decay_days: float) -> dict[str, np.ndarray]:
    """``debits_failed``: the (borrower, day) keys of failed debits (``Rows.day_keys``)."""
    scheduled = dues.col("scheduled_amount")
    found, paid_day = _paid_in_full(spine, dues, pays)
    late = np.maximum(paid_day - dues.day, 0)
    missed = late > 0
    recent = {m: dues.within(m * DAYS_PER_MONTH) for m in (3, 6)}
    unpaid_now = ~found
    dpd_now = np.nan_to_num(spine.score_day - dues.at(dues.day, dues.first_where(unpaid_now)))
    total_due = dues.sum(scheduled)
    total_paid = pays.sum(pays.col("amount"))
    due_6m = _fen(dues.sum(scheduled, recent[6]))
    paid_6m = _fen(pays.sum(pays.col("amount"), pays.within(183)))
    return {
        **{f"missed_due_dates_{m}m": dues.sum(1.0, missed & recent[m]) for m in (3, 6)},
        **{f"due_dates_over_{d}_days_late": dues.sum(1.0, late > d) for d in (0, 5, 15, 30)},
        "max_days_late": dues.max(late.astype(float)),
        "decayed_days_late": dues.sum(late * np.exp(-dues.age / decay_days)),
        "days_past_due_now": dpd_now.astype(float),
        "overdue_amount_now": np.maximum(_fen(total_due - total_paid), 0.0),
        "paid_over_due_6m": _ratio(paid_6m, due_6m),
        "short_misses_cured_3d": dues.sum(1.0, missed & found & (late <= 3)),
        "forgotten_due_dates": dues.sum(1.0, missed & found & (late <= FORGOTTEN_MAX_DAYS_LATE)
                                        & _untouched(dues, pays, debits_failed)),
        # the chances to forget that forgotten_due_dates is a count of (model.forgetting_floor)
        "manual_due_dates": dues.sum(1.0, ~_nothing_new(dues) & _untouched(
            dues, pays, debits_failed, pays.matches("channel", ("auto_debit",)))),
    }


def _untouched(dues: Rows, pays: Rows, debits_failed: np.ndarray,
               paid: np.ndarray | None = None) -> np.ndarray:
    """Due dates on which the borrower paid nothing and no debit was tried (a debit that went
    through is a payment, one that failed an event): a manual payer who did nothing that day.
    Paid in full days later, that is forgetting, not a shortfall, which leaves a part payment or
    lasts until money comes in. With ``paid`` (a mask of the payments), only those payments
    count as touching the day."""
    return ~_member(dues.day_keys(), np.concatenate([pays.day_keys(paid), debits_failed]))


def _member(keys: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin(keys, pool)`` for int64 keys by sorting and binary search: half the time of
    ``np.isin`` on 60,000 keys, whose hash-based ``np.unique`` (NumPy 2.4) also gained less from
    a second thread than sorting (1.61x against 1.98x on 2M keys)."""
    if pool.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pool = np.sort(pool)
    return pool[np.minimum(np.searchsorted(pool, keys), pool.size - 1)] == keys


def _group_starts(group: np.ndarray) -> np.ndarray:
    """Whether each row is its borrower's first, for rows sorted by borrower: where the group changes."""
    starts = np.ones(group.size, dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    return starts


def _group_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each borrower (rows sorted by borrower)."""
    total = np.cumsum(values)
    starts = np.flatnonzero(_group_starts(group))
    before = np.zeros_like(total)
    before[starts[1:]] = total[starts[1:] - 1]
    return total - np.maximum.accumulate(before)


def _multi_lending(spine: Spine, inquiries: Rows, loans: Rows) -> dict[str, np.ndarray]:
    since_jump_inq = inquiries.day >= spine.jump[inquiries.group]
    since_jump_loan = loans.day >= spine.jump[loans.group]
    return {
        **{f"inquiries_{m}m": inquiries.sum(1.0, inquiries.within(m * DAYS_PER_MONTH)) for m in (1, 3, 6)},
        "inquiries_since_jump": inquiries.sum(1.0, since_jump_inq),
        **{f"new_outside_loans_{m}m": loans.sum(1.0, loans.within(m * DAYS_PER_MONTH)) for m in (3, 6)},
        "new_outside_loans_since_jump": loans.sum(1.0, since_jump_loan),
        "new_outside_borrowing_6m": loans.sum(loans.col("amount"), loans.within(6 * DAYS_PER_MONTH)),
    }


def _bureau_score(stmt: Rows, limits: Rows) -> dict[str, np.ndarray]:
    score = stmt.col("credit_score").astype(float)
    last = stmt.last_value(score)
    restrictions = limits.matches("event_type", ("restriction",)) & limits.within(365)
    return {
        "credit_score": last,
        **{f"credit_score_change_{m}m": last - stmt.last_value(score, back=m) for m in (3, 6)},
        "restrictions_12m": limits.sum(1.0, restrictions),
    }


def _income_and_cash(spine: Spine, stmt: Rows, scheduled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Income and cash, and the cash beside the installments ``scheduled`` (``_scheduled``)."""
    income = _declared_income(spine)
    inflow = stmt.col("wallet_inflow")
    last3, prev3 = stmt.mean_last(inflow, 3), stmt.mean_last(inflow, 3, skip=3)
    wallet = stmt.last_value(stmt.col("wallet_balance"))
    return {
        "declared_income": income,
        "inflow_mean_3m": last3,
        "inflow_trend": _ratio(last3, prev3),
        "inflow_over_declared_income": _ratio(last3, income),
        "wallet_balance": wallet,
        # the platform sees the same unknown share of a borrower's cash and income, which the
        # ratio cancels: months of income kept as cash, the borrower's buffer
        "wallet_over_inflow": wallet / np.maximum(last3, AMOUNT_FLOOR),
        "cash_buffer_over_installments": wallet / np.maximum(
            scheduled["installments_next_3_cycles"] + scheduled["outside_installments_next_3_cycles"],
            AMOUNT_FLOOR),
    }


def _platform_rows(spine: Spine, table: pd.DataFrame, cut: np.ndarray) -> tuple[Rows, np.ndarray]:
    """Platform events, those of one day in ``EVENT_ORDER``, and each row's position in it."""
    order = _positions(table["event_type"], EVENT_ORDER)
    events = Rows(table, "event_date", spine, cut, same_day_order=order)
    return events, order[events.index]


def _technical(events: Rows, code: np.ndarray) -> dict[str, np.ndarray]:
    agreement = np.isin(code, [EVENT_ORDER.index(e) for e in AGREEMENT_EVENTS])
    status = events.at(code.astype(float), _last_where(events, agreement))
    last_request = _last_where(events, code == EVENT_ORDER.index("reauth_required"))
    last_agreement_event = _last_where(events, agreement)
    failed = (code == DEBIT_FAILED) & events.within(183)
    return {
        "autodebit_active": (status == EVENT_ORDER.index("autodebit_authorised")).astype(float),
        "autodebit_lapsed": (status == EVENT_ORDER.index("autodebit_revoked")).astype(float),
        "autodebit_changed_30d": events.sum(1.0, agreement & events.within(30)),
        # a request is answered by the next agreement event: renewed, revoked at its deadline (then
        # the agreement has lapsed) or cancelled by a borrower who pays by hand since (an outside
        # check found borrowers told to re-authorise 2 to 21 months after they had cancelled)
        "reauth_pending": ((last_request >= 0) & (last_agreement_event < last_request)).astype(float),
        **{f"debit_failures_{name}_6m": events.sum(1.0, failed & events.matches("detail", (detail,)))
           for name, detail in (("mandate", "mandate_invalid"), ("system", "system_unavailable"),
                                ("funds", "insufficient_funds"))},
    }


# Within one day, events take effect in this order (an agreement fixed the day it failed is fixed).
EVENT_ORDER = ("reauth_required", "autodebit_revoked", "debit_failed", "autodebit_cancelled",
               "autodebit_authorised")
AGREEMENT_EVENTS = ("autodebit_authorised", "autodebit_revoked", "autodebit_cancelled")
DEBIT_FAILED = EVENT_ORDER.index("debit_failed")


def _positions(column: pd.Series, values: tuple[str, ...]) -> np.ndarray:
    """Position of each text of ``column`` in ``values`` (-1 if absent or missing): one hash
    lookup per row in Arrow, on the column's own storage (no copy of text columns read from
    Parquet) and outside Python's lock, which pandas' own lookups hold for most of their time
    (they held the features' threads back). Other values are compared as text."""
    if column.dtype == object:  # Python objects, which Arrow takes only if all are of one type
        column = column.astype("str")
    text = pa.array(column, from_pandas=True)
    if not pa.types.is_dictionary(text.type) and not pa.types.is_large_string(text.type):
        text = text.cast(pa.large_string())
    found = pc.index_in(text, value_set=pa.array(values, pa.large_string()))
    return np.asarray(found.fill_null(-1), dtype=np.int64)


def _last_where(rows: Rows, mask: np.ndarray) -> np.ndarray:
    """Row position of each borrower's last row satisfying ``mask`` (-1 if none)."""
    positions = np.where(mask, np.arange(mask.size), -1)
    out = np.full(rows.n, -1)
    if mask.any():
        np.maximum.at(out, rows.group[mask], positions[mask])
    return out


def _next_due_days(spine: Spine, stmt: Rows, dues: Rows, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The next ``count`` due dates after scoring, (n, count), and whether they are known. A
    billing cycle starts the day after a statement and its due date falls a fixed number of days
    later, so: next cycle start = last statement + 1 day, due offset = last due date minus the
    start of its cycle. ``stmt`` and ``dues``: the statements and installments before scoring."""
    last_statement = stmt.last_value(stmt.day.astype(float))
    last_due = dues.last_value(dues.day.astype(float))
    before_due = stmt.before(np.nan_to_num(last_due, nan=0).astype("int64"))
    its_cycle_start = before_due.last_value(before_due.day.astype(float)) + 1
    known = ~np.isnan(last_statement) & ~np.isnan(last_due) & ~np.isnan(its_cycle_start)
    start = np.nan_to_num(last_statement + 1).astype("int64")
    offset = np.nan_to_num(last_due - its_cycle_start).astype("int64")
    # statements may stop months before scoring (a dormant account, an export that lags): start
    # in the month before the one (scoring - offset) falls in, where every due date is still
    # past, so the first ahead is among the next two; 0 months when a statement is recent
    skip = np.maximum(_month_number(spine.score_day - offset) - _month_number(start) - 1, 0)
    # scoring may fall between a due date and the next statement: skip due dates already past
    candidates = np.column_stack([_add_months(start, skip + step) + offset for step in range(count + 2)])
    ahead = (candidates >= spine.score_day[:, None]) & (candidates > np.nan_to_num(last_due)[:, None])
    first = np.argmax(ahead, axis=1)
    rows = np.arange(spine.n)[:, None]
    return candidates[rows, first[:, None] + np.arange(count)[None, :]], known & ahead.any(axis=1)


def _asks_for_payment(draws: Rows, at_day: np.ndarray, count: int, overdue: np.ndarray,
                      balance: np.ndarray) -> np.ndarray:
    """Whether each of the next ``count`` due dates (n, count) asks for a payment: an installment
    of the drawdowns is left for it, arrears are (``overdue``), or the last statement's
    ``balance`` is owed though no drawdown in the tables explains it (taken before the export)."""
    left = draws.max(_months_left(draws, at_day))
    unexplained = (np.nan_to_num(balance) > 0) & (left == 0)
    return (left[:, None] > np.arange(count)) | ((overdue > 0) | unexplained)[:, None]


def _dues_in_announced_windows(spine: Spine, upcoming: np.ndarray, asks: np.ndarray, active: np.ndarray,
                               windows: pd.DataFrame, settings: FeatureSettings) -> np.ndarray:
    """Which of the ``upcoming`` due dates (n, 3: ``_next_due_days``) that ask for a payment
    (``asks``: known, and something owed on them; nothing owed, nothing to block: a borrower
    with no installment left had been scored 0.99996 for a window on a due date asking for
    nothing) a maintenance window announced before scoring blocks for the borrower's channel,
    (n, 3) booleans: the auto-debit batch's hour for a
    borrower whose agreement is in force (``active``), any of the paying hours for the others. A
    window elsewhere in the day blocks nothing: at 2026-12-05 on the defaults, counting every
    window on a due date, the test cohorts' auto-debit borrowers with one missed half as often as
    the training cohorts' (0.51 against 1.00), whose windows had all covered the batch."""
    announced = days(windows["announced_date"])
    start, end = (_seconds(windows[c]) for c in ("start_time", "end_time"))
    window, day = _days_touched(start, end, upcoming)
    # a window blocks only due dates on a day it touches (the hours compared lie within the day):
    # each due date meets its day's windows, one at a time, not every window of the calendar
    lo, hi = np.searchsorted(day, upcoming, "left"), np.searchsorted(day, upcoming, "right")
    midnight = upcoming * SECONDS_PER_DAY
    batch = midnight + settings.debit_batch_hour * SECONDS_PER_HOUR
    opens, closes = (midnight + h * SECONDS_PER_HOUR for h in settings.paying_hours)
    blocked = np.zeros(upcoming.shape, dtype=bool)
    for m in range(int((hi - lo).max(initial=0))):
        w = window[np.minimum(lo + m, window.size - 1)]
        s, e = start[w], end[w]
        visible = (lo + m < hi) & asks & (announced[w] < spine.score_day[:, None])
        stops_batch = (s <= batch) & (batch < e)
        stops_paying = (np.maximum(opens, s) < np.minimum(closes, e))
        blocked |= visible & np.where(active[:, None], stops_batch, stops_paying)
    return blocked  # each due date once, however many windows


def _days_touched(start: np.ndarray, end: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (window, day) pair of windows from ``start`` to ``end`` (seconds, end excluded) and
    the days they touch, sorted by day: (window index, day number). Only the days from the first
    to the last of the days ``wanted`` count: a window of years costs no more than they span."""
    if wanted.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    first = np.maximum(start // SECONDS_PER_DAY, wanted.min())
    last = np.minimum((end - 1) // SECONDS_PER_DAY, wanted.max())
    span = np.maximum(last - first + 1, 0)
    window = np.repeat(np.arange(span.size), span)
    day = first[window] + np.arange(window.size) - np.repeat(np.cumsum(span) - span, span)
    order = np.argsort(day, kind="stable")
    return window[order], day[order]


def _seconds(values: pd.Series) -> np.ndarray:
    return np.asarray(values).astype("datetime64[s]").astype("int64")


def _month_number(day: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of day numbers."""
    return day.astype("datetime64[D]").astype("datetime64[M]").astype("int64")


def _add_months(day: np.ndarray, months: int | np.ndarray) -> np.ndarray:
    """Same day of the month ``months`` later (per row when an array), clamped to the last day of
    a shorter month."""
    d = day.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    in_month = (d - month.astype("datetime64[D]")).astype("int64")
    target = month + months
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype("int64")
    return target.astype("datetime64[D]").astype("int64") + np.minimum(in_month, length - 1)


def _declared_income(spine: Spine) -> np.ndarray:
    return spine.in_slot_order(spine.table["declared_monthly_income"].to_numpy(dtype=float))


def _profile(spine: Spine) -> dict[str, np.ndarray]:
    b = spine.table
    return {
        "age": spine.in_slot_order(b["age"].to_numpy(dtype=float)),
        "city_tier": spine.in_slot_order(b["city_tier"].to_numpy(dtype=float)),
        "employment_type": spine.in_slot_order(_codes(b["employment_type"], EMPLOYMENT_TYPES)),
    }
