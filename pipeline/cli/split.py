"""``limitjump split``: out-of-time train, validation and test sets with their labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline import io
from pipeline.causes import MISS_CAUSE
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import (
    FEATURES_DIR,
    MAINTENANCE_HISTORY,
    RAW_DIR,
    SPLIT_DIR,
    SPLIT_REPORT,
    SPLIT_TIMELINE,
    TRUTH_DIR,
)
from pipeline.split import (
    check_both_labels,
    check_labels_known,
    label_matures,
    labelled,
    maintenance_miss_rate,
    out_of_time,
    summary,
    timeline_figure,
)

# not under reports/figures: that folder is the evaluate stage's output as a whole


@app.command()
def split(params: Path = PARAMS) -> None:
    """Attach labels and split borrowers out of time by jump date."""
    p = load(params)
    frame = io.read_dataset(FEATURES_DIR)
    if p.source.kind == "simulator":  # a team's features carry their label, and no cause
        # the label and the cause of the first miss (for the cause model; empty without a miss)
        labels = io.read_dataset(TRUTH_DIR, columns=["borrower_id", "label", "first_miss_cause"])
        labels = labels.rename(columns={"first_miss_cause": MISS_CAUSE})
        frame = frame.merge(labels, on="borrower_id", how="left", validate="one_to_one")
    frame["label"] = labelled(frame, TRUTH_DIR if p.source.kind == "simulator" else FEATURES_DIR)
    offset = p.simulate.calendar.due_day_offset
    matures = label_matures(frame["scoring_date"], p.label, offset)
    if p.source.kind == "tables":
        t = p.source.tables
        check_labels_known(frame, matures, pd.Timestamp.today().normalize(),
                           f"{t.features}: column '{t.date_column}'")
    frame["split"] = out_of_time(frame, p.split.fractions, p.label, offset)
    report = summary(frame, matures)
    check_both_labels(report)
    # what a debit stopped by announced maintenance cost, as the history showed it when the test
    # period began (train.lightgbm's floor); a team's features come without that history
    first_test = frame.loc[frame["split"] == "test", "scoring_date"].min()
    history = maintenance_history(first_test, p.label.dpd_threshold) if p.source.kind == "simulator" else None
    with io.atomic_dir(SPLIT_DIR) as out:
        for name in io.SPLITS:
            part = frame[frame["split"] == name].drop(columns="split").reset_index(drop=True)
            io.write_parquet(part, out / f"{name}.parquet")
        io.write_json(history, out / MAINTENANCE_HISTORY.name)
    io.write_json(report, SPLIT_REPORT)
    io.write_png(timeline_figure(report), SPLIT_TIMELINE)
    for name, row in report.items():
        typer.echo(f"{name:7}  {row['rows']:7} rows  {row['misses']:6} misses  "
                   f"miss rate {row['miss_rate']:.3f}  "
                   f"scored {row['first_scoring_date']}..{row['last_scoring_date']}  "
                   f"labels known by {row['last_label_matures']}")
    if history:
        typer.echo(f"debits stopped by announced maintenance before {first_test.date()}: "
                   f"{history['missed']} of {history['due_dates']} became misses")


def maintenance_history(known_by, dpd_threshold: int) -> dict | None:
    """``maintenance_miss_rate`` on the raw tables' failed debits, payments and windows."""
    return maintenance_miss_rate(
        io.read_dataset(RAW_DIR / "platform_events", ["borrower_id", "event_date", "event_type", "detail"]),
        io.read_dataset(RAW_DIR / "repayments", ["borrower_id", "due_date", "payment_date"]),
        io.read_dataset(RAW_DIR / "maintenance_windows", ["announced_date", "start_time"]),
        known_by, dpd_threshold)
