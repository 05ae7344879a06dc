"""What a batch run over borrowers (scoring, recommending) writes: its results, the rejected
borrowers beside them with each one's reason, and the run's summary. The paths are checked before
any work, and a file's bytes do not depend on the batch size."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline import io
from pipeline.contract import ContractError
from pipeline.errors import UsageError

OUTPUT_FORMATS = (".parquet", ".csv")


def reject_reasons(rejects: pd.DataFrame) -> dict[str, int]:
    """Rejected borrowers per reason, the offending value left out ("repayments.channel: fails
    isin([...])"), so that one cause of many rejects reads as one line: also where advice follows
    the value (600 day-first dates had been counted as 600 reasons, and the summary's ten showed 153)."""
    if rejects.empty:
        return {}
    kinds = rejects["reason"].astype(str).str.replace(r" \(value .*\)(;[^()]*)?$", r"\1", regex=True)
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
ID = "borrower_id"


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

    def write(self, frame: pd.DataFrame | pa.Table) -> None:
        if len(frame) == 0 and self.writer is not None:
            return
        table = frame if isinstance(frame, pa.Table) else io.to_arrow(frame)
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

    def ensure(self, dtypes: dict[str, str], ids: pa.DataType | None = None) -> None:
        """Even an empty output gets its columns, of the types its rows would have had (``dtypes``,
        column -> pandas dtype; the ids of type ``ids`` where known): a day with nothing scored
        had written every column as text, and a folder of daily files was then read with its
        probabilities as text, or refused for ids of two types."""
        if self.writer is None:
            table = io.to_arrow(pd.DataFrame({c: pd.Series([], dtype=d) for c, d in dtypes.items()}))
            if ids is not None and ID in dtypes:
                table = table.cast(table.schema.set(table.schema.get_field_index(ID), pa.field(ID, ids)))
            self.write(table)

    def id_type(self) -> pa.DataType | None:
        """The type of the ids written so far; None before any id was."""
        if self.writer is None or ID not in self.writer.schema.names:
            return None
        written = self.writer.schema.field(ID).type
        return None if pa.types.is_null(written) else written

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
