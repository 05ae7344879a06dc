"""Platform maintenance windows and unplanned outages, shared by every borrower.

A window that covers the auto-debit batch (02:00) makes every auto-debit due that day fail; a
window in the day makes a manual payment fail with the share of the paying hours it covers. Planned
windows are announced some days ahead, unplanned ones only when they happen, so only the planned
ones are predictable from data dated before a scoring date.

Windows are a Poisson process: a count per kind over the calendar, each on a uniform day with its
hours and notice drawn independently. That makes the part of the calendar not yet announced at a
scoring date an independent Poisson process with a known intensity, so the truth can average over
it exactly (``expected_block``) instead of reading the realised future.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from pipeline.config import OutageSettings
from pipeline.simulate.calendar import to_datetime64

AUTO_DEBIT_HOUR = 2.0
MANUAL_HOURS = (8.0, 24.0)
NOTICE_DAYS = (5, 35)  # a planned window is announced this many days ahead (uniform, inclusive)
DAYS_PER_YEAR = 365.25
_GRID = (np.arange(400) + 0.5) / 400  # midpoints: expectations over the uniform hour draws


@dataclass(frozen=True)
class OutageCalendar:
    """Per-day lookups over [first_day, first_day + len), the table of windows, and each window's
    day, kind, hours, announcement day and effect on the two payment channels."""

    first_day: int
    auto_block: np.ndarray  # P(auto-debit attempt fails) per day
    manual_block: np.ndarray  # P(manual payment attempt fails) per day
    windows: pd.DataFrame
    day: np.ndarray
    planned: np.ndarray
    start_hour: np.ndarray
    end_hour: np.ndarray
    announced: np.ndarray
    auto_effect: np.ndarray  # 1 if the window covers the auto-debit batch
    manual_effect: np.ndarray  # share of the manual paying hours it covers
    settings: OutageSettings

    def lookup(self, days: np.ndarray, table: np.ndarray) -> np.ndarray:
        idx = np.clip(np.asarray(days, dtype="int64") - self.first_day, 0, len(table) - 1)
        return table[idx]


def window_hours(planned: np.ndarray, u_start: np.ndarray,
                 u_length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end hour of windows from two uniforms: planned ones at night, 2-6 hours;
    unplanned ones at any hour, 0.5-4 hours."""
    start = np.where(planned, 4.0 * u_start, 23.0 * u_start)
    length = np.where(planned, 2.0 + 4.0 * u_length, 0.5 + 3.5 * u_length)
    return start, np.minimum(start + length, 24.0)


def channel_effects(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Auto-debit effect (the batch hour covered) and manual effect (share of paying hours)."""
    covers_batch = (start <= AUTO_DEBIT_HOUR) & (AUTO_DEBIT_HOUR < end)
    lo, hi = MANUAL_HOURS
    manual = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None) / (hi - lo)
    return covers_batch.astype(float), manual


def draw_outages(settings: OutageSettings, first_day: int, last_day: int,
                 rng: np.random.Generator) -> OutageCalendar:
    """Draw planned and unplanned windows between two day numbers (inclusive)."""
    years = (last_day - first_day + 1) / DAYS_PER_YEAR
    n_planned = rng.poisson(settings.planned_per_year * years)
    n_unplanned = rng.poisson(settings.unplanned_per_year * years)
    day = np.concatenate([rng.integers(first_day, last_day + 1, n_planned),
                          rng.integers(first_day, last_day + 1, n_unplanned)])
    planned = np.arange(n_planned + n_unplanned) < n_planned
    start_hour, end_hour = window_hours(planned, rng.random(day.size), rng.random(day.size))
    notice = np.where(planned, rng.integers(NOTICE_DAYS[0], NOTICE_DAYS[1] + 1, day.size), 0)
    return calendar_from_windows(settings, first_day, last_day, day, planned, start_hour, end_hour,
                                 day - notice)


def calendar_from_windows(settings: OutageSettings, first_day: int, last_day: int, day: np.ndarray,
                          planned: np.ndarray, start_hour: np.ndarray, end_hour: np.ndarray,
                          announced: np.ndarray) -> OutageCalendar:
    """The calendar of given windows (the truth test builds one with a different future)."""
    order = np.lexsort((start_hour, day))
    day, planned, start_hour, end_hour, announced = (
        np.asarray(a)[order] for a in (day, planned, start_hour, end_hour, announced))
    auto_effect, manual_effect = channel_effects(start_hour, end_hour)
    span = last_day - first_day + 1
    auto_ok, manual_ok = np.ones(span), np.ones(span)
    np.multiply.at(auto_ok, day - first_day, 1.0 - auto_effect)
    np.multiply.at(manual_ok, day - first_day, 1.0 - manual_effect)
    start = to_datetime64(day) + (start_hour * 3600).astype("int64").astype("timedelta64[s]")
    end = to_datetime64(day) + (end_hour * 3600).astype("int64").astype("timedelta64[s]")
    windows = pd.DataFrame({
        "window_id": np.arange(day.size, dtype="int64"),
        "window_kind": pd.array(np.where(planned, "planned", "unplanned"), dtype="str"),
        "announced_date": to_datetime64(announced),
        "start_time": start,
        "end_time": end,
    })
    return OutageCalendar(first_day, 1.0 - auto_ok, 1.0 - manual_ok, windows, day, planned, start_hour,
                          end_hour, announced, auto_effect, manual_effect, settings)


@lru_cache(maxsize=2)
def _mean_effects(planned: bool) -> tuple[float, float]:
    """E[auto effect], E[manual effect] of one window of a kind, over its hour draws."""
    u_start, u_length = (g.ravel() for g in np.meshgrid(_GRID, _GRID))
    start, end = window_hours(np.full(u_start.size, planned), u_start, u_length)
    auto, manual = channel_effects(start, end)
    return float(auto.mean()), float(manual.mean())


def expected_block(cal: OutageCalendar, days: np.ndarray, scoring_day: np.ndarray,
                   manual: bool, unforeseen: bool = True) -> np.ndarray:
    """P(a payment on ``days`` fails on an outage) given only the windows announced before each
    borrower's scoring day: those announced are fixed; the rest (unplanned windows, planned ones
    announced later) are averaged over the generator's Poisson process. The count of unknown
    windows on a day is Poisson, so P(no failure) = exp(-rate x mean effect). Without
    ``unforeseen``: P given that no window unknown at the scoring day comes (the announced ones only)."""
    effect = cal.manual_effect if manual else cal.auto_effect
    known_ok = np.ones(days.shape)
    for d, a, e in zip(cal.day, cal.announced, effect, strict=True):  # tens of windows
        known_ok *= np.where((days == d) & (a < scoring_day), 1.0 - e, 1.0)
    lo, hi = NOTICE_DAYS
    unannounced_share = np.clip((days - scoring_day - lo + 1) / (hi - lo + 1), 0.0, 1.0)
    index = 1 if manual else 0
    rate = (cal.settings.unplanned_per_year * _mean_effects(False)[index]
            + cal.settings.planned_per_year * unannounced_share * _mean_effects(True)[index])
    return 1.0 - known_ok * np.exp(-rate / DAYS_PER_YEAR if unforeseen else 0.0)
