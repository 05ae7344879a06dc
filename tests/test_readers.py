"""Reading files and values as exports write them (``pipeline.readers``), on hand-built examples;
whole files through the scoring command are in test_sources.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import readers
from pipeline.contract import ContractError


@pytest.mark.parametrize("decimal, written, number", [
    (".", " 12.5 ", 12.5), (".", "12,500.00", 12500.0), (".", "¥1,234,567.5", 1234567.5),
    (".", "-￥3", -3.0), (".", "¥-3", -3.0), (".", "$ 7", 7.0), (".", "701.0", 701.0), (".", "5.", 5.0),
    (",", "2,5", 2.5), (",", "12.500,25", 12500.25), (",", "¥1.234", 1234.0),
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
])
def test_a_csv_reads_whatever_its_separator_decimal_mark_and_encoding(text, encoding, tmp_path):
    """Known answers: each small file reads as the two columns it holds, 1 and 2.5."""
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode(encoding))
    frame = readers.open_dataset(path).to_table().to_pandas()
    assert frame.shape == (1, 2) and frame.iloc[0, 0] == 1 and frame.iloc[0, 1] == 2.5
    assert frame.columns[0] == "a"


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
        assert pd.isna(dates[0]) and why[0] == f"t.d: not a date (value {written})"
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
