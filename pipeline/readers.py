"""How the files a team hands over are read: CSV as exports write it (another separator, a
decimal comma, GBK, UTF-16 or Windows-1252 text, gzip), Excel workbooks and Parquet as Arrow datasets, and the
values in them (dates, numbers and codes as exports write them) in the data contract's terms.
A read names the file, and the column, of what is wrong with it (``unreadable``, ``missing_columns``,
``row_reasons``). ``sources`` batches, checks and accounts for the rows; ``team_tables`` reads a
team's own tables.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import gzip
import re
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.cells import NULL_SPELLINGS, blank_cells, code_keys, shortened, written_numbers
from pipeline.contract import (
    FLOAT_MAX,
    LARGEST_FLOAT_ID,
    LARGEST_INT64,
    LEADING_ZERO,
    ContractError,
    Table,
    ids_written_as_text,
)

# what reading a file can raise: Arrow's errors, the file system's, and a transcoded CSV's bytes
# that its encoding cannot decode
READ_ERRORS = (pa.ArrowException, OSError, UnicodeDecodeError)
CSV_ENDINGS = (".csv", ".csv.gz")  # Arrow reads a gzipped CSV as it reads a CSV
EXCEL_ENDINGS = (".xlsx", ".xlsm")
# Arrow's own ('', 'NULL', 'NaN', 'n/a'...), MySQL's and Hive's \N, and Python's None as pandas
# writes it: what cells.BLANKS holds, read as missing by Arrow itself
# a cell of nothing but spaces (a database's padded CHAR column) is blank, as ``cells.BLANKS`` has it;
# Arrow matches null spellings exactly, and one such cell made a column of ids or numbers text
PADDING = [" " * n for n in range(1, 65)] + ["\t"]
NULLS = [*NULL_SPELLINGS, *PADDING]
SEPARATORS = ("\t", "|", ";")  # besides the comma, what exports put between columns
SAMPLE_BYTES = 1 << 20  # as much as Arrow infers column types from
PARQUET_MAGIC = b"PAR1"  # the first bytes of every Parquet file
ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of a zip archive, which an .xlsx workbook is
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_SUMMARIES = ("_metadata", "_common_metadata")  # what Spark and Dask write beside the parts

ZONE = r"(?:Z|[+-]\d{2}:?\d{2})$"  # an ISO time's zone: 'Z', '+08:00', '-0500'
# a year, month and day written in Chinese ('2025年11月18日'), as Chinese spreadsheets write dates
CHINESE_DATE = r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"


def is_csv(path: Path) -> bool:
    """A CSV file, gzipped or not (its ending in any case: 'REVIEWS.CSV'), or a folder of them."""
    return is_csv_name(path) or (path.is_dir() and any(is_csv_name(f) for f in _visible(path)))


def is_csv_name(path: Path) -> bool:
    return path.name.lower().endswith(CSV_ENDINGS)


def _visible(folder: Path) -> list[Path]:
    """A folder's entries but hidden ones ('.'), among them our own temporary files, in name
    order. Arrow's default also hides names starting with '_', and so left a part named
    '_2025-11.csv' out of the count without a word."""
    return sorted(f for f in folder.iterdir() if not f.name.startswith("."))


def data_files(folder: Path) -> list[Path]:
    """The parts a folder's rows are read from: its CSVs or its Parquet files (by their name, or,
    for a Hive export's '000000_0', by their first bytes), all of one format. Anything else would
    be read as data or its rows lost, so a subfolder (an 'old/' copy would read every row twice), a
    file of another format or a mix of the two stops the run naming them; files that can hold no
    rows are passed over: empty ones (a writer's '_SUCCESS' marker) and a Parquet dataset's summary
    files ('_metadata', '_common_metadata', whose row groups are those of its parts)."""
    entries = _visible(folder)
    subfolders = [f.name + "/" for f in entries if f.is_dir()]
    if subfolders:
        raise ContractError(f"{folder}: holds the folders {_few(subfolders)}: a folder's own files are read, "
                            "not those of folders inside it; move them out, or their files into it")
    kinds = {f: _part_kind(f) for f in entries if f.name not in PARQUET_SUMMARIES}
    other = [f.name for f, kind in kinds.items() if kind is None and f.stat().st_size > 0]
    if other:
        raise ContractError(f"{folder}: holds files neither CSV (.csv, .csv.gz) nor Parquet: "
                            f"{_few(other)}; a folder holds only its data's parts: move them out")
    formats = {kind: [f.name for f, k in kinds.items() if k == kind] for kind in ("csv", "parquet")}
    if all(formats.values()):
        raise ContractError(f"{folder}: mixes CSV files {_few(formats['csv'])} and Parquet files "
                            f"{_few(formats['parquet'])}: a folder's parts are of one format")
    parts = [f for f, kind in kinds.items() if kind is not None]
    if not parts:  # Arrow reads a folder of nothing as a table of no columns
        raise ContractError(f"{folder}: holds no data file (CSV or Parquet)")
    return parts


def _part_kind(file: Path) -> str | None:
    """'csv', 'parquet' or None (neither)."""
    if is_csv_name(file):
        return "csv"
    if file.name.lower().endswith(".parquet"):
        return "parquet"
    return "parquet" if _starts_as_parquet(file) else None


def _starts_as_parquet(file: Path) -> bool:
    with open(file, "rb") as f:
        return f.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def _few(names: list[str], shown: int = 3) -> str:
    return str(names[:shown])[:-1] + (f", and {len(names) - shown} more]" if len(names) > shown else "]")


def open_dataset(path: Path, fmt: str | None = None, schema: pa.Schema | None = None) -> ds.Dataset:
    """A file or folder as an Arrow dataset: CSV (``fmt`` 'csv', or by its name; ``schema`` types
    some of its columns), an Excel workbook's first sheet, else Parquet."""
    if path.is_file() and path.stat().st_size == 0:  # Arrow's message speaks of blocks and schemas
        raise ContractError(f"{path}: the file is empty (0 bytes): nothing to read, not even a header")
    files = [str(f) for f in data_files(path)] if path.is_dir() else str(path)
    fmt = fmt or ("csv" if is_csv(path) else "parquet")
    if fmt == "csv":
        return _one_set_of_columns(ds.dataset(files, format=_csv_format(path, schema)), path, str(schema))
    if path.suffix.lower() in EXCEL_ENDINGS:
        return ds.dataset(_workbook(path, file_stamp(path)))
    if path.suffix.lower() == ".xls":
        raise ContractError(f"{path}: an Excel 97-2003 workbook, which is not read: save it as .xlsx, CSV "
                            "(UTF-8) or Parquet")
    try:
        return _plain_types(_one_set_of_columns(ds.dataset(files, format="parquet"), path))
    except READ_ERRORS as err:
        if "duplicate field names" in str(err):
            for file in [path] if path.is_file() else data_files(path):
                _one_name_each(file, pq.read_schema(file).names)
        if path.is_file() and path.suffix.lower() != ".parquet":
            raise ContractError(f"{path}: read as Parquet, since its name does not end in .csv or .csv.gz, "
                                f"but it is not Parquet: {_archive(path) or err}") from err
        if path.is_file() and not _starts_as_parquet(path):
            raise ContractError(f"{path}: named .parquet but not Parquet (its first bytes are not "
                                "Parquet's): a CSV or a workbook under another name?") from err
        raise


def _plain_types(dataset: ds.Dataset) -> ds.Dataset:
    """``dataset`` with dictionary-encoded columns (a pandas category, an R factor, Spark's
    encoding) read as their values: Arrow's text functions have no kernel for them, and text ids
    so written had stopped the run ("no kernel matching input types (dictionary<...>)"). Ids
    kept as unsigned 64-bit integers beyond int64's range (hashes) are read as the text of their
    digits, as a CSV writes them: 'Integer value ... not in range' had named no column."""
    schema = dataset.schema
    plain = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                       for f in schema], schema.metadata)
    if "borrower_id" in plain.names and pa.types.is_uint64(plain.field("borrower_id").type) and \
            _largest_id(*_version(dataset)) > int(LARGEST_INT64):
        return with_text_ids(dataset)
    return dataset if plain == schema else ds.dataset(dataset.files, schema=plain, format=dataset.format)


def with_text_ids(dataset: ds.Dataset) -> ds.Dataset:
    """A Parquet table's integer ids as the text of their digits: hashes beyond int64, and another
    table's hashes where the borrowers table's are so read. Held in memory: Arrow filters a file
    in its own types and compares no text with numbers."""
    if not pa.types.is_integer(dataset.schema.field("borrower_id").type):
        return dataset
    return ds.dataset(_ids_as_text(*_version(dataset)))


def _version(dataset: ds.Dataset) -> tuple[tuple[str, ...], tuple]:
    """A file dataset's files and their times and sizes: the key of what is read once per version,
    as every batch's reader opens the file again."""
    return tuple(dataset.files), tuple(_stat(f) for f in dataset.files)


@functools.lru_cache(maxsize=8)
def _largest_id(files: tuple[str, ...], stamp: tuple) -> int:
    ids = ds.dataset(list(files), format="parquet").to_table(columns=["borrower_id"])["borrower_id"]
    return pc.max(ids).as_py() or 0


@functools.lru_cache(maxsize=8)
def _ids_as_text(files: tuple[str, ...], stamp: tuple) -> pa.Table:
    table = ds.dataset(list(files), format="parquet").to_table()
    at = table.schema.get_field_index("borrower_id")
    return table.set_column(at, "borrower_id", pc.cast(table.column(at), pa.string()))


def _archive(path: Path) -> str:
    """What an archive under another name is, from its first bytes ('' if none): a zip or a gzip
    file had been told only that Parquet's magic bytes were missing."""
    with open(path, "rb") as f:
        start = f.read(4)
    if start.startswith(ZIP_MAGIC):
        return "it is a zip archive: unzip it and give the file inside"
    if start.startswith(GZIP_MAGIC):
        return "it is gzipped: a gzipped CSV is read when named .csv.gz; else unzip it"
    return ""


def _one_set_of_columns(dataset: ds.Dataset, path: Path, typed: str = "") -> ds.Dataset:
    """``dataset``, once every file of a folder is found to have the same columns (in any order),
    in the types its files agree on (``_common_types``). Arrow reads a folder in its first file's
    columns: another file's extra column would be dropped, and a column it lacks read as blanks,
    with no word said. Checked once per version of the folder's files and the types a CSV's
    columns are read as (``typed``), as every batch's reader opens it."""
    if path.is_dir() and len(dataset.files) > 1:
        key = (typed, tuple((f, *_stat(f)) for f in dataset.files))
        if key not in _PART_SCHEMAS:
            _PART_SCHEMAS[key] = _check_parts(dataset)
        if _PART_SCHEMAS[key] != dataset.schema:
            return ds.dataset(dataset.files, schema=_PART_SCHEMAS[key], format=dataset.format)
    return dataset


def _stat(file: str) -> tuple[int, int]:
    found = Path(file).stat()
    return found.st_mtime_ns, found.st_size


_PART_SCHEMAS: dict[tuple, pa.Schema] = {}  # the folder versions found whole, and their types


def _check_parts(dataset: ds.Dataset) -> pa.Schema:
    fragments = list(dataset.get_fragments())
    first = _part_names(fragments[0])
    for fragment in fragments:
        names = _part_names(fragment)
        if set(names) != set(first):
            lacks, extra = [c for c in first if c not in names], [c for c in names if c not in first]
            raise ContractError(
                f"{fragment.path}: its columns are not those of {fragments[0].path}, the folder's first "
                f"file ({'lacks ' + str(lacks) if lacks else ''}{'; ' if lacks and extra else ''}"
                f"{'has also ' + str(extra) if extra else ''}): every file of a folder holds the same "
                "columns, or its rows would be read with blanks or without a column")
    return _common_types(dataset.schema, fragments)


def _part_names(fragment: ds.Fragment) -> list[str]:
    """A part's column names, each once (``_one_name_each``; Arrow refuses a CSV's twice itself)."""
    try:
        names = fragment.physical_schema.names
    except pa.ArrowInvalid as err:
        twice = re.search(r"multiple columns named (.+)$", str(err))
        if twice is None:
            raise
        raise _named_twice(fragment.path, f"'{twice.group(1)}'") from err
    _one_name_each(Path(fragment.path), names)
    return names


def _common_types(schema: pa.Schema, fragments: list[ds.Fragment]) -> pa.Schema:
    """The folder's columns in one type each where its files differ (``_common_type``). Arrow
    would cast every file to the first's type and fail naming neither file nor column ('Failed
    to parse string: 'unknown' as a scalar of type double')."""
    fields = []
    for field in schema:
        found = {Path(f.path).name: f.physical_schema.field(field.name).type for f in fragments}
        kinds = list(dict.fromkeys(found.values()))
        kind = kinds[0] if len(kinds) == 1 else _common_type(field.name, kinds)
        if kind is None:
            files = "; ".join(f"{k} in {_few([n for n, t in found.items() if t == k])}" for k in kinds)
            raise ContractError(f"{Path(fragments[0].path).parent}: column '{field.name}' has another type "
                                f"in each of the folder's files ({files}): write it the same way in every "
                                "file")
        fields.append(field.with_type(kind))
    return pa.schema(fields, schema.metadata)


def _common_type(name: str, kinds: list[pa.DataType]) -> pa.DataType | None:
    """Text if any file has text: the others' numbers are read as text, for the checks to name
    the rows that are not numbers, as when the text file comes first. Not for borrower ids: the
    batches are cut by id, and Arrow filters each file in its own type (a number cannot be compared
    with text). Else the type all widen to (int64 and double to double, a column all blank in one
    file to the others'); None where there is none."""
    text = [k for k in kinds if pa.types.is_string(k) or pa.types.is_large_string(k)]
    if text:
        return None if name == "borrower_id" else text[0]
    try:
        return pa.unify_schemas([pa.schema([(name, k)]) for k in kinds], promote_options="permissive")[0].type
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None


@functools.lru_cache(maxsize=8)
def _workbook(path: Path, stamp: tuple) -> pa.Table:
    """The first sheet of an Excel workbook: a header row, then a row per record, numbers, dates
    and text as the cells hold them (a text cell of digits stays text: an id 00123 keeps its
    zeros, as a CSV's does); a column that mixes numbers and text as text, for the checks to name
    its rows. Read once per file version (``stamp``): every batch's reader opens the file, and
    openpyxl reads some 10,000 cells a second. An error cell ('#DIV/0!', '#REF!') is its text, as
    a CSV writes it (pandas read them as blanks: a formula's error was scored as a missing value);
    '#N/A' is blank in both. A row of nothing but empty cells is no record."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            rows = [row for row in book.worksheets[0].iter_rows(values_only=True)
                    if any(cell is not None for cell in row)]
        finally:
            book.close()
    except Exception as err:  # openpyxl raises a different kind for each way a file is broken
        raise ContractError(f"{path}: cannot read the workbook: {err}") from err
    filled = [sum(cell is not None for cell in row) for row in rows[:2]]
    if len(filled) == 2 and filled[0] < filled[1]:  # its names had been the title and 'Unnamed: 1', ...
        raise ContractError(f"{path}: the sheet's first row in use fills {filled[0]} of its cells and the "
                            f"next {filled[1]}: a title or notes above the header? The header must be "
                            "the first row in use, with a name for every column")
    width = max((max(i for i, cell in enumerate(row) if cell is not None) + 1 for row in rows), default=0)
    rows = [tuple(row[:width]) + (None,) * (width - len(row)) for row in rows]
    names = [f"Unnamed: {i}" if name is None else str(name) for i, name in enumerate(rows[0])] if rows else []
    _one_name_each(path, [name.strip() for name in names])
    frame = pd.DataFrame(rows[1:], columns=names, dtype=object).apply(_cells)
    for name in frame.columns:
        _refuse_rounded(path, name, frame[name])
    return pa.Table.from_pandas(frame, preserve_index=False)


def _refuse_rounded(path: Path, name: str, values: pd.Series) -> None:
    """Excel keeps a number as a double: a whole number of 2**53 or more in a numeric cell (an id
    of 19 digits) has lost its last digits before any reader sees it, and two ids may have become
    one. Such a column must be written as text cells."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return
    rows = np.flatnonzero((values.abs() >= LARGEST_FLOAT_ID).to_numpy())
    if rows.size:
        raise ContractError(f"{path}: column '{name}' holds numbers of 2**53 or more in numeric cells, which "
                            f"Excel keeps to 15-17 digits (rows {(rows[:3] + 1).tolist()}, counted from 1 "
                            f"below the header): format the column as text in the workbook")


def _cells(column: pd.Series) -> pd.Series:
    """A sheet's column in one type: numbers, dates or true/false where every cell holds one
    (true/false with blanks as 1, 0 and missing), else text."""
    typed = column.infer_objects()
    if not pd.api.types.is_object_dtype(typed):
        return typed
    if pd.api.types.infer_dtype(typed, skipna=True) == "boolean":
        return typed.astype("float64")
    return typed.astype("str")


def _csv_format(path: Path, schema: pa.Schema | None) -> ds.CsvFileFormat:
    """How a CSV (or the first of a folder of them) is written, read from its start. An empty field
    is a missing value, in text columns too (as pandas and most tools write it), and so is MySQL's
    and Hive's \\N. Columns may be split by tabs, '|' or ';' rather than commas, and a ';' file may
    write the comma as its decimal mark, as spreadsheets do where that is the custom."""
    first = _first_csv(path)
    sample = _sample(first)
    encoding = _encoding(sample) if path.is_file() else _parts_encoding(path, file_stamp(path))
    if sample.startswith(PARQUET_MAGIC):
        raise ContractError(f"{path}: a Parquet file named as a CSV: name it .parquet")
    if sample.startswith(ZIP_MAGIC):
        raise ContractError(f"{path}: a workbook (or another zip archive) named as a CSV: name it .xlsx")
    if encoding is None:
        raise ContractError(f"{path}: its text is neither UTF-8, UTF-16, GB18030 (GBK) nor Windows-1252: "
                            "save it as UTF-8")
    # lines as ended by Windows ('\r\n'), Unix ('\n') or a classic Mac ('\r'), which Arrow reads alike
    text = re.sub(r"\r\n?", "\n", sample.decode(encoding, errors="ignore").lstrip("\ufeff"))
    if path.is_file() and not text.strip():  # Arrow: "Empty CSV file or block: cannot infer ..."
        raise ContractError(f"{path}: the file holds no text, not even a header")
    header = text.split("\n", 1)[0]
    separator = "," if "," in header else next((s for s in SEPARATORS if s in header), ",")
    written = next(csv.reader([header], delimiter=separator), [])
    names = [n.strip() for n in written]
    _named_not_valued(first or path, names)
    _one_name_each(first or path, names)
    decimal = _decimal_mark_of(text, separator)
    return ds.CsvFileFormat(
        parse_options=pacsv.ParseOptions(delimiter=separator),
        convert_options=pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True,
                                             null_values=NULLS, decimal_point=decimal),
        read_options=_read_options(written, encoding))


def _read_options(written: list[str], encoding: str) -> pacsv.ReadOptions:
    """Arrow's reading of a header as written; unnamed columns, which Excel's trailing separators
    (',,,') make several of, named 'Unnamed: <place>' as pandas names them: Arrow refuses the same
    name twice, and the file had stopped ('multiple columns named')."""
    if sum(not name.strip() for name in written) < 2:
        return pacsv.ReadOptions(encoding=encoding)
    names = [name if name.strip() else f"Unnamed: {i}" for i, name in enumerate(written)]
    return pacsv.ReadOptions(encoding=encoding, skip_rows=1, column_names=names)


def _named_not_valued(path: Path, names: list[str]) -> None:
    """A first line of numbers and dates is a row, not a header: Spark and Hive write a CSV's parts
    without one unless told, and the names were taken for columns named twice ('0.0', '')."""
    values = [n for n in names if re.fullmatch(r"[-+]?[\d.,:/ T-]*\d[\d.,:/ T-]*", n)]
    if names and 2 * len(values) > len(names):
        shown = ", ".join(map(repr, values[:3]))
        raise ContractError(f"{path}: its first line holds values ({shown}, ...), not column names: write "
                            "the header as the first line (Spark and Hive write CSV without one unless "
                            "given header=true)")


def _one_name_each(path: Path, names: list[str]) -> None:
    """A column named twice is refused with both places named: which of the two holds the data
    cannot be guessed, and Arrow ("multiple columns named", "duplicate field names") names neither
    place, nor does pandas, which renames the second copy of a sheet's column 'name.1'."""
    places: dict[str, list[int]] = {}
    for place, name in enumerate(names, start=1):
        places.setdefault(name, []).append(place)
    # unnamed columns are no column a reader looks for: Excel's trailing separators (',,,') name several
    twice = {name: where for name, where in places.items() if len(where) > 1 and name}
    if twice:
        said = "; ".join(f"'{name}' (columns {', '.join(map(str, where))})" for name, where in twice.items())
        raise _named_twice(path, said)


def _named_twice(path: Path | str, said: str) -> ContractError:
    return ContractError(f"{path}: a column is named more than once: {said}. Rename or drop the copies")


@functools.lru_cache(maxsize=32)
def _parts_encoding(folder: Path, stamp: tuple) -> str | None:
    """The one encoding a folder's CSV parts are written in (parts of ASCII alone read in any);
    parts in different ones stop the run naming them, as Arrow reads every part in one and had
    failed on the first that differs ('Row #152: Expected 77 columns, got 1', naming no file, or
    "'utf-8' codec can't decode byte"). Found once per version of the folder (``stamp``)."""
    found: dict[str | None, list[str]] = {}
    for part in (f for f in data_files(folder) if is_csv_name(f)):
        sample = _sample(part)
        found.setdefault("ascii" if sample.isascii() else _encoding(sample), []).append(part.name)
    wide = [encoding for encoding in found if encoding != "ascii"]
    if len(wide) > 1 or ("utf-16" in wide and "ascii" in found):  # UTF-16 reads no ASCII text
        said = "; ".join(f"{encoding or 'none read'}: {_few(names)}" for encoding, names in found.items())
        raise ContractError(f"{folder}: its parts are written in different encodings ({said}): save them all "
                            "as UTF-8")
    return wide[0] if wide else "utf8"


def _encoding(sample: bytes) -> str | None:
    """UTF-8; else UTF-16 where a byte-order mark says so (Excel's 'Unicode text'); else GB18030,
    which includes GBK: what Excel writes on Chinese Windows, or Windows-1252, what it writes on
    Western Windows, whichever the text looks like; else None."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf8", "cp1252" if _western(sample) else "gb18030"):
        try:  # the sample may end inside a character
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            pass
    return None


def _western(sample: bytes) -> bool:
    """Whether most non-ASCII characters are one byte between ASCII ones, as Windows-1252 writes
    an accented letter. GB18030 would decode most such text too, taking the letter after the
    accented one as its second byte ('Zürich' as 'Z黵ich'), while Chinese text is runs of
    two-byte characters both of whose bytes are above ASCII."""
    high = np.frombuffer(sample, np.uint8) >= 0x80
    before, after = np.r_[False, high[:-1]], np.r_[high[1:], False]
    return 2 * int((high & ~before & ~after).sum()) > int((high & ~before).sum())


def _first_csv(path: Path) -> Path | None:
    """The file a CSV's way of writing is read from: itself, or a folder's first CSV part."""
    return path if path.is_file() else next((f for f in data_files(path) if is_csv_name(f)), None)


def _sample(first: Path | None) -> bytes:
    if first is None:
        return b""
    with (gzip.open if first.name.lower().endswith(".gz") else open)(first, "rb") as f:
        return f.read(SAMPLE_BYTES)


# how a number field of a file not split by commas shows its decimal mark: a decimal comma ('2,5',
# '12.500,25'), a decimal point ('2.5', '12,500.25'), or thousands grouped by points and no decimals
# ('5.500', how a spreadsheet writes 5,500 where the comma is the decimal mark)
MARKS = {"comma": r"\d+,\d+|[1-9]\d{0,2}(?:\.\d{3})+,\d+", "point": r"\d+\.\d+|[1-9]\d{0,2}(?:,\d{3})+\.\d+",
         "grouped_points": r"[1-9]\d{0,2}(?:\.\d{3})+"}


def _decimal_mark_of(text: str, separator: str) -> str:
    """The decimal mark of a file's numbers: '.' in a comma-separated file; else ',' where its
    numbers are written '2,5' and none '2.5', or where every number with a point groups thousands
    ('5.500', '25.500': read as 5.5 and 25.5 it had moved the scores of 121 borrowers in 200 without
    a word). A mark followed by three digits and no more ('5,500') is no evidence for either reading
    of the other mark."""
    if separator == ",":
        return "."
    sep = re.escape(separator)
    fields = re.findall(rf"(?:^|{sep})\s*[-+]?(\d[\d.,]*\d)\s*(?={sep}|$)", text, re.MULTILINE)
    found = {kind: any(re.fullmatch(pattern, f) and not _grouped(f, kind) for f in fields)
             for kind, pattern in MARKS.items()}
    if found["point"]:
        return "."
    return "," if found["comma"] or found["grouped_points"] else "."


def _grouped(field: str, kind: str) -> bool:
    """A field of one mark followed by three digits ('5,500', '5.500'), which is no evidence of a
    decimal mark either way."""
    return kind != "grouped_points" and re.fullmatch(r"[1-9]\d{0,2}[.,]\d{3}", field) is not None


def file_stamp(path: Path) -> tuple:
    """A file's (or a folder's parts') names, times and sizes: a new version has another."""
    files = [path] if path.is_file() else data_files(path)
    return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)


def as_codes(text: pd.Series, codes: tuple[str, ...]) -> pd.Series:
    """A code written in other capitals, with spaces around it or with spaces or hyphens for its
    underscores ('MANUAL', ' Auto-Debit') reads as the code, as a database or spreadsheet export
    may write it; any other text is kept for the contract to reject."""
    known = text.isna() | text.isin(codes)
    if known.all():
        return text
    lookup = dict(zip(code_keys(pd.Series(codes, dtype="str")), codes, strict=True))
    return text.where(known, code_keys(text).map(lookup).fillna(text))


def days_after_jump(frame: pd.DataFrame) -> pd.Series:
    """Calendar days from each row's ``jump_date`` to its ``scoring_date``, missing where either
    is: an export may time the increase (13:45) and not the scoring date."""
    scoring, jump = (as_dates(frame[c]).dt.floor("D") for c in ("scoring_date", "jump_date"))
    return (scoring - jump).dt.days


def as_dates(values: pd.Series) -> pd.Series:
    """Dates (and times) as the file wrote them, in seconds, NaT where unreadable: ISO text
    ('2025-11-18', '2025-11-18 13:45', '20251118', '2025/11/18'), the same year, month and day
    written in Chinese ('2025年11月18日'), or timestamps. A time zone is dropped and the
    wall time kept: the date the lender's system recorded, not that date in UTC (for a Beijing
    midnight, the day before)."""
    parsed = values
    if not pd.api.types.is_datetime64_any_dtype(values):
        text = values.astype("str").str.strip().str.replace(ZONE, "", regex=True).where(values.notna())
        if text.str.contains("年", regex=False).any():  # the rewrite costs 10x the parse: only if needed
            text = text.str.replace(CHINESE_DATE, r"\1-\2-\3", regex=True)
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[s]")


def parse_numbers(values: pd.Series, column: str, decimal: str) -> tuple[pd.Series, np.ndarray]:
    """Numbers (float64; NaN where missing) from text as exports write them: spaces around, a
    currency sign (¥, ￥, $), thousands separators grouped by three ('12,500.00'; '12.500,00' where
    ``decimal`` is the comma). Also, per row, why a value is no number (None where it is)."""
    why = np.full(len(values), None, dtype=object)
    text = pa.array(values, pa.string())
    try:  # Arrow parses 15x faster than pandas: the common case pays only that
        if decimal == "," and pc.any(pc.match_substring(text, ".")).as_py():
            raise pa.ArrowInvalid("thousands grouped by points: parsed below")
        plain = text if decimal == "." else pc.replace_substring(text, ",", ".")
        return pd.Series(pc.cast(plain, pa.float64()).to_numpy(zero_copy_only=False), index=values.index), why
    except pa.ArrowInvalid:
        pass
    numbers = written_numbers(values, decimal)
    unreadable = numbers.isna().to_numpy(dtype=bool) & ~blank_cells(values)
    text = shortened(values[unreadable]).to_numpy(dtype=object)
    why[unreadable] = f"{column}: not a number (value " + text + ")"
    return numbers, why


def parse_dates(values: pd.Series, column: str, required: bool) -> tuple[pd.Series, np.ndarray]:
    """``values`` as dates (seconds; NaT where missing) and, per row, why a value is not
    acceptable (None where it is): not a date, or missing when ``required``."""
    dates = as_dates(values)
    missing = blank_cells(values)  # '', spaces and 'NULL' are no date, as no value is
    why = np.full(len(values), None, dtype=object)
    unreadable = dates.isna().to_numpy() & ~missing
    text = shortened(values[unreadable]).to_numpy(dtype=object)
    # a day-first date (15/01/2026) is not guessed at: the row says how to write one
    why[unreadable] = f"{column}: not a date (value " + text + "); write dates as ISO, 2025-01-31"
    if required:
        why[missing] = f"{column}: missing"
    return dates, why


def decimal_mark(dataset: ds.Dataset) -> str:
    """The decimal mark of a dataset's CSV text; '.' for Parquet and workbooks, whose numbers are
    typed."""
    if isinstance(getattr(dataset, "format", None), ds.CsvFileFormat):
        return dataset.format.default_fragment_scan_options.convert_options.decimal_point
    return "."


# ---- reading a file, and naming what is wrong with it ------------------------------------------

def read_frame(dataset: ds.Dataset, path: Path, **kwargs) -> pd.DataFrame:
    """A (filtered) read; unreadable or mistyped data stops with the file named. A database's
    DATE columns become dates and its DECIMAL amounts floats, not Python objects."""
    table = read_table(dataset, path, **kwargs)
    decimals = [i for i, f in enumerate(table.schema) if pa.types.is_decimal(f.type)]
    for i in decimals:
        table = table.set_column(i, table.schema[i].name, table.column(i).cast(pa.float64()))
    return table.to_pandas(date_as_object=False)


def read_table(dataset: ds.Dataset, path: Path, **kwargs) -> pa.Table:
    try:
        return dataset.to_table(**kwargs)
    except READ_ERRORS as err:
        raise unreadable(path, err, dataset) from err


def unreadable(path: Path, err: Exception, dataset: ds.Dataset | None = None) -> ContractError:
    """The file and Arrow's message; Arrow numbers the CSV column that fails to convert, so name it
    (from the file's own header when the failure came before the dataset could be made). A line
    of another number of columns than the header is said in words (``_ragged``)."""
    ragged = _ragged(path, str(err))
    if ragged:
        return ContractError(ragged)
    found = re.search(r"CSV column #(\d+)", str(err))
    column = ""
    if found:
        try:
            names = (dataset or open_dataset(path, "csv")).schema.names
        except READ_ERRORS:
            names = []
        column = f" (column '{names[int(found[1])]}')" if int(found[1]) < len(names) else ""
    return ContractError(f"{path}: cannot read{column}: {err}")


def _ragged(path: Path, said: str) -> str | None:
    """What Arrow's "Row #3: Expected 1 columns, got 76: <the line>" means, naming the part it came
    from, without echoing the line (a title, a footer, a stray end-of-file mark, bytes of no text)."""
    found = re.search(r"Row #(\d+): Expected (\d+) columns, got (\d+)", said)
    if found is None:
        return None
    source = re.search(r"CSV input source '([^']+)'", said)
    line, header, got = (int(g) for g in found.groups())
    why = ("a title or notes above the header (the header must be the first line), or a value holding "
           "the separator without quotes?" if got > header else
           "a note, a total or an end-of-file mark below the data, or a line cut short? Remove or mend it")
    return (f"{source[1] if source else path}: line {line} has {got} column{'s' * (got != 1)} where the "
            f"header has {header}: {why}")


def data_row(dataset: ds.Dataset, path: Path, row: int) -> str:
    """Where the ``row``-th (from 0) of a read's rows is written: the file, and its data row counted
    from 1 (below the header); in a folder, the part that holds it, as a folder is read part by part
    in name order."""
    if path.is_file():
        return f"{path}: data row {row + 1} (counted from 1)"
    parts = list(dataset.get_fragments())
    ends = np.cumsum([part.count_rows() for part in parts])
    at = int(np.searchsorted(ends, row, side="right"))
    return f"{parts[at].path}: data row {row + 1 - int(ends[at - 1] if at else 0)} (counted from 1)"


def holds_text(kind: pa.DataType) -> bool:
    """Values held as text: not numbers, nor a column of nothing but blanks, which has no type."""
    return is_text(kind) and not pa.types.is_null(kind)


def ids_are_text(path: Path, column: str = "borrower_id") -> bool:
    """Whether a file's ids are text (``contract.ids_written_as_text``); a CSV reads digits with
    leading zeros as integers, and an exponent ('1e5') or more digits than an integer holds as
    floats, so its column is read as written to tell. Any other problem is left for the file's
    opening to report."""
    try:
        dataset = open_dataset(path)
        if column not in dataset.schema.names:
            return False
        kind = dataset.schema.field(column).type
        if not (is_csv(path) and (pa.types.is_integer(kind) or pa.types.is_floating(kind))):
            return holds_text(kind)
        return _written_as_text(path, column, pa.types.is_floating(kind), file_stamp(path))
    except READ_ERRORS:
        return False


@functools.lru_cache(maxsize=32)
def _written_as_text(path: Path, column: str, floats: bool, stamp: tuple) -> bool:
    """Whether a CSV writes any id a number would change (``contract.ids_written_as_text``): a
    parse of the whole column, which every batch's reader would otherwise repeat (2% of scoring a
    features file), so kept per file version (``stamp``). Ids Arrow reads as integers can only
    have lost leading zeros, which Arrow itself finds fastest; as ``floats``, an exponent or too
    many digits too."""
    written = read_table(as_text(path, column), path, columns=[column])[column]
    if floats:
        return ids_written_as_text(written.to_pandas())
    return pc.any(pc.match_substring_regex(written, LEADING_ZERO)).as_py() is True


def written_zero_led(path: Path, columns: list[str]) -> list[str]:
    """Those of a CSV's ``columns`` that write a value with a leading zero, read as written."""
    written = read_table(as_text(path, *columns), path, columns=columns)
    return [c for c in columns if pc.any(pc.match_substring_regex(written[c], LEADING_ZERO)).as_py() is True]


def as_text(path: Path, *columns: str) -> ds.Dataset:
    """A CSV with ``columns`` read as written and the others as Arrow infers them."""
    return open_dataset(path, "csv", pa.schema([(c, pa.string()) for c in columns]))


def sheet_note(path: Path) -> str:
    """For a workbook, which of its sheets was read (the first), for a message on its columns:
    a workbook that opens on a sheet of notes lacks every column, and would not know why."""
    if not (path.is_file() and path.suffix.lower() in EXCEL_ENDINGS):
        return ""
    import openpyxl

    first = openpyxl.load_workbook(path, read_only=True).sheetnames[0]
    return f" (a workbook's first sheet is read, here '{first}': put the data there)"


def missing_columns(names: list[str], missing: list[str], lacks: str, note: str = "",
                    expected: Collection[str] = ()) -> str:
    """What a file lacking columns is told: ``lacks``, the missing columns and ``note``, and why
    they are missing when the file names them in other capitals or with spaces around them (a
    database's export: 'BORROWER_ID'), or misspelt (``respelt``). A file missing every column is
    told of the first ``NAMED_COLUMNS`` and the number of the rest, not of 75 names twice."""
    renames = [f"{n!r} for {c!r}" for c, n in respelt(names, missing, expected).items()]
    hint = (f"; the file writes {_first(renames, ', '.join)}: column names are matched exactly, "
            "rename them") if renames else ""
    return f"{lacks} {_first(missing, repr)}{note}{hint}"


def respelt(names: list[str], missing: list[str], expected: Collection[str] = ()) -> dict[str, str]:
    """Each of the ``missing`` columns that ``names`` write in other capitals or with spaces
    around (a tab, a no-break space), or misspelt: a name the file has that is none of the
    ``expected`` columns and close to the missing one ('credit_scroe' had been told it was a
    feature the file predates). Without ``expected``, capitals and spaces only."""
    written = {n.strip().lower(): n for n in names}
    found = {c: written[c.lower()] for c in missing if c.lower() in written}
    strangers = [n for n in names if n not in expected and n not in found.values()] if expected else []
    for c in missing:
        close = difflib.get_close_matches(c, strangers, n=1, cutoff=0.8) if c not in found else []
        if close:
            found[c] = close[0]
            strangers.remove(close[0])
    return found


NAMED_COLUMNS = 8


def _first(items: list[str], show: Callable[[list[str]], str]) -> str:
    """``show`` of the first ``NAMED_COLUMNS`` items, and how many more there are."""
    more = len(items) - NAMED_COLUMNS
    return show(items[:NAMED_COLUMNS]) + (f" and {more} more" if more > 0 else "")


def is_text(kind: pa.DataType) -> bool:
    """Text, or Parquet's dictionary-encoded text (pandas categoricals), or all missing."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


DUPLICATE_BORROWER = "duplicate borrower"  # the words of every reader that finds one twice


def row_reasons(failures: pd.DataFrame, spec: Table, label: str, source: Path) -> pd.DataFrame:
    """(row, reason) of each of the contract's ``failures`` of a row, the reason naming
    ``label``.column; a failure of the whole file (a missing column, a wrong dtype) stops with
    ``source`` named."""
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
    value = shortened(failures["value"].fillna("missing"))
    reason = label + column + ": fails " + check + " (value " + value + ")"
    # a duplicate in the words a features file uses, without the value: the borrower's id is the
    # reject's own column, as written, where the value was the number text ids are read as
    duplicate = label + column + (": " + DUPLICATE_BORROWER if tuple(spec.key) == ("borrower_id",)
                                  else ": duplicate row (the same " + ", ".join(spec.key) + ")")
    reason = reason.where(failures["check"] != "multiple_fields_uniqueness", duplicate)
    return pd.DataFrame({"row": failures["row"].astype("int64").to_numpy(), "reason": reason.to_numpy()})
