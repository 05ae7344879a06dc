"""What a scoring run reads and writes, and how a team's tables are read for the stages that
train on them: raw tables or a features file, read in batches of borrower
ids and checked row by row against the data contract, and the files the run writes.

Every input row is accounted for. A borrower (a row of the borrowers table or of the features
file, a row without an id included) is scored or rejected with the column and the reason; a row of
another table that belongs to no borrower (no id, or an id the borrowers table lacks) is counted
in the run's summary. A problem with a file itself (unreadable, a missing or mistyped column,
fractional ids, text ids in one table and numbers in another) stops the run with the file and
the column named. Ids a lender writes as text ('C0012', '000123') are carried as that text.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pandas.api.types import is_integer_dtype

from pipeline import io
from pipeline.catalog import BY_NAME, DUE_DATES, codes_hint
from pipeline.config import Params, TablesSettings
from pipeline.contract import (
    FLOAT_MAX,
    LARGEST_FLOAT_ID,
    LEADING_ZERO,
    RAW_TABLES,
    TABLES,
    ContractError,
    Table,
    borrower_ids,
    due_before_scoring,
    features_table,
    future_scoring,
    history_violations,
    row_violations,
    violations,
)
from pipeline.errors import UsageError
from pipeline.features import MissingJump, build_features
from pipeline.readers import (
    CSV_ENDINGS,
    READ_ERRORS,
    as_codes,
    as_dates,
    codes_as_text,
    days_after_jump,
    decimal_mark,
    file_stamp,
    is_csv,
    open_dataset,
    parse_dates,
    parse_numbers,
)

ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string(),
               "datetime64[s]": pa.timestamp("s")}
NUMBERS = ("int64", "float64")
OUTPUT_FORMATS = (".parquet", ".csv")
NO_ID = "borrower_id: missing"
NOT_A_BORROWER = "borrower_id: not in the borrowers table"


@dataclass
class Batch:
    features: pd.DataFrame
    rejects: pd.DataFrame
    borrowers_in: int


def reject_reasons(rejects: pd.DataFrame) -> dict[str, int]:
    """Rejected borrowers per reason, the offending value left out ("repayments.channel: fails
    isin([...])"), so that one cause of many rejects reads as one line."""
    if rejects.empty:
        return {}
    kinds = rejects["reason"].astype(str).str.replace(r" \(value .*\)$", "", regex=True)
    return {str(k): int(n) for k, n in kinds.value_counts().items()}


def check_rejected_share(summary: dict, limit: float) -> None:
    """Stop (after the outputs are written, for their reasons) when more than ``limit`` of the
    borrowers were rejected: a column in a format the contract does not read rejects every
    borrower, and a batch job must not pass that off as a scored batch."""
    n, rejected = summary["borrowers_in"], summary["rejected"]
    if n and rejected / n > limit:
        commonest = list(summary["reject_reasons"].items())[:3]
        top = "; ".join(f"{reason} ({count})" for reason, count in commonest)
        raise ContractError(f"{summary['input']}: {rejected} of {n} borrowers rejected ({rejected / n:.1%}, "
                            f"more than score.max_rejected_share {limit:.0%}); most for: {top}. The "
                            f"rejects, with every borrower's reason, are in {summary['rejects']}")


def open_source(path: Path, p: Params, features: list[str], text: tuple[str, ...],
                today: pd.Timestamp, observation_days: int | None = None) -> RawTables | FeaturesFile:
    """The input at ``path`` for a model reading ``features``, of which ``text`` are categories it
    learned as text; ``today`` is the run date, after which no record may be dated. Raw tables'
    features are taken ``observation_days`` after the jump (default: the label's; 0 for the
    increase decision, at the jump itself)."""
    if is_raw(path):
        return RawTables(path, p, features, today, observation_days)
    tables = p.source.tables
    team = ({"borrower_id": tables.id_column, "scoring_date": tables.date_column}
            if p.source.kind == "tables" else {})
    # a team's own features are taken when the team takes them: only the decision's day is sure
    days = observation_days if observation_days is not None or team else p.label.observation_days
    return FeaturesFile(path, features, today, text, team, days)


def is_raw(path: Path) -> bool:
    """A folder holding any table of the contract (then a missing table is reported by name)."""
    return path.is_dir() and any((path / f"{name}{ext}").exists()
                                 for name in (*RAW_TABLES, "maintenance_windows")
                                 for ext in ("", ".parquet", *CSV_ENDINGS))


# ---- the outputs ---------------------------------------------------------------------------------

def output_paths(output: Path) -> dict[str, Path]:
    """The scores, the rejected borrowers beside them and the run's summary."""
    return {"scores": output, "rejects": output.with_name(f"{output.stem}.rejects{output.suffix}"),
            "summary": output.with_name(f"{output.stem}.summary.json")}


def check_paths(input: Path, output: Path) -> None:
    """Refuse, before any work, an input that does not exist and outputs that would overwrite
    an input, are folders, or cannot be written."""
    if not input.exists():
        raise UsageError(f"{input}: no such file or folder")
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"{output}: the scores file must end in {' or '.join(OUTPUT_FORMATS)}")
    source = input.resolve()
    for path in output_paths(output).values():
        target = path.resolve()
        if target == source or source in target.parents:
            raise UsageError(f"{path}: an output cannot be the input or inside it ({input})")
        if path.is_dir():
            raise UsageError(f"{path}: is a folder; give the path of a file to write")
    _check_summary_free(output)
    _check_writable(output.parent)


def _check_summary_free(output: Path) -> None:
    """Refuse an output whose summary would replace that of scores of another format beside it
    (scores.csv after scores.parquet share scores.summary.json), leaving those without theirs."""
    summary = output_paths(output)["summary"]
    try:
        described = Path(json.loads(summary.read_text())["output"]).name
    except (OSError, ValueError, KeyError, TypeError):
        return
    if described != output.name and (output.parent / described).exists():
        raise UsageError(f"{summary} describes {output.parent / described}, which a run to {output} would "
                         f"leave without its summary: name the output otherwise, or remove {described} first")


def _check_writable(folder: Path) -> None:
    """Write and remove a probe file: permissions alone do not tell (root, read-only mounts)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"{folder}: cannot write the outputs there ({err.strerror or err})") from err


ROW_GROUP = 65_536  # rows in each row group of an output


class Writer:
    """Appends frames to one Parquet or CSV file. A CSV shows a date as a date (2025-11-18, not
    2025-11-18 00:00:00) in a timestamp column whose every value falls on midnight, and the time
    of day in one where any value has it. Which is which is known only when every batch has come,
    so a CSV's rows go to a Parquet file beside it first and are written out as CSV at the end: a
    time of day in the last batch then changes the column, where deciding on the first batch
    would have to stop the run or drop the time."""

    def __init__(self, path: Path, csv: bool):
        self.path, self.csv, self.writer, self.pending = path, csv, None, []
        self.temporaries = ExitStack()
        self.rows = self.temporaries.enter_context(io.temporary_path(path, ".parquet")) if csv else path

    def __enter__(self) -> Writer:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty and self.writer is not None:
            return
        table = io.to_arrow(frame)
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.rows), table.schema, compression="zstd")
        if len(table):
            self.pending.append(table)
            self._flush(whole_groups_only=True)

    def _flush(self, whole_groups_only: bool) -> None:
        """Write the rows held so far in row groups of ROW_GROUP rows, the last one shorter unless
        ``whole_groups_only``: groups of a fixed size, not one per batch, make the file's bytes the
        same whatever the batch size."""
        held = pa.concat_tables(self.pending) if self.pending else pa.table({})
        written = len(held) // ROW_GROUP * ROW_GROUP if whole_groups_only else len(held)
        if written:  # one contiguous table: Parquet's pages would otherwise end where the batches did
            self.writer.write_table(held.slice(0, written).combine_chunks(), row_group_size=ROW_GROUP)
            self.pending = [held.slice(written)] if written < len(held) else []

    def ensure(self, columns: list[str]) -> None:
        """Even an empty output gets its columns."""
        if self.writer is None:
            self.write(pd.DataFrame({c: pd.array([], dtype="str") for c in columns}))

    def __exit__(self, failed, *exc) -> None:
        with self.temporaries:
            if self.writer is not None:
                if failed is None:
                    self._flush(whole_groups_only=False)
                self.writer.close()
                if self.csv and failed is None:
                    _as_csv(self.rows, self.writer.schema, self.path)


def _as_csv(rows: Path, written: pa.Schema, path: Path) -> None:
    """The Parquet file ``rows`` written to ``path`` as CSV, one row group at a time, in the
    ``written`` schema (Parquet keeps seconds as milliseconds), its all-midnight timestamp columns
    as dates."""
    source = pq.ParquetFile(rows)
    stamps = [f.name for f in written if pa.types.is_timestamp(f.type)]
    groups = range(source.num_row_groups)
    days = [name for name in stamps
            if all(_at_midnight(source.read_row_group(g, [name])[name]) for g in groups)]
    schema = pa.schema([f.with_type(pa.date32()) if f.name in days else f for f in written])
    with pacsv.CSVWriter(str(path), schema) as out:
        for g in groups:
            out.write_table(source.read_row_group(g).cast(schema))


def _at_midnight(column: pa.ChunkedArray) -> bool:
    """Every value (nulls aside) falls on midnight."""
    return pc.all(pc.equal(column, pc.floor_temporal(column, unit="day"))).as_py() is not False


# ---- reading -------------------------------------------------------------------------------------

def rejects(ids, reasons) -> pd.DataFrame:
    """(borrower_id, reason) rows; a missing id stays missing."""
    return pd.DataFrame({"borrower_id": pd.array(np.asarray(ids, dtype=object), dtype="Int64"),
                         "reason": pd.array(np.asarray(reasons, dtype=object), dtype="str")})


NONE = rejects([], [])


def _read(dataset: ds.Dataset, path: Path, **kwargs) -> pd.DataFrame:
    """A (filtered) read; unreadable or mistyped data stops with the file named. A database's
    DATE columns become dates and its DECIMAL amounts floats, not Python objects."""
    table = _table(dataset, path, **kwargs)
    decimals = [i for i, f in enumerate(table.schema) if pa.types.is_decimal(f.type)]
    for i in decimals:
        table = table.set_column(i, table.schema[i].name, table.column(i).cast(pa.float64()))
    return table.to_pandas(date_as_object=False)


def _table(dataset: ds.Dataset, path: Path, **kwargs) -> pa.Table:
    try:
        return dataset.to_table(**kwargs)
    except READ_ERRORS as err:
        raise _unreadable(path, err, dataset) from err


def known_ids(dataset: ds.Dataset, path: Path) -> pa.Array:
    """The table's borrower ids, as a value set for a scan's filter, in Arrow's own memory. A
    scan's clean-up can run on Arrow's threads after the call returns; freeing a buffer that is a
    view of a NumPy array there takes Python's lock, and when that happens as the process exits,
    it aborts ("terminate called without an active exception", exit code 134)."""
    return _table(dataset, path, columns=["borrower_id"],
                  filter=ds.field("borrower_id").is_valid())["borrower_id"].combine_chunks()


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
    return key.is_valid() & ~key.isin(known)


def _unreadable(path: Path, err: Exception, dataset: ds.Dataset | None = None) -> ContractError:
    """The file and Arrow's message; Arrow numbers the CSV column that fails to convert, so name it
    (from the file's own header when the failure came before the dataset could be made)."""
    found = re.search(r"CSV column #(\d+)", str(err))
    column = ""
    if found:
        try:
            names = (dataset or open_dataset(path, "csv")).schema.names
        except READ_ERRORS:
            names = []
        column = f" (column '{names[int(found[1])]}')" if int(found[1]) < len(names) else ""
    return ContractError(f"{path}: cannot read{column}: {err}")


def _not_numbers(dataset: ds.Dataset, path: Path, column: str, shown: int = 3) -> str:
    """How many rows of a text ``column`` hold something that is not a number, and the first few
    (borrower id and value), so that the file can be fixed without a search."""
    frame = _read(dataset, path, columns=list(dict.fromkeys(["borrower_id", column])))
    values = frame[column]
    bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
    if not bad.any():
        return ""
    first = frame[bad].head(shown)
    examples = ", ".join(repr(v) if column == "borrower_id" else f"borrower {_id_text(b)} {v!r}"
                         for b, v in zip(first["borrower_id"], first[column], strict=True))
    return f"; {int(bad.sum())} rows are not numbers: {examples}"


@functools.lru_cache(maxsize=32)
def _text_not_numbers(path: Path, column: str, stamp: tuple) -> str:
    """``_not_numbers`` of a text column, once per file version (``stamp``), not for every batch's
    reader of the file."""
    return _not_numbers(open_dataset(path), path, column)


def _id_text(borrower_id: object) -> str:
    """A borrower id as the file wrote it: a column with a blank id is read as floats, and
    "677.0" is not an id anyone can search for."""
    if pd.isna(borrower_id):
        return "(no id)"
    number = pd.to_numeric(borrower_id, errors="coerce")
    return str(int(number)) if pd.notna(number) and float(number).is_integer() else str(borrower_id)


def _schema(name: str) -> pa.Schema:
    return pa.schema([(c.name, ARROW_TYPES[c.dtype]) for c in TABLES[name].columns])


def _csv_schema(name: str, where: Path, text_ids: bool) -> pa.Schema:
    """The types a raw table's CSV is read with: every column but the id as text, parsed per row
    (``RawTables._conform``), so that a bad date or number rejects its borrower, not the file,
    and numbers read as exports write them ('701.0' where pandas wrote a column with one blank,
    '¥12,500.00'). Ids are text where the borrowers table's are (``_text_ids``); else they stay
    integers (floats lose digits above 2**53) unless the file writes them as decimals."""
    types = {c.name: pa.string() for c in TABLES[name].columns}
    if "borrower_id" in types and not text_ids:
        inferred = open_dataset(where, "csv").schema
        found = inferred.field("borrower_id").type if "borrower_id" in inferred.names else pa.int64()
        # text ids are read as text, for _check_ids to name the rows that are not numbers
        types["borrower_id"] = found if _is_text(found) or pa.types.is_floating(found) else pa.int64()
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
                            + (_not_numbers(dataset, path, "borrower_id") if _is_text(kind) else ""))
    ids = ds.field("borrower_id")
    lost_digits = pc.abs(ids) >= LARGEST_FLOAT_ID
    broken = ids.is_valid() & (~pc.is_finite(ids) | (pc.floor(ids) != ids) | lost_digits)
    bad = _read(dataset, path, columns=["borrower_id"], filter=broken)["borrower_id"]
    if len(bad):
        raise ContractError(f"{path}: column 'borrower_id' must hold whole numbers; {len(bad)} rows do "
                            f"not, values {bad.head(5).tolist()} (written as decimals, ids must be below "
                            f"2**53, where a float keeps every digit)")


def _text_ids(path: Path, column: str = "borrower_id") -> bool:
    """Whether a file's ids are text (``contract.ids_written_as_text``); a CSV reads digits with
    leading zeros as numbers, so its column is read as written to tell. Any other problem is
    left for the file's opening to report."""
    try:
        dataset = open_dataset(path)
        if column not in dataset.schema.names:
            return False
        kind = dataset.schema.field(column).type
        if not (is_csv(path) and pa.types.is_integer(kind)):
            return _is_text(kind) and not pa.types.is_null(kind)
        return _zero_led(path, column, file_stamp(path))
    except READ_ERRORS:
        return False


@functools.lru_cache(maxsize=32)
def _zero_led(path: Path, column: str, stamp: tuple) -> bool:
    """Whether a CSV writes any id with a leading zero: a parse of the whole column, which every
    batch's reader would otherwise repeat (2% of scoring a features file), so kept per file
    version (``stamp``)."""
    return bool(_written_zero_led(path, [column]))


def _written_zero_led(path: Path, columns: list[str]) -> list[str]:
    """Those of a CSV's ``columns`` that write a value with a leading zero, read as written."""
    written = _table(_as_text(path, *columns), path, columns=columns)
    return [c for c in columns if pc.any(pc.match_substring_regex(written[c], LEADING_ZERO)).as_py() is True]


def _as_text(path: Path, *columns: str) -> ds.Dataset:
    """A CSV with ``columns`` read as written and the others as Arrow infers them."""
    return open_dataset(path, "csv", pa.schema([(c, pa.string()) for c in columns]))


def _check_text_ids(dataset: ds.Dataset, path: Path) -> None:
    """Where the borrowers table's ids are text, every table's must be: no number equals one."""
    kind = dataset.schema.field("borrower_id").type
    if not _is_text(kind):
        raise ContractError(f"{path}: column 'borrower_id' holds {kind}, but the borrowers table's ids "
                            "are text: write every table's ids the same way")


def _id_ranges(ids: pd.Series, size: int) -> list[tuple[int, int]] | list[tuple[str, str]]:
    """Consecutive (first, last) id ranges of ``size`` distinct borrowers each; text ids in the
    order Arrow compares them (by code point)."""
    if not pd.api.types.is_numeric_dtype(ids):
        unique = np.unique(ids.dropna().astype("str").to_numpy(dtype=object))
        return [(str(unique[lo]), str(unique[min(lo + size, unique.size) - 1]))
                for lo in range(0, unique.size, size)]
    ordered = np.sort(ids.dropna().astype("int64").to_numpy())
    unique = ordered[np.r_[True, ordered[1:] != ordered[:-1]]]  # np.unique hashes: 15x slower here
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
        codes = pd.Categorical(frame["borrower_id"].astype("str"), categories=self.keys).codes
        return frame[codes >= 0].assign(borrower_id=codes[codes >= 0].astype("int64"))

    def written(self, batch: Batch) -> Batch:
        """The batch with its ids as the file wrote them."""
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


def _in_range(first: int, last: int) -> ds.Expression:
    return (ds.field("borrower_id") >= first) & (ds.field("borrower_id") <= last)


def _missing_ids(dataset: ds.Dataset, path: Path, text_ids: bool) -> pd.DataFrame:
    """Rows without a borrower id belong to no range; each is one rejected borrower."""
    n = _count(dataset, path, ds.field("borrower_id").is_null())
    missing = rejects([None] * n, [NO_ID] * n)
    return _text_rejects(missing, np.array([], dtype=object)) if text_ids else missing


def _count(dataset: ds.Dataset, path: Path, where: ds.Expression) -> int:
    try:
        return dataset.count_rows(filter=where)
    except READ_ERRORS as err:
        raise _unreadable(path, err, dataset) from err


def _is_number(kind: pa.DataType) -> bool:
    """Numbers (decimals too, as databases export money), all missing, or true/false (a flag as
    pandas writes a bool column: 1 and 0, as the pyfunc reads it too)."""
    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)
            or pa.types.is_boolean(kind) or pa.types.is_decimal(kind))


def _missing(names: list[str], missing: list[str], lacks: str, note: str = "") -> str:
    """What a file lacking columns is told: ``lacks``, the missing columns and ``note``, and why
    they are missing when the file names them in other capitals or with spaces around them (a
    database's export: 'BORROWER_ID'). A file missing every column is told of the first
    ``NAMED_COLUMNS`` and the number of the rest, not of 75 names twice."""
    written = {n.strip().lower(): n for n in names}
    renames = [f"{written[c.lower()]!r} for {c!r}" for c in missing if c.lower() in written]
    hint = (f"; the file writes {_first(renames, ', '.join)}: column names are matched exactly, "
            "rename them") if renames else ""
    return f"{lacks} {_first(missing, repr)}{note}{hint}"


NAMED_COLUMNS = 8


def _first(items: list[str], show: Callable[[list[str]], str]) -> str:
    """``show`` of the first ``NAMED_COLUMNS`` items, and how many more there are."""
    more = len(items) - NAMED_COLUMNS
    return show(items[:NAMED_COLUMNS]) + (f" and {more} more" if more > 0 else "")


def _older(names: list[str], missing: list[str]) -> str:
    """Why a features file that has the catalogue's older features lacks only newer ones: it was
    computed before the catalogue grew, and the model after."""
    if any(c in BY_NAME for c in names) and all(c in BY_NAME for c in missing):
        return (", features the file predates: compute it again with this version (limitjump features), "
                "score the raw tables instead, or score with the model version it was made for")
    return ""


def _feature_type(inferred: pa.DataType, text: bool) -> pa.DataType:
    """The type a CSV feature is read as: text for a category, a flag's true/false as such, any
    other number as a float."""
    if text:
        return pa.string()
    return pa.bool_() if pa.types.is_boolean(inferred) else pa.float64()


def _is_text(kind: pa.DataType) -> bool:
    """Text, or Parquet's dictionary-encoded text (pandas categoricals), or all missing."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


# ---- row-level checks, shared by both inputs --------------------------------------------------------

def row_rejects(frame: pd.DataFrame, table: str, label: str, source: Path) -> pd.DataFrame:
    """(row, reason) of every failing row of ``frame``, the reason naming ``label``.column; stops
    with ``source`` named on any failure of the file itself (a missing column, a wrong dtype).
    A frame already in the contract's columns and dtypes (the usual batch, once conformed) is
    checked on whole columns (``contract.violations``)."""
    return _reasons(violations(frame, table), TABLES[table], label, source)


def _reasons(failures: pd.DataFrame, spec: Table, label: str, source: Path) -> pd.DataFrame:
    whole = failures[failures["row"].isna()]
    if not whole.empty:
        first = whole.iloc[0]
        raise ContractError(f"{source}: column '{first['column']}' fails {first['check']} "
                            f"(value {first['value']})")
    # a failure of the table's key (a duplicate) names the key, not the duplicated value
    column = failures["column"].where(failures["column"].isin(spec.names), ", ".join(spec.key))
    # a team's own column must only be a finite number: said so, not as the largest floats' range
    check = failures["check"].str.replace(f"in_range({-FLOAT_MAX}, {FLOAT_MAX})", "being a finite number",
                                          regex=False)
    reason = label + column + ": fails " + check + " (value " + failures["value"].fillna("missing") + ")"
    return pd.DataFrame({"row": failures["row"].astype("int64").to_numpy(), "reason": reason.to_numpy()})


def check_features(frame: pd.DataFrame, table: Table, label: str, source: Path,
                   today: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of a features frame that keep every rule of the features contract, and
    (borrower_id, reason) of the others: the same rules whether a features file gave the rows
    or the features were computed from raw tables."""
    found = _reasons(row_violations(frame, table), table, label, source)
    failed = pd.concat([
        pd.DataFrame({"borrower_id": frame["borrower_id"].to_numpy()[found["row"].to_numpy()],
                      "reason": found["reason"].to_numpy()}),
        future_scoring(frame["borrower_id"], frame["scoring_date"], today),
        *[due_before_scoring(frame, c) for c in DUE_DATES]])
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
        self.text_ids = _text_ids(self.path)
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
            raise ContractError(f"{self.path}: cannot read: {err}") from err
        missing = [c for c in ["borrower_id", "scoring_date", *self.features] if c not in names]
        if missing:
            note = _older(names, missing) + self._team_note(names, missing)
            said = _missing(names, missing, "missing columns", note)
            raise ContractError(f"{self.path}: {said}")
        for c in self.features if self.text_ids else ["borrower_id", *self.features]:
            kind = self.dataset.schema.field(c).type
            if c in self.text and _is_number(kind) and not pa.types.is_boolean(kind):
                # codes written as numbers (a Parquet int column of 1, 2, 3) are the codes, as a
                # CSV's are read as text
                self.codes_as_numbers.append(c)
                continue
            if c in self.text and not _is_text(kind):
                raise ContractError(f"{self.path}: column '{c}' must be text (the model learned it as "
                                    f"categories), found {kind}")
            if c not in self.text and not _is_number(kind):
                # numbers stored as text (a sheet's text cells, a database's VARCHAR) are numbers
                not_numbers = _is_text(kind) and _text_not_numbers(self.path, c, file_stamp(self.path))
                if not_numbers == "":
                    self.numbers_as_text.append(c)
                    continue
                raise ContractError(f"{self.path}: column '{c}' must be numeric, found {kind}"
                                    + (not_numbers or "") + codes_hint(c))
        if not self.text_ids:
            _check_ids(self.dataset, self.path)
        self.table = features_table(self.features, self.text)

    def ranges(self, size: int) -> list[tuple[int, int]]:
        ids = _read(self.dataset, self.path, columns=["borrower_id"])["borrower_id"]
        if ids.empty:
            raise ContractError(f"{self.path}: no rows")
        return _id_ranges(ids, size)

    def load(self, first: int, last: int) -> Batch:
        """Rows of borrowers ``first``..``last`` checked against the features contract (all rows
        of an id fall in the same range, so duplicates are seen here)."""
        frame = _read(self.dataset, self.path, filter=_in_range(first, last))
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
        reasons = np.where(dup, "borrower_id: duplicate borrower",
                           _first_reason(why, why_jump, *(why_due for _, why_due in dues.values())))
        bad = pd.notna(reasons)
        for c in self.numbers_as_text:  # every value a number or blank (__post_init__)
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
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
        """A features file has no other tables: every row is a borrower."""
        return {}


def _first_reason(*reasons: np.ndarray) -> np.ndarray:
    """Per row, the first of ``reasons`` (arrays of text or None) that gives one, else None."""
    out = np.full(len(reasons[0]), None, dtype=object)
    for why in reversed(reasons):
        out = np.where(pd.notna(why), why, out)
    return out


# ---- a team's own tables (source: tables) --------------------------------------------------------

# the pipeline's names for the team's id, date and label columns (the features keep theirs)
RESERVED = ("borrower_id", "scoring_date", "jump_date", "label", "miss_cause")


def team_table(path: Path, t: TablesSettings, labelled: bool) -> pd.DataFrame:
    """A team's features file (Parquet or CSV, or a folder of them) in the pipeline's terms:
    ``borrower_id``, ``scoring_date`` (also the ``jump_date`` the split keeps whole), ``label`` when
    ``labelled``, and every other column as a feature under its own name. The rows are the file's,
    all of them: in a labelled file, a missing or repeated id, a label other than 0 or 1, or a date
    that is no date stops the run naming the file, the column and the first rows (1 = the first
    data row). A file to score keeps such rows as written, ids and dates as the file gives them:
    the scorer rejects each with its reason and scores the others, as it does with the file
    itself (one bad row stopped the pipeline's whole batch)."""
    if not path.exists():
        raise ContractError(f"{path}: no such file or folder (source.tables names it)")
    frame = _read(_team_dataset(path, t), path)
    named = {t.id_column: "borrower_id", t.date_column: "scoring_date",
             **({t.label_column: "label"} if labelled else {})}
    unkeepable = [c for c in frame.columns if c not in named and LIGHTGBM_REFUSES.search(c)]
    if unkeepable:
        raise ContractError(f"{path}: columns {unkeepable} have names a model cannot keep (LightGBM turns "
                            "spaces into '_' and refuses any of , : [ ] { } \"): rename them")
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise ContractError(f"{path}: " + _missing(list(frame.columns), missing, "missing columns",
                                                   " (source.tables names them)"))
    clash = [c for c in frame.columns if c in RESERVED and c not in named]
    if clash:
        raise ContractError(f"{path}: columns {clash} have names the pipeline uses for the id, date and "
                            "label; rename them")
    unlisted = [c for c in frame.columns if c in BY_NAME and c not in t.catalogue and c not in named]
    if unlisted:
        raise ContractError(f"{path}: columns {unlisted} have the names of feature catalogue entries; list "
                            "them in source.tables.catalogue if they mean the same (they then get its "
                            "monotone constraint, checks, reasons and cause), else rename them")
    absent = [c for c in t.catalogue if c not in frame.columns]
    if absent:
        raise ContractError(f"{path}: source.tables.catalogue names columns the file lacks: {absent}")
    if frame.empty:
        raise ContractError(f"{path}: no rows")
    for column in frame.columns.difference(list(named)):
        frame[column] = _numbers_written_as_text(path, column, frame)
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
    found = _reasons(row_violations(numbered, table), table, "", path).drop_duplicates("row")
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
        ids = [t.id_column] if _text_ids(path, t.id_column) else []
        return _as_text(path, t.date_column, *ids, *_zero_led_columns(path, t.date_column, *ids))
    except READ_ERRORS as err:
        raise _unreadable(path, err) from err


def _zero_led_columns(path: Path, *read_as_text: str) -> list[str]:
    """The columns of a CSV (but ``read_as_text``) that Arrow reads as whole numbers though some
    are written with a leading zero ('01', '007'): codes, which Parquet and a sheet keep as text.
    Read as numbers, the same table had trained a model with a numeric 'branch_code' from CSV
    and a categorical one from Parquet or .xlsx."""
    inferred = open_dataset(path).schema
    wanted = [f.name for f in inferred if pa.types.is_integer(f.type) and f.name not in read_as_text]
    return _written_zero_led(path, wanted) if wanted else []


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


def _numbers_written_as_text(path: Path, column: str, frame: pd.DataFrame) -> pd.Series:
    """A team's column as the features take it. A column of numbers stored as text (a Parquet
    string column) becomes numbers. One that a few words ('-', 'unknown') or thousands
    separators ('12,500') made text stops the run: it would be learned as a category with a level
    per number, and a new number at scoring would be an unknown level. A text column of a few
    numeric codes and a word ('1'...'5', 'X') is a category, and stays one."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return values
    text = values.astype("str").str.strip().where(values.notna())
    given = text.notna() & (text != "")
    plain = pd.to_numeric(text.where(given), errors="coerce")
    separated = pd.to_numeric(text.where(given).str.replace(",", "", regex=False), errors="coerce")
    if separated.notna().sum() >= MOSTLY_NUMBERS * given.sum() and separated.nunique() > MANY_NUMBERS:
        _stop_at(path, column, "holds numbers, but some rows hold text that is not a plain number; "
                 "write a missing value blank and a number without thousands separators (else the "
                 "column would be learned as a category with a level per number)",
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


# ---- raw tables ------------------------------------------------------------------------------------

class RawTables:
    """A folder of raw tables (``<table>/`` folders of Parquet, or ``<table>.parquet|.csv``)."""

    def __init__(self, path: Path, p: Params, features: list[str], today: pd.Timestamp,
                 observation_days: int | None = None):
        self.path, self.params, self.today = path, p, today
        self.observation_days = p.label.observation_days if observation_days is None else observation_days
        self.table = features_table(features)
        self.tables = {name: self._locate(name) for name in (*RAW_TABLES, "maintenance_windows")}
        self.text_ids = _text_ids(self.tables["borrowers"])
        self.datasets = {name: self._open(name, where) for name, where in self.tables.items()}
        windows = "maintenance_windows"
        self.windows, unreadable = self._conform(_read(self.datasets[windows], self.tables[windows]),
                                                 windows)
        found = pd.concat([unreadable, row_rejects(self.windows, windows, f"{windows}.",
                                                   self.tables[windows])])
        if not found.empty:  # no borrower owns a window: a bad one is a bad file
            raise ContractError(f"{self.tables[windows]}: row {found['row'].iloc[0]}: "
                                f"{found['reason'].iloc[0]}")

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
            names = dataset.schema.names
        except READ_ERRORS as err:
            raise _unreadable(where, err) from err
        missing = [c for c in TABLES[name].names if c not in names]
        if missing:
            raise ContractError(f"{where}: " + _missing(names, missing, f"table '{name}' lacks columns"))
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
            elif col.dtype == "datetime64[s]" and pd.api.types.is_string_dtype(values):
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
                text = values.astype("str").where(values.notna(), None).astype("str")
                out[col.name] = as_codes(text, col.allowed) if col.allowed else text
        # a row's first unreadable value in column order is its reason
        found = pd.concat(unreadable) if unreadable else pd.DataFrame({"row": [], "reason": []})
        return out, found.sort_values("row", kind="stable").drop_duplicates("row").astype({"row": "int64"})

    def ranges(self, size: int) -> list[tuple[int, int]]:
        ids = _read(self.datasets["borrowers"], self.tables["borrowers"], columns=["borrower_id"])
        if ids["borrower_id"].dropna().empty:
            raise ContractError(f"{self.tables['borrowers']}: no borrowers")
        return _id_ranges(ids["borrower_id"], size)

    def orphans(self) -> pd.DataFrame:
        return _missing_ids(self.datasets["borrowers"], self.tables["borrowers"], self.text_ids)

    def unattributed(self) -> dict[str, dict[str, int]]:
        """Rows of the other tables that belong to no borrower, counted per table and reason."""
        stranger = not_known(known_ids(self.datasets["borrowers"], self.tables["borrowers"]))
        out = {}
        for name in RAW_TABLES[1:]:
            dataset, where = self.datasets[name], self.tables[name]
            counts = {NO_ID: _count(dataset, where, ds.field("borrower_id").is_null()),
                      NOT_A_BORROWER: _count(dataset, where, stranger)}
            if any(counts.values()):
                out[name] = {reason: n for reason, n in counts.items() if n}
        return out

    def load(self, first: int, last: int) -> Batch:
        """The borrowers ``first``..``last``: every row checked against its table's contract,
        their tables against each other, then their features against the features contract."""
        tables, failed, text = {}, [], None
        for name in RAW_TABLES:  # the borrowers table first: its ids are the batch's
            frame = _read(self.datasets[name], self.tables[name], filter=_in_range(first, last))
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
        computed, no_jump = _features_or_rejects(clean, self.params, self.observation_days)
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


def _features_or_rejects(tables: dict, p: Params, observation_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of every borrower that has a jump; those without one are rejected."""
    if tables["borrowers"].empty:
        return pd.DataFrame(), NONE
    try:
        return build_features(tables, observation_days, p.features), NONE
    except MissingJump as err:
        ids = err.borrower_ids
        missing = rejects(ids, ["limit_events.event_type: no limit increase"] * len(ids))
        rest = {n: (f[~f["borrower_id"].isin(ids)] if "borrower_id" in f else f)
                for n, f in tables.items()}
        if rest["borrowers"].empty:
            return pd.DataFrame(), missing
        return build_features(rest, observation_days, p.features), missing
