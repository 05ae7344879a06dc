"""Platform maintenance windows and unplanned outages, shared by every borrower.

A window that covers the auto-debit batch (02:00) makes every auto-debit due that day fail; a
window in the day makes a manual payment fail with the share of the paying hours it covers. Planned
windows are announced some days ahead, unplanned ones only when they happen, so only the planned
ones are predictable from data dated before a scoring date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import OutageSettings
from pipeline.simulate.calendar import to_datetime64

AUTO_DEBIT_HOUR = 2.0
MANUAL_HOURS = (8.0, 24.0)


@dataclass(frozen=True)
class OutageCalendar:
    """Per-day lookups over [first_day, first_day + len) and the table of windows."""

    first_day: int
    auto_block: np.ndarray  # P(auto-debit attempt fails) per day
    manual_block: np.ndarray  # P(manual payment attempt fails) per day
    windows: pd.DataFrame

    def lookup(self, days: np.ndarray, table: np.ndarray) -> np.ndarray:
        idx = np.clip(np.asarray(days, dtype="int64") - self.first_day, 0, len(table) - 1)
        return table[idx]


def draw_outages(settings: OutageSettings, first_day: int, last_day: int,
                 rng: np.random.Generator) -> OutageCalendar:
    """Draw planned and unplanned windows between two day numbers (inclusive)."""
    years = (last_day - first_day + 1) / 365.25
    n_planned = rng.poisson(settings.planned_per_year * years)
    n_unplanned = rng.poisson(settings.unplanned_per_year * years)
    day = np.concatenate([rng.integers(first_day, last_day + 1, n_planned),
                          rng.integers(first_day, last_day + 1, n_unplanned)])
    planned = np.arange(n_planned + n_unplanned) < n_planned
    start_hour = np.where(planned, rng.uniform(0.0, 4.0, day.size), rng.uniform(0.0, 23.0, day.size))
    hours = np.where(planned, rng.uniform(2.0, 6.0, day.size), rng.uniform(0.5, 4.0, day.size))
    end_hour = np.minimum(start_hour + hours, 24.0)
    notice = np.where(planned, rng.integers(5, 36, day.size), 0)
    order = np.lexsort((start_hour, day))
    day, planned, start_hour, end_hour, notice = (
        a[order] for a in (day, planned, start_hour, end_hour, notice))

    span = last_day - first_day + 1
    auto_ok = np.ones(span)
    manual_ok = np.ones(span)
    covers_batch = (start_hour <= AUTO_DEBIT_HOUR) & (AUTO_DEBIT_HOUR < end_hour)
    lo, hi = MANUAL_HOURS
    manual_share = np.clip(np.minimum(end_hour, hi) - np.maximum(start_hour, lo), 0, None) / (hi - lo)
    np.multiply.at(auto_ok, day - first_day, np.where(covers_batch, 0.0, 1.0))
    np.multiply.at(manual_ok, day - first_day, 1.0 - manual_share)

    start = to_datetime64(day) + (start_hour * 3600).astype("int64").astype("timedelta64[s]")
    end = to_datetime64(day) + (end_hour * 3600).astype("int64").astype("timedelta64[s]")
    windows = pd.DataFrame({
        "window_id": np.arange(day.size, dtype="int64"),
        "window_kind": pd.array(np.where(planned, "planned", "unplanned"), dtype="str"),
        "announced_date": to_datetime64(day - notice),
        "start_time": start,
        "end_time": end,
    })
    return OutageCalendar(first_day, 1.0 - auto_ok, 1.0 - manual_ok, windows)
