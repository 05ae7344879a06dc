"""File I/O shared by every stage: atomic writes, Parquet datasets of shards, digests."""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import InputError, UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Fixed writer settings: with the pinned pyarrow, the same frame always gives the same bytes.
# Dictionary encoding pays only for string columns; for amounts it is wasted work. Row groups this
# small let a reader of a batch of borrowers (``read_batches``) decode little beyond the batch.
PARQUET_OPTIONS = dict(compression="zstd", row_group_size=32_768, write_statistics=True)


# Temporaries are named .<target>.<pid>@<host>.<random>[suffix].tmp, so that the next write of the
# same target can tell those of a killed process (same host, pid no longer running) and remove them.
HOST = socket.gethostname().split(".")[0]
OWNER = re.compile(r"\.(\d+)@([^.]+)\.[^.]+(\.[^.]+)?\.tmp$")


@contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path next to ``target`` that replaces it only if the block succeeds."""
    with temporary_path(Path(target), suffix) as tmp:
        yield tmp
        os.replace(tmp, target)


class Busy(Exception):
    """Another process of this machine holds the lock (``machine_lock`` without waiting)."""


@contextmanager
def machine_lock(key: str, wait: bool) -> Iterator[None]:
    """Held by one process of this machine at a time per ``key``: the others wait, or raise
    ``Busy`` when not ``wait``. The lock files sit in one world-writable folder, outside every
    output (DVC would hash them), so that two accounts of one machine also take turns."""
    import fcntl

    folder = Path(tempfile.gettempdir()) / "limitjump-locks"
    if not folder.is_dir():
        folder.mkdir(exist_ok=True)
        folder.chmod(0o1777)  # as /tmp: anyone may add a lock, none remove another's
    descriptor = os.open(folder / f"{text_digest(key)[:32]}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as err:
            raise Busy(key) from err
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@contextmanager
def output_set(targets: list[Path]) -> Iterator[list[Path]]:
    """Temporary paths for files that must appear together; the last target is the one that
    vouches for the others (a summary holding their digests). On success the last target is
    removed, the others renamed into place and the last renamed last, in immediate sequence: a
    run killed in between leaves no last target, so whenever it exists the others beside it are
    the ones written with it. On failure no target changes and every temporary is removed.

    One process of the machine writes a set at a time; another raises ``Busy`` at once: two
    scorings to one output had both said they wrote it, and only the later one's rows were there."""
    with ExitStack() as stack:
        try:
            stack.enter_context(machine_lock(str(targets[-1].resolve()), wait=False))
        except Busy:
            raise UsageError(f"{targets[0]}: another process of this machine is writing it now; wait "
                             "for it to end, or write elsewhere (two runs to one output would each say "
                             "they wrote it)") from None
        temps = [stack.enter_context(temporary_path(t, t.suffix)) for t in targets]
        yield temps
        targets[-1].unlink(missing_ok=True)
        for tmp, target in zip(temps, targets, strict=True):
            os.replace(tmp, target)


@contextmanager
def temporary_path(target: Path, suffix: str) -> Iterator[Path]:
    """A temporary file next to ``target``, readable like any output, removed unless renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}@{HOST}.", suffix=suffix + ".tmp",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it private; the output should not be
        yield tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries of ``target`` left by processes of this host that are gone (killed
    before they could clean up); those of running processes and other hosts are left alone."""
    removed = []
    name = glob.escape(target.name)
    # and the temporaries of its temporaries (a CSV's rows kept as Parquet beside the CSV's own),
    # which a killed run leaves behind too: ..<target>.<pid>@<host>.<random>.csv.tmp.<pid>@...tmp
    for tmp in [*target.parent.glob(f".{name}.*.tmp"), *target.parent.glob(f"..{name}.*.tmp")]:
        owner = OWNER.search(tmp.name[len(target.name) + 1:])
        if owner and owner[2] == HOST and not running(int(owner[1])):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def running(pid: int) -> bool:
    """Whether a process of this host with ``pid`` is alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """A temporary directory that replaces ``target`` (and all it held) only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    shutil.rmtree(target.with_name(f".{target.name}.old"), ignore_errors=True)  # earlier versions' name
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}@{HOST}.", suffix=".tmp",
                                dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private: a scheduler's account could not read it
        yield tmp
        # the replaced output is named as this process's temporary: a run killed while removing
        # it (a large data/raw takes a while) leaves what the next run removes, not a fixed name
        # in the way of its rename
        old = target.with_name(f".{target.name}.{os.getpid()}@{HOST}.old.tmp")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Arrow table without the pandas index and with no pandas metadata, so bytes depend
    only on the data."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata(None)


def write_parquet(frame: pd.DataFrame | pa.Table, path: str | Path) -> None:
    table = frame if isinstance(frame, pa.Table) else to_arrow(frame)
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    with atomic_path(path, ".parquet") as tmp:
        pq.write_table(table, tmp, use_dictionary=strings, **PARQUET_OPTIONS)


def write_json(data: Any, path: str | Path) -> None:
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json_text(data))


def write_png(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    """A figure as PNG without metadata (no Matplotlib version, no time), so the bytes depend
    only on the data; written atomically. Figures made without pyplot get their canvas here."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path, ".png") as tmp:
        figure.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    return Path(path)


def json_text(data: Any) -> str:
    """Strict JSON: NaN and infinities become null, which every reader (and DVC) accepts. Keys
    are sorted, numbers by value (amounts of 5000 before 10000), so the bytes depend only on
    the data."""
    return json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False) + "\n"


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _key_order(key: Any) -> tuple:
    text = str(key)
    return (0, float(text), text) if _NUMBER.fullmatch(text) else (1, 0.0, text)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(value[k]) for k in sorted(value, key=_key_order)}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path, ".csv") as tmp:
        frame.to_csv(tmp, index=False)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def part_index(path: Path) -> int:
    return int(path.name.removeprefix("part-").removesuffix(".parquet"))


def read_part(directory: str | Path, index: int, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(Path(directory) / part_name(index), columns=columns)


def borrower_ends(directory: str | Path, index: int, size: int) -> list[int]:
    """The borrower ids at which shard ``index`` of a table of borrowers splits into batches of
    ``size`` borrowers: batch i holds the ids from ends[i-1] (from the first) up to ends[i],
    excluded; the last end is past the largest id, so the batches hold every borrower."""
    ids = np.unique(read_part(directory, index, ["borrower_id"])["borrower_id"].to_numpy())
    return [*ids[size::size].tolist(), int(ids[-1]) + 1 if ids.size else 0]


def read_batches(directory: str | Path, index: int, ends: list[int],
                 columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """Shard ``index`` of a dataset, one frame per batch of ``ends`` (``borrower_ends``). Each row
    group is decoded once, when the first batch that can hold its rows (by its statistics) comes,
    and the rows of later batches are kept: with rows in borrower order, as the simulator writes
    them, that is one batch and part of a row group at a time. Rows past the last end are not
    returned."""
    # map, not a generator: a generator's names would keep the last batch alive while the next is read
    return map(_BatchReader(Path(directory) / part_name(index), columns), ends)


class _BatchReader:
    """Called with each end in turn: the rows of borrower ids below it not handed out before."""

    def __init__(self, path: Path, columns: list[str] | None) -> None:
        # mapped, not read into buffers of our own: the column chunks' compressed bytes are then
        # the file's pages, which the system can drop, not the heap's. Features of 1M borrowers on
        # 2 threads, batches of 5,000: peak 438-459 MB against 485-546 MB, in the same time
        # (3 alternated pairs, 2026-12-06)
        self.file, self.columns = pq.ParquetFile(path, memory_map=True), columns
        column = self.file.schema_arrow.get_field_index("borrower_id")
        stats = [self.file.metadata.row_group(g).column(column).statistics
                 for g in range(self.file.num_row_groups)]
        self.unread = [(g, st.min if st is not None and st.has_min_max else None)
                       for g, st in enumerate(stats)]
        self.held = self.file.read_row_groups([], columns)

    def __call__(self, end: int) -> pd.DataFrame:
        due = [g for g, low in self.unread if low is None or low < end]
        self.unread = [(g, low) for g, low in self.unread if g not in due]
        table = pa.concat_tables([self.held, self.file.read_row_groups(due, self.columns)])
        # in Arrow, outside Python's lock; a missing id is never before the end, as NaN is not
        before = pc.fill_null(pc.less(table["borrower_id"], end), False)
        batch, self.held = _split(table, before)
        # a block per column: pandas' consolidation of same-typed columns would copy them all,
        # under Python's lock (half the conversion's time); no pandas metadata: the batch needs
        # neither the writer's index nor its column index, rebuilt in Python for every batch
        return batch.to_pandas(split_blocks=True, ignore_metadata=True)


def _split(table: pa.Table, mask: pa.ChunkedArray) -> tuple[pa.Table, pa.Table]:
    """The rows of ``table`` in ``mask`` and the others, each in one chunk per column. Filtered
    copies, not slices: a slice keeps its decoded row groups alive (reading the batches of 4
    shards of 1M borrowers peaked at 365-384 MB with slices, 337-341 MB with these, 2026-12-06).
    One chunk, which pandas then takes without a copy, as Arrow joins chunks outside Python's
    lock and pandas inside it: the batches' conversion to pandas took half the time."""
    return table.filter(mask).combine_chunks(), table.filter(pc.invert(mask)).combine_chunks()


def parts(directory: str | Path) -> list[Path]:
    """The shard files of a dataset directory, in shard order."""
    return sorted(Path(directory).glob("part-*.parquet"))


def read_dataset(directory: str | Path, columns: list[str] | None = None,
                 filters: list[tuple] | None = None) -> pd.DataFrame:
    """All shards of a dataset directory as one frame (for tables that fit in memory), or only
    their rows that pass ``filters`` (pyarrow's (column, op, value) triples, all must hold).
    Parts that differ in their columns stop it, named: pandas would fill the columns a part
    lacks with blanks (an outside check's stream part without its most important feature was
    monitored as drift)."""
    files = parts(directory)
    if not files:
        raise FileNotFoundError(f"{directory}: no part-*.parquet files")
    frames = [pd.read_parquet(f, columns=columns, filters=filters) for f in files]
    first = set(frames[0].columns)
    for path, frame in zip(files, frames, strict=True):
        if set(frame.columns) != first:
            lacks, extra = sorted(first - set(frame.columns)), sorted(set(frame.columns) - first)
            raise InputError(f"{path}: its columns differ from those of {files[0]}"
                             + (f"; it lacks {lacks}" if lacks else "")
                             + (f"; it adds {extra}" if extra else "")
                             + f" (the parts of {directory} are one table: write them again)")
    return pd.concat(frames, ignore_index=True)


SPLITS = ("train", "valid", "test")  # the split stage's files, read by name (``read_splits``)
EMBARGOED = "embargo"  # the rows between two splits, in none of them


def read_splits(directory: str | Path, names: tuple[str, ...] = SPLITS,
                columns: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The split stage's files (``<name>.parquet`` in ``directory``) by split name: the one reader
    of them, so that no stage imports the split stage's code to read its output."""
    return {name: pd.read_parquet(Path(directory) / f"{name}.parquet", columns=columns) for name in names}


def file_digest(path: str | Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        _feed(h, f)
    return h.hexdigest()


def content_digest(path: str | Path) -> str:
    """sha256 of a file's bytes alone, as ``sha256sum`` prints it."""
    h = hashlib.sha256()
    _feed(h, Path(path))
    return h.hexdigest()


def _feed(h, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
