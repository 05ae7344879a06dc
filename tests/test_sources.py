"""Malformed inputs, made here, through the real ``limitjump score`` command: every row-level problem
rejects that borrower with the column and the reason and scores the rest, every file-level problem
stops with exit code 1 naming the file and the column, every unusable command line stops with exit
code 2 before any work; never a traceback, and always borrowers in = scored + rejected.

Both inputs (raw tables, a features file), each as Parquet and as CSV. A small population (600
borrowers, three batches of 200) and a small LightGBM trained on it are shared by the module.
"""

from __future__ import annotations

import contextlib
import io as text_io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import cells, io, readers, sources
from pipeline.catalog import DUE_DATES, MAINTENANCE_DUE, NEXT_DUE
from pipeline.cli import main
from pipeline.contract import (
    NEVER_MISSING,
    RAW_TABLES,
    TABLES,
    ContractError,
    features_table,
    pandera_violations,
    row_violations,
    violations,
)
from pipeline.features import build_features
from pipeline.model import CalibratedLightGBM
from pipeline.outputs import output_paths
from pipeline.score import OUTPUT_COLUMNS
from pipeline.team_tables import team_table
from tests.conftest import (
    build_model_dir,
    in_training,
    make_params,
    merge,
    raw_params,
    simulate_tables,
    team_frame,
    team_settings,
)

pytestmark = pytest.mark.timeout(600)
N = 600
SIM = {"engine": {"workers": 1}, "simulate": {"n_borrowers": N, "shard_size": N, "truth_replicates": 2}}
TODAY = pd.Timestamp.today().normalize()
FUTURE = pd.Timestamp("2099-01-01")


# ---- shared inputs -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return simulate_tables(make_params(SIM))


@pytest.fixture(scope="module")
def features(tables) -> pd.DataFrame:
    p = make_params()
    return build_features(tables, p.label.observation_days, p.features)


@pytest.fixture(scope="module")
def work(tmp_path_factory, tables, features) -> Path:
    """params.yaml scoring in batches of 200 in this process, and the model."""
    folder = tmp_path_factory.mktemp("sources")
    params = merge(raw_params(), {"score": {"batch_borrowers": 200}, "engine": {"workers": 1}})
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    build_model_dir(tables, features, folder / "model")
    return folder


@dataclass
class Run:
    code: int
    out: str
    err: str
    output: Path

    def summary(self) -> dict:
        return json.loads(output_paths(self.output)["summary"].read_text())

    def rejects(self) -> pd.DataFrame:
        path = output_paths(self.output)["rejects"]
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)

    def scores(self) -> pd.DataFrame:
        csv = self.output.suffix.lower() == ".csv"
        return pd.read_csv(self.output) if csv else pd.read_parquet(self.output)


def limitjump(work: Path, *args: str) -> tuple[int, str, str]:
    """The ``limitjump`` entry point in this process, as the console script runs it: its exit
    code, what it printed. An exception escaping it (a traceback for the user) fails the test."""
    out, err, argv = text_io.StringIO(), text_io.StringIO(), sys.argv
    sys.argv = ["limitjump", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as done:
        code = done.code or 0
    finally:
        sys.argv = argv
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, out.getvalue(), err.getvalue()


def score(work: Path, input: Path, output: Path, params: Path | None = None) -> Run:
    params = params or work / "params.yaml"
    code, out, err = limitjump(work, "score", "--input", str(input), "--output", str(output),
                               "--model", str(work / "model"), "--params", str(params))
    return Run(code, out, err, output)


# ---- writing inputs ------------------------------------------------------------------------------------

def write_raw(frames: dict[str, pd.DataFrame], folder: Path, fmt: str) -> Path:
    """The raw tables as <table>/part-00000.parquet folders, or <table>.csv files."""
    for name in (*RAW_TABLES, "maintenance_windows"):
        if fmt == "parquet":
            io.write_parquet(frames[name], folder / name / io.part_name(0))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            frames[name].to_csv(folder / f"{name}.csv", index=False)
    return folder


def write_features(frame: pd.DataFrame, folder: Path, fmt: str) -> Path:
    path = folder / f"features.{fmt}"
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        io.write_parquet(frame, path)
    else:
        frame.to_csv(path, index=False)
    return path


def victim(frame: pd.DataFrame, k: int) -> int:
    """A borrower in the k-th batch of 200, with rows in ``frame``."""
    ids = np.unique(frame["borrower_id"].dropna())
    return int(ids[np.searchsorted(ids, 200 * k + 37)])


def first_row(frame: pd.DataFrame, borrower: int, mask=True) -> int:
    return frame.index[(frame["borrower_id"] == borrower) & mask][0]


# ---- 1. row-level problems: the borrower rejected with column and reason, the rest scored -------------

# each plants a problem in copies of the tables (or the features) and returns the borrower hit
def _f_set(column: str, value) -> Callable:
    def plant(f: pd.DataFrame) -> int:
        b = victim(f, 1)
        if isinstance(value, str) and column in ("scoring_date", "jump_date", NEXT_DUE, MAINTENANCE_DUE):
            f[column] = f[column].dt.strftime("%Y-%m-%d").astype(object)
        elif isinstance(value, str):
            f[column] = f[column].astype(object)
        f.loc[f["borrower_id"] == b, column] = value
        return b
    return plant


def _f_before_scoring(column: str):
    def plant(f: pd.DataFrame) -> int:
        b = victim(f, 0)
        row = f["borrower_id"] == b
        f.loc[row, column] = f.loc[row, "scoring_date"] - pd.Timedelta(days=5)
        return b
    return plant


def _f_duplicate(f: pd.DataFrame) -> int:
    b = victim(f, 2)
    f.loc[len(f)] = f[f["borrower_id"] == b].iloc[0]
    return b


FEATURE_ROWS = {
    "negative_amount": (_f_set("increase_amount", -5.0), "increase_amount: fails in_range"),
    "infinite_amount": (_f_set("wallet_balance", np.inf), "wallet_balance: fails in_range"),
    "amount_1e308": (_f_set("post_increase_drawn", 1e308), "post_increase_drawn: fails in_range"),
    "unknown_trigger": (_f_set("trigger", 7.0), "trigger: fails isin([0.0, 1.0, 2.0, 3.0]) (value 7.0)"),
    "unknown_city_tier": (_f_set("city_tier", 9.0), "city_tier: fails"),
    "count_not_whole": (_f_set("inquiries_3m", 1.5), "inquiries_3m: fails whole_number"),
    "flag_not_0_or_1": (_f_set("reauth_pending", 0.5), "reauth_pending: fails"),
    "missing_age": (_f_set("age", np.nan), "age: fails not_nullable"),
    "scoring_date_1970": (_f_set("scoring_date", pd.Timestamp("1970-01-01")), "scoring_date: fails in_range"),
    "scoring_date_2099": (_f_set("scoring_date", FUTURE), "scoring_date: after the run date"),
    "scoring_date_notadate": (_f_set("scoring_date", "notadate"),
                              "scoring_date: not a date (value notadate)"),
    "scoring_date_missing": (_f_set("scoring_date", pd.NaT), "scoring_date: missing"),
    "duplicate_borrower": (_f_duplicate, "borrower_id: duplicate borrower"),
    "taken_on_another_day_after_the_jump": (
        _f_set("jump_date", pd.Timestamp("2024-01-01")),
        "scoring_date: not 30 days after jump_date (label.observation_days)"),
    "next_due_date_notadate": (_f_set(NEXT_DUE, "soon"), "next_due_date: not a date (value soon)"),
    "jump_date_notadate": (_f_set("jump_date", "soon"), "jump_date: not a date (value soon)"),
    "next_due_date_before_scoring": (_f_before_scoring(NEXT_DUE), "next_due_date: before the scoring date"),
    "maintenance_due_date_before_scoring": (_f_before_scoring(MAINTENANCE_DUE),
                                            "maintenance_due_date: before the scoring date"),
    "next_due_date_9999": (_f_set(NEXT_DUE, "9999-12-31"), "next_due_date: more than 100 days after the "
                           "scoring date, beyond the next three due dates (value 9999-12-31)"),
    "maintenance_due_date_2099": (_f_set(MAINTENANCE_DUE, "2099-06-30"), "maintenance_due_date: more than "
                                  "100 days after the scoring date"),
    "maintenance_due_date_notadate": (_f_set(MAINTENANCE_DUE, "soon"),
                                      "maintenance_due_date: not a date (value soon)"),
}


def _r_set(table: str, column: str, value, mask=lambda t: True) -> Callable:
    def plant(t: dict[str, pd.DataFrame]) -> int:
        frame = t[table]
        b = victim(frame, 1)
        frame.loc[first_row(frame, b, mask(frame)), column] = value
        return b
    return plant


def _r_jump_before_onboarding(t) -> int:
    b = victim(t["borrowers"], 2)
    onboard = t["borrowers"].loc[t["borrowers"]["borrower_id"] == b, "onboard_date"].iloc[0]
    events = t["limit_events"]
    events.loc[first_row(events, b, events["event_type"] == "increase"), "event_date"] = \
        onboard - pd.Timedelta(days=3000)
    return b


def _r_onboarding_and_jump_in_2099(t) -> int:
    b = victim(t["borrowers"], 0)
    t["borrowers"].loc[t["borrowers"]["borrower_id"] == b, "onboard_date"] = FUTURE
    t["limit_events"].loc[t["limit_events"]["borrower_id"] == b, "event_date"] = FUTURE
    return b


def _r_second_increase(t) -> int:
    events = t["limit_events"]
    b = victim(events, 2)
    jump = events.loc[first_row(events, b, events["event_type"] == "increase")].copy()
    jump["event_date"] -= pd.Timedelta(days=5)
    t["limit_events"] = pd.concat([events, jump.to_frame().T.astype(events.dtypes)], ignore_index=True)
    return b


def _r_initial_limit_after_the_jump(t) -> int:
    events = t["limit_events"]
    b = victim(events, 0)
    jump = events.loc[first_row(events, b, events["event_type"] == "increase"), "event_date"]
    initial = first_row(events, b, events["event_type"] == "initial")
    events.loc[initial, "event_date"] = jump + pd.Timedelta(days=1)
    return b


def _r_window_not_over(t) -> int:
    """A jump ten days before the run: the observation window (30 days) is not over."""
    events = t["limit_events"]
    b = victim(events, 1)
    events.loc[first_row(events, b, events["event_type"] == "increase"), "event_date"] = \
        TODAY - pd.Timedelta(days=10)
    return b


def _r_limit_decrease_as_increase(t) -> int:
    """Rows each within the contract whose features are not: a negative increase."""
    events = t["limit_events"]
    b = victim(events, 0)
    row = first_row(events, b, events["event_type"] == "increase")
    events.loc[row, "new_limit"] = events.loc[row, "old_limit"] - 100.0
    return b


def _r_increase_without_trigger(t) -> int:
    events = t["limit_events"]
    b = victim(events, 2)
    trigger = events["trigger"].astype(object)
    trigger[first_row(events, b, events["event_type"] == "increase")] = None
    events["trigger"] = pd.array(trigger, dtype="str")
    return b


def _r_duplicate_borrower(t) -> int:
    b = victim(t["borrowers"], 1)
    t["borrowers"] = pd.concat([t["borrowers"], t["borrowers"][t["borrowers"]["borrower_id"] == b]],
                               ignore_index=True)
    return b


def _r_set_float(table: str, column: str, value: float) -> Callable:
    """An integer column turned float, one value a fraction or missing: pandas then writes the
    whole column as "701.0" in a CSV, and only that borrower's row fails."""
    def plant(t: dict[str, pd.DataFrame]) -> int:
        frame = t[table]
        frame[column] = frame[column].astype("float64")
        return _r_set(table, column, value)(t)
    return plant


RAW_ROWS = {
    "duplicate_borrower": (_r_duplicate_borrower, "borrowers.borrower_id: duplicate borrower"),
    "negative_drawdown": (_r_set("drawdowns", "amount", -250.0), "drawdowns.amount: fails"),
    "unknown_line_status": (_r_set("statements", "line_status", "closed"),
                            "statements.line_status: fails isin"),
    "jump_before_onboarding": (_r_jump_before_onboarding, "limit_events.event_date: before onboarding"),
    "onboarding_and_jump_in_2099": (_r_onboarding_and_jump_in_2099,
                                    "borrowers.onboard_date: after the run date"),
    "statement_after_the_run": (_r_set("statements", "statement_date", FUTURE),
                                "statements.statement_date: after the run date"),
    "second_increase": (_r_second_increase, "limit_events.event_type: 2 limit increases"),
    "initial_limit_after_the_jump": (_r_initial_limit_after_the_jump,
                                     "limit_events.event_date: initial limit after the jump"),
    "observation_window_not_over": (_r_window_not_over, "scoring_date: after the run date"),
    "negative_increase": (_r_limit_decrease_as_increase, "features.increase_amount: fails in_range"),
    "increase_without_trigger": (_r_increase_without_trigger,
                                 "limit_events.trigger: missing on the limit increase"),
    "blank_credit_score": (_r_set_float("statements", "credit_score", np.nan),
                           "statements.credit_score: fails not_nullable"),
    "fractional_tenor": (_r_set_float("drawdowns", "tenor_months", 3.5),
                         "drawdowns.tenor_months: fails whole_number (value 3.5)"),
}


def check_accounted(run: Run, borrowers_in: int) -> dict:
    assert run.code == 0, run.err
    summary = run.summary()
    assert summary["borrowers_in"] == borrowers_in == summary["scored"] + summary["rejected"]
    assert (summary["scored"], summary["rejected"]) == (len(run.scores()), len(run.rejects()))
    counted = f"borrowers in {borrowers_in} = scored {summary['scored']} + rejected {summary['rejected']}"
    assert counted in run.out
    return summary


def check_rejected(run: Run, borrower: int, reason: str, borrowers_in: int, rows: int = 1) -> None:
    """Only ``borrower`` rejected, once per input row (a duplicated borrower has two), for ``reason``."""
    check_accounted(run, borrowers_in)
    rejects = run.rejects()
    assert rejects["borrower_id"].tolist() == [borrower] * rows, rejects
    assert rejects["reason"].str.startswith(reason).all(), rejects["reason"].tolist()
    assert borrower not in set(run.scores()["borrower_id"])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("case", list(FEATURE_ROWS))
def test_features_file_row_problem_rejects_that_borrower(case, fmt, features, work, tmp_path):
    plant, reason = FEATURE_ROWS[case]
    frame = features.copy()
    borrower = plant(frame)
    run = score(work, write_features(frame, tmp_path, fmt), tmp_path / "out" / f"scores.{fmt}")
    check_rejected(run, borrower, reason, len(frame), rows=int((frame["borrower_id"] == borrower).sum()))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("case", list(RAW_ROWS))
def test_raw_tables_row_problem_rejects_that_borrower(case, fmt, tables, work, tmp_path):
    plant, reason = RAW_ROWS[case]
    t = {name: frame.copy() for name, frame in tables.items()}
    borrower = plant(t)
    run = score(work, write_raw(t, tmp_path / "raw", fmt), tmp_path / "out" / f"scores.{fmt}")
    listed = t["borrowers"]["borrower_id"]
    check_rejected(run, borrower, reason, len(listed), rows=int((listed == borrower).sum()))


def test_a_missing_raw_table_is_named_and_a_header_alone_stands_for_no_records(tables, work, tmp_path):
    """A lender without bureau inquiries is told the file to give (its header line), and with it
    every borrower is scored."""
    folder = write_raw(tables, tmp_path / "raw", "csv")
    header = (folder / "bureau_inquiries.csv").read_text().splitlines()[0]
    (folder / "bureau_inquiries.csv").unlink()
    run = score(work, folder, tmp_path / "out" / "s.csv")
    assert run.code == 1 and "table 'bureau_inquiries' is missing" in run.err, run.err
    assert f"as bureau_inquiries.csv holding the one line {header}\n" in run.err
    (folder / "bureau_inquiries.csv").write_text(header + "\n")
    check_accounted(score(work, folder, tmp_path / "out" / "s.csv"), len(tables["borrowers"]))


def test_a_bad_scoring_date_beyond_the_first_csv_block_rejects_its_row(features, work, tmp_path):
    """Arrow infers CSV types from the first block (1 MiB): a bad date further on is still one
    row's problem, not the file's."""
    frame = pd.concat([features.assign(borrower_id=features["borrower_id"] + k * N) for k in range(4)],
                      ignore_index=True)
    frame["scoring_date"] = frame["scoring_date"].dt.strftime("%Y-%m-%d").astype(object)
    frame.loc[len(frame) - 1, "scoring_date"] = "31/12/2025"
    path = write_features(frame, tmp_path, "csv")
    assert path.stat().st_size > 1 << 20
    run = score(work, path, tmp_path / "out" / "s.parquet")
    check_rejected(run, int(frame["borrower_id"].iloc[-1]), "scoring_date: not a date (value 31/12/2025)",
                   len(frame))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_clean_inputs_reject_nobody(fmt, tables, features, work, tmp_path):
    """The cases above reject only what they plant: the unchanged inputs pass every rule."""
    for name, given in (("raw", write_raw(tables, tmp_path / "raw", fmt)),
                        ("features", write_features(features, tmp_path, fmt))):
        summary = check_accounted(score(work, given, tmp_path / f"out_{name}" / f"s.{fmt}"), N)
        assert summary["rejected"] == 0 and summary["unattributed_rows"] == {}, summary


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_due_dates_reach_the_scores(fmt, tables, features, work, tmp_path):
    """From the raw tables and from a features file that has them; empty from one that has not."""
    indexed = features.set_index("borrower_id")
    known = {c: indexed[c].dropna() for c in DUE_DATES}
    assert len(known[NEXT_DUE]) > 0.9 * N and len(known[MAINTENANCE_DUE]) > 0
    assert all((k >= indexed["scoring_date"][k.index]).all() for k in known.values())
    for name, given in (("raw", write_raw(tables, tmp_path / "raw", fmt)),
                        ("features", write_features(features, tmp_path, fmt))):
        got = score(work, given, tmp_path / f"out_{name}" / f"s.{fmt}").scores().set_index("borrower_id")
        for column in DUE_DATES:
            due = pd.to_datetime(got[column])
            pd.testing.assert_series_equal(due, indexed[column].loc[due.index].astype(due.dtype),
                                           check_names=False)
    without = score(work, write_features(features.drop(columns=list(DUE_DATES)), tmp_path / "without", fmt),
                    tmp_path / "out_without" / f"s.{fmt}")
    assert len(without.scores()) == N and without.scores()[list(DUE_DATES)].isna().all().all()


# ---- 2. rows without a borrower: counted, never lost ----------------------------------------------------

def _without_id(frame: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    ids = frame["borrower_id"].astype("Int64")
    ids[rows] = pd.NA
    return frame.assign(borrower_id=ids)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_borrowers_without_an_id_are_rejected_and_counted(fmt, tables, features, work, tmp_path):
    t = dict(tables, borrowers=_without_id(tables["borrowers"], [5, 300]))
    for name, given in (("raw", write_raw(t, tmp_path / "raw", fmt)),
                        ("features", write_features(_without_id(features, [5, 300]), tmp_path, fmt))):
        run = score(work, given, tmp_path / f"out_{name}" / f"s.{fmt}")
        summary = check_accounted(run, N)
        rejects = run.rejects()
        assert summary["rejected"] == 2 and rejects["borrower_id"].isna().all(), rejects
        assert rejects["reason"].eq("borrower_id: missing").all()


@pytest.mark.parametrize(("fmt", "workers"), [("parquet", 1), ("csv", 1), ("parquet", 2)])
def test_rows_of_no_borrower_are_counted_per_table_and_reason(fmt, workers, tables, work, tmp_path):
    """Counted after the batches by one worker, beside them (another thread) by two."""
    t = dict(tables, statements=_without_id(tables["statements"], [0, 1, 2]))
    strangers = tables["repayments"].head(4).assign(borrower_id=10_000_000)
    t["repayments"] = pd.concat([tables["repayments"], strangers], ignore_index=True)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(merge(yaml.safe_load((work / "params.yaml").read_text()),
                                           {"engine": {"workers": workers}}), sort_keys=False))
    run = score(work, write_raw(t, tmp_path / "raw", fmt), tmp_path / "out" / f"s.{fmt}", params)
    summary = check_accounted(run, N)
    assert summary["unattributed_rows"] == {"statements": {"borrower_id: missing": 3},
                                            "repayments": {"borrower_id: not in the borrowers table": 4}}
    assert "rows that belong to no borrower" in run.out


def test_a_header_written_again_inside_the_data_is_named_with_its_row(tables, features, work, tmp_path):
    """Two exports joined, the second with its header: the message had quoted 'borrower_id' as an id
    that is no number, or 'trigger' as a feature value."""
    def joined(path: Path, at: int) -> Path:
        lines = path.read_text().split("\n")
        path.write_text("\n".join([*lines[:at + 1], lines[0], *lines[at + 1:]]))
        return path

    features_file = joined(write_features(features, tmp_path / "a", "csv"), 30)
    raw = write_raw(tables, tmp_path / "b", "csv")
    joined(raw / "repayments.csv", 12)
    for given in (features_file, raw):
        run = score(work, given, tmp_path / "out" / f"{given.stem}.parquet")
        assert run.code == 1, run.err
        assert "the header is written again as data rows [" in run.err and "files joined" in run.err, run.err
    assert "data rows [31]" in score(work, features_file, tmp_path / "o.parquet").err


def test_rows_of_blank_cells_are_no_borrowers_and_are_counted_as_such(tables, features, work, tmp_path):
    """Excel writes ',,,,' for a row once touched: each such line had been a borrower in, rejected
    without an id anyone could find. Now it is counted apart, and the scores are the clean twin's."""
    def blank_lines(path: Path, at: list[int]) -> None:
        lines = path.read_text().split("\n")
        for row in at:
            lines.insert(row, "," * (lines[0].count(",")))
        path.write_text("\n".join(lines))

    clean = score(work, write_features(features, tmp_path / "a", "csv"), tmp_path / "a.parquet")
    spoilt = write_features(features, tmp_path / "b", "csv")
    blank_lines(spoilt, [3, 40])
    run = score(work, spoilt, tmp_path / "b.parquet")
    summary = check_accounted(run, len(features))
    assert summary["unattributed_rows"] == {"features.csv": {sources.EMPTY_ROW: 2}}
    pd.testing.assert_frame_equal(run.scores(), clean.scores())
    raw = write_raw(tables, tmp_path / "c", "csv")
    clean = score(work, raw, tmp_path / "c.parquet")
    for name in ("borrowers", "repayments"):
        blank_lines(raw / f"{name}.csv", [2])
    run = score(work, raw, tmp_path / "d.parquet")
    assert check_accounted(run, N)["unattributed_rows"] == {"borrowers": {sources.EMPTY_ROW: 1},
                                                             "repayments": {sources.EMPTY_ROW: 1}}
    pd.testing.assert_frame_equal(run.scores(), clean.scores())


def test_a_csv_id_of_spaces_is_no_id_as_an_empty_one_is(tables, work, tmp_path):
    """A raw table's CSV of integer ids with one cell of spaces (a database's padded CHAR) was read
    as text and stopped the run ("must hold whole numbers, found string; 1 rows are not numbers:
    '   '"), though the borrowers table's ids are integers. It is a row of no borrower, as the
    empty cell is, in the first row or the last."""
    far = len(tables["statements"]) - 1
    runs = {}
    for written in ("", "   ", "\t"):
        raw = write_raw(tables, tmp_path / repr(written), "csv")
        text = (raw / "statements.csv").read_text().split("\n")
        for row in (1, far + 1):
            text[row] = written + text[row][text[row].index(","):]
        (raw / "statements.csv").write_text("\n".join(text))
        runs[written] = score(work, raw, tmp_path / "out" / f"{len(written)}.parquet")
        summary = check_accounted(runs[written], N)
        assert summary["unattributed_rows"] == {"statements": {"borrower_id: missing": 2}}, summary
    pd.testing.assert_frame_equal(runs["   "].scores(), runs[""].scores())
    pd.testing.assert_frame_equal(runs["\t"].scores(), runs[""].scores())


def test_a_decimal_comma_file_with_a_blank_number_reads_its_numbers(features, work, tmp_path):
    """In a ';' file of '2,5', one cell of spaces made Arrow read its column as text, which was then
    read without the file's decimal mark: every other row "not a number: '2,4'". The column reads
    as its twin with that cell empty does."""
    rows = features.head(40).reset_index(drop=True)
    twin = rows.assign(new_over_old_limit=rows["new_over_old_limit"].where(rows.index != 3))
    paths = {}
    for name, frame in (("blank", rows), ("empty", twin)):
        paths[name] = tmp_path / name / "features.csv"
        paths[name].parent.mkdir()
        frame.to_csv(paths[name], index=False, sep=";", decimal=",")
    text = paths["blank"].read_text().split("\n")
    column = list(rows.columns).index("new_over_old_limit")
    cells = text[4].split(";")
    assert "," in cells[column]
    cells[column] = "  "
    text[4] = ";".join(cells)
    paths["blank"].write_text("\n".join(text))
    blank, empty = (score(work, paths[n], tmp_path / "out" / f"{n}.parquet") for n in ("blank", "empty"))
    check_accounted(blank, len(rows))
    pd.testing.assert_frame_equal(blank.scores(), empty.scores())


@pytest.mark.parametrize("known", [
    [3, 4, 5, 6, 7],  # no gap: a range test
    [7, 3, 5, 4, 6, 6],  # no gap, unordered and repeated
    [3, 4, 6, 7],  # a gap at 5: looked up in the set
    [5],
    [],
])
def test_a_stranger_is_a_present_id_not_among_the_borrowers_whatever_their_ids(known, tmp_path):
    ids = [None, 2, 3, 5, 5, 7, 8, 10_000_000, -1, None]
    pq.write_table(pa.table({"borrower_id": pa.array(ids, pa.int64())}), tmp_path / "t.parquet",
                   row_group_size=3)
    dataset = ds.dataset(tmp_path / "t.parquet", format="parquet")
    expected = sum(i is not None and i not in known for i in ids)
    assert dataset.count_rows(filter=sources.not_known(pa.array(known, pa.int64()))) == expected
    # ids of text: always the set lookup
    as_text = ds.dataset(pa.table({"borrower_id": pa.array([None if i is None else str(i) for i in ids])}))
    text_ids = pa.array([str(k) for k in known], pa.string())
    assert as_text.count_rows(filter=sources.not_known(text_ids)) == expected


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_ids_rows_are_matched_against_are_arrows_own(fmt, tables, tmp_path):
    """Every present id, none missing, as an Arrow array read by Arrow. Made from a NumPy array
    instead, the value set aborted ``score`` now and then as the process exited (exit code 134:
    Arrow freed it on its own thread, which needs Python's lock, after Python had begun to shut
    down); measured with both cores busy, 10 exits in 40 before, none in 70 after."""
    t = dict(tables, borrowers=_without_id(tables["borrowers"], [0, 1]))
    folder = write_raw(t, tmp_path / "raw", fmt)
    where = folder / ("borrowers.csv" if fmt == "csv" else "borrowers")
    known = sources.known_ids(readers.open_dataset(where), where)
    assert isinstance(known, pa.Array) and known.null_count == 0
    assert sorted(known.to_pylist()) == sorted(tables["borrowers"]["borrower_id"].iloc[2:].tolist())


def test_a_raw_csv_date_that_is_not_a_date_rejects_its_borrower(tables, work, tmp_path):
    """CSV dates are read as text and parsed row by row: the borrower goes, the file stays; a
    window has no borrower, so a bad one stops the run with its row."""
    t = {name: frame.copy() for name, frame in tables.items()}
    statements = t["statements"]
    borrower = victim(statements, 1)
    dates = statements["statement_date"].dt.strftime("%Y-%m-%d").astype(object)
    dates[first_row(statements, borrower)] = "2025-13-45"
    t["statements"] = statements.assign(statement_date=dates)
    run = score(work, write_raw(t, tmp_path / "raw", "csv"), tmp_path / "out" / "scores.csv")
    check_rejected(run, borrower, "statements.statement_date: not a date (value 2025-13-45)",
                   len(t["borrowers"]))
    windows = t["maintenance_windows"]
    t["maintenance_windows"] = windows.assign(start_time=windows["start_time"].astype(object))
    t["maintenance_windows"].loc[1, "start_time"] = "at night"
    run = score(work, write_raw(t, tmp_path / "raw2", "csv"), tmp_path / "out2" / "scores.csv")
    assert run.code == 1, run.err
    assert ("maintenance_windows.csv: data row 2 (counted from 1): "
            "maintenance_windows.start_time: not a date (value at night)") in run.err, run.err
    # a window that ends before it starts (start and end swapped) counted no due date, unsaid; in a
    # folder, the part that holds it is named, and its row in that part
    t["maintenance_windows"] = windows.head(3)
    raw = write_raw(t, tmp_path / "raw3", "parquet")
    io.write_parquet(windows.iloc[3:].assign(start_time=windows["end_time"], end_time=windows["start_time"]),
                     raw / "maintenance_windows" / io.part_name(1))
    run = score(work, raw, tmp_path / "out3" / "scores.csv")
    assert run.code == 1, run.err
    end = windows.loc[3, "start_time"].strftime("%Y-%m-%d %H:%M:%S")
    assert (f"maintenance_windows/{io.part_name(1)}: data row 1 (counted from 1): "
            f"maintenance_windows.end_time: fails not_before(start_time) (value {end})") in run.err, run.err

# ---- 3. file-level problems: exit 1, the file and the column named, nothing written ---------------------

def _raw_ids(table: str, ids) -> Callable:
    def make(t: dict[str, pd.DataFrame]) -> None:
        frame = t[table].copy()
        values = frame["borrower_id"].to_numpy().astype(object)
        values[: len(ids)] = ids
        frame["borrower_id"] = pd.array(values, dtype="str" if isinstance(ids[0], str) else "float64")
        t[table] = frame
    return make


RAW_FILES = {
    "unicode_ids": ("parquet", _raw_ids("statements", ["借款人-1", "b2"]), "statements",
                    "column 'borrower_id' must hold whole numbers, found large_string; 2 rows are not "
                    "numbers: '借款人-1', 'b2'"),
    "infinite_id": ("parquet", _raw_ids("borrowers", [np.inf]), "borrowers",
                    "column 'borrower_id' must hold whole numbers; 1 rows do not, values [inf]"),
    "fractional_id": ("parquet", _raw_ids("repayments", [1.5, 2.0]), "repayments",
                      "column 'borrower_id' must hold whole numbers; 1 rows do not, values [1.5]"),
    "text_id_in_csv": ("csv", _raw_ids("statements", ["abc"]), "statements.csv",
                       "column 'borrower_id' must hold whole numbers, found string; 1 rows are not "
                       "numbers: 'abc'"),
    "no_id_column_in_csv": ("csv", lambda t: t.update(repayments=t["repayments"].drop(columns="borrower_id")),
                            "repayments.csv", "table 'repayments' lacks columns ['borrower_id']"),
    "text_ids_in_borrowers_only": ("parquet", lambda t: t.update(
        borrowers=t["borrowers"].assign(borrower_id="C" + t["borrowers"]["borrower_id"].astype("str"))),
        "statements", "column 'borrower_id' holds int64, but the borrowers table's ids are text"),
    "upper_case_names": ("parquet", lambda t: t.update(repayments=t["repayments"].rename(columns=str.upper)),
                         "repayments", "the file writes 'BORROWER_ID' for 'borrower_id', 'PAYMENT_DATE' for "
                         "'payment_date'"),
}


@pytest.mark.parametrize("case", list(RAW_FILES))
def test_raw_file_problem_exits_1_naming_file_and_column(case, tables, work, tmp_path):
    fmt, make, named, message = RAW_FILES[case]
    t = dict(tables)
    make(t)
    raw = write_raw(t, tmp_path / "raw", fmt)
    run = score(work, raw, tmp_path / "out" / "s.parquet")
    assert run.code == 1 and run.err.startswith("error: "), run.err
    assert str(raw / named) in run.err and message in run.err, run.err
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("ids, message", [
    ([np.inf], "column 'borrower_id' must hold whole numbers; 1 rows do not, values [inf]"),
])
def test_features_file_with_unusable_ids_exits_1(ids, message, features, work, tmp_path):
    frame = features.copy()
    values = frame["borrower_id"].to_numpy().astype(object)
    values[: len(ids)] = ids
    frame["borrower_id"] = pd.array(values, dtype="str" if isinstance(ids[0], str) else "float64")
    path = write_features(frame, tmp_path, "parquet")
    run = score(work, path, tmp_path / "out" / "s.parquet")
    assert run.code == 1 and str(path) in run.err and message in run.err, run.err
    assert list((tmp_path / "out").iterdir()) == []


# ---- folders of parts ------------------------------------------------------------------------------

def write_parts(frame: pd.DataFrame, folder: Path, *names: str) -> Path:
    """``frame`` split into as many files as ``names``, each a CSV or Parquet as its name says."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), len(names) + 1).astype(int)
    for name, first, last in zip(names, bounds[:-1], bounds[1:], strict=True):
        part = frame.iloc[first:last]
        (part.to_csv if readers.is_csv_name(folder / name) else part.to_parquet)(folder / name, index=False)
    return folder


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_part_of_a_folder_counts_whatever_its_name(fmt, features, work, tmp_path):
    """Arrow's default left out a part named with a leading '_': 2,000 borrowers in a folder of
    '_2025-11' and '2025-12' were 1,000 in, 1,000 scored, exit 0."""
    folder = write_parts(features, tmp_path / "in", f"_2025-11.{fmt}", f"2025-12.{fmt}")
    check_accounted(score(work, folder, tmp_path / "out" / "s.parquet"), len(features))


def test_a_feature_written_as_text_in_one_part_is_read_as_text_in_them_all(features, work, tmp_path):
    """A part whose feature is text with a word in it stops the run naming the rows, whichever
    part comes first (Arrow cast the text to the first part's numbers and named neither file
    nor column); text that is all numbers scores."""
    half = len(features) // 2
    borrower = int(features["borrower_id"].iloc[half + 3])
    text = features["age"].astype("str").to_numpy(dtype=object)
    folder = write_parts(features.iloc[:half], tmp_path / "in", "part-0.parquet")
    write_parts(features.iloc[half:].assign(age=text[half:]), folder, "part-1.parquet")
    check_accounted(score(work, folder, tmp_path / "out" / "s.parquet"), len(features))
    text[half + 3] = "unknown"
    write_parts(features.iloc[half:].assign(age=text[half:]), folder, "part-1.parquet")
    run = score(work, folder, tmp_path / "out" / "t.parquet")
    assert run.code == 1, run.err
    assert run.err == (f"error: {folder}: column 'age' must be numeric, found large_string; 1 rows are not "
                       f"numbers: borrower {borrower} 'unknown'\n"), run.err


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_blank_cell_of_a_numeric_feature_written_as_text_is_a_missing_value(fmt, features, work, tmp_path):
    """A Parquet text column of numbers with '' in one row, or a CSV cell of spaces, stopped the
    whole file ("1 rows are not numbers: borrower 87 ''"), while a CSV's empty cell, a workbook's
    and the served model all read it as missing: every blank way of writing nothing ('', spaces,
    'NULL', 'n/a') now scores as the missing value does, whatever the feature's rules make of it."""
    rows = features.head(40).reset_index(drop=True)
    written = rows["credit_score"].map(repr).astype(object)
    written[:4] = ["", "   ", "NULL", "n/a"]
    missing = rows.assign(credit_score=rows["credit_score"].where(rows.index >= 4))
    as_missing = score(work, write_features(missing, tmp_path / "nan", fmt), tmp_path / "out" / f"a.{fmt}")
    check_accounted(as_missing, len(rows))
    as_text = score(work, write_features(rows.assign(credit_score=written), tmp_path / "text", fmt),
                    tmp_path / "out" / f"b.{fmt}")
    check_accounted(as_text, len(rows))
    pd.testing.assert_frame_equal(as_text.scores(), as_missing.scores())
    pd.testing.assert_frame_equal(as_text.rejects(), as_missing.rejects())


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_input_of_no_borrowers_gives_empty_outputs_not_an_error(fmt, features, tables, work, tmp_path):
    """A day nobody was up for review: a header-only features file or raw tables with no borrower
    stopped score ('no rows', exit 1, as for bad data) while the served model answered []. Now
    0 in = 0 scored + 0 rejected, with every output written and its columns."""
    empty = write_features(features.head(0), tmp_path / "file", fmt)
    raw = write_raw({name: frame.head(0) if name != "maintenance_windows" else frame
                     for name, frame in tables.items()}, tmp_path / "raw", fmt)
    for source in (empty, raw):
        run = score(work, source, tmp_path / "out" / source.stem / f"scores.{fmt}")
        check_accounted(run, 0)
        assert list(run.scores().columns) == OUTPUT_COLUMNS and run.rejects().empty


@pytest.mark.parametrize("other", ["borrowers.csv", "borrowers.parquet"])
def test_a_raw_table_given_twice_stops_naming_both(other, tables, work, tmp_path):
    """borrowers/ beside borrowers.csv: one was read and the other's borrowers left out unsaid."""
    raw = write_raw(tables, tmp_path / "raw", "parquet")
    write_parts(tables["borrowers"], raw, other)
    run = score(work, raw, tmp_path / "out" / "s.parquet")
    assert run.code == 1 and run.err == (f"error: {raw}: table 'borrowers' is given 2 times, as "
                                         f"{raw / 'borrowers'}, {raw / other}: keep one\n"), run.err
    assert list((tmp_path / "out").iterdir()) == []


def test_an_output_without_a_row_has_the_types_of_one_with_rows(features, work, tmp_path):
    """An outside check: a day with nothing scored (a header-only file, or every borrower
    rejected) wrote every column as text, ids and probabilities too, and a folder of daily score
    files was then read with its probabilities as text, or refused for ids of two types. Now an
    empty output has the schema of a scored one; the rejects' ids keep the input's type."""
    rows = features.head(30)
    scored = score(work, write_features(rows, tmp_path / "rows", "parquet"),
                   tmp_path / "out" / "rows.parquet")
    check_accounted(scored, 30)
    wanted = pq.read_schema(scored.output)
    empty = score(work, write_features(rows.head(0), tmp_path / "none", "parquet"),
                  tmp_path / "out" / "none.parquet")
    check_accounted(empty, 0)
    assert pq.read_schema(empty.output).equals(wanted)
    assert pq.read_schema(output_paths(empty.output)["rejects"]).field("borrower_id").type == pa.int64()
    lettered = rows.assign(borrower_id=[f"C{i:04d}" for i in range(30)], credit_score=np.inf)
    rejected = score(work, write_features(lettered, tmp_path / "bad", "parquet"),
                     tmp_path / "out" / "bad.parquet")
    assert rejected.code == 1 and len(rejected.rejects()) == 30 and rejected.scores().empty
    typed = pq.read_schema(rejected.output)
    assert typed.field("borrower_id").type == pa.large_string()
    assert typed.remove(0).equals(wanted.remove(0))


# ---- text ids ----------------------------------------------------------------------------------------

# ids a number would change: '9000000123e0' read as 9.000000123e9, 22 digits as a float that lost
# the last six (refused as 'ids of 2**53 or more written as decimals', though written whole)
TEXT_IDS = {"letters": "C{:09d}".format, "leading_zeros": "{:012d}".format,
            "exponent": "9{:09d}e0".format, "long_digits": "9{:021d}".format}


def _written(frame: pd.DataFrame, write) -> pd.DataFrame:
    ids = frame["borrower_id"]
    text = [None if pd.isna(i) else write(int(i)) for i in ids]
    return frame.assign(borrower_id=pd.array(text, dtype="str"))


def test_hash_ids_beyond_int64_score_under_their_digits(tables, features, work, tmp_path):
    """Ids kept as unsigned 64-bit hashes, some beyond int64: Arrow had stopped ('Integer value
    9223372036854901101 not in range', no column named). They read as the text of their digits,
    in every table, as a CSV writes them."""
    def hashed(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(borrower_id=(frame["borrower_id"].astype("uint64") + np.uint64(2**63)))

    def digits(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(borrower_id=hashed(frame)["borrower_id"].astype("str"))

    plain = score(work, write_raw({n: digits(f) if "borrower_id" in f else f for n, f in tables.items()},
                                  tmp_path / "a", "parquet"), tmp_path / "a.parquet")
    run = score(work, write_raw({n: hashed(f) if "borrower_id" in f else f for n, f in tables.items()},
                                tmp_path / "b", "parquet"), tmp_path / "b.parquet")
    check_accounted(run, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    plain = score(work, write_features(digits(features), tmp_path / "c", "parquet"), tmp_path / "c.parquet")
    run = score(work, write_features(hashed(features), tmp_path / "d", "parquet"), tmp_path / "d.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())


def test_ids_and_codes_written_as_categories_read_as_their_values(tables, features, work, tmp_path):
    """A pandas category, an R factor or Spark's dictionary encoding in Parquet: text ids so written
    stopped the run ("no kernel matching input types (dictionary<values=string ...>)")."""
    write = TEXT_IDS["letters"]
    text = {n: _written(f, write) if "borrower_id" in f else f for n, f in tables.items()}
    as_categories = {n: f.assign(borrower_id=f["borrower_id"].astype("category")) if "borrower_id" in f else f
                     for n, f in text.items()}
    plain = score(work, write_raw(text, tmp_path / "a", "parquet"), tmp_path / "a.parquet")
    run = score(work, write_raw(as_categories, tmp_path / "b", "parquet"), tmp_path / "b.parquet")
    check_accounted(run, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    rows = _written(features, write)
    plain = score(work, write_features(rows, tmp_path / "c", "parquet"), tmp_path / "c.parquet")
    run = score(work, write_features(rows.assign(borrower_id=rows["borrower_id"].astype("category"),
                                                 trigger=rows["trigger"].astype("category")),
                                     tmp_path / "d", "parquet"), tmp_path / "d.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())


@pytest.mark.parametrize("spelt", ["repayments", "borrowers"])
def test_a_table_whose_ids_are_spelt_otherwise_stops_naming_both_spellings(spelt, tables, work, tmp_path):
    """UUIDs in capitals in one table (as SQL Server prints them): the repayments table was left
    out as 'rows of no borrower', 198 of 200 scores moved, exit 0; the borrowers table in capitals
    raised a traceback (a batch in which nobody had a limit increase). Now the run stops naming
    the table and the ids on each side, and writes nothing."""
    def uuid(i: int) -> str:
        return f"c0ffee00-0000-0000-0000-{int(i):012x}"

    t = {n: _written(f, uuid) if "borrower_id" in f else f for n, f in tables.items()}
    t[spelt] = t[spelt].assign(borrower_id=t[spelt]["borrower_id"].str.upper())
    output = tmp_path / "out" / "s.parquet"
    run = score(work, write_raw(t, tmp_path / "raw", "csv"), output)
    assert run.code == 1, run.err
    other = "statements" if spelt == "borrowers" else spelt
    assert f"{other}.csv: none of its {len(t[other]):,} rows belongs to a borrower of " in run.err, run.err
    first = sorted(tables["borrowers"]["borrower_id"])[0]
    assert repr(uuid(first).upper()) in run.err and repr(uuid(first)) in run.err, run.err
    assert not output.parent.exists() or not list(output.parent.iterdir())


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("kind", list(TEXT_IDS))
def test_text_ids_score_under_the_ids_the_file_wrote(kind, fmt, tables, work, tmp_path):
    """A lender's customer numbers are often text ('C000000123') or digits with leading zeros
    ('000000000123'): the first stopped the run, the second lost its zeros and so matched no
    record of the lender's. Raw tables with either score as the same borrowers do with numbers,
    under the ids the file wrote, a rejected borrower and the rows of no borrower included."""
    write = TEXT_IDS[kind]
    t = dict(tables)
    bid = victim(t["repayments"], 2)
    repayments = t["repayments"].copy()
    repayments.loc[first_row(repayments, bid), "amount"] = -5.0
    t["repayments"] = pd.concat([repayments, repayments.head(1).assign(borrower_id=999_999_999)])
    twice = victim(t["borrowers"], 1)  # its reason had quoted the number its text id is read as
    t["borrowers"] = pd.concat([t["borrowers"], t["borrowers"][t["borrowers"]["borrower_id"] == twice]],
                               ignore_index=True)
    plain = score(work, write_raw(t, tmp_path / "a", fmt), tmp_path / "a.parquet")
    run = score(work, write_raw({n: _written(f, write) if "borrower_id" in f else f for n, f in t.items()},
                                tmp_path / "b", fmt), tmp_path / "b.parquet")
    check_accounted(plain, len(t["borrowers"]))  # a row per borrower, the duplicate's two counted
    check_accounted(run, len(t["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), _written(plain.scores(), write))
    assert set(run.rejects()["borrower_id"]) == {write(bid), write(twice)}
    assert run.rejects()["reason"].tolist() == plain.rejects()["reason"].tolist()
    assert "borrowers.borrower_id: duplicate borrower" in run.rejects()["reason"].tolist()
    assert run.summary()["unattributed_rows"] == plain.summary()["unattributed_rows"] == \
        {"repayments": {sources.NOT_A_BORROWER: 1}}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_raw_text_cell_that_only_says_it_is_missing_is_missing(fmt, tables, work, tmp_path):
    """limit_events.trigger, empty on every row but the increase, written as '', spaces, 'NULL',
    'None'... rejected 141 of 500 borrowers from a CSV and all of them from Parquet text."""
    plain = score(work, write_raw(tables, tmp_path / "a", fmt), tmp_path / "a.parquet")
    t = dict(tables)
    events = t["limit_events"]
    trigger = events["trigger"].astype(object).to_numpy().copy()
    quiet = np.flatnonzero(events["event_type"].to_numpy() != "increase")
    blanks = ["", "   ", "NULL", "n/a", "NaN", "None", "none"]
    trigger[quiet] = [blanks[i % len(blanks)] for i in range(quiet.size)]
    t["limit_events"] = events.assign(trigger=trigger)
    run = score(work, write_raw(t, tmp_path / "b", fmt), tmp_path / "b.parquet")
    check_accounted(run, len(t["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    assert run.rejects().empty


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_text_id_that_only_says_it_is_missing_is_no_id(fmt, features, work, tmp_path):
    """'', spaces and 'NULL' among text ids were scored as the ids '', '  ' and 'NULL' (and stopped
    recommend with a traceback): they are missing ids, rejected as such, the rest scored as before."""
    frame = _written(features.head(30), TEXT_IDS["letters"])
    plain = score(work, write_features(frame, tmp_path / "a", fmt), tmp_path / "a" / "s.parquet")
    blanks = frame["borrower_id"].astype(object).to_numpy().copy()
    blanks[[2, 5, 9]] = ["", "   ", "NULL"]
    run = score(work, write_features(frame.assign(borrower_id=pd.array(blanks, dtype="str")), tmp_path / "b",
                                     fmt), tmp_path / "b" / "s.parquet")
    check_accounted(run, len(frame))
    assert run.rejects()["borrower_id"].isna().all() and len(run.rejects()) == 3
    assert (run.rejects()["reason"] == sources.NO_ID).all()
    kept = ~plain.scores()["borrower_id"].isin(frame["borrower_id"].iloc[[2, 5, 9]])
    pd.testing.assert_frame_equal(run.scores(), plain.scores()[kept].reset_index(drop=True))


@pytest.mark.parametrize("kind", ["leading_zeros", "exponent", "long_digits"])
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_features_file_with_text_ids_scores_under_them(fmt, kind, features, work, tmp_path):
    """Text ids in a features file, a duplicated one and a missing one among them: the same scores
    and rejects as with numbers, under the file's ids."""
    write = TEXT_IDS[kind]
    frame = features.astype({"borrower_id": "float64"})
    frame = pd.concat([frame, frame.iloc[[3]]]).reset_index(drop=True)
    frame.loc[7, "borrower_id"] = np.nan
    plain = score(work, write_features(frame, tmp_path / "a", fmt), tmp_path / "a" / "s.parquet")
    text = write_features(_written(frame, write), tmp_path / "b", fmt)
    run = score(work, text, tmp_path / "b" / "s.parquet")
    check_accounted(run, len(frame))
    pd.testing.assert_frame_equal(run.scores(), _written(plain.scores(), write))
    expected = _written(plain.rejects(), write)
    pd.testing.assert_frame_equal(run.rejects(), expected)
    assert expected["borrower_id"].isna().sum() == 1 and len(expected) == 3


# ---- 4. command lines that cannot run: exit 2 before any work --------------------------------------------

# each takes the features file and the raw folder and returns (input, output)

def _into_input(features: Path, raw: Path) -> tuple[Path, Path]:
    return features, features


def _inside_raw_folder(features: Path, raw: Path) -> tuple[Path, Path]:
    return raw, raw / "borrowers" / "scores.parquet"


def _rejects_onto_input(features: Path, raw: Path) -> tuple[Path, Path]:
    """scores.parquet's rejects go to scores.rejects.parquet: the input's name here."""
    given = shutil.copy(features, features.with_name("scores.rejects.parquet"))
    return given, features.with_name("scores.parquet")


def _a_folder(features: Path, raw: Path) -> tuple[Path, Path]:
    (raw.parent / "out" / "scores.parquet").mkdir(parents=True)
    return features, raw.parent / "out" / "scores.parquet"


def _under_a_file(features: Path, raw: Path) -> tuple[Path, Path]:
    (raw.parent / "a_file").write_text("not a folder")
    return features, raw.parent / "a_file" / "scores.parquet"


def _not_a_table_format(features: Path, raw: Path) -> tuple[Path, Path]:
    return features, raw.parent / "out" / "scores.txt"


def _other_format_beside(features: Path, raw: Path) -> tuple[Path, Path]:
    """scores.parquet and its summary are there: scores.csv would take scores.summary.json."""
    out = raw.parent / "out"
    out.mkdir()
    (out / "scores.parquet").write_bytes(b"scores")
    (out / "scores.summary.json").write_text(json.dumps({"output": str(out / "scores.parquet")}))
    return features, out / "scores.csv"


USAGE = {
    "summary_of_other_scores": (_other_format_beside, "scores.summary.json describes"),
    "output_is_the_input": (_into_input, "an output cannot be the input"),
    "output_inside_the_input": (_inside_raw_folder, "an output cannot be the input or inside it"),
    "rejects_file_is_the_input": (_rejects_onto_input, "an output cannot be the input"),
    "output_is_a_folder": (_a_folder, "is a folder"),
    "output_under_a_file": (_under_a_file, "cannot write the outputs there"),
    "output_not_parquet_or_csv": (_not_a_table_format, "must end in .parquet or .csv"),
}


@pytest.mark.parametrize("case", list(USAGE))
def test_unusable_output_exits_2_before_any_work(case, tables, features, work, tmp_path):
    make, message = USAGE[case]
    given, output = make(write_features(features, tmp_path / "in", "parquet"),
                         write_raw(tables, tmp_path / "raw", "parquet"))
    inputs = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    run = score(work, given, output)
    assert run.code == 2 and run.err.startswith("error: ") and message in run.err, run.err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == inputs  # nothing touched


def test_missing_input_and_bad_params_exit_2(work, tmp_path):
    run = score(work, tmp_path / "nowhere", tmp_path / "s.parquet")
    assert run.code == 2 and "nowhere: no such file or folder" in run.err
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(merge(raw_params(), {"engine": {"kind": "cloud"}}), sort_keys=False))
    run = score(work, work / "model", tmp_path / "s.parquet", params=bad)
    assert run.code == 2 and "engine.kind" in run.err, run.err


@pytest.mark.parametrize("address", ["silent", "tcp://127.0.0.1:notaport"])
def test_a_scheduler_that_is_none_exits_2_within_15_s_naming_it(address, features, work, tmp_path,
                                                                  silent_listener):
    address = silent_listener if address == "silent" else address
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(merge(raw_params(), {"engine": {"kind": "dask", "scheduler": address}}),
                                     sort_keys=False))
    start = time.perf_counter()
    run = score(work, write_features(features, tmp_path, "parquet"), tmp_path / "out" / "s.parquet", params)
    assert run.code == 2 and f"the Dask scheduler at {address} (set by engine.scheduler)" in run.err, run.err
    assert time.perf_counter() - start < 15
    assert list((tmp_path / "out").iterdir()) == []


# ---- 5. the features contract, read off the catalogue ------------------------------------------------------

def _cases(found: pd.DataFrame) -> list[tuple]:
    # pandera names the duplicated value as the column of a key failure, once per key column;
    # both mean the key
    column = found["column"].where(found["check"] != "multiple_fields_uniqueness", "key")
    return sorted(set(zip(found["row"].astype("int64"), column, found["check"], strict=True)))


def _planted(frame: pd.DataFrame, spec) -> pd.DataFrame:
    """``frame``'s first rows with one bad value per column (missing where it may not be, out of
    its range, outside its allowed values) and the first row again at the end (a key twice)."""
    out = frame.head(len(spec.columns) * 3 + 1).reset_index(drop=True)
    for i, col in enumerate(spec.columns):
        for j, bad in enumerate((None, "low", "other")):
            row, values = 3 * i + j + 1, out[col.name].copy()
            if bad is None and not col.nullable and col.dtype != "int64":  # int64 holds no missing value
                values.iloc[row] = {"str": None, "float64": np.nan}.get(col.dtype, pd.NaT)
            elif bad == "low" and col.dtype == "datetime64[s]":
                values.iloc[row] = pd.Timestamp("1900-01-01")
            elif bad == "low" and col.min is not None:
                values.iloc[row] = col.min - 1
            elif bad == "other" and col.allowed is not None and col.dtype == "str":
                values.iloc[row] = "not allowed"
            out[col.name] = values.astype(out[col.name].dtype)
    return pd.concat([out, out.head(1)], ignore_index=True)


@pytest.mark.parametrize("name", [*RAW_TABLES, "maintenance_windows"])
def test_raw_tables_checked_on_whole_columns_fail_as_with_pandera(small_sim, name):
    """A conformed raw batch is checked on whole columns, a frame of other dtypes by pandera:
    the same failures (row, column, check) on planted bad values of every kind."""
    spec = TABLES[name]
    frame = _planted(small_sim[name][list(spec.names)], spec)
    by_numpy = row_violations(frame, spec)
    assert len(by_numpy) >= 2  # at least a planted value and the key (or a missing value)
    assert _cases(by_numpy) == _cases(pandera_violations(frame, name))


def test_the_vectorised_check_finds_what_pandera_finds():
    """Features batches are checked on whole columns, not by pandera: the same rules, the
    same failures (row, column, check)."""
    table = features_table(["trigger", "age", "inquiries_3m", "wallet_balance", "dti_change", "team_x"])
    frame = pd.DataFrame({
        "borrower_id": np.array([0, 1, 2, 3, 3, 5], dtype="int64"),
        "scoring_date": pd.to_datetime(["2025-01-01", "1970-01-01", None, "2025-01-01", "2025-01-01",
                                        "2099-12-31"]).astype("datetime64[s]"),
        "trigger": [0.0, 7.0, np.nan, 1.0, 2.0, 3.0],
        "age": [30.0, np.nan, 17.0, 81.0, 30.5, 18.0],
        "inquiries_3m": [0.0, 1.5, -1.0, np.inf, 2.0, 1e7],
        "wallet_balance": [np.nan, 0.0, -0.01, 1e308, np.inf, 5.0],
        "dti_change": [-0.5, -2e6, np.nan, 0.0, np.inf, 1e6],
        "team_x": [np.inf, np.nan, 0.0, -1e300, 1.0, -np.inf]})
    by_pandera = pandera_violations(frame, table)
    by_numpy = row_violations(frame, table)
    assert len(by_numpy) > 15
    assert _cases(by_numpy) == _cases(by_pandera)


def test_columns_the_catalogue_does_not_know_need_only_be_finite_or_missing():
    table = features_table(["team_feature", "trigger"])
    frame = pd.DataFrame({"borrower_id": np.arange(5, dtype="int64"),
                          "scoring_date": pd.to_datetime(["2025-01-01"] * 5).astype("datetime64[s]"),
                          "team_feature": [-1e300, np.nan, np.inf, -np.inf, 0.5],
                          "trigger": [0.0, 1.0, 2.0, 3.0, 3.0]})
    found = violations(frame, table)
    assert sorted(found["row"].tolist()) == [2, 3] and set(found["column"]) == {"team_feature"}


def test_a_blank_where_training_had_none_fails_only_where_the_contract_allowed_blanks():
    """Known answers: a team's column and a catalogue feature that may be missing fail when the
    model never saw them missing; a feature the contract never allows missing keeps its own rule."""
    columns = ["team_x", "days_to_first_large_draw", "age"]
    frame = pd.DataFrame({"borrower_id": np.arange(3, dtype="int64"),
                          "scoring_date": pd.to_datetime(["2025-01-01"] * 3).astype("datetime64[s]"),
                          "team_x": [np.nan, 1.0, 2.0], "days_to_first_large_draw": [3.0, np.nan, 1.0],
                          "age": [30.0, 40.0, np.nan]})
    plain = row_violations(frame, features_table(columns))
    assert plain[["row", "column", "check"]].values.tolist() == [[2, "age", "not_nullable"]]
    known = row_violations(frame, features_table(columns, never_missing=tuple(columns)))
    assert sorted(known[["row", "column", "check"]].values.tolist()) == [
        [0, "team_x", NEVER_MISSING], [1, "days_to_first_large_draw", NEVER_MISSING],
        [2, "age", "not_nullable"]]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_blank_the_model_never_saw_in_training_rejects_its_borrower(fmt, features, work, tmp_path):
    """LightGBM reads a missing value it never saw in training as 0: a blank credit score had
    been scored as a score of 0. The model records the numbers no training row lacked (all of
    them, from every training row), and scoring rejects a borrower who lacks one, naming it."""
    reference = json.loads((work / "model" / "reference.json").read_text())
    metadata = json.loads((work / "model" / "metadata.json").read_text())
    train_rows = features[in_training(features)]
    fitted = CalibratedLightGBM.from_dir(work / "model")
    read = {c for booster in (fitted.booster, fitted.causes[0])
            for c, splits in zip(fitted.features, booster.feature_importance("split"), strict=True) if splits}
    assert set(fitted.features) - read  # some feature no tree reads: a blank there rejects no one
    assert reference["never_missing"] == [c for c in metadata["features"]
                                          if c in read and not train_rows[c].isna().any()]
    nullable = [c for c in reference["never_missing"] if features_table([c]).column(c).nullable]
    assert "credit_score" in reference["never_missing"] and nullable
    frame = features.copy()
    borrower = int(frame["borrower_id"].iloc[7])
    frame.loc[7, nullable[0]] = np.nan
    run = score(work, write_features(frame, tmp_path, fmt), tmp_path / "out" / f"scores.{fmt}")
    check_rejected(run, borrower, f"{nullable[0]}: fails {NEVER_MISSING}", len(frame))


# ---- 6. outputs appear together; a killed run leaves no process and no file behind ----------------------

def test_summary_vouches_for_the_scores_and_rejects_beside_it(tables, work, tmp_path):
    t = {name: frame.copy() for name, frame in tables.items()}
    RAW_ROWS["negative_drawdown"][0](t)
    run = score(work, write_raw(t, tmp_path / "raw", "parquet"), tmp_path / "out" / "s.parquet")
    digests = run.summary()["sha256"]
    paths = output_paths(run.output)
    assert digests == {"scores": io.content_digest(paths["scores"]),
                       "rejects": io.content_digest(paths["rejects"])}
    assert sorted(p.name for p in paths["scores"].parent.iterdir()) == named(run.output)


def named(output: Path) -> list[str]:
    return sorted(p.name for p in output_paths(output).values())


def _workers_of(process: psutil.Process) -> list[psutil.Process]:
    return [c for c in process.children(recursive=True)
            if "multiprocessing" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())]


@pytest.mark.slow
def test_kill_9_takes_the_workers_down_and_the_next_run_cleans_up(tables, work, tmp_path):
    """SIGKILL to a 2-process scoring run while its workers score: they die with it within
    seconds, its temporaries stay behind (nothing could remove them), the next run removes them."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(merge(raw_params(), {"score": {"batch_borrowers": 25},
                                                          "engine": {"workers": 2}}), sort_keys=False))
    raw = write_raw(tables, tmp_path / "raw", "parquet")
    output = tmp_path / "out" / "scores.parquet"
    command = [str(Path(sys.executable).parent / "limitjump"), "score", "--input", str(raw), "--output",
               str(output), "--model", str(work / "model"), "--params", str(params)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(process.pid)
    try:
        deadline, workers = time.monotonic() + 120, []
        while process.poll() is None and time.monotonic() < deadline:
            workers = _workers_of(parent)
            if len(workers) == 2 and any(output.parent.glob(".*.tmp")):
                break
            time.sleep(0.05)
        assert process.poll() is None and len(workers) == 2, "the run ended before its workers were seen"
        time.sleep(1.0)  # the workers are scoring
        process.kill()
    finally:
        process.wait()
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == [], f"workers outlived their parent: {alive}"
    left = sorted(p.name for p in output.parent.iterdir())
    assert left and all(n.startswith(".") and n.endswith(".tmp") for n in left), left

    run = score(work, raw, output, params=tmp_path / "params.yaml")
    check_accounted(run, N)
    assert sorted(p.name for p in output.parent.iterdir()) == named(output)


# ---- a team's own tables ---------------------------------------------------------------------------


def test_codes_written_as_numbers_are_the_codes(tmp_path):
    """A category the model learned as text ('1', '2', 'X'), given as a Parquet integer column: as
    a CSV's codes are read as text, so are these (the pipeline's own batch of a team's file to
    score stopped: 'must be text ... found int64')."""
    assert cells.codes_as_text(pd.Series([1.0, 2.0, np.nan, 2.5])).tolist()[:2] == ["1", "2"]
    written = cells.codes_as_text(pd.Series([1.0, 2.0, np.nan, 2.5]))
    assert pd.isna(written[2]) and written[3] == "2.5"
    path = tmp_path / "score.parquet"
    pd.DataFrame({"borrower_id": [1, 2, 3], "scoring_date": ["2025-01-31"] * 3,
                  "region": [1, 2, None]}).to_parquet(path)
    file = sources.FeaturesFile(path, ["region"], pd.Timestamp("2030-01-01"), ("region",))
    batch = file.load(1, 3)
    assert batch.features["region"].tolist()[:2] == ["1", "2"] and pd.isna(batch.features["region"][2])


def test_a_teams_file_scored_by_hand_is_told_its_names_are_source_tables(tmp_path):
    """`limitjump score` reads the pipeline's names; a team's own file to score names its id and
    date as source.tables does, and the message says so (the pipeline's own path renames them)."""
    path = tmp_path / "score.csv"
    team_frame().drop(columns="bad").to_csv(path, index=False)
    tables = {"id_column": "customer_id", "date_column": "as_of"}
    team = make_params({"source": {"kind": "tables", "tables": tables}})
    said = (r"missing columns \['borrower_id', 'scoring_date'\]; the file uses source.tables' names "
            r"\('customer_id' for 'borrower_id', 'as_of' for 'scoring_date'\)")
    with pytest.raises(ContractError, match=said):
        sources.open_source(path, team.source, team.features, 30, ["amount"], (), pd.Timestamp("2030-01-01"))
    simulator = make_params({"source": {"tables": tables}})  # the names are not in use
    with pytest.raises(ContractError) as told:
        sources.open_source(path, simulator.source, simulator.features, 30, ["amount"], (),
                            pd.Timestamp("2030-01-01"))
    assert "source.tables" not in str(told.value)


def test_raw_csv_ids_and_counts_written_as_decimals_score_as_integers(tables, work, tmp_path):
    """A table that went through pandas with a missing value writes its ids and counts as "7.0":
    they read as the integers they are, with the same scores as the integer file."""
    as_ints = score(work, write_raw(tables, tmp_path / "ints", "csv"), tmp_path / "a" / "s.parquet")
    t = {name: frame.copy() for name, frame in tables.items()}
    for name, column in [("repayments", "borrower_id"), ("statements", "credit_score"),
                         ("drawdowns", "tenor_months")]:
        t[name][column] = t[name][column].astype("float64")
    folder = write_raw(t, tmp_path / "decimals", "csv")
    assert (folder / "statements.csv").read_text().splitlines()[1].split(",")[9].endswith(".0")
    as_decimals = score(work, folder, tmp_path / "b" / "s.parquet")
    check_accounted(as_decimals, len(tables["borrowers"]))
    assert as_decimals.summary()["rejected"] == as_ints.summary()["rejected"] == 0
    pd.testing.assert_frame_equal(as_decimals.scores(), as_ints.scores())


def test_ids_written_as_decimals_above_2_to_the_53_stop_the_file(features, work, tmp_path):
    """Above 2**53 a float has lost an id's last digits: two borrowers could merge unseen."""
    frame = features.assign(borrower_id=features["borrower_id"].astype("float64") + 2.0 ** 53)
    run = score(work, write_features(frame, tmp_path, "csv"), tmp_path / "out" / "s.csv")
    assert run.code == 1 and "column 'borrower_id' must hold whole numbers" in run.err, run.err
    assert "ids must be below 2**53" in run.err


def test_a_csv_named_in_capitals_reads_and_writes_as_csv(features, work, tmp_path):
    """'REVIEWS.CSV', as some systems export: the suffix's case does not decide the format."""
    lower = score(work, write_features(features, tmp_path / "a", "csv"), tmp_path / "a" / "out" / "s.csv")
    upper = write_features(features, tmp_path / "b", "csv").rename(tmp_path / "b" / "FEATURES.CSV")
    run = score(work, upper, tmp_path / "b" / "out" / "S.CSV")
    check_accounted(run, len(features))
    assert (tmp_path / "b" / "out" / "S.CSV").read_bytes() == (tmp_path / "a" / "out" / "s.csv").read_bytes()
    assert output_paths(run.output)["rejects"].name == "S.rejects.CSV"
    assert lower.code == 0


# pyarrow's conversion of the zoned column the test writes, not the pipeline's reading, warns
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
@pytest.mark.parametrize("write", [
    lambda d: d.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),  # dates at midnight; a window's hours kept
    lambda d: d.dt.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
    lambda d: d.dt.tz_localize("Asia/Shanghai"),  # a zoned timestamp column (Parquet)
])
def test_dates_with_a_time_zone_keep_the_date_as_written(write, features, tables, work, tmp_path):
    """A zone ('Z', '+08:00', a zoned timestamp) is dropped, the wall time kept, in every date
    column: the same scores as plain dates, for a features file and for raw tables (a traceback
    before; then every row of a CSV whose jump_date wrote '+08:00' was rejected as taken 31 days
    after the jump, Arrow having read that column as UTC, the day before)."""
    plain = score(work, write_features(features, tmp_path / "a", "parquet"), tmp_path / "a" / "s.parquet")
    dates = [c for c in features if pd.api.types.is_datetime64_any_dtype(features[c])]
    assert {"scoring_date", "jump_date"} <= set(dates)
    zoned = features.assign(**{c: write(features[c]) for c in dates})
    fmt = "parquet" if isinstance(zoned["scoring_date"].dtype, pd.DatetimeTZDtype) else "csv"
    run = score(work, write_features(zoned, tmp_path / "b", fmt), tmp_path / "b" / "o" / "s.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    t = {name: frame.copy() for name, frame in tables.items()}
    for frame in t.values():
        for c in [c for c in frame if pd.api.types.is_datetime64_any_dtype(frame[c])]:
            frame[c] = write(frame[c])
    raw_plain = score(work, write_raw(tables, tmp_path / "c", fmt), tmp_path / "c.parquet")
    raw = score(work, write_raw(t, tmp_path / "d", fmt), tmp_path / "d.parquet")
    check_accounted(raw, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(raw.scores(), raw_plain.scores())


@pytest.mark.parametrize("name, said", [
    ("features.xls", "an Excel 97-2003 workbook, which is not read: save it as .xlsx, CSV (UTF-8) or "
                     "Parquet"),
    ("features.xlsx", "cannot read the workbook: "),
    ("features.txt", "read as Parquet, since its name does not end in .csv or .csv.gz, but it is not "
                     "Parquet"),
])
def test_a_file_neither_csv_nor_parquet_says_what_it_was_read_as(name, said, features, work, tmp_path):
    features.to_csv(tmp_path / name, index=False)
    run = score(work, tmp_path / name, tmp_path / "out" / "s.parquet")
    assert run.code == 1 and run.err.startswith(f"error: {tmp_path / name}: {said}"), run.err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_an_excel_workbook_reads_as_its_first_sheet(features, work, tmp_path):
    """Risk analysts keep small files in Excel: a features file and a team's table as .xlsx read
    as their CSVs do (an error asking for CSV before), a blank id and text ids included."""
    frame = features.head(300).astype({"borrower_id": "float64"})
    frame.loc[7, "borrower_id"] = np.nan
    plain = score(work, write_features(frame, tmp_path / "a", "csv"), tmp_path / "a" / "s.parquet")
    frame.to_excel(tmp_path / "features.xlsx", index=False)
    run = score(work, tmp_path / "features.xlsx", tmp_path / "b" / "s.parquet")
    check_accounted(run, len(frame))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    pd.testing.assert_frame_equal(run.rejects(), plain.rejects())
    team = team_frame().assign(customer_id=["C7", "C3", "C9", "C4"])
    team.to_csv(tmp_path / "team.csv", index=False)
    team.to_excel(tmp_path / "team.xlsx", index=False)
    pd.testing.assert_frame_equal(team_table(tmp_path / "team.xlsx", team_settings(), labelled=True),
                                  team_table(tmp_path / "team.csv", team_settings(), labelled=True))


def test_a_workbooks_text_cells_stay_text_and_numbers_kept_as_text_are_numbers(features, work, tmp_path):
    """A sheet's text cell of digits is text, as a CSV's is: ids keep their leading zeros (pandas'
    own reading made 00000676 the number 676). A feature column of numbers stored as text (a
    sheet's text cells, a Parquet string column) scores as the numbers (it stopped the run)."""
    frame = features.head(120).assign(borrower_id=lambda f: f["borrower_id"].map("{:08d}".format))
    plain = score(work, write_features(frame, tmp_path / "a", "csv"), tmp_path / "a" / "s.parquet")
    assert plain.scores()["borrower_id"].str.startswith("000").all()
    frame["credit_score"] = frame["credit_score"].map(lambda v: None if pd.isna(v) else f" {v:g} ")
    frame.to_excel(tmp_path / "features.xlsx", index=False)
    frame.to_parquet(tmp_path / "features.parquet", index=False)
    for name in ("features.xlsx", "features.parquet"):
        run = score(work, tmp_path / name, tmp_path / name.replace(".", "_") / "s.parquet")
        check_accounted(run, len(frame))
        pd.testing.assert_frame_equal(run.scores(), plain.scores())
        pd.testing.assert_frame_equal(run.rejects(), plain.rejects())


def test_scores_come_in_id_order_the_same_bytes_in_one_batch_or_many(features, work, tmp_path):
    """A file in its own order: the scores come in id order, as the batches do, so that the bytes
    do not change with score.batch_borrowers; and a time of day in the last batch only (a CSV's
    dates were decided on the first batch, and this stopped the run) writes the column with times."""
    frame = features.head(500).sample(frac=1.0, random_state=3).reset_index(drop=True)
    last = frame["borrower_id"].idxmax()
    for column in ("scoring_date", "jump_date"):
        frame.loc[last, column] = frame.loc[last, column] + pd.Timedelta(hours=13, minutes=45)
    path = write_features(frame, tmp_path, "csv")
    whole = tmp_path / "whole.yaml"
    whole.write_text(yaml.safe_dump(merge(raw_params(), {"score": {"batch_borrowers": 1000},
                                                        "engine": {"workers": 1}}), sort_keys=False))
    runs = [score(work, path, tmp_path / kind / f"{name}.{kind}", params) for name, params in
            (("batches", None), ("whole", whole)) for kind in ("csv", "parquet")]  # batches of 200, then one
    assert all(run.code == 0 for run in runs)
    check_accounted(runs[0], len(frame))
    for kind in ("csv", "parquet"):  # a Parquet file had a row group per batch
        batches, whole_file = (tmp_path / kind / f"{name}.{kind}" for name in ("batches", "whole"))
        assert batches.read_bytes() == whole_file.read_bytes()
    scores = pd.read_csv(tmp_path / "csv" / "whole.csv", dtype={"scoring_date": "str"})
    assert scores["borrower_id"].is_monotonic_increasing
    assert scores["scoring_date"].iloc[-1].endswith(" 13:45:00")
    assert scores["scoring_date"].iloc[0].endswith(" 00:00:00")


def test_gzipped_csvs_read_as_csvs(features, tables, work, tmp_path):
    """Exports are often gzipped: <table>.csv.gz and features.csv.gz score as the plain CSVs."""
    plain = score(work, write_features(features, tmp_path / "a", "csv"), tmp_path / "a" / "s.parquet")
    features.to_csv(tmp_path / "features.csv.gz", index=False)
    run = score(work, tmp_path / "features.csv.gz", tmp_path / "b" / "s.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    raw_plain = score(work, write_raw(tables, tmp_path / "c", "csv"), tmp_path / "c.parquet")
    for name in (*RAW_TABLES, "maintenance_windows"):
        (tmp_path / "d").mkdir(exist_ok=True)
        tables[name].to_csv(tmp_path / "d" / f"{name}.csv.gz", index=False)
    raw = score(work, tmp_path / "d", tmp_path / "d.parquet")
    check_accounted(raw, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(raw.scores(), raw_plain.scores())


def test_mysqls_null_reads_as_missing(features, tables, work, tmp_path):
    """MySQL and Hive write a missing value as \\N: the same scores as with empty fields, for a
    features file (missing features) and for raw tables (the initial limits have no trigger)."""
    assert features.isna().any().any() and tables["limit_events"]["trigger"].isna().any()
    plain = score(work, write_features(features, tmp_path / "a", "csv"), tmp_path / "a" / "s.parquet")
    (tmp_path / "b").mkdir()
    features.to_csv(tmp_path / "b" / "features.csv", index=False, na_rep="\\N")
    run = score(work, tmp_path / "b" / "features.csv", tmp_path / "b" / "s.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    raw_plain = score(work, write_raw(tables, tmp_path / "c", "csv"), tmp_path / "c.parquet")
    write_raw(tables, tmp_path / "d", "csv")
    tables["limit_events"].to_csv(tmp_path / "d" / "limit_events.csv", index=False, na_rep="\\N")
    raw = score(work, tmp_path / "d", tmp_path / "d.parquet")
    check_accounted(raw, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(raw.scores(), raw_plain.scores())


def test_a_raw_table_number_with_separators_reads_as_meant_and_a_bad_one_rejects_its_borrower(
        tables, work, tmp_path):
    """An amount written '¥2,370.16', as a spreadsheet formats it, or as text in Parquet, scored as
    the number; a text that
    is no number ('-' for nothing) stopped the whole file before, and now rejects its borrower
    alone, naming the table, column and value."""
    plain = score(work, write_raw(tables, tmp_path / "a", "csv"), tmp_path / "a.parquet")
    raw = write_raw(tables, tmp_path / "b", "csv")
    drawdowns = tables["drawdowns"]
    drawdowns.assign(amount=drawdowns["amount"].map("¥{:,.2f}".format)).to_csv(raw / "drawdowns.csv",
                                                                             index=False)
    run = score(work, raw, tmp_path / "b.parquet")
    check_accounted(run, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    # a database's Parquet export may hold amounts as text
    text = drawdowns.astype({"amount": "str"})
    as_text = write_raw({**tables, "drawdowns": text}, tmp_path / "p", "parquet")
    run = score(work, as_text, tmp_path / "p.parquet")
    check_accounted(run, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    bid = victim(tables["repayments"], 1)
    repayments = tables["repayments"].astype({"amount": object})
    repayments.loc[first_row(repayments, bid), "amount"] = "-"
    repayments.to_csv(raw / "repayments.csv", index=False)
    check_rejected(score(work, raw, tmp_path / "c.parquet"), bid, "repayments.amount: not a number (value -)",
                   len(tables["borrowers"]))


@pytest.mark.parametrize("written", ["%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日", "%Y年%m月%d日 00:00"])
def test_dates_written_year_first_read_as_the_dates(written, features, tables, work, tmp_path):
    """Year, month and day in that order, however separated (a Chinese spreadsheet writes
    '2025年11月18日'): the same scores as ISO dates, for a features file and for raw tables."""
    plain = score(work, write_features(features, tmp_path / "a", "csv"), tmp_path / "a" / "s.parquet")
    rewritten = features.assign(scoring_date=features["scoring_date"].dt.strftime(written))
    run = score(work, write_features(rewritten, tmp_path / "b", "csv"), tmp_path / "b" / "s.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    t = {name: frame.copy() for name, frame in tables.items()}
    t["statements"]["statement_date"] = t["statements"]["statement_date"].dt.strftime(written)
    raw_plain = score(work, write_raw(tables, tmp_path / "c", "csv"), tmp_path / "c.parquet")
    raw = score(work, write_raw(t, tmp_path / "d", "csv"), tmp_path / "d.parquet")
    check_accounted(raw, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(raw.scores(), raw_plain.scores())


def test_a_raw_parquet_date_kept_as_a_warehouse_key_reads_as_the_date(tables, work, tmp_path):
    """A warehouse keeps dates as integer keys (20250317): read as such in a CSV and a features file,
    a raw Parquet table's had stopped the run ("fails dtype('datetime64[ns]')")."""
    plain = score(work, write_raw(tables, tmp_path / "a", "parquet"), tmp_path / "a.parquet")
    t = dict(tables, statements=tables["statements"].assign(
        statement_date=tables["statements"]["statement_date"].dt.strftime("%Y%m%d").astype("int64")))
    keyed = score(work, write_raw(t, tmp_path / "b", "parquet"), tmp_path / "b.parquet")
    check_accounted(keyed, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(keyed.scores(), plain.scores())


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_codes_written_in_capitals_or_with_spaces_read_as_the_codes(fmt, tables, work, tmp_path):
    """An export's 'MANUAL', ' Salaried ', 'Debit-Failed', 'Marketing Campaign' score as the codes
    they stand for (every borrower of the input was rejected before); a text that is no code,
    however written, still rejects its borrower."""
    plain = score(work, write_raw(tables, tmp_path / "a", fmt), tmp_path / "a.parquet")
    t = {name: frame.copy() for name, frame in tables.items()}
    t["repayments"]["channel"] = t["repayments"]["channel"].str.upper()
    t["borrowers"]["employment_type"] = " " + t["borrowers"]["employment_type"].str.title() + " "
    t["platform_events"]["event_type"] = t["platform_events"]["event_type"].str.title().str.replace("_", "-")
    t["limit_events"]["trigger"] = t["limit_events"]["trigger"].str.replace("_", " ").str.title()
    run = score(work, write_raw(t, tmp_path / "b", fmt), tmp_path / "b.parquet")
    check_accounted(run, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    bid = victim(t["statements"], 2)
    t["statements"].loc[first_row(t["statements"], bid), "line_status"] = "CLOSED"
    check_rejected(score(work, write_raw(t, tmp_path / "c", fmt), tmp_path / "c.parquet"), bid,
                   "statements.line_status: fails isin", len(tables["borrowers"]))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_flag_written_as_true_or_false_reads_as_1_or_0(fmt, features, work, tmp_path):
    """pandas writes a bool column as True/False: a flag so written scores as its 1/0."""
    flag = "autodebit_active"
    assert set(features[flag].dropna().unique()) == {0.0, 1.0}
    plain = score(work, write_features(features, tmp_path / "a", fmt), tmp_path / "a" / "s.parquet")
    as_bool = features.assign(**{flag: features[flag].astype(bool)})
    run = score(work, write_features(as_bool, tmp_path / "b", fmt), tmp_path / "b" / "s.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())


@pytest.mark.parametrize("separator, decimal", [("\t", "."), ("|", "."), (";", "."), (";", ",")])
def test_a_csv_split_by_another_separator_reads_as_meant(separator, decimal, features, tables, work,
                                                         tmp_path):
    """Exports put tabs, '|' or ';' between columns, and spreadsheets where the comma is the
    decimal mark write ';' and '2,5': every column looked missing before; each file now reads as
    its comma-separated twin does."""
    def resave(frame: pd.DataFrame, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False, sep=separator, decimal=decimal)
        return path

    plain = score(work, write_features(features, tmp_path / "a", "csv"), tmp_path / "a" / "s.parquet")
    run = score(work, resave(features, tmp_path / "b" / "features.csv"), tmp_path / "b" / "s.parquet")
    check_accounted(run, len(features))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    plain = score(work, write_raw(tables, tmp_path / "c", "csv"), tmp_path / "c.parquet")
    raw = write_raw(tables, tmp_path / "d", "csv")
    for name in ("borrowers", "drawdowns", "repayments"):
        resave(tables[name], raw / f"{name}.csv")
    run = score(work, raw, tmp_path / "d.parquet")
    check_accounted(run, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())
    team = resave(team_frame(), tmp_path / "team.csv")
    comma = tmp_path / "comma.csv"
    team_frame().to_csv(comma, index=False)
    pd.testing.assert_frame_equal(team_table(team, team_settings(), labelled=True),
                                  team_table(comma, team_settings(), labelled=True))


def test_a_features_file_older_than_the_model_says_how_to_mend_it(features, tmp_path):
    """A file computed before the catalogue grew lacks only the newer features: the message says
    so and what to do; a file that lacks its id says only what it lacks."""
    path = tmp_path / "features.csv"
    features.drop(columns=["forgotten_due_dates"]).to_csv(path, index=False)
    model = ["age", "forgotten_due_dates"]
    with pytest.raises(ContractError, match=r"missing columns \['forgotten_due_dates'\], features the file "
                                            "predates: compute them again with this version, give the raw "
                                            "tables instead"):
        sources.FeaturesFile(path, model, pd.Timestamp("2030-01-01"), ())
    features.drop(columns=["borrower_id"]).to_csv(path, index=False)
    with pytest.raises(ContractError, match=r"missing columns \['borrower_id'\]$"):
        sources.FeaturesFile(path, model, pd.Timestamp("2030-01-01"), ())
    # a name written with a space or a no-break space around it is not a newer feature
    features.rename(columns={"age": "age\xa0"}).to_csv(path, index=False)
    with pytest.raises(ContractError, match=r"missing columns \['age'\]; the file writes 'age\\xa0' for "):
        sources.FeaturesFile(path, model, pd.Timestamp("2030-01-01"), ())


def test_a_misspelt_feature_is_named_with_the_name_it_stands_for(features, tmp_path):
    """Known answer from outside: 'credit_scroe' was told it was a feature the file predates; a
    close name of no expected column is named, not a column the model also reads."""
    path = tmp_path / "features.csv"
    model = ["age", "credit_score", "utilisation_mean_3m", "utilisation_mean_6m"]
    features.rename(columns={"credit_score": "credit_scroe"}).to_csv(path, index=False)
    with pytest.raises(ContractError, match=r"missing columns \['credit_score'\]; the file writes "
                                            "'credit_scroe' for 'credit_score'") as caught:
        sources.FeaturesFile(path, model, pd.Timestamp("2030-01-01"), ())
    assert "predates" not in str(caught.value)
    features.drop(columns=["utilisation_mean_3m"]).to_csv(path, index=False)
    with pytest.raises(ContractError) as caught:
        sources.FeaturesFile(path, model, pd.Timestamp("2030-01-01"), ())
    assert "utilisation_mean_6m' for" not in str(caught.value)  # read by the model as itself


def test_column_names_in_capitals_are_named_with_the_names_they_stand_for(features, tmp_path):
    """A database's export writes 'BORROWER_ID': the message pairs each such column with the
    name it stands for, for a features file and a team's table (raw tables: RAW_FILES)."""
    path = tmp_path / "features.csv"
    features.rename(columns={"borrower_id": "BORROWER_ID", "age": " Age "}).to_csv(path, index=False)
    said = "the file writes 'BORROWER_ID' for 'borrower_id', ' Age ' for 'age'"
    with pytest.raises(ContractError, match=said):
        sources.FeaturesFile(path, ["age"], pd.Timestamp("2030-01-01"), ())
    every = tmp_path / "every.csv"  # a whole export in capitals: eight names each, and a count
    features.rename(columns=str.upper).to_csv(every, index=False)
    with pytest.raises(ContractError) as told:
        sources.FeaturesFile(every, list(features.columns[2:]), pd.Timestamp("2030-01-01"), ())
    more = len(features.columns) - readers.NAMED_COLUMNS
    said = str(told.value)
    assert said.count(f" and {more} more") == 2 and "'SCORING_DATE' for 'scoring_date'" in said
    assert len(said) < 1000
    team = tmp_path / "team.csv"
    team_frame().rename(columns={"as_of": "AS_OF"}).to_csv(team, index=False)
    with pytest.raises(ContractError, match=r"missing columns \['as_of'\] \(source.tables names them\); "
                                            "the file writes 'AS_OF' for 'as_of'"):
        team_table(team, team_settings(), labelled=True)


def test_a_gbk_or_utf16_csv_reads_as_its_text(tables, work, tmp_path):
    """Excel on Chinese Windows saves CSV as GBK, on Western Windows as Windows-1252, and its
    'Unicode text' as UTF-16 split by tabs: each reads as the text it holds."""
    team, utf8, utf16 = tmp_path / "team.csv", tmp_path / "utf8.csv", tmp_path / "utf16.csv"
    frame = team_frame().assign(city=["北京", "上海", "深圳", "广州"])
    frame.to_csv(team, index=False, encoding="gbk")
    frame.to_csv(utf8, index=False)
    utf16.write_bytes(frame.to_csv(index=False, sep="\t").encode("utf-16"))
    out = team_table(team, team_settings(), labelled=True)
    assert out["city"].tolist() == ["北京", "上海", "深圳", "广州"]
    pd.testing.assert_frame_equal(out, team_table(utf8, team_settings(), labelled=True))
    pd.testing.assert_frame_equal(out, team_table(utf16, team_settings(), labelled=True))
    western = frame.assign(city=["Zürich", "Montréal", "Köln", "São Paulo"])
    western.to_csv(team, index=False, encoding="cp1252")  # GB18030 had read 'Zürich' as 'Z黵ich'
    as_utf8 = team_table(utf8, team_settings(), labelled=True).assign(city=western["city"])
    pd.testing.assert_frame_equal(team_table(team, team_settings(), labelled=True), as_utf8)
    team.write_bytes(utf8.read_bytes().replace("上海".encode(), b"\x81\xff"))  # none of the four
    with pytest.raises(ContractError, match="team.csv: its text is neither UTF-8, UTF-16, GB18030"):
        team_table(team, team_settings(), labelled=True)
    plain = score(work, write_raw(tables, tmp_path / "a", "csv"), tmp_path / "a.parquet")
    raw = write_raw(tables, tmp_path / "b", "csv")
    dates = pd.to_datetime(tables["statements"]["statement_date"]).dt.strftime("%Y年%m月%d日")
    tables["statements"].assign(statement_date=dates).to_csv(raw / "statements.csv", index=False,
                                                             encoding="gbk")
    run = score(work, raw, tmp_path / "b.parquet")
    check_accounted(run, len(tables["borrowers"]))
    pd.testing.assert_frame_equal(run.scores(), plain.scores())


def test_database_dates_and_decimals_read_as_dates_and_numbers(features, tables, work, tmp_path):
    """A database's Parquet export holds DATE columns (date32) and DECIMAL amounts: each stopped
    the file ('fails dtype'); they now score as the timestamps and floats they stand for."""
    plain = score(work, write_raw(tables, tmp_path / "a", "parquet"), tmp_path / "a.parquet")
    folder = write_raw(tables, tmp_path / "b", "parquet")
    for name, column, kind in [("statements", "statement_date", pa.date32()),
                               ("repayments", "amount", pa.decimal128(14, 2))]:
        part = folder / name / io.part_name(0)
        table = pq.read_table(part)
        table = table.set_column(table.schema.get_field_index(column), column, table[column].cast(kind))
        pq.write_table(table, part)
    run = score(work, folder, tmp_path / "b.parquet")
    check_accounted(run, len(tables["borrowers"]))
    assert run.summary()["rejected"] == plain.summary()["rejected"]
    pd.testing.assert_frame_equal(run.scores(), plain.scores(), check_exact=False, rtol=1e-9)
    file = tmp_path / "features.parquet"
    table = pa.Table.from_pandas(features, preserve_index=False)
    pq.write_table(table.set_column(table.schema.get_field_index("increase_amount"), "increase_amount",
                                    table["increase_amount"].cast(pa.decimal128(14, 2))), file)
    as_decimal = score(work, file, tmp_path / "c.parquet")
    check_accounted(as_decimal, len(features))
