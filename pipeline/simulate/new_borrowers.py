"""The simulator's settings for new borrowers after the training period: the incoming batch to
score and the monitor's monthly stream. Each keeps the training world (its campaigns and rule
change are dated, so later scoring dates cross them) with its own seed, population and calendar,
and draws no counterfactual (only the decision is judged by it). New borrowers' ids are offset
so that they never collide with the training population's, nor the batch's with the stream's."""

from __future__ import annotations

import pandas as pd

from pipeline.config import (
    CounterfactualSettings,
    IncomingSettings,
    LabelSettings,
    MonitorSettings,
    SimulateSettings,
    days_to_observe_label,
)
from pipeline.contract import RAW_TABLES, TABLES

NO_COUNTERFACTUAL = CounterfactualSettings(share=0.0, since="2000-01-01", replicates=1)
BATCH_ID_OFFSET = 100_000_000  # added to the incoming batch's borrower ids
STREAM_ID_OFFSET = 200_000_000  # added to the stream's


def batch_settings(simulate: SimulateSettings, incoming: IncomingSettings) -> SimulateSettings:
    """The simulator's settings for the incoming batch: its seed, size and scoring dates, and an
    export six months past the last of them."""
    calendar = simulate.calendar.model_copy(update={
        "first_scoring_date": incoming.first_scoring_date, "last_scoring_date": incoming.last_scoring_date,
        "export_end": incoming.last_scoring_date + pd.Timedelta(days=31 * 6)})
    return simulate.model_copy(update={"seed": incoming.seed, "n_borrowers": incoming.n_borrowers,
                                       "calendar": calendar, "truth_replicates": 1,
                                       "counterfactual": NO_COUNTERFACTUAL})


def stream_settings(simulate: SimulateSettings, label: LabelSettings, m: MonitorSettings) -> SimulateSettings:
    """The simulator's settings for the stream: its own seed and population, scoring dates over
    ``months`` whole months from ``first_month``."""
    first = pd.Timestamp(m.first_month)
    last = first + pd.DateOffset(months=m.months) - pd.Timedelta(days=1)
    # long enough to see the label of the last batch (as Params checks for the main calendar)
    end = last + pd.Timedelta(days=days_to_observe_label(label, simulate.calendar.due_day_offset))
    calendar = simulate.calendar.model_copy(update={
        "first_scoring_date": first.date(), "last_scoring_date": last.date(), "export_end": end.date()})
    return simulate.model_copy(update={"seed": m.seed, "n_borrowers": m.months * m.borrowers_per_month,
                                       "calendar": calendar, "truth_replicates": m.truth_replicates,
                                       "counterfactual": NO_COUNTERFACTUAL})


def cut_at_scoring(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The raw tables of a shard of the incoming batch as an export taken when each borrower is
    scored: only rows dated before their scoring date (the ground truth's), ids offset
    (``BATCH_ID_OFFSET``)."""
    scoring = tables["ground_truth"].set_index("borrower_id")["scoring_date"]
    out = {}
    for name in RAW_TABLES:
        frame = tables[name]
        before = frame[TABLES[name].date_column] < frame["borrower_id"].map(scoring)
        out[name] = frame[before.to_numpy()].reset_index(drop=True)
        out[name]["borrower_id"] = out[name]["borrower_id"] + BATCH_ID_OFFSET
    return out


def announced_windows(windows: pd.DataFrame, last_scoring_date) -> pd.DataFrame:
    """The maintenance windows an export taken on the batch's last scoring date lists: those
    announced by then."""
    return windows[windows["announced_date"] <= pd.Timestamp(last_scoring_date)].reset_index(drop=True)
