"""What a batch run over borrowers (scoring, recommending) reads: raw tables or a features file,
read in batches of borrower ids and checked row by row against the data contract.

Every input row is accounted for. A borrower (a row of the borrowers table or of the features
file, a row without an id included) is scored or rejected with the column and the reason; a row of
another table that belongs to no borrower (no id, or an id the borrowers table lacks) is counted
in the run's summary. A problem with a file itself (unreadable, a missing or mistyped column,
fractional ids, text ids in one table and numbers in another) stops the run with the file and
the column named. Ids a lender writes as text ('C0012', '000123') are carried as that text.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pandas.api.types import is_integer_dtype

from pipeline.catalog import BY_NAME, DUE_DATES, codes_hint
from pipeline.cells import BLANKS, blank_cells, codes_as_text, quoted
from pipeline.config import FeatureSettings, SourceSettings
from pipeline.contract import (
    LARGEST_FLOAT_ID,
    RAW_TABLES,
    TABLES,
    ContractError,
    Table,
    due_out_of_reach,
    features_table,
    future_scoring,
    history_violations,
    row_violations,
    violations,
)
from pipeline.features import MissingJump, build_features
from pipeline.readers import (
    CSV_ENDINGS,
    DUPLICATE_BORROWER,
    READ_ERRORS,
    as_codes,
    as_dates,
    as_text,
    data_row,
    days_after_jump,
    decimal_mark,
    file_stamp,
    holds_text,
    ids_are_text,
    is_csv,
    is_text,
    missing_columns,
    open_dataset,
    parse_dates,
    parse_numbers,
    read_frame,
    read_table,
    respelt,
    row_reasons,
    sheet_note,
    unreadable,
    with_text_ids,
)

ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string(),
               "datetime64[s]": pa.timestamp("s")}
NUMBERS = ("int64", "float64")
NO_ID = "borrower_id: missing"
NOT_A_BORROWER = "borrower_id: not in the borrowers table"
EMPTY_ROW = "every cell blank"  # a row of no record: Excel's row once touched, an export's ',,,,'


@dataclass
class Batch:
    features: pd.DataFrame
    rejects: pd.DataFrame
    borrowers_in: int


def open_source(path: Path, source: SourceSettings, settings: FeatureSettings, label_days: int,
                features: list[str], text: tuple[str, ...], today: pd.Timestamp,
                observation_days: int | None = None, never_missing: tuple[str, ...] = ()
                ) -> RawTables | FeaturesFile:
    """The input at ``path`` for a model reading ``features``, of which ``text`` are categories it
    learned as text; ``today`` is the run date, after which no record may be dated. Raw tables'
    features are taken ``observation_days`` after the jump (default: the label's, ``label_days``;
    0 for the increase decision, at the jump itself); ``source`` names a team's id and date columns;
    ``never_missing``, the features the model may not be given blank
    (``CalibratedLightGBM.never_missing``)."""
    if is_raw(path):
        return RawTables(path, settings, features, today,
                         label_days if observation_days is None else observation_days, never_missing)
    team = ({"borrower_id": source.tables.id_column, "scoring_date": source.tables.date_column}
            if source.kind == "tables" else {})
    # a team's own features are taken when the team takes them: only the decision's day is sure
    days = observation_days if observation_days is not None or team else label_days
    return FeaturesFile(path, features, today, text, team, days, never_missing)


def is_raw(path: Path) -> bool:
    """A folder holding any table of the contract (then a missing table is reported by name)."""
    return path.is_dir() and any((path / f"{name}{ext}").exists()
                                 for name in (*RAW_TABLES, "maintenance_windows")
                                 for ext in ("", ".parquet", *CSV_ENDINGS))


# ---- reading, shared by both inputs ---------------------------------------------------------------

def rejects(ids, reasons) -> pd.DataFrame:
    """(borrower_id, reason) rows; a missing id stays missing."""
    return pd.DataFrame({"borrower_id": pd.array(np.asarray(ids, dtype=object), dtype="Int64"),
                         "reason": pd.array(np.asarray(reasons, dtype=object), dtype="str")})


NONE = rejects([], [])


def known_ids(dataset: ds.Dataset, path: Path) -> pa.Array:
    """The table's borrower ids, as a value set for a scan's filter, in Arrow's own memory. A
    scan's clean-up can run on Arrow's threads after the call returns; freeing a buffer that is a
    view of a NumPy array there takes Python's lock, and when that happens as the process exits,
    it aborts ("terminate called without an active exception", exit code 134)."""
    text = holds_text(dataset.schema.field("borrower_id").type)
    ids = read_table(dataset, path, columns=["borrower_id"], filter=~no_id(text))["borrower_id"]
    return ids.combine_chunks()


def no_id(text: bool) -> ds.Expression:
    """A scan's filter for rows without a borrower id: none, or, where ids are text, one that only
    says it is missing ('', spaces, 'NULL': ``cells.BLANKS``), as a blank cell is everywhere else."""
    key = ds.field("borrower_id")
    if not text:
        return key.is_null()
    return key.is_null() | pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(key)),
                                    value_set=pa.array(sorted(BLANKS)))


def not_known(known: pa.Array) -> ds.Expression:
    """A scan's filter for rows whose borrower id is present but not one of ``known`` (the ids of
    ``known_ids``). Integer ids that fill their range without a gap, as a sequence or a simulator
    numbers them, make it a range test, which Parquet's row-group statistics mostly answer without
    decoding a row (at 1M borrowers the set lookup cost 6 CPU seconds, on a core the scoring
    workers wanted); other ids are looked up in the set."""
    key = ds.field("borrower_id")
    if len(known) and pa.types.is_integer(known.type):
        low, high = (v.as_py() for v in pc.min_max(known).values())
        if high - low + 1 == pc.count_distinct(known).as_py():
            return key.is_valid() & ((key < low) | (key > high))
    return ~no_id(holds_text(known.type)) & ~key.isin(known)


def _not_numbers(dataset: ds.Dataset, path: Path, column: str, shown: int = 3) -> str:
    """How many rows of a text ``column`` hold something that is not a number, and the first few
    (borrower id and value), so that the file can be fixed without a search."""
    frame = read_frame(dataset, path, columns=list(dict.fromkeys(["borrower_id", column])))
    values = frame[column]
    if column == "borrower_id":
        bad = pd.to_numeric(values, errors="coerce").isna().to_numpy() & values.notna().to_numpy()
    else:  # a blank cell (or 'NULL') of a feature is a missing value; '2,5' a number in a ';' file
        bad = pd.notna(parse_numbers(values, column, decimal_mark(dataset))[1])
    if not bad.any():
        return ""
    header = np.flatnonzero((values.astype("str").str.strip() == column).to_numpy())
    if header.size:  # two exports joined, the second with its header
        return (f"; the header is written again as data rows {(header[:3] + 1).tolist()}"
                + (f" and {header.size - 3} more" if header.size > 3 else "")
                + " (counted from 1 below the first): files joined with their headers? Remove them")
    first = frame[bad].head(shown)
    examples = ", ".join(quoted(v) if column == "borrower_id" else f"borrower {_id_text(b)} {quoted(v)}"
                         for b, v in zip(first["borrower_id"], first[column], strict=True))
    return f"; {int(bad.sum())} rows are not numbers: {examples}"


@functools.lru_cache(maxsize=32)
def _text_not_numbers(path: Path, column: str, stamp: tuple) -> str:
    """``_not_numbers`` of a text column, once per file version (``stamp``), not for every batch's
    reader of the file. A CSV's ids are read as written, so the message names "000000080" so."""
    return _not_numbers(as_text(path, "borrower_id") if is_csv(path) else open_dataset(path), path, column)


def _id_text(borrower_id: object) -> str:
    """A borrower id as the file wrote it: a column with a blank id is read as floats, and
    "677.0" is not an id anyone can search for."""
    if pd.isna(borrower_id):
        return "(no id)"
    if isinstance(borrower_id, str) and len(borrower_id) > 1 and borrower_id.startswith("0"):
        return borrower_id  # "000000080" as written, not 80
    number = pd.to_numeric(borrower_id, errors="coerce")
    return str(int(number)) if pd.notna(number) and float(number).is_integer() else str(borrower_id)


def _schema(name: str) -> pa.Schema:
    return pa.schema([(c.name, ARROW_TYPES[c.dtype]) for c in TABLES[name].columns])


def _csv_schema(name: str, where: Path, text_ids: bool) -> pa.Schema:
    """The types a raw table's CSV is read with: every column but the id as text, parsed per row
    (``RawTables._conform``), so that a bad date or number rejects its borrower, not the file,
    and numbers read as exports write them ('701.0' where pandas wrote a column with one blank,
    '¥12,500.00'). Ids are text where the borrowers table's are (``ids_are_text``); else they stay
    integers (floats lose digits above 2**53) unless the file writes them as decimals."""
    types = {c.name: pa.string() for c in TABLES[name].columns}
    if "borrower_id" in types and not text_ids:
        inferred = open_dataset(where, "csv").schema
        found = inferred.field("borrower_id").type if "borrower_id" in inferred.names else pa.int64()
        # text ids are read as text, for _check_ids to name the rows that are not numbers
        types["borrower_id"] = found if is_text(found) or pa.types.is_floating(found) else pa.int64()
    return pa.schema(list(types.items()))


def _all_whole(values: pd.Series) -> bool:
    """True for floats that are all whole numbers (none missing): safe to cast to integers."""
    if not pd.api.types.is_float_dtype(values):
        return False
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    return bool(np.all(np.floor(numbers) == numbers))


def _check_ids(dataset: ds.Dataset, path: Path) -> None:
    """Borrower ids must be whole numbers: integers, or floats that hold only whole values (a
    column with missing ids written by pandas). Anything else cannot be batched by id."""
    kind = dataset.schema.field("borrower_id").type
    if pa.types.is_integer(kind) or pa.types.is_null(kind):
        return
    if not pa.types.is_floating(kind):
        raise ContractError(f"{path}: column 'borrower_id' must hold whole numbers, found {kind}"
                            + (_not_numbers(dataset, path, "borrower_id") if is_text(kind) else ""))
    ids = ds.field("borrower_id")
    lost_digits = pc.abs(ids) >= LARGEST_FLOAT_ID
    broken = ids.is_valid() & (~pc.is_finite(ids) | (pc.floor(ids) != ids) | lost_digits)
    bad = read_frame(dataset, path, columns=["borrower_id"], filter=broken)["borrower_id"]
    if len(bad):
        raise ContractError(f"{path}: column 'borrower_id' must hold whole numbers; {len(bad)} rows do "
                            f"not, values {bad.head(5).tolist()} (written as decimals, ids must be below "
                            f"2**53, where a float keeps every digit)")


def _check_text_ids(dataset: ds.Dataset, path: Path) -> None:
    """Where the borrowers table's ids are text, every table's must be: no number equals one."""
    kind = dataset.schema.field("borrower_id").type
    if not is_text(kind):
        raise ContractError(f"{path}: column 'borrower_id' holds {kind}, but the borrowers table's ids "
                            "are text: write every table's ids the same way")


def _id_ranges(ids: pd.Series, size: int) -> list[tuple[int, int]] | list[tuple[str, str]]:
    """Consecutive (first, last) id ranges of ``size`` distinct borrowers each; text ids in the
    order Arrow compares them (by code point)."""
    if not pd.api.types.is_numeric_dtype(ids):
        unique = np.unique(ids[~blank_cells(ids)].astype("str").to_numpy(dtype=object))
        return [(str(unique[lo]), str(unique[min(lo + size, unique.size) - 1]))
                for lo in range(0, unique.size, size)]
    ordered = np.sort(ids.dropna().astype("int64").to_numpy())
    unique = ordered[np.r_[True, ordered[1:] != ordered[:-1]][:ordered.size]]  # np.unique hashes: 15x slower
    return [(int(unique[lo]), int(unique[min(lo + size, unique.size) - 1]))
            for lo in range(0, unique.size, size)]


class TextIds:
    """A batch's text ids as the integers the features and checks work with (their rank in the
    batch), and back: ``keys[number]`` is the text."""

    def __init__(self, ids: pd.Series):
        self.keys = np.unique(ids.dropna().astype("str").to_numpy(dtype=object))

    def numbered(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with its ids numbered; rows of ids not in the batch (no borrower's, counted
        by ``unattributed``) left out."""
        codes = pd.Index(self.keys).get_indexer(frame["borrower_id"].astype("str"))
        return frame[codes >= 0].assign(borrower_id=codes[codes >= 0].astype("int64"))

    def written(self, batch: Batch) -> Batch:
        """The batch with its ids as the file wrote them (a batch of no borrower with features, in
        which everyone was rejected, has no columns to rename)."""
        if "borrower_id" in batch.features:
                batch.features = batch.features.assign(borrower_id=self.keys[batch.features["borrower_id"]
                                                                         .to_numpy(dtype="int64")])
        batch.rejects = _text_rejects(batch.rejects, self.keys)
        return batch


def _text_rejects(rejected: pd.DataFrame, keys: np.ndarray) -> pd.DataFrame:
    """Rejects with their ids as text (``keys[number]``); a missing id stays missing."""
    numbers = rejected["borrower_id"]
    text = np.full(len(numbers), None, dtype=object)
    given = numbers.notna().to_numpy()
    text[given] = keys[numbers[given].to_numpy(dtype="int64")]
    return rejected.assign(borrower_id=pd.array(text, dtype="str"))


def _in_range(first: int | str, last: int | str, text: bool) -> ds.Expression:
    """The rows of a batch's ids; a text id that only says it is missing is no batch's (``no_id``)."""
    inside = (ds.field("borrower_id") >= first) & (ds.field("borrower_id") <= last)
    return inside & ~no_id(True) if text else inside


def _missing_ids(dataset: ds.Dataset, path: Path, text_ids: bool) -> pd.DataFrame:
    """Rows without a borrower id belong to no range; each is one rejected borrower, but for rows
    of nothing at all (``_blank_rows``), which hold no borrower: they had been counted as borrowers
    in and rejected without an id that could find them."""
    n = _count(dataset, path, no_id(text_ids)) - _blank_rows(dataset, path, text_ids)
    missing = rejects([None] * n, [NO_ID] * n)
    return _text_rejects(missing, np.array([], dtype=object)) if text_ids else missing


def _blank_rows(dataset: ds.Dataset, path: Path, text_ids: bool) -> int:
    """Rows whose every cell is blank (``EMPTY_ROW``). Only rows without an id can be: Parquet's
    statistics of the id spare the scan of the other columns where every id is there."""
    blank = functools.reduce(operator.and_, (ds.field(c).is_null() for c in dataset.schema.names
                                             if c != "borrower_id"), no_id(text_ids))
    return _count(dataset, path, blank)


def _count(dataset: ds.Dataset, path: Path, where: ds.Expression) -> int:
    try:
        return dataset.count_rows(filter=where)
    except READ_ERRORS as err:
        raise unreadable(path, err, dataset) from err


def _is_number(kind: pa.DataType) -> bool:
    """Numbers (decimals too, as databases export money), all missing, or true/false (a flag as
    pandas writes a bool column: 1 and 0, as the pyfunc reads it too)."""
    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)
            or pa.types.is_boolean(kind) or pa.types.is_decimal(kind))


def _older(names: list[str], missing: list[str], expected: list[str]) -> str:
    """Why a features file that has the catalogue's older features lacks only newer ones: it was
    computed before the catalogue grew, and the model after. Not those it writes otherwise (' age'),
    whose message says so."""
    newer = [c for c in missing if c not in respelt(names, missing, expected)]
    if newer and any(c in BY_NAME for c in names) and all(c in BY_NAME for c in newer):
        # no command named: `limitjump features` takes them at the scoring date, while a decision
        # (`limitjump recommend`) wants them at the jump, and following that advice had failed
        return (", features the file predates: compute them again with this version, give the raw "
                "tables instead (they are computed as the model needs them), or use the model "
                "version the file was made for")
    return ""


def _feature_type(inferred: pa.DataType, text: bool) -> pa.DataType:
    """The type a CSV feature is read as: text for a category, a flag's true/false as such, any
    other number as a float."""
    if text:
        return pa.string()
    return pa.bool_() if pa.types.is_boolean(inferred) else pa.float64()


# ---- row-level checks, shared by both inputs --------------------------------------------------------

def row_rejects(frame: pd.DataFrame, table: str, label: str, source: Path) -> pd.DataFrame:
    """(row, reason) of every failing row of ``frame``, the reason naming ``label``.column; stops
    with ``source`` named on any failure of the file itself (a missing column, a wrong dtype).
    A frame already in the contract's columns and dtypes (the usual batch, once conformed) is
    checked on whole columns (``contract.violations``)."""
    return row_reasons(violations(frame, table), TABLES[table], label, source)


def check_features(frame: pd.DataFrame, table: Table, label: str, source: Path,
                   today: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of a features frame that keep every rule of the features contract, and
    (borrower_id, reason) of the others: the same rules whether a features file gave the rows
    or the features were computed from raw tables."""
    found = row_reasons(row_violations(frame, table), table, label, source)
    failed = pd.concat([
        pd.DataFrame({"borrower_id": frame["borrower_id"].to_numpy()[found["row"].to_numpy()],
                      "reason": found["reason"].to_numpy()}),
        future_scoring(frame["borrower_id"], frame["scoring_date"], today),
        *[due_out_of_reach(frame, c) for c in DUE_DATES]])
    failed = failed.drop_duplicates("borrower_id")
    if failed.empty:  # the usual case: no copy
        return frame, NONE
    keep = ~frame["borrower_id"].isin(failed["borrower_id"])
    return frame[keep.to_numpy()].reset_index(drop=True), rejects(failed["borrower_id"], failed["reason"])


# ---- a features file -------------------------------------------------------------------------------

@dataclass
class FeaturesFile:
    """A features file (or folder of them): one row per borrower, the model's columns."""

    path: Path
    features: list[str]
    today: pd.Timestamp
    text: tuple[str, ...] = ()  # the model's text categories: read as text, any value allowed
    # with a team's own tables, what source.tables calls the id and the date: named when the file
    # has them in place of the pipeline's names
    team_names: dict[str, str] = field(default_factory=dict)
    # days after the jump the model reads features at; a row whose jump_date says otherwise is
    # rejected (None: not checked)
    observation_days: int | None = None
    never_missing: tuple[str, ...] = ()  # numbers the model may not be given blank
    dataset: ds.Dataset = field(init=False)
    table: Table = field(init=False)
    text_ids: bool = field(init=False)
    numbers_as_text: list[str] = field(init=False, default_factory=list)  # features, all numbers
    codes_as_numbers: list[str] = field(init=False, default_factory=list)  # categories, numbers

    def _team_note(self, names: list[str], missing: list[str]) -> str:
        """Why a team's file to score lacks the pipeline's id or date: it uses its own names."""
        own = [f"{self.team_names[c]!r} for {c!r}" for c in missing
               if c in self.team_names and self.team_names[c] in names]
        if not own:
            return ""
        return (f"; the file uses source.tables' names ({', '.join(own)}): rename them, or score it "
                "through the pipeline (source.tables.score, then dvc repro), which renames them")

    def __post_init__(self) -> None:
        self.text_ids = ids_are_text(self.path)
        try:
            self.dataset = open_dataset(self.path)
            if is_csv(self.path):
                # CSV types are inferred from the first block only: a feature empty there (null) or
                # whole there (int) would fail on later rows, so numeric features are read as float,
                # text categories as text (codes such as 1, 2 too), and dates as text, parsed
                # per row (a bad one rejects its row, not the file; Arrow reads '+08:00' as UTC,
                # the day before, where the wall time is the date the lender's system recorded)
                inferred = self.dataset.schema
                types = pa.schema(
                    [(c, _feature_type(inferred.field(c).type, c in self.text)) for c in self.features
                     if c in inferred.names and (c in self.text or _is_number(inferred.field(c).type))]
                    + [(c, pa.string()) for c in ("scoring_date", "jump_date", *DUE_DATES)
                       if c in inferred.names]
                    + ([("borrower_id", pa.string())] if self.text_ids else []))
                self.dataset = open_dataset(self.path, "csv", types)
            names = self.dataset.schema.names
        except READ_ERRORS as err:
            raise unreadable(self.path, err) from err
        expected = ["borrower_id", "scoring_date", *self.features]
        missing = [c for c in expected if c not in names]
        if missing:
            note = _older(names, missing, expected) + self._team_note(names, missing) + sheet_note(self.path)
            said = missing_columns(names, missing, "missing columns", note, expected)
            raise ContractError(f"{self.path}: {said}")
        for c in self.features if self.text_ids else ["borrower_id", *self.features]:
            kind = self.dataset.schema.field(c).type
            if c in self.text and _is_number(kind) and not pa.types.is_boolean(kind):
                # codes written as numbers (a Parquet int column of 1, 2, 3) are the codes, as a
                # CSV's are read as text
                self.codes_as_numbers.append(c)
                continue
            if c in self.text and not is_text(kind):
                raise ContractError(f"{self.path}: column '{c}' must be text (the model learned it as "
                                    f"categories), found {kind}")
            if c not in self.text and not _is_number(kind):
                # numbers stored as text (a sheet's text cells, a database's VARCHAR) are numbers
                not_numbers = is_text(kind) and _text_not_numbers(self.path, c, file_stamp(self.path))
                if not_numbers == "":
                    self.numbers_as_text.append(c)
                    continue
                raise ContractError(f"{self.path}: column '{c}' must be numeric, found {kind}"
                                    + (not_numbers or "") + codes_hint(c))
        if not self.text_ids:
            _check_ids(self.dataset, self.path)
        self.table = features_table(self.features, self.text, self.never_missing)

    def ranges(self, size: int) -> list[tuple[int, int]]:
        # a file of no rows (a day nobody was up for review) has no batch: 0 in = 0 out
        return _id_ranges(read_frame(self.dataset, self.path, columns=["borrower_id"])["borrower_id"], size)

    def load(self, first: int, last: int) -> Batch:
        """Rows of borrowers ``first``..``last`` checked against the features contract (all rows
        of an id fall in the same range, so duplicates are seen here)."""
        frame = read_frame(self.dataset, self.path, filter=_in_range(first, last, self.text_ids))
        text = TextIds(frame["borrower_id"]) if self.text_ids else None
        if text:
            frame = text.numbered(frame)
        if not frame["borrower_id"].is_monotonic_increasing:
            # rows in id order, as the batches are: the file's own order would hold within a batch
            # only, and the output's bytes would change with the batch size
            frame = frame.sort_values("borrower_id", kind="stable", ignore_index=True)
        scoring, why = parse_dates(frame["scoring_date"], "scoring_date", required=True)
        # the jump and due dates are optional (a team's file may not have them)
        none = pd.Series(pd.NaT, index=frame.index)
        jump, why_jump = parse_dates(frame.get("jump_date", none), "jump_date", required=False)
        dues = {c: parse_dates(frame.get(c, none), c, required=False) for c in DUE_DATES}
        dup = frame["borrower_id"].duplicated(keep=False).to_numpy()
        reasons = np.where(dup, "borrower_id: " + DUPLICATE_BORROWER,
                           _first_reason(why, why_jump, *(why_due for _, why_due in dues.values())))
        bad = pd.notna(reasons)
        for c in self.numbers_as_text:  # every value a number or blank (__post_init__)
            frame[c] = parse_numbers(frame[c], c, decimal_mark(self.dataset))[0]
        for c in self.codes_as_numbers:
            frame[c] = codes_as_text(frame[c])
        wanted = {"borrower_id": "int64",
                  **{c: "str" if c in self.text else "float64" for c in self.features}}
        # the usual file has no bad row and the right types: no copy of a shard's feature columns
        keep = (frame[~bad] if bad.any() else frame).astype(
            {c: kind for c, kind in wanted.items() if frame[c].dtype != kind})
        keep["scoring_date"] = scoring[~bad]
        for c, (due, _) in dues.items():
            keep[c] = due[~bad]
        if "jump_date" in keep:
            keep["jump_date"] = jump[~bad]
        scored, failed = check_features(keep, self.table, "", self.path, self.today)
        scored, late = self._taken_off_day(scored)
        rejected = pd.concat([rejects(frame["borrower_id"][bad], reasons[bad]), failed, late])
        batch = Batch(scored, rejected.sort_values("borrower_id").reset_index(drop=True), len(frame))
        return text.written(batch) if text else batch

    def _taken_off_day(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows whose features were taken on the day after the jump the model reads them at,
        and the others rejected (all kept when the file has no jump_date): a decision made at the
        jump on features of a month later would read the increase's own weeks, a score on
        features of the jump day would read none of them, and neither would say so."""
        if self.observation_days is None or "jump_date" not in frame:
            return frame, NONE
        days = days_after_jump(frame)
        off = (days.notna() & (days != self.observation_days)).to_numpy()
        if not off.any():
            return frame, NONE
        wanted = ("the jump_date, as a decision at the jump needs" if self.observation_days == 0 else
                  f"{self.observation_days} days after jump_date (label.observation_days), as the "
                  "model needs")
        why = (f"scoring_date: not {wanted} (value " + days[off].astype("int64").astype("str")
               + " days after it)")
        return frame[~off].reset_index(drop=True), rejects(frame["borrower_id"][off], why)

    def orphans(self) -> pd.DataFrame:
        return _missing_ids(self.dataset, self.path, self.text_ids)

    def unattributed(self) -> dict[str, dict[str, int]]:
        """A features file has no other tables: every row is a borrower, but for rows of nothing."""
        blank = _blank_rows(self.dataset, self.path, self.text_ids)
        return {self.path.name: {EMPTY_ROW: blank}} if blank else {}


def _first_reason(*reasons: np.ndarray) -> np.ndarray:
    """Per row, the first of ``reasons`` (arrays of text or None) that gives one, else None."""
    out = np.full(len(reasons[0]), None, dtype=object)
    for why in reversed(reasons):
        out = np.where(pd.notna(why), why, out)
    return out


# ---- raw tables ------------------------------------------------------------------------------------

class RawTables:
    """A folder of raw tables (``<table>/`` folders of Parquet, or ``<table>.parquet|.csv``)."""

    def __init__(self, path: Path, settings: FeatureSettings, features: list[str], today: pd.Timestamp,
                 observation_days: int, never_missing: tuple[str, ...] = ()):
        """The model's ``features``, computed with ``settings`` ``observation_days`` after each jump
        (``never_missing``: those it may not be given blank)."""
        self.path, self.settings, self.today = path, settings, today
        self.observation_days = observation_days
        self.table = features_table(features, never_missing=never_missing)
        self.tables = {name: self._locate(name) for name in (*RAW_TABLES, "maintenance_windows")}
        self.text_ids = ids_are_text(self.tables["borrowers"])
        self.datasets = {name: self._open(name, where) for name, where in self.tables.items()}
        windows = "maintenance_windows"
        self.windows, unreadable = self._conform(read_frame(self.datasets[windows], self.tables[windows]),
                                                 windows)
        found = pd.concat([unreadable, row_rejects(self.windows, windows, f"{windows}.",
                                                   self.tables[windows])])
        if not found.empty:  # no borrower owns a window: a bad one is a bad file
            row = data_row(self.datasets[windows], self.tables[windows], int(found["row"].iloc[0]))
            raise ContractError(f"{row}: {found['reason'].iloc[0]}")

    def _locate(self, name: str) -> Path:
        found = [candidate for candidate in (self.path / name, self.path / f"{name}.parquet",
                                             *(self.path / f"{name}{ending}" for ending in CSV_ENDINGS))
                 if candidate.exists()]
        if len(found) > 1:  # reading one would leave the other's rows out without a word
            raise ContractError(f"{self.path}: table '{name}' is given {len(found)} times, as "
                                f"{', '.join(map(str, found))}: keep one")
        if found:
            return found[0]
        header = ",".join(TABLES[name].names)
        raise ContractError(f"{self.path}: table '{name}' is missing (expected {name}/, "
                            f"{name}.parquet, {name}.csv or {name}.csv.gz); a lender without such "
                            f"records gives the table with no rows, as {name}.csv holding the one line "
                            f"{header}")

    def _open(self, name: str, where: Path) -> ds.Dataset:
        try:
            schema = _csv_schema(name, where, self.text_ids) if is_csv(where) else _schema(name)
            dataset = open_dataset(where, schema=schema)
            if self.text_ids and "borrower_id" in dataset.schema.names and \
                    pa.types.is_uint64(dataset.schema.field("borrower_id").type):
                dataset = with_text_ids(dataset)  # hashes, some beyond int64 in the borrowers table
            names = dataset.schema.names
        except READ_ERRORS as err:
            raise unreadable(where, err) from err
        missing = [c for c in TABLES[name].names if c not in names]
        if missing:
            lacks = missing_columns(names, missing, f"table '{name}' lacks columns",
                                    expected=TABLES[name].names)
            raise ContractError(f"{where}: {lacks}")
        if "borrower_id" in names:
            (_check_text_ids if self.text_ids else _check_ids)(dataset, where)
        return dataset

    def _conform(self, frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Safe casts to the contract's dtypes (other int widths, date resolutions, object
        strings, whole float ids), and dates from text; anything else is left for the contract to
        report. Also (row, reason) of every text that is not a date."""
        out = frame[TABLES[name].names].copy()
        unreadable = []
        for col in TABLES[name].columns:
            values = out[col.name]
            if col.dtype in NUMBERS and col.name != "borrower_id" and pd.api.types.is_string_dtype(values):
                values, why = parse_numbers(values, f"{name}.{col.name}", decimal_mark(self.datasets[name]))
                out[col.name] = values
                unreadable.append(_rows_with(why))
            if col.dtype == "datetime64[s]" and pd.api.types.is_datetime64_any_dtype(values):
                out[col.name] = as_dates(values)
            elif col.dtype == "datetime64[s]" and (pd.api.types.is_string_dtype(values)
                                                   or is_integer_dtype(values)):
                # text, or a date key as a warehouse keeps it (20250317), as a CSV or a features file
                out[col.name], why = parse_dates(values, f"{name}.{col.name}", required=False)
                unreadable.append(_rows_with(why))
            elif col.dtype == "int64" and (col.name == "borrower_id" or is_integer_dtype(values)
                                           or _all_whole(values)):
                # float ids were checked whole when the table was opened; a batch has no missing id
                out[col.name] = values.astype("int64")
            elif col.dtype == "float64" and pd.api.types.is_numeric_dtype(values) and not \
                    pd.api.types.is_bool_dtype(values):
                out[col.name] = values.astype("float64")
            elif col.dtype == "str" and (pd.api.types.is_string_dtype(values) or values.dtype == object):
                # a cell that only says it is missing ('', spaces, 'NULL') is missing, as in any column
                text = values.astype("str").where(~blank_cells(values), None).astype("str")
                out[col.name] = as_codes(text, col.allowed) if col.allowed else text
        # a row's first unreadable value in column order is its reason
        found = pd.concat(unreadable) if unreadable else pd.DataFrame({"row": [], "reason": []})
        return out, found.sort_values("row", kind="stable").drop_duplicates("row").astype({"row": "int64"})

    def ranges(self, size: int) -> list[tuple[int, int]]:
        ids = read_frame(self.datasets["borrowers"], self.tables["borrowers"], columns=["borrower_id"])
        return _id_ranges(ids["borrower_id"], size)  # no borrower, no batch, as a features file

    def orphans(self) -> pd.DataFrame:
        return _missing_ids(self.datasets["borrowers"], self.tables["borrowers"], self.text_ids)

    def unattributed(self) -> dict[str, dict[str, int]]:
        """Rows of the other tables that belong to no borrower, counted per table and reason. A
        table none of whose rows with an id belongs to a borrower stops the run: its ids are
        written otherwise than the borrowers table's (an upper-case UUID, a padded CHAR), and
        scoring without the table had moved 198 of 200 scores, exit 0."""
        known = known_ids(self.datasets["borrowers"], self.tables["borrowers"])
        stranger = not_known(known)
        counts = {name: self._not_borrowers(name, known, stranger) for name in RAW_TABLES}
        return {name: {reason: n for reason, n in found.items() if n}
                for name, found in counts.items() if any(found.values())}

    def _not_borrowers(self, name: str, known: pa.Array, stranger: ds.Expression) -> dict[str, int]:
        """``unattributed``'s counts of one table (the borrowers table's rows without an id are
        rejected borrowers, ``orphans``: only its blank rows are counted here)."""
        dataset, where = self.datasets[name], self.tables[name]
        counts = {EMPTY_ROW: _blank_rows(dataset, where, self.text_ids)}
        if name == "borrowers":
            return counts
        counts[NO_ID] = _count(dataset, where, no_id(self.text_ids)) - counts[EMPTY_ROW]
        counts[NOT_A_BORROWER] = _count(dataset, where, stranger)
        if len(known) and counts[NOT_A_BORROWER] == _count(dataset, where, ~no_id(self.text_ids)) > 0:
            raise ContractError(self._written_otherwise(name, stranger, known, counts[NOT_A_BORROWER]))
        return counts

    def _written_otherwise(self, name: str, stranger: ds.Expression, known: pa.Array, rows: int) -> str:
        written = self.datasets[name].head(1000, columns=["borrower_id"], filter=stranger).column(0)
        theirs, ours = list(dict.fromkeys(written.to_pylist()))[:3], known[:3].to_pylist()
        return (f"{self.tables[name]}: none of its {rows:,} rows belongs to a borrower of "
                f"{self.tables['borrowers']}: its ids, as {', '.join(map(quoted, theirs))}, are not the "
                f"borrowers table's, as {', '.join(map(quoted, ours))}. Write every table's ids the same "
                "way (the same capitals, no padding spaces, the same leading zeros)")

    def load(self, first: int, last: int) -> Batch:
        """The borrowers ``first``..``last``: every row checked against its table's contract,
        their tables against each other, then their features against the features contract."""
        tables, failed, text = {}, [], None
        for name in RAW_TABLES:  # the borrowers table first: its ids are the batch's
            frame = read_frame(self.datasets[name], self.tables[name],
                               filter=_in_range(first, last, self.text_ids))
            if self.text_ids:
                text = text or TextIds(frame["borrower_id"])
                frame = text.numbered(frame)
            tables[name], unreadable = self._conform(frame, name)
            if name == "limit_events" and self.observation_days == 0:
                tables[name] = _not_yet_granted(tables[name])
            # a date that could not be read is its row's first reason, before the missing value
            found = pd.concat([unreadable, row_rejects(tables[name], name, f"{name}.", self.tables[name])])
            failed.append(pd.DataFrame({"borrower_id": tables[name]["borrower_id"].to_numpy()[found["row"]],
                                        "reason": found["reason"].to_numpy()}))
        failed.append(history_violations(tables, self.observation_days, self.today))
        rows_of = tables["borrowers"]["borrower_id"].value_counts()
        bad = pd.concat(failed).drop_duplicates("borrower_id")  # a borrower's first failure
        clean = {n: f[~f["borrower_id"].isin(bad["borrower_id"])] for n, f in tables.items()}
        clean["maintenance_windows"] = self.windows
        computed, no_jump = _features_or_rejects(clean, self.settings, self.observation_days)
        scored, unfit = (check_features(computed, self.table, "features.", self.path, self.today)
                         if len(computed) else (computed, NONE))
        rejected = pd.concat([rejects(bad["borrower_id"], bad["reason"]), no_jump, unfit])
        rejected = rejected[rejected["borrower_id"].isin(rows_of.index)].sort_values("borrower_id")
        # borrowers in are rows of the borrowers table: one listed twice is rejected twice
        rejected = rejected.reset_index(drop=True)
        rejected = rejected.loc[rejected.index.repeat(rejected["borrower_id"].map(rows_of))]
        batch = Batch(scored, rejected.reset_index(drop=True), len(tables["borrowers"]))
        return text.written(batch) if text else batch


def _rows_with(why: np.ndarray) -> pd.DataFrame:
    """(row, reason) of every row that has a reason."""
    rows = np.flatnonzero(pd.notna(why))
    return pd.DataFrame({"row": rows, "reason": why[rows]})


def _not_yet_granted(limits: pd.DataFrame) -> pd.DataFrame:
    """A decision at the jump comes before its new limit exists: an increase row's blank new limit
    reads as the old one, which no decision feature reads (``decision.NOT_AT_DECISION``), rather
    than rejecting the borrower for a value it cannot yet have."""
    blank = (limits["event_type"] == "increase") & limits["new_limit"].isna()
    if not blank.any():
        return limits
    return limits.assign(new_limit=limits["new_limit"].where(~blank, limits["old_limit"]))


def _features_or_rejects(tables: dict, settings: FeatureSettings,
                         observation_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of every borrower that has a jump; those without one are rejected."""
    if tables["borrowers"].empty:
        return pd.DataFrame(), NONE
    try:
        return build_features(tables, observation_days, settings), NONE
    except MissingJump as err:
        ids = err.borrower_ids
        missing = rejects(ids, ["limit_events.event_type: no limit increase"] * len(ids))
        rest = {n: (f[~f["borrower_id"].isin(ids)] if "borrower_id" in f else f)
                for n, f in tables.items()}
        if rest["borrowers"].empty:
            return pd.DataFrame(), missing
        return build_features(rest, observation_days, settings), missing
