"""``limitjump split``: out-of-time train, validation and test sets with their labels."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline import io
from pipeline.cli import PARAMS, app, load
from pipeline.cli.features import FEATURES_DIR
from pipeline.cli.simulate import TRUTH_DIR
from pipeline.split import SPLITS, out_of_time, summary

SPLIT_DIR = Path("data/split")
REPORT = Path("reports/split.json")


@app.command()
def split(params: Path = PARAMS) -> None:
    """Attach labels and split borrowers out of time by jump date."""
    p = load(params)
    frame = io.read_dataset(FEATURES_DIR)
    labels = io.read_dataset(TRUTH_DIR, columns=["borrower_id", "label"])
    frame = frame.merge(labels, on="borrower_id", how="left", validate="one_to_one")
    if frame["label"].isna().any():
        missing = frame.loc[frame["label"].isna(), "borrower_id"].head().tolist()
        raise ValueError(f"{TRUTH_DIR}: no label for borrowers {missing}")
    frame["label"] = frame["label"].astype("int64")
    frame["split"] = out_of_time(frame["jump_date"], p.split.fractions)
    with io.atomic_dir(SPLIT_DIR) as out:
        for name in SPLITS:
            part = frame[frame["split"] == name].drop(columns="split").reset_index(drop=True)
            io.write_parquet(part, out / f"{name}.parquet")
    report = summary(frame)
    io.write_json(report, REPORT)
    for name, row in report.items():
        typer.echo(f"{name:5}  {row['rows']:7} rows  {row['misses']:6} misses  "
                   f"miss rate {row['miss_rate']:.3f}  "
                   f"jumps {row['first_jump_date']}..{row['last_jump_date']}")
