"""The simulator's raw tables on disk, one Parquet part per shard of borrowers in each table's
folder (``data/raw/<table>/part-<shard>.parquet``), read a shard or a batch of borrowers at a
time; the maintenance windows are shared by every shard, one file, not a part per shard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from pipeline import io
from pipeline.contract import RAW_TABLES

WINDOWS = "maintenance_windows"  # shared by every shard: one file, not a table per shard


def read_shard(raw: Path, index: int, columns: dict[str, tuple[str, ...]] | None = None) -> dict:
    """Every raw table of one shard, with the (shared) maintenance windows; of each table the
    ``columns`` named (``COLUMNS_READ``: what the features read), or all of them."""
    tables = {name: io.read_part(raw / name, index, _wanted(columns, name)) for name in RAW_TABLES}
    return tables | {WINDOWS: read_windows(raw, columns)}


def read_shard_batches(raw: Path, index: int, ends: list[int],
                       columns: dict[str, tuple[str, ...]] | None = None) -> Iterator[dict]:
    """``read_shard`` one batch of borrowers at a time (``io.borrower_ends``)."""
    windows = read_windows(raw, columns)
    readers = [io.read_batches(raw / name, index, ends, _wanted(columns, name)) for name in RAW_TABLES]
    # map, not a generator: nothing keeps a batch alive once its user is done with it
    return map(lambda *frames: dict(zip(RAW_TABLES, frames, strict=True)) | {WINDOWS: windows}, *readers)


def read_windows(raw: Path, columns: dict[str, tuple[str, ...]] | None) -> pd.DataFrame:
    return io.read_dataset(raw / WINDOWS, _wanted(columns, WINDOWS))


def _wanted(columns: dict[str, tuple[str, ...]] | None, name: str) -> list[str] | None:
    return list(columns[name]) if columns else None
