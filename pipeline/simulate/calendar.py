"""Dates of the simulated world, as int32 day numbers (days since 1970-01-01).

Every borrower's simulation steps are anchored on their own scoring date: cycle 0 starts on the
scoring date, cycle k starts k calendar months later (same day of month, which is <= 28). The
limit jump falls ``observation_days`` before the scoring date, so the state at the scoring date is
exactly the state at the start of cycle 0; that is what makes the Monte-Carlo truth clean. The
account's statements keep a day of their own (``statements``), so a statement period straddles
the scoring date.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

EPOCH = dt.date(1970, 1, 1)

# Chinese New Year (spring festival) dates; bonuses are paid and spending peaks around them.
SPRING_FESTIVAL = [
    dt.date(2020, 1, 25), dt.date(2021, 2, 12), dt.date(2022, 2, 1), dt.date(2023, 1, 22),
    dt.date(2024, 2, 10), dt.date(2025, 1, 29), dt.date(2026, 2, 17), dt.date(2027, 2, 6),
    dt.date(2028, 1, 26), dt.date(2029, 2, 13), dt.date(2030, 2, 3),
]


def day_number(date: dt.date) -> int:
    """Days since 1970-01-01."""
    return (date - EPOCH).days


def to_datetime64(days: np.ndarray) -> np.ndarray:
    """Day numbers to ``datetime64[s]`` (the dtype every table in the contract uses)."""
    return np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[s]")


# First day (day number) of every month since 1970-01, for integer-only month arithmetic.
_MONTH_FIRST_DAY = np.arange(0, 12 * 200, dtype="int64").astype("datetime64[M]").astype(
    "datetime64[D]").astype("int64")


def month_index(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of each date."""
    return np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[M]").astype("int64")


def add_months(days: np.ndarray, months: int | np.ndarray) -> np.ndarray:
    """Shift dates by whole calendar months; valid because every anchor day is <= 28."""
    return shift_months(month_index(days), day_in_month(days), months)


def day_in_month(days: np.ndarray) -> np.ndarray:
    """0-based day of the month of each date."""
    d = np.asarray(days, dtype="int64")
    return d - _MONTH_FIRST_DAY[month_index(d)]


def shift_months(month: np.ndarray, day_in_month: np.ndarray, months: int | np.ndarray) -> np.ndarray:
    """Day number of ``day_in_month`` (0-based) in ``month + months``: pure integer lookups."""
    return (_MONTH_FIRST_DAY[month + months] + day_in_month).astype("int32")


def month_of_year(month: np.ndarray) -> np.ndarray:
    """1..12 from months since 1970-01."""
    return month % 12 + 1


_FESTIVAL_DAYS = np.array([day_number(d) for d in SPRING_FESTIVAL])
# For every day since 1970, the first spring festival on or after it.
_NEXT_FESTIVAL = _FESTIVAL_DAYS[np.searchsorted(_FESTIVAL_DAYS, np.arange(_FESTIVAL_DAYS[-1] + 1))]


def spring_festival_cycle(cycle_start: np.ndarray, cycle_end: np.ndarray) -> np.ndarray:
    """True where the cycle [start, end] contains a spring festival date."""
    return _NEXT_FESTIVAL[np.minimum(cycle_start, _NEXT_FESTIVAL.size - 1)] <= cycle_end
