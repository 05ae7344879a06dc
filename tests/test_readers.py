"""Reading files and values as exports write them (``pipeline.readers``), on hand-built examples;
whole files through the scoring command are in test_sources.py."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import readers
from pipeline.contract import ContractError


@pytest.mark.parametrize("decimal, written, number", [
    (".", " 12.5 ", 12.5), (".", "12,500.00", 12500.0), (".", "¥1,234,567.5", 1234567.5),
    (".", "-￥3", -3.0), (".", "¥-3", -3.0), (".", "$ 7", 7.0), (".", "701.0", 701.0), (".", "5.", 5.0),
    (",", "2,5", 2.5), (",", "12.500,25", 12500.25), (",", "¥1.234", 1234.0), (",", "5.500", 5500.0),
    (".", "1,23", None), (".", "12,5000", None), (".", "1.234,5", None), (".", "-", None),
    (".", "abc", None), (".", "12 500", None), (",", "1,234.5", None),
])
def test_numbers_read_as_exports_write_them(decimal, written, number):
    """Known answers: spaces, a currency sign and thousands separators grouped by three read as
    the number; anything else is no number, with its value in the reason, and a missing value
    is missing without one."""
    values = pd.Series([written, None, "3"], dtype="str")
    numbers, why = readers.parse_numbers(values, "drawdowns.amount", decimal)
    assert numbers.dtype == "float64" and np.isnan(numbers[1]) and numbers[2] == 3.0
    assert why[1] is None and why[2] is None
    if number is None:
        assert np.isnan(numbers[0]) and why[0] == f"drawdowns.amount: not a number (value {written})"
    else:
        assert numbers[0] == number and why[0] is None


@pytest.mark.parametrize("text, encoding", [
    ("a,b\n1,2.5\n", "utf-8"), ("a\tb\n1\t2.5\n", "utf-8"), ("a|b\n1|2.5\n", "utf-8"),
    ("a;b\n1;2.5\n", "utf-8"), ("a;b\n1;2,5\n", "utf-8"), ("a,城市\n1,2.5\n", "gbk"),
    ("a\tb\n1\t2.5\n", "utf-16"), ("a,b\n1,2.5\n", "utf-8-sig"),
    ("a,b\r1,2.5\r", "utf-8"), ("a;b\r1;2,5\r", "utf-8"), ("a;b\r\n1;2,5\r\n", "utf-8"),  # line ends
])
def test_a_csv_reads_whatever_its_separator_decimal_mark_and_encoding(text, encoding, tmp_path):
    """Known answers: each small file reads as the two columns it holds, 1 and 2.5."""
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode(encoding))
    frame = readers.open_dataset(path).to_table().to_pandas()
    assert frame.shape == (1, 2) and frame.iloc[0, 0] == 1 and frame.iloc[0, 1] == 2.5
    assert frame.columns[0] == "a"


@pytest.mark.parametrize("text, mark, amount", [
    ("id;amount\n1;5.500\n2;25.500\n", ",", 5500.0),  # thousands by points, whole amounts
    ("id;amount;ratio\n1;33.000;0,05\n", ",", 33000.0),  # those beside decimal commas
    ("id;amount;day\n1;2,5;17.03.2025\n", ",", 2.5),  # a day-first date is no number
    ("id;amount\n1;12.500,25\n", ",", 12500.25), ("id\tamount\n1\t2,5\n", ",", 2.5),
    ("id;amount;ratio\n1;33.000;0.05\n", ".", 33.0),  # a decimal point elsewhere: 33.000 is 33
    ("id;amount\n1;5,500\n", ".", 5500.0),  # a comma grouping thousands, as '5,500.00' would
    ("id;amount\n1;12,500.25\n", ".", 12500.25), ("id,amount\n1,5.500\n", ".", 5.5),
])
def test_a_files_decimal_mark_is_read_off_its_numbers(text, mark, amount, tmp_path):
    """Known answers: a ';' export from a spreadsheet where the comma is the decimal mark writes
    whole amounts '5.500'; read as 5.5, a limit of 5,500 had moved 121 of 200 borrowers' scores."""
    path = tmp_path / "t.csv"
    path.write_text(text)
    dataset = readers.open_dataset(path, "csv", pa.schema([("amount", pa.string())]))
    assert readers.decimal_mark(dataset) == mark
    written = dataset.to_table().column("amount").to_pandas()
    numbers, why = readers.parse_numbers(written, "t.amount", mark)
    assert numbers.iloc[0] == amount and why[0] is None


@pytest.mark.parametrize("text, written, read", [
    ("id,city\n1,北京\n2,上海浦东\n", "gbk", "gb18030"),
    ("id,city\n1,Zürich\n2,Köln\n3,São Paulo\n", "cp1252", "cp1252"),
    ("id,city\n1,Zürich\n2,北京\n", "utf-8", "utf8"),
    ("id,city\n1,Zürich\n", "utf-16", "utf-16"),
])
def test_a_csv_is_read_in_the_encoding_it_was_written_in(text, written, read):
    """Known answers: GB18030 decodes the Windows-1252 file too ('Z黵ich'), so the choice between
    them goes by the text's look."""
    assert readers._encoding(text.encode(written)) == read


def test_text_in_no_encoding_read_stops_naming_the_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,caf\xe9\xff\n")
    with pytest.raises(ContractError, match=r"t.csv: its text is neither UTF-8, UTF-16, GB18030 \(GBK\) nor"):
        readers.open_dataset(path)


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.xlsx", "t"])
def test_an_empty_file_is_named_as_empty_whatever_its_kind(name, tmp_path):
    path = tmp_path / name
    path.touch()
    with pytest.raises(ContractError, match=f"{name}: the file is empty \\(0 bytes\\)"):
        readers.open_dataset(path)


@pytest.mark.parametrize("name, written", [
    ("t.csv", b"\xef\xbb\xbf"), ("t.csv", b"\n\r\n  \n"), ("t.csv.gz", gzip.compress(b"", mtime=0)),
    ("t.csv.gz", gzip.compress(b"\xef\xbb\xbf\n", mtime=0))])
def test_a_csv_of_no_text_is_named_as_such(name, written, tmp_path):
    """A byte-order mark alone, blank lines, or a gzip of nothing: Arrow spoke of an "empty CSV
    file or block" that "cannot infer number of columns"."""
    path = tmp_path / name
    path.write_bytes(written)
    with pytest.raises(ContractError, match=f"{name}: the file holds no text, not even a header"):
        readers.open_dataset(path)


def test_a_column_named_twice_is_refused_naming_both_places(tmp_path):
    """CSV, Parquet and a workbook alike; pandas had read the workbook's second copy as 'b.1' and
    the message then spoke of a missing column."""
    frame = pd.DataFrame([[1, 2, 3, 4]], columns=["a", "b", "b", "c"])
    frame.to_csv(tmp_path / "t.csv", index=False, sep=";")
    pq.write_table(pa.Table.from_arrays([pa.array([v]) for v in (1, 2, 3, 4)], names=list(frame.columns)),
                   tmp_path / "t.parquet")
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    for name in ("t.csv", "t.parquet", "t.xlsx"):
        with pytest.raises(ContractError, match=f"{name}: a column is named more than once: 'b' "
                                                "\\(columns 2, 3\\)"):
            readers.open_dataset(tmp_path / name)
    part = tmp_path / "folder" / "part-1.parquet"
    part.parent.mkdir()
    (tmp_path / "t.parquet").rename(part)
    pq.write_table(pa.table({"a": [1], "b": [2], "c": [4]}), part.parent / "part-0.parquet")
    with pytest.raises(ContractError, match="part-1.parquet: a column is named more than once"):
        readers.open_dataset(part.parent)
    for twice in ("part-0.csv", "part-1.csv"):  # a CSV folder's first part (its header sampled), another
        folder = tmp_path / f"csv_{twice}"
        folder.mkdir()
        for name in ("part-0.csv", "part-1.csv"):
            (folder / name).write_text("a,b,b\n1,2,3\n" if name == twice else "a,b,c\n1,2,3\n")
        with pytest.raises(ContractError, match=f"{twice}: a column is named more than once: 'b'"):
            readers.open_dataset(folder)


def test_a_blank_written_in_a_date_column_is_no_date_as_a_null_is():
    """Known answer from outside: a Parquet text jump_date of '', 'NULL' or spaces was rejected as
    "not a date (value )" while a null in the same column was missing."""
    written = pd.Series(["", "NULL", "  ", "#N/A", None, "2025-01-02"], dtype="str")
    dates, why = readers.parse_dates(written, "t.d", required=False)
    assert dates[:5].isna().all() and dates[5] == pd.Timestamp("2025-01-02") and (pd.isna(why)).all()
    _, why = readers.parse_dates(written, "t.d", required=True)
    assert list(why) == ["t.d: missing"] * 5 + [None]


@pytest.mark.parametrize("written, date", [
    ("2025-11-18", "2025-11-18"), ("2025/11/18", "2025-11-18"), ("20251118", "2025-11-18"),
    ("2025年11月18日", "2025-11-18"), ("2025-11-18T23:30:00+08:00", "2025-11-18 23:30:00"),
    (" 2025-11-18 ", "2025-11-18"), ("18/11/2025", None), ("2025-13-45", None), ("soon", None),
])
def test_dates_read_as_exports_write_them(written, date):
    """Year-first dates however separated, in Chinese or with a zone (the wall time kept); a
    day-first date is ambiguous and, like text that is no date, gets a reason."""
    dates, why = readers.parse_dates(pd.Series([written, None], dtype="str"), "t.d", required=False)
    assert pd.isna(dates[1]) and why[1] is None
    if date is None:
        assert pd.isna(dates[0])
        assert why[0] == f"t.d: not a date (value {written}); write dates as ISO, 2025-01-31"
    else:
        assert dates[0] == pd.Timestamp(date) and why[0] is None


def test_codes_in_other_capitals_or_separators_read_as_the_codes():
    codes = ("auto_debit", "manual")
    text = pd.Series(["AUTO-DEBIT", " Manual ", "auto debit", "cash", None], dtype="str")
    assert readers.as_codes(text, codes).tolist()[:4] == ["auto_debit", "manual", "auto_debit", "cash"]


@pytest.mark.parametrize("second, said", [
    ("id,amount\n3,1.0\n", r"lacks \['when'\]"),
    ("id,amount,when,extra\n3,1.0,2025-01-01,x\n", r"has also \['extra'\]"),
])
def test_a_folder_whose_files_differ_in_columns_stops_naming_the_file(tmp_path, second, said):
    """Arrow reads a folder in its first file's columns: a column another file lacks was read as
    blanks, one it has besides dropped, with no word said."""
    (tmp_path / "part-0.csv").write_text("id,amount,when\n1,2.5,2025-01-01\n")
    (tmp_path / "part-1.csv").write_text(second)
    with pytest.raises(ContractError, match=r"part-1.csv: its columns are not those of .*part-0.csv.*"
                       + said):
        readers.open_dataset(tmp_path)
    (tmp_path / "part-1.csv").write_text("when,id,amount\n2025-02-01,3,1.0\n")  # another order is fine
    assert readers.open_dataset(tmp_path).to_table().num_rows == 2


def _parts(folder, **parts: pd.DataFrame) -> None:
    """Each frame as the file named: a CSV where the name says so, else Parquet."""
    folder.mkdir(exist_ok=True)
    for name, frame in parts.items():
        (frame.to_csv if readers.is_csv_name(folder / name) else frame.to_parquet)(folder / name, index=False)


@pytest.mark.parametrize("ending", [".csv", ".parquet"])
def test_a_folders_parts_named_with_an_underscore_are_read_and_hidden_ones_not(ending, tmp_path):
    """Arrow's default hid '_2025-11.csv' too: 1 of the 2 rows was read, with no word said. A
    hidden file (one of our own temporaries) is no part, nor is a writer's empty marker."""
    one = pd.DataFrame({"borrower_id": [1], "x": [2.5]})
    _parts(tmp_path, **{f"_2025-11{ending}": one, f"2025-12{ending}": one.assign(borrower_id=2),
                        f".2025-10{ending}.tmp": one.assign(borrower_id=3)})
    (tmp_path / "_SUCCESS").touch()
    read = readers.open_dataset(tmp_path).to_table().to_pandas()
    assert sorted(read["borrower_id"]) == [1, 2]


def test_a_hive_exports_parquet_parts_read_whatever_their_names(tmp_path):
    """Hive names its parts '000000_0': Parquet by their first bytes; a Parquet dataset's summary
    file ('_metadata') holds no rows of its own."""
    _parts(tmp_path, **{"000000_0": pd.DataFrame({"borrower_id": [1, 2]}),
                        "000001_0": pd.DataFrame({"borrower_id": [3]}),
                        "_common_metadata": pd.DataFrame({"borrower_id": [9]})})
    assert readers.open_dataset(tmp_path).to_table()["borrower_id"].to_pylist() == [1, 2, 3]


@pytest.mark.parametrize("ending", [".csv", ".parquet"])
def test_a_column_of_numbers_in_one_part_and_text_in_another_reads_as_text(ending, tmp_path):
    """Arrow read it in the first part's type, and failed naming no file or column ('Failed to
    parse string: 'unknown' as a scalar of type double'); as text, the checks name the rows."""
    _parts(tmp_path, **{f"part-0{ending}": pd.DataFrame({"borrower_id": [1, 2], "age": [30.5, 41.25]}),
                        f"part-1{ending}": pd.DataFrame({"borrower_id": [3], "age": ["unknown"]})})
    read = readers.open_dataset(tmp_path).to_table()
    assert pa.types.is_string(read["age"].type) or pa.types.is_large_string(read["age"].type)
    assert sorted(read["age"].to_pylist()) == ["30.5", "41.25", "unknown"]


def test_whole_numbers_in_one_part_and_decimals_in_another_read_as_decimals(tmp_path):
    _parts(tmp_path, **{"part-0.parquet": pd.DataFrame({"borrower_id": [1], "x": [3]}),
                        "part-1.parquet": pd.DataFrame({"borrower_id": [2], "x": [2.5]})})
    read = readers.open_dataset(tmp_path).to_table()
    assert read["x"].type == pa.float64() and sorted(read["x"].to_pylist()) == [2.5, 3.0]


@pytest.mark.parametrize("second, said", [
    (pd.DataFrame({"borrower_id": ["C3"], "when": [pd.Timestamp("2025-01-01")]}),
     "column 'borrower_id' has another type in each of the folder's files (int64 in ['part-0.parquet']; "
     "large_string in ['part-1.parquet']): write it the same way in every file"),
    (pd.DataFrame({"borrower_id": [3], "when": [7]}),
     "column 'when' has another type in each of the folder's files (timestamp[us] in ['part-0.parquet']; "
     "int64 in ['part-1.parquet']): write it the same way in every file"),
])
def test_parts_whose_column_has_no_common_type_stop_naming_the_column_and_files(second, said, tmp_path):
    """Text and numbers are no common type for the ids, which the batches are cut by: Arrow
    filters each part in its own type ("Function 'equal' has no kernel matching input types
    (int64, large_string)")."""
    _parts(tmp_path, **{"part-0.parquet": pd.DataFrame({"borrower_id": [1, 2],
                                                        "when": pd.to_datetime(["2025-01-01"] * 2)}),
                        "part-1.parquet": second})
    with pytest.raises(ContractError) as stopped:
        readers.open_dataset(tmp_path)
    assert str(stopped.value) == f"{tmp_path}: {said}"


@pytest.mark.parametrize("extra, said", [
    ({"part-1.csv": "borrower_id\n3\n"},
     "mixes CSV files ['part-1.csv'] and Parquet files ['part-0.parquet']: a folder's parts are of one "
     "format"),
    ({"README.txt": "exported 2026-12-01\n"},
     "holds files neither CSV (.csv, .csv.gz) nor Parquet: ['README.txt']; a folder holds only its data's "
     "parts: move them out"),
    ({"old/part-0.parquet": None},
     "holds the folders ['old/']: a folder's own files are read, not those of folders inside it; move "
     "them out, or their files into it"),
])
def test_a_folder_holding_more_than_one_formats_parts_stops_naming_what_else(extra, said, tmp_path):
    """A Parquet part was parsed as CSV ('Expected 1 columns, got 2'), a README read as the
    first CSV, an 'old/' copy read too (every borrower rejected as a duplicate)."""
    _parts(tmp_path, **{"part-0.parquet": pd.DataFrame({"borrower_id": [1, 2]})})
    for name, text in extra.items():
        if text is None:
            _parts(tmp_path / "old", **{"part-0.parquet": pd.DataFrame({"borrower_id": [1, 2]})})
        else:
            (tmp_path / name).write_text(text)
    with pytest.raises(ContractError) as stopped:
        readers.open_dataset(tmp_path)
    assert str(stopped.value) == f"{tmp_path}: {said}"


def test_a_folder_of_no_data_file_and_a_parquet_file_named_csv_are_told_what_they_are(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "_SUCCESS").write_bytes(b"")  # a writer's marker holds no rows
    with pytest.raises(ContractError, match="empty: holds no data file"):
        readers.open_dataset(folder)
    named = tmp_path / "features.csv"
    pd.DataFrame({"a": [1, 2]}).to_parquet(named)
    with pytest.raises(ContractError, match="a Parquet file named as a CSV: name it .parquet"):
        readers.open_dataset(named)


def test_a_workbook_opening_on_notes_names_its_first_sheet(tmp_path):
    assert readers.sheet_note(tmp_path / "scores.csv") == ""
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"note": ["read me"]}).to_excel(book, sheet_name="Notes", index=False)
        pd.DataFrame({"borrower_id": [1]}).to_excel(book, sheet_name="Data", index=False)
    assert "here 'Notes'" in readers.sheet_note(path)


def test_a_workbook_with_a_title_above_its_header_is_told_so(tmp_path):
    """Known answer from outside: a title in A1 above the header had been read as the header, and
    the run stopped on names 'Portfolio export 2026-12-01', 'Unnamed: 1', ... a model cannot keep."""
    path = tmp_path / "book.xlsx"
    pd.DataFrame({"customer_id": [1, 2], "scoring_date": ["2025-01-02"] * 2, "default": [0, 1]}).to_excel(
        path, index=False, startrow=2)
    import openpyxl

    book = openpyxl.load_workbook(path)
    book.worksheets[0]["A1"] = "Portfolio export 2026-12-01"
    book.save(path)
    with pytest.raises(ContractError, match="fills 1 of its cells and the next 3: a title or notes above"):
        readers.read_frame(readers.open_dataset(path), path)


def test_a_csv_written_by_pandas_with_none_reads_none_as_missing(tmp_path):
    """'None' (pandas' writing of a missing object) had made a ';' file's decimal-comma column
    text and stopped the run; it is missing, as '', 'NULL' and 'NaN' are."""
    path = tmp_path / "features.csv"
    path.write_text("borrower_id;amount\n1;28,5\n2;None\n3;none\n4;\n5;NULL\n")
    frame = readers.read_frame(readers.open_dataset(path), path)
    assert pd.api.types.is_float_dtype(frame["amount"])
    assert frame["amount"].tolist()[0] == 28.5 and frame["amount"].isna().sum() == 4


def test_a_workbooks_numeric_cells_of_2_53_or_more_are_refused_naming_the_rows(tmp_path):
    """19-digit ids in numeric cells had come out as 1234567890123457024 twice (two borrowers
    rejected as one duplicate, under an id nobody wrote); as text cells they are kept."""
    path = tmp_path / "book.xlsx"
    pd.DataFrame({"borrower_id": [7, 1234567890123456789, 1234567890123456788]}).to_excel(path, index=False)
    with pytest.raises(ContractError, match=r"column 'borrower_id' holds numbers of 2\*\*53 .*rows \[2, 3\]"):
        readers.open_dataset(path)
    text = tmp_path / "text.xlsx"
    pd.DataFrame({"borrower_id": ["7", "1234567890123456789"]}).to_excel(text, index=False)
    ids = readers.read_frame(readers.open_dataset(text), text)["borrower_id"]
    assert ids.tolist() == ["7", "1234567890123456789"]


def test_a_workbook_named_csv_and_a_csv_named_parquet_are_told_what_they_are(tmp_path):
    book = tmp_path / "features.csv"
    pd.DataFrame({"a": [1]}).to_excel(book, index=False)
    with pytest.raises(ContractError, match="a workbook .* named as a CSV: name it .xlsx"):
        readers.open_dataset(book)
    text = tmp_path / "features.parquet"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(ContractError, match="named .parquet but not Parquet"):
        readers.open_dataset(text)


def test_a_folders_parts_are_read_in_the_one_encoding_they_share(tmp_path):
    """A part of ASCII alone reads in any encoding, so beside a GBK part the folder reads as GBK
    (Arrow had read it in its first part's); parts in two encodings stop naming them."""
    parts = {"ascii_gbk": [("a,city\n1,x\n", "ascii"), ("a,city\n2,北京\n", "gbk")],
             "ascii_utf16": [("a,city\n1,x\n", "ascii"), ("a,city\n2,y\n", "utf-16")],
             "utf8_gbk": [("a,city\n1,Zürich\n", "utf-8"), ("a,city\n2,北京\n", "gbk")]}
    for name, texts in parts.items():
        folder = tmp_path / name
        folder.mkdir()
        for i, (text, encoding) in enumerate(texts):
            (folder / f"part-{i}.csv").write_bytes(text.encode(encoding))
    read = readers.open_dataset(tmp_path / "ascii_gbk").to_table().to_pandas()
    assert read["city"].tolist() == ["x", "北京"]
    for name in ("ascii_utf16", "utf8_gbk"):
        with pytest.raises(ContractError, match=rf"{name}: its parts are written in different encodings "
                                                r"\(.*\['part-0.csv'\]; .*\['part-1.csv'\]\)"):
            readers.open_dataset(tmp_path / name)


def test_a_workbooks_error_cells_read_as_a_csv_writes_them_and_empty_rows_are_no_records(tmp_path):
    """pandas read '#DIV/0!' as a blank, so a formula's error was scored as a missing value, while
    the same text in a CSV stops the run naming it; '#N/A' is blank in both. A row of empty cells
    (Excel keeps rows once touched) was a borrower without an id."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["id", "ratio", "other"], [1, 0.5, "a"], [None, None, None], [2, "#DIV/0!", "b"],
                [3, "#N/A", "c"], [None, None, None]):
        sheet.append(row)
    book.save(tmp_path / "t.xlsx")
    frame = readers.open_dataset(tmp_path / "t.xlsx").to_table().to_pandas()
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["ratio"].tolist() == ["0.5", "#DIV/0!", "#N/A"]
    numbers, why = readers.parse_numbers(frame["ratio"], "t.ratio", ".")
    assert numbers[0] == 0.5 and np.isnan(numbers[2]) and why[2] is None
    assert why[1] == "t.ratio: not a number (value #DIV/0!)"


@pytest.mark.parametrize("text, said", [
    ("Risk export, 2025-11\na,b,c\n1,2,3\n", "line 2 has 3 columns where the header has 2: a title"),
    ("a,b,c\n1,2,3\nExported: 1 row\n", "line 3 has 1 column where the header has 3: a note, a total"),
    ("a,b,c\n1,2,3,4\n", "line 2 has 4 columns where the header has 3: a title"),
    ("a,b,c\n1,2,3\n\x1a", "line 3 has 1 column where the header has 3: a note, a total or an end-of-file"),
])
def test_a_line_of_another_width_than_the_header_is_said_in_words(text, said, tmp_path):
    """Arrow said "CSV parse error: Row #302: Expected 76 columns, got 1: <the line>", echoing a
    footer or a control character; the message now says what such a line usually is."""
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(readers.READ_ERRORS) as err:
        readers.open_dataset(path).to_table()
    message = str(readers.unreadable(path, err.value))
    assert message.startswith(f"{path}: {said}") and "\x1a" not in message, message


def test_a_csv_without_a_header_is_told_so(tmp_path):
    """Spark's CSV parts have no header unless asked: the first row's values had been read as
    names and refused as columns named twice ('0.0', '')."""
    path = tmp_path / "part-00000.csv"
    path.write_text("7,2025-11-18,0.0,,0.0,1\n8,2025-11-18,0.5,,0.0,0\n")
    with pytest.raises(ContractError, match=r"its first line holds values \('7', '2025-11-18', '0.0', "
                                            r"\.\.\.\), not column names"):
        readers.open_dataset(path)
    path.write_text("borrower_id,scoring_date,x2024,age\n7,2025-11-18,0.0,31\n")  # names, one with digits
    assert readers.open_dataset(path).schema.names == ["borrower_id", "scoring_date", "x2024", "age"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_trailing_separators_are_unnamed_columns_not_a_name_given_twice(encoding, tmp_path):
    """Excel leaves ',,,' after each line for columns once touched: several unnamed columns, which
    Arrow refused as one name given twice."""
    path = tmp_path / "t.csv"
    path.write_bytes("a,b,,,\n1,2.5,,,\n".encode(encoding))
    frame = readers.open_dataset(path).to_table().to_pandas()
    assert list(frame.columns) == ["a", "b", "Unnamed: 2", "Unnamed: 3", "Unnamed: 4"]
    assert frame.iloc[0, 0] == 1 and frame.iloc[0, 1] == 2.5 and frame.iloc[0, 2:].isna().all()


def test_an_archive_under_another_name_is_told_what_it_is(tmp_path):
    """A zip of a CSV, or a gzipped Parquet file, had been told only that Parquet's magic bytes
    were missing."""
    import zipfile

    zipped = tmp_path / "t.csv.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("t.csv", "a,b\n1,2\n")
    gzipped = tmp_path / "t.parquet.gz"
    gzipped.write_bytes(gzip.compress(b"PAR1 not really"))
    with pytest.raises(ContractError, match="t.csv.zip: .*it is a zip archive: unzip it"):
        readers.open_dataset(zipped)
    with pytest.raises(ContractError, match="t.parquet.gz: .*it is gzipped: a gzipped CSV is read when"):
        readers.open_dataset(gzipped)
