"""Reading a shard batch by batch of borrowers (``io.borrower_ends``, ``io.read_batches``), and the
clean-up of what a killed writer left."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import io
from pipeline.errors import InputError, UsageError


def write_part(folder, frame: pd.DataFrame, rows_per_group: int = 3):
    """``frame`` as shard 0 of ``folder``, in row groups of ``rows_per_group`` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / io.part_name(0),
                   row_group_size=rows_per_group)
    return folder


@pytest.fixture
def rows():
    """Borrowers 10 to 16 but 13, 1 to 3 rows each, in borrower order: 11 rows in 4 row groups."""
    ids = np.repeat([10, 11, 12, 14, 15, 16], [2, 3, 1, 2, 1, 2])
    return pd.DataFrame({"borrower_id": ids, "amount": np.arange(ids.size) * 1.5,
                         "kind": [f"k{i % 3}" for i in range(ids.size)]})


def test_borrower_ends_split_the_borrowers_into_batches_and_hold_every_one(tmp_path):
    folder = write_part(tmp_path / "borrowers", pd.DataFrame({"borrower_id": [3, 5, 6, 9, 12]}))
    assert io.borrower_ends(folder, 0, 2) == [6, 12, 13]
    assert io.borrower_ends(folder, 0, 5) == [13]
    assert io.borrower_ends(folder, 0, 100) == [13]
    empty = write_part(tmp_path / "none", pd.DataFrame({"borrower_id": np.array([], dtype="int64")}))
    assert io.borrower_ends(empty, 0, 2) == [0]


@pytest.mark.parametrize("order", ["borrower order", "shuffled"])
def test_batches_hold_exactly_their_borrowers_rows_and_together_every_row(tmp_path, rows, order):
    if order == "shuffled":  # slower (row groups read early are held), never wrong
        rows = rows.sample(frac=1.0, random_state=3).reset_index(drop=True)
    folder = write_part(tmp_path / "t", rows)
    ends = [12, 15, 17]
    batches = list(io.read_batches(folder, 0, ends, ["borrower_id", "amount", "kind"]))
    assert [len(b) for b in batches] == [5, 3, 3]
    for first, end, batch in zip([-np.inf, *ends], ends, batches, strict=False):
        assert batch["borrower_id"].between(first, end, inclusive="left").all()
        expect = rows[rows.borrower_id.between(first, end, inclusive="left")]
        pd.testing.assert_frame_equal(batch, expect.reset_index(drop=True), check_dtype=False)
    assert sorted(pd.concat(batches).amount) == sorted(rows.amount)  # every row, once


def test_in_borrower_order_each_row_group_is_decoded_once(tmp_path, rows, monkeypatch):
    folder = write_part(tmp_path / "t", rows)
    decoded, read = [], pq.ParquetFile.read_row_groups

    def spy(self, groups, columns=None):
        decoded.extend(groups)
        return read(self, groups, columns)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    list(io.read_batches(folder, 0, [11, 12, 13, 17]))
    assert sorted(decoded) == [0, 1, 2, 3]


def test_rows_past_the_last_end_are_not_read_and_an_empty_batch_keeps_the_columns(tmp_path, rows):
    folder = write_part(tmp_path / "t", rows)
    first, empty = io.read_batches(folder, 0, [12, 12], ["borrower_id", "kind"])
    assert first.borrower_id.tolist() == [10, 10, 11, 11, 11]
    assert empty.empty and list(empty.columns) == ["borrower_id", "kind"]


def test_a_batch_reads_as_the_whole_file_does(tmp_path, rows):
    """Same dtypes and values as ``read_part`` (pandas' reader), strings included."""
    folder = tmp_path / "t"
    folder.mkdir()
    io.write_parquet(rows, folder / io.part_name(0))
    (batch,) = io.read_batches(folder, 0, [100])
    pd.testing.assert_frame_equal(batch, io.read_part(folder, 0))


def test_read_splits_reads_each_named_split_file(tmp_path):
    frames = {name: pd.DataFrame({"borrower_id": [i, i + 10], "label": [0, 1]})
              for i, name in enumerate(("train", "test"))}
    for name, frame in frames.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    read = io.read_splits(tmp_path, ("test", "train"), columns=["borrower_id"])
    assert list(read) == ["test", "train"]
    for name, frame in read.items():
        pd.testing.assert_frame_equal(frame, frames[name][["borrower_id"]])


def test_read_splits_reads_the_three_splits_by_default(tmp_path):
    for i, name in enumerate(io.SPLITS):
        pd.DataFrame({"borrower_id": [i]}).to_parquet(tmp_path / f"{name}.parquet")
    read = io.read_splits(tmp_path)
    assert list(read) == ["train", "valid", "test"] and read["test"]["borrower_id"].tolist() == [2]


def test_a_split_copies_each_side_into_one_chunk_per_column():
    """``_split``: the rows in the mask and the others, each column one chunk (which pandas takes
    without a copy) and in buffers of its own, so that neither keeps the row groups alive, even
    where a slice would do (one chunk, the mask a prefix)."""
    parts = [pa.table({"borrower_id": [10, 11, 14], "kind": ["a", "b", None]}),
             pa.table({"borrower_id": [12, 15], "kind": ["c", "d"]})]
    cases = [(pa.concat_tables(parts), [[True, True, False], [True, False]], [10, 11, 12], [14, 15]),
             (parts[0], [[True, True, False]], [10, 11], [14])]
    for table, mask, ids_in, ids_out in cases:
        inside, outside = io._split(table, pa.chunked_array(mask))
        assert inside["borrower_id"].to_pylist() == ids_in
        assert outside["borrower_id"].to_pylist() == ids_out
        source = [(b.address, b.address + b.size) for column in table.columns
                  for chunk in column.chunks for b in chunk.buffers() if b is not None]
        for side in (inside, outside):
            assert all(column.num_chunks == 1 for column in side.columns)
            for b in (b for column in side.columns for b in column.chunk(0).buffers() if b is not None):
                assert not any(lo <= b.address < hi for lo, hi in source)
    assert outside["kind"].to_pylist() == [None]


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_a_killed_runs_temporaries_of_temporaries_are_removed(tmp_path):
    """Known answer from outside: after kill -9, a rerun to the same scores.csv had left the
    Parquet rows kept beside the CSV's temporary (named after it, so two dots)."""
    dead = _dead_pid()
    outer = f".scores.csv.{dead}@{io.HOST}.abc123.csv.tmp"
    nested = f".{outer}.{dead}@{io.HOST}.def456.parquet.tmp"
    alive = f"..scores.csv.{os.getpid()}@{io.HOST}.x.csv.tmp.{os.getpid()}@{io.HOST}.y.parquet.tmp"
    for name in (outer, nested, alive):
        (tmp_path / name).write_text("partial")
    removed = io.remove_stale_temporaries(tmp_path / "scores.csv")
    assert sorted(p.name for p in removed) == sorted([outer, nested])
    assert [p.name for p in tmp_path.iterdir()] == [alive]


def test_a_folder_left_by_a_run_killed_while_removing_the_old_output_is_no_obstacle(tmp_path):
    """Known answer from outside: a kill during the removal of the replaced output left
    `.incoming.old`, and every later run failed at its rename ('Directory not empty')."""
    target = tmp_path / "incoming"
    for leftover in (f".incoming.{_dead_pid()}@{io.HOST}.old.tmp", ".incoming.old"):  # now, and before
        (tmp_path / leftover / "borrowers").mkdir(parents=True)
        (tmp_path / leftover / "borrowers" / "part-00000.parquet").write_text("half removed")
    target.mkdir()
    (target / "old.txt").write_text("old")
    with io.atomic_dir(target) as out:
        (out / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["incoming"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_outputs_are_as_readable_as_the_umask_lets_any_new_file_be(tmp_path):
    """Known answer from outside: every output folder (data/raw, models/lightgbm) was 0700, as
    mkdtemp makes its folders, while the files inside were 0644: a scheduler's account could not
    read the models."""
    old = os.umask(0o022)
    try:
        with io.atomic_dir(tmp_path / "model") as out:
            (out / "model.txt").write_text("trees")
        io.write_json({"a": 1}, tmp_path / "metrics.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644


def test_a_png_carries_no_version_or_time_and_the_same_figure_gives_the_same_bytes(tmp_path):
    from matplotlib.figure import Figure

    def drawn() -> Figure:
        figure = Figure(figsize=(2, 1))
        figure.add_subplot().plot([0, 1, 2], [1, 0, 1])
        return figure
    first = io.write_png(drawn(), tmp_path / "a.png")
    second = io.write_png(drawn(), tmp_path / "b.png", dpi=110)
    data = first.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == second.read_bytes()
    assert b"Matplotlib" not in data and b"Software" not in data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary left


def test_json_keys_are_sorted_with_numbers_by_value_and_nan_becomes_null(tmp_path):
    path = tmp_path / "figures.json"
    io.write_json({"b": 1, "50000": {"10000": 2.0, "5000": float("nan")}, "a": 3, "0": 4, "-1.5": 5}, path)
    text = path.read_text()
    loaded = json.loads(text)
    assert list(loaded) == ["-1.5", "0", "50000", "a", "b"]
    assert list(loaded["50000"]) == ["5000", "10000"]
    assert loaded["50000"]["5000"] is None
    io.write_json(dict(reversed(list(loaded.items()))), path)
    assert path.read_text() == text


def test_output_set_replaces_all_or_nothing(tmp_path):
    targets = [tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.json"]
    for t in targets:
        t.write_text("old")
    with pytest.raises(RuntimeError), io.output_set(targets) as temps:
        for tmp in temps:
            tmp.write_text("new")
        raise RuntimeError("killed before the renames")
    assert [t.read_text() for t in targets] == ["old"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(t.name for t in targets)
    with io.output_set(targets) as temps:
        for tmp in temps:
            tmp.write_text("new")
    assert [t.read_text() for t in targets] == ["new"] * 3


def test_a_second_writer_of_one_output_set_is_refused_at_once_and_the_first_keeps_it(tmp_path):
    """Known answer from outside: two scorings to one output both exited 0, saying they wrote it,
    and only the later one's rows were there."""
    targets = [tmp_path / "scores.parquet", tmp_path / "scores.summary.json"]
    with io.output_set(targets) as first:
        with pytest.raises(UsageError, match="scores.parquet: another process of this machine is writing"):
            with io.output_set([tmp_path / "." / "scores.parquet", tmp_path / "scores.summary.json"]):
                pass
        for tmp in first:
            tmp.write_text("first")
    assert [t.read_text() for t in targets] == ["first"] * 2
    with io.output_set(targets) as again:  # the lock ends with the set
        for tmp in again:
            tmp.write_text("again")
    assert [t.read_text() for t in targets] == ["again"] * 2


def test_temporaries_of_dead_processes_are_removed_and_no_others(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    target = tmp_path / "scores.parquet"
    names = {"dead": f".scores.parquet.{gone.pid}@{io.HOST}.abc123.parquet.tmp",
             "alive": f".scores.parquet.{os.getpid()}@{io.HOST}.def456.parquet.tmp",
             "other_host": f".scores.parquet.{gone.pid}@elsewhere.ghi789.parquet.tmp",
             "other_target": f".rejects.parquet.{gone.pid}@{io.HOST}.jkl012.parquet.tmp"}
    for name in names.values():
        (tmp_path / name).write_text("partial")
    assert io.remove_stale_temporaries(target) == [tmp_path / names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items() if k != "dead")


def test_a_dataset_reads_whole_or_only_the_rows_its_filters_keep_in_every_part(tmp_path):
    days = pd.to_datetime(["2025-03-09", "2025-03-10", "2025-03-11", "2025-03-10"]).astype("datetime64[ms]")
    frame = pd.DataFrame({"borrower_id": [1, 2, 3, 4], "due_date": days, "amount": [1.0, 2.0, 3.0, 4.0]})
    io.write_parquet(frame.iloc[:2], tmp_path / io.part_name(0))
    io.write_parquet(frame.iloc[2:], tmp_path / io.part_name(1))
    pd.testing.assert_frame_equal(io.read_dataset(tmp_path), frame)
    on_the_tenth = [("due_date", "in", [pd.Timestamp("2025-03-10")])]
    kept = io.read_dataset(tmp_path, ["borrower_id", "due_date"], on_the_tenth)
    assert kept["borrower_id"].tolist() == [2, 4] and list(kept.columns) == ["borrower_id", "due_date"]
    with pytest.raises(FileNotFoundError, match="no part-"):
        io.read_dataset(tmp_path / "missing")


def test_a_dataset_whose_parts_differ_in_their_columns_is_named_not_filled_with_blanks(tmp_path):
    """pandas would fill a column one part lacks with blanks: a stream part without its most
    important feature had been monitored as drift."""
    frame = pd.DataFrame({"borrower_id": [1, 2, 3], "x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0]})
    io.write_parquet(frame.iloc[:2], tmp_path / io.part_name(0))
    io.write_parquet(frame.iloc[2:].drop(columns="x").assign(z=1), tmp_path / io.part_name(1))
    with pytest.raises(InputError, match=r"part-00001.parquet: its columns differ from those of .*"
                                         r"part-00000.parquet; it lacks \['x'\]; it adds \['z'\]"):
        io.read_dataset(tmp_path)
    io.write_parquet(frame.iloc[2:][["y", "x", "borrower_id"]], tmp_path / io.part_name(1))  # order alone
    pd.testing.assert_frame_equal(io.read_dataset(tmp_path), frame)
