"""What a cell's text means: one rule for blanks and codes wherever a cell is read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.cells import blank_cells, code_keys, codes_as_text, written_numbers


def test_every_way_an_export_writes_nothing_is_a_blank_and_nothing_else_is():
    values = pd.Series(["", "  ", "NULL", "n/a", "NaN", "None", None, np.nan, "0", "nano", "N.A."],
                       dtype=object)
    assert blank_cells(values).tolist() == [True] * 8 + [False] * 3
    assert not blank_cells(pd.Series([0.0, 1.5])).any()


def test_a_code_in_other_capitals_spacing_or_dashes_has_the_codes_key():
    keys = code_keys(pd.Series(["MANUAL", " Auto-Debit ", "auto debit", "auto_debit"]))
    assert keys.tolist() == ["manual", "auto_debit", "auto_debit", "auto_debit"]


def test_codes_written_as_numbers_are_the_text_a_csv_gives_them():
    assert codes_as_text(pd.Series([1.0, 2, np.nan, 2.5])).tolist()[:2] == ["1", "2"]
    written = codes_as_text(pd.Series([1.0, 2.0, np.nan, 2.5]))
    assert pd.isna(written.iloc[2]) and written.iloc[3] == "2.5"


def test_a_long_value_is_cut_in_messages_and_a_short_one_kept_as_written():
    from pipeline.cells import SHOWN_CHARACTERS, quoted, shortened

    long = "x" * 100_000
    cut = shortened(pd.Series([long, "phd", None]))
    assert cut.iloc[0] == "x" * SHOWN_CHARACTERS + "... (100000 characters)" and cut.iloc[1] == "phd"
    assert quoted(long) == repr(cut.iloc[0]) and quoted(np.int64(7)) == "7" and quoted("a") == "'a'"


def test_numbers_are_read_as_exports_write_them_with_either_decimal_mark():
    written = pd.Series([" 12.5 ", "12,500.00", "¥1,234,567.5", "-￥3", "$ 7", "1,23", "abc", None],
                        dtype=object)
    np.testing.assert_array_equal(written_numbers(written),
                                  [12.5, 12500.0, 1234567.5, -3.0, 7.0, np.nan, np.nan, np.nan])
    comma = pd.Series(["2,5", "12.500,25", "5.500"], dtype="str")
    np.testing.assert_array_equal(written_numbers(comma, ","), [2.5, 12500.25, 5500.0])

