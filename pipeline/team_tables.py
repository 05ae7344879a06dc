"""A team's own tables (``source: tables``): its features file in the pipeline's terms, for the
stages that train on it and for the batch it scores. In a labelled file, a row the pipeline cannot
train on stops the run, naming the file, the column and the first such rows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from pipeline.catalog import BY_NAME
from pipeline.cells import blank_cells
from pipeline.config import TablesSettings
from pipeline.contract import ContractError, borrower_ids, features_table, row_violations
from pipeline.errors import UsageError
from pipeline.readers import (
    READ_ERRORS,
    as_dates,
    as_text,
    ids_are_text,
    is_csv,
    missing_columns,
    open_dataset,
    read_frame,
    row_reasons,
    sheet_note,
    unreadable,
    written_zero_led,
)

# the pipeline's names for its own columns (the team's id, date and label, the simulator's jump
# date and cause of a miss), each with what it holds; the features keep their names
RESERVED = {"borrower_id": "the id", "scoring_date": "the scoring date", "jump_date": "the jump date",
            "label": "the label", "miss_cause": "the simulator's cause of a miss"}


def team_table(path: Path, t: TablesSettings, labelled: bool) -> pd.DataFrame:
    """A team's features file (Parquet or CSV, or a folder of them) in the pipeline's terms:
    ``borrower_id``, ``scoring_date`` (also the ``jump_date`` the split keeps whole), ``label`` when
    ``labelled``, and every other column as a feature under its own name. The rows are the file's,
    all of them: in a labelled file, a missing or repeated id, a label other than 0 or 1, or a date
    that is no date stops the run naming the file, the column and the first rows (1 = the first
    data row). A file to score keeps such rows as written, ids and dates as the file gives them:
    the scorer rejects each with its reason and scores the others, as it does with the file
    itself (one bad row stopped the pipeline's whole batch)."""
    _must_exist(path)
    frame = read_frame(_team_dataset(path, t), path)
    named = {t.id_column: "borrower_id", t.date_column: "scoring_date",
             **({t.label_column: "label"} if labelled else {})}
    unkeepable = [c for c in frame.columns if c not in named and LIGHTGBM_REFUSES.search(c)]
    if unkeepable:
        raise ContractError(f"{path}: columns {unkeepable} have names a model cannot keep (LightGBM turns "
                            "spaces into '_' and refuses any of , : [ ] { } \"): rename them")
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise ContractError(f"{path}: " + missing_columns(list(frame.columns), missing, "missing columns",
                                                   " (source.tables names them)" + sheet_note(path),
                                                   named))
    clash = [c for c in frame.columns if c in RESERVED and c not in named]
    if clash:
        uses = ", ".join(f"{c} for {RESERVED[c]}" for c in clash)
        raise ContractError(f"{path}: columns {clash} have names the pipeline uses ({uses}); rename them")
    unlisted = [c for c in frame.columns if c in BY_NAME and c not in t.catalogue and c not in named]
    if unlisted:
        raise ContractError(f"{path}: columns {unlisted} have the names of feature catalogue entries; list "
                            "them in source.tables.catalogue if they mean the same (they then get its "
                            "monotone constraint, checks, reasons and cause), else rename them")
    absent = [c for c in t.catalogue if c not in frame.columns]
    if absent:
        raise ContractError(f"{path}: source.tables.catalogue names columns the file lacks: {absent}")
    if frame.empty and labelled:  # nothing to learn from; a file to score may hold no one today
        raise ContractError(f"{path}: no rows")
    for column in frame.columns.difference(list(named)):
        frame[column] = _numbers_written_as_text(path, column, frame, labelled)
    if not labelled:
        return frame.rename(columns=named).assign(jump_date=lambda f: f["scoring_date"])
    ids = _team_ids(path, t.id_column, frame)
    dates = as_dates(frame[t.date_column])
    _stop_at(path, t.date_column, "must be a date (ISO, 2025-01-31)", dates.isna(), frame)
    out = frame.rename(columns=named).assign(borrower_id=ids, scoring_date=dates.astype("datetime64[s]"))
    out["jump_date"] = out["scoring_date"]
    label = pd.to_numeric(frame[t.label_column], errors="coerce")
    _stop_at(path, t.label_column, "must be 0 or 1", ~label.isin([0, 1]), frame)
    out["label"] = label.astype("int64")
    _check_training_rows(path, out)
    return out


def score_table(t: TablesSettings) -> pd.DataFrame:
    """The team's file to score (``team_table`` of ``source.tables.score``), stopped, naming it,
    when it lacks a feature column of the training file: 'limit_bl' for 'limit_bal' had passed
    here and stopped the scorer naming the pipeline's own data/incoming."""
    path, trained_on = Path(t.score), Path(t.features)
    frame = team_table(path, t, labelled=False)
    _must_exist(trained_on)
    features = [c for c in _team_dataset(trained_on, t).schema.names
                if c not in {t.id_column, t.date_column, t.label_column}]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        known = [*frame.columns.intersection(features), *RESERVED]  # the rest may be misspellings
        said = missing_columns(list(frame.columns), missing, f"lacks feature columns of {trained_on}",
                               expected=known)
        raise ContractError(f"{path}: {said}")
    return frame


def _must_exist(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder (source.tables names it)")


def _check_training_rows(path: Path, frame: pd.DataFrame) -> None:
    """Stop on training rows the scorer would reject (the features contract: a catalogue column's
    range and whole numbers, a team's own numbers finite, a scoring date from 2000): a model had
    trained on an infinity, a 1970 date and -1 inquiries that scoring the same rows refused.
    Dates are no feature a model reads: a date column is named rather than left out unsaid."""
    features = [c for c in frame.columns if c not in (*RESERVED, "scoring_date", "jump_date")]
    dates = [c for c in features if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if dates:
        raise ContractError(f"{path}: columns {dates} hold dates, which a model cannot read: give each "
                            "as a number (days from it to the scoring date, say) or leave it out")
    text = tuple(c for c in features if not pd.api.types.is_numeric_dtype(frame[c]))
    table = features_table(features, text)
    # the ids were checked already (``_team_ids``), and may be text, which the table's are not
    numbered = frame.assign(borrower_id=np.arange(len(frame)))
    found = row_reasons(row_violations(numbered, table), table, "", path).drop_duplicates("row")
    if len(found):
        first = "; ".join(f"row {r + 1}: {why}" for r, why in found.head(5).itertuples(index=False))
        raise ContractError(f"{path}: {len(found)} rows hold values the scorer would reject, so no model "
                            f"is trained on them (data rows counted from 1): {first}")


# what LightGBM does not keep in a feature's name (its model file is JSON-like text)
LIGHTGBM_REFUSES = re.compile(r'[\s,:\[\]{}"]')


def _team_dataset(path: Path, t: TablesSettings) -> ds.Dataset:
    """A team's file, its date column (and its id column, when the ids are text) read from a CSV
    as written: Arrow reads '2024-01-01T05:00:00+08:00' as UTC, the day before, where the wall
    time is the date the lender's system recorded. A file Arrow cannot open stops naming it."""
    try:
        if not is_csv(path):
            return open_dataset(path)
        ids = [t.id_column] if ids_are_text(path, t.id_column) else []
        return as_text(path, t.date_column, *ids, *_zero_led_columns(path, t.date_column, *ids))
    except READ_ERRORS as err:
        raise unreadable(path, err) from err


def _zero_led_columns(path: Path, *read_as_text: str) -> list[str]:
    """The columns of a CSV (but ``read_as_text``) that Arrow reads as whole numbers though some
    are written with a leading zero ('01', '007'): codes, which Parquet and a sheet keep as text.
    Read as numbers, the same table had trained a model with a numeric 'branch_code' from CSV
    and a categorical one from Parquet or .xlsx."""
    inferred = open_dataset(path).schema
    wanted = [f.name for f in inferred if pa.types.is_integer(f.type) and f.name not in read_as_text]
    return written_zero_led(path, wanted) if wanted else []


def _team_ids(path: Path, column: str, frame: pd.DataFrame) -> pd.Series:
    """A team's ids: whole numbers, or text as the file writes it (``ids_written_as_text``);
    one per row."""
    ids, problems = borrower_ids(frame[column])
    for rule, bad in problems.items():  # lost digits before repeats: else "repeats an id" misleads
        _stop_at(path, column, rule, bad, frame)
    _stop_at(path, column, "repeats an id", ids.duplicated(keep=False).to_numpy(), frame)
    return ids


# a text column whose values are mostly numbers, and many different ones, is a column of numbers
MOSTLY_NUMBERS, MANY_NUMBERS = 0.9, 20


def _numbers_written_as_text(path: Path, column: str, frame: pd.DataFrame, labelled: bool) -> pd.Series:
    """A team's column as the features take it. A column of numbers stored as text (a Parquet
    string column) becomes numbers. One that a few words ('-', 'unknown') or thousands
    separators ('12,500') made text stops the run: it would be learned as a category with a level
    per number, and a new number at scoring would be an unknown level. A text column of a few
    numeric codes and a word ('1'...'5', 'X') is a category, and stays one."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return values
    text = values.astype("str").str.strip().where(values.notna())
    given = pd.Series(~blank_cells(values), index=values.index)  # 'NULL' or 'None' is no value
    plain = pd.to_numeric(text.where(given), errors="coerce")
    separated = pd.to_numeric(text.where(given).str.replace(",", "", regex=False), errors="coerce")
    if separated.notna().sum() >= MOSTLY_NUMBERS * given.sum() and separated.nunique() > MANY_NUMBERS:
        why = ("else the column would be learned as a category with a level per number" if labelled
               else "the model reads the column as numbers")
        _stop_at(path, column, "holds numbers, but some rows hold text that is not a plain number; "
                 f"write a missing value blank and a number without thousands separators ({why})",
                 given & plain.isna(), frame)
        return plain
    return values


def _stop_at(path: Path, column: str, rule: str, bad: pd.Series | np.ndarray, frame: pd.DataFrame) -> None:
    if bad.any():
        rows = np.flatnonzero(np.asarray(bad))
        values = frame[column].to_numpy()[rows[:5]].tolist()
        raise ContractError(f"{path}: column '{column}' {rule}: {len(rows)} rows, the first "
                            f"{(rows[:5] + 1).tolist()} (data rows counted from 1, the header not counted; "
                            f"values {values})")
