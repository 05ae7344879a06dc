"""What a cell's text means, the one rule of every reader: the scorer's files, raw tables, a
team's tables and what MLflow hands the served model. Kept apart and light (pandas only), as
the model's encoding reads it for every batch it scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

# what a cell holds when it holds nothing: exports write a missing value in all of these ways
# (Arrow's own list for CSV, which Excel's '#N/A' and C's '-1.#IND' come from, MySQL's and Hive's
# '\N', Python's None), the same in every format a file comes in
NULL_SPELLINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                  "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null", "\\N", "None", "none", "NONE")
BLANKS = frozenset(spelling.lower() for spelling in NULL_SPELLINGS)


def blank_cells(values: pd.Series) -> np.ndarray:
    """Per row, whether a cell is missing: no value, or text that only says so (blank, spaces,
    'NULL', 'n/a'), so that a cell is missing wherever it is read."""
    text = values.astype("str").str.strip().str.lower()
    return (values.isna() | text.isin(BLANKS)).to_numpy(dtype=bool)


def code_keys(text: pd.Series) -> pd.Series:
    """A code as compared whatever its capitals, spaces around it, and spaces, hyphens or
    underscores inside: an export's 'MANUAL' or ' Auto-Debit' is the code it spells."""
    return text.str.strip().str.lower().str.replace(r"[\s\-_]+", "_", regex=True)


def codes_as_text(numbers: pd.Series) -> pd.Series:
    """Codes written as numbers as the text a CSV gives them: 1 as '1', also where a blank made
    the column float (1.0); 2.5 as '2.5'; missing stays missing."""
    numbers = pd.to_numeric(numbers)
    whole = numbers.notna() & (numbers == numbers.round())
    return numbers.where(whole).astype("Int64").astype("str").where(whole, numbers.astype("str")).where(
        numbers.notna())


SHOWN_CHARACTERS = 60  # of a value quoted in a message: a 100,000-character cell made a 100 KB error


def shortened(text: pd.Series) -> pd.Series:
    """Values as quoted in messages and summaries: text as written, cut to ``SHOWN_CHARACTERS``
    with '...' and the length where longer."""
    text = text.astype("str")
    length = text.str.len().fillna(0).astype("int64")
    long = length > SHOWN_CHARACTERS
    if not long.any():
        return text
    cut = text.str.slice(0, SHOWN_CHARACTERS) + "... (" + length.astype("str") + " characters)"
    return text.where(~long, cut)


def quoted(value: object) -> str:
    """One cell as a message quotes it: as written (7, not np.int64(7)), a long text cut."""
    value = value.item() if isinstance(value, np.generic) else value
    return repr(shortened(pd.Series([value])).iloc[0]) if isinstance(value, str) else repr(value)


# a sign, then a currency sign, in either order ('-¥12', '¥-12'), and digits grouped by three
CURRENCY = r"^([-+]?)\s*[¥￥$]\s*"
GROUPED = {".": r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?", ",": r"[-+]?\d{1,3}(?:\.\d{3})+(?:,\d*)?"}


def written_numbers(values: pd.Series, decimal: str = ".") -> pd.Series:
    """Numbers (float64; NaN where a cell is none) from text as exports write them: spaces around,
    a currency sign (¥, ￥, $), thousands grouped by three ('12,500.00'; '12.500,00' where
    ``decimal`` is the comma). The one grammar of a file's cells and of the served model's."""
    cleaned = values.astype("str").str.strip().str.replace(CURRENCY, r"\1", regex=True)
    grouped = cleaned.str.fullmatch(GROUPED[decimal]).fillna(False).astype(bool)
    separator = "," if decimal == "." else "."
    cleaned = cleaned.where(~grouped, cleaned.str.replace(separator, "", regex=False))
    return pd.to_numeric(cleaned.str.replace(decimal, ".", regex=False), errors="coerce").astype("float64")
