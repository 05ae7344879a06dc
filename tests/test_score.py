"""``limitjump score``: raw tables or a features file in, one row per borrower out (probability, band,
reasons, action), bad borrowers to a rejects file, bad files stop the run with nothing written.

One small simulated population (2,000 borrowers) and one small LightGBM trained on it are shared by
the whole module; params.yaml scores 500 borrowers per batch, so every run goes through 4 batches.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import pipeline.cli.score  # noqa: F401 (registers the command)
from pipeline import contract, io, metrics, score
from pipeline.catalog import BY_NAME
from pipeline.cli import app
from pipeline.config import TRIGGERS
from pipeline.contract import RAW_TABLES, ContractError
from pipeline.errors import InputError
from pipeline.features import build_features
from tests.conftest import build_model_dir, make_params, merge, raw_params, simulate_tables

N_BORROWERS = 2000
BATCH = 500
SIM = {"engine": {"workers": 1},
       "simulate": {"n_borrowers": N_BORROWERS, "shard_size": N_BORROWERS, "truth_replicates": 2}}
FINGERPRINT = "0123456789abcdef" * 4
OUTPUT_COLUMNS = ["borrower_id", "scoring_date", "probability", "risk_band", "leading_cause",
                  "p_credit", "p_liquidity", "p_technical",
                  "reason_1", "reason_2", "reason_3", "reason_4", "action", "next_due_date",
                  "maintenance_due_date",
                  "model_version"]
REASONS = [f"reason_{i}" for i in range(1, 5)]
# what each leading cause must lead to (the article's playbook)
PLAYBOOK = {"technical": "do not lower the limit", "liquidity": "repayment plan",
            "credit": "stop further limit increases"}


# ---- shared inputs ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return simulate_tables(make_params(SIM))


def write_raw(frames: dict[str, pd.DataFrame], folder: Path) -> Path:
    """The raw tables in the contract's layout: <table>/part-00000.parquet."""
    for name in (*RAW_TABLES, "maintenance_windows"):
        io.write_parquet(frames[name], folder / name / io.part_name(0))
    return folder


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A working directory with the repository's params.yaml, scoring in batches of 500."""
    folder = tmp_path_factory.mktemp("score")
    # one worker: batches run in this process, where the tests can patch and observe them
    text = yaml.safe_dump(merge(raw_params(), {"score": {"batch_borrowers": BATCH},
                                               "engine": {"workers": 1}}), sort_keys=False)
    (folder / "params.yaml").write_text(text)
    return folder


@pytest.fixture(scope="module")
def raw(tables, work) -> Path:
    return write_raw(tables, work / "raw")


@pytest.fixture(scope="module")
def features(tables) -> pd.DataFrame:
    return build_features(tables, make_params().label.observation_days, make_params().features)


@pytest.fixture(scope="module")
def model_dir(tables, features, work) -> dict:
    """A small calibrated LightGBM saved like ``limitjump train lightgbm`` saves one."""
    return build_model_dir(tables, features, work / "model", FINGERPRINT)


def run_score(work: Path, input: Path, output: Path, model: Path, params: Path | None = None):
    """``limitjump score`` in-process; returns CliRunner's result (the exception stays in it)."""
    args = ["score", "--input", str(input), "--output", str(output), "--model", str(model),
            "--params", str(params or work / "params.yaml")]
    return CliRunner().invoke(app, args)


def run_main(work: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed ``limitjump`` command, in ``work`` (which holds params.yaml)."""
    command = Path(sys.executable).parent / "limitjump"
    return subprocess.run([str(command), "score", *args], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})


def outputs(output: Path) -> dict[str, Path]:
    return {"scores": output, "rejects": output.with_name(f"{output.stem}.rejects{output.suffix}"),
            "summary": output.with_name(f"{output.stem}.summary.json")}


def summary_of(output: Path) -> dict:
    return json.loads(outputs(output)["summary"].read_text())


def ok(result) -> None:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"


@pytest.fixture(scope="module")
def happy(work, raw, model_dir) -> dict:
    """The raw tables scored twice into the same place; bytes of the first run kept."""
    output = work / "happy" / "scores.parquet"
    first = run_score(work, raw, output, model_dir["path"])
    ok(first)
    first_bytes = {k: p.read_bytes() for k, p in outputs(output).items()}
    second = run_score(work, raw, output, model_dir["path"])
    ok(second)
    return {"output": output, "stdout": first.output, "bytes": first_bytes,
            "scores": pd.read_parquet(output), "rejects": pd.read_parquet(outputs(output)["rejects"]),
            "summary": summary_of(output)}


# ---- 1. happy path on raw tables ---------------------------------------------------------------

def test_raw_tables_every_borrower_scored_once_with_the_listed_columns(happy, tables):
    scores, rejects, summary = happy["scores"], happy["rejects"], happy["summary"]
    assert list(scores.columns) == OUTPUT_COLUMNS
    assert list(rejects.columns) == ["borrower_id", "reason"]
    everyone = np.sort(tables["borrowers"]["borrower_id"].to_numpy())
    seen = np.concatenate([scores["borrower_id"].to_numpy(), rejects["borrower_id"].to_numpy()])
    assert len(seen) == len(np.unique(seen)), "a borrower appears twice"
    np.testing.assert_array_equal(np.sort(seen), everyone)
    assert summary["borrowers_in"] == N_BORROWERS == summary["scored"] + summary["rejected"]
    assert (summary["scored"], summary["rejected"]) == (len(scores), len(rejects))
    assert f"borrowers in {N_BORROWERS} = scored {len(scores)} + rejected {len(rejects)}" in happy["stdout"]
    assert sum(summary["bands"].values()) == len(scores)
    assert scores["model_version"].eq(f"local:{FINGERPRINT[:12]}").all()
    truth = tables["ground_truth"].set_index("borrower_id")["scoring_date"]
    np.testing.assert_array_equal(scores["scoring_date"].to_numpy().astype("datetime64[s]"),
                                  truth.loc[scores["borrower_id"]].to_numpy().astype("datetime64[s]"))


def test_probabilities_bands_reasons_and_actions_are_consistent(happy):
    scores = happy["scores"]
    s = make_params().score
    p = scores["probability"].to_numpy()
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    uppers = list(s.bands.values())
    lowers = [0.0, *uppers[:-1]]
    for name, lo, hi in zip(s.bands, lowers, uppers, strict=True):
        in_band = scores[scores["risk_band"] == name]["probability"]
        assert ((in_band > lo) | (lo == 0.0)).all() and (in_band <= hi).all(), name
    assert set(scores["risk_band"]) <= set(s.bands)
    assert happy["summary"]["bands"] == {b: int((scores["risk_band"] == b).sum()) for b in s.bands}

    quiet = scores["risk_band"].isin(s.quiet_bands)
    assert quiet.any() and (~quiet).any(), "the test population needs both quiet and risky borrowers"
    assert scores.loc[quiet, "action"].eq("none").all()
    assert scores.loc[quiet, "leading_cause"].eq("none").all()
    assert scores.loc[quiet, REASONS].isna().all().all()

    risky = scores[~quiet]
    assert risky["reason_1"].notna().all()
    assert risky["leading_cause"].isin(list(PLAYBOOK)).all()
    for cause, words in PLAYBOOK.items():
        assert risky.loc[risky["leading_cause"] == cause, "action"].str.contains(words, regex=False).all()
    # a technical miss gets one of its three actions (maintenance, by hand, repair); any other
    # cause its own
    technical = risky["leading_cause"].eq("technical")
    said = score.action_key_of(risky.loc[technical, "action"])  # an undated reminder too
    assert said.isin(["technical", "check", "manual", "maintenance"]).all()
    others = risky[~technical]
    assert others["action"].eq(others["leading_cause"].map(score.ACTIONS)).all()
    # the catalogue's reasons, or the leading cause named when none of its features raised the risk
    known = {f.reason for f in BY_NAME.values() if f.reason} | set(score.CAUSE_REASONS.values())
    for column in REASONS:
        assert set(risky[column].dropna()) <= known, column
    # reasons fill from reason_1 on, and one borrower never gets the same reason twice
    filled = risky[REASONS].notna().to_numpy()
    assert (filled[:, 1:] <= filled[:, :-1]).all()
    for row in risky[REASONS].itertuples(index=False):
        given = [r for r in row if isinstance(r, str)]
        assert len(given) == len(set(given))


def test_rerun_gives_the_same_bytes(happy):
    again = {k: p.read_bytes() for k, p in outputs(happy["output"]).items()}
    assert again == happy["bytes"]


def test_drift_watches_the_most_important_features(happy, model_dir):
    importance = model_dir["importance"]
    ranked = sorted(importance, key=lambda name: (-importance[name], name))
    watched = ranked[:make_params().score.drift_features]
    drift = happy["summary"]["drift"]
    assert set(drift) == {"score", *watched}
    for name, result in drift.items():
        assert result["flag"] in ("stable", "watch", "shifted"), name


def test_score_and_watch_encodes_once_what_scoring_drift_and_unseen_categories_read(features, model_dir):
    """The watched values are the matrix's columns, as encoding them alone gives them."""
    from pipeline.model import CalibratedLightGBM, encode

    model = CalibratedLightGBM.from_dir(model_dir["path"])
    s, watched = make_params().score, list(model.features[:3])
    frame = features.head(200)
    rows, values = score.score_and_watch(frame, model=model, settings=s, version="7", watched=watched)
    pd.testing.assert_frame_equal(rows, score.score_batch(model, frame, s.bands, tuple(s.quiet_bands), "7",
                                                          s.explain))
    np.testing.assert_array_equal(values["score"], rows["probability"].to_numpy())
    encoded = encode(frame, watched, model.categories)
    for j, name in enumerate(watched):
        np.testing.assert_array_equal(values[name], encoded[:, j])
    everything = encode(frame, list(model.features), model.categories)
    position = {name: j for j, name in enumerate(model.features)}
    assert values[score.UNSEEN] == score.unseen_categories(frame, everything, position, model.categories)


def test_unseen_categories_are_given_values_the_matrix_holds_as_missing():
    from pipeline.model import encode

    learned = {"education": ["high_school", "university", "Other", "other"]}
    frame = pd.DataFrame({"age": [30.0] * 8, "education": pd.Series(
        ["UNIVERSITY", " High-School ", "university", "OTHER", "phd", None, "NULL", " "], dtype=object)})
    matrix = encode(frame, ["age", "education"], learned)
    found = score.unseen_categories(frame, matrix, {"age": 0, "education": 1}, learned)
    assert found == {"education": {"OTHER": 1, "phd": 1}}  # a blank is missing, not a category
    assert score.unseen_categories(frame.head(3), matrix[:3], {"age": 0, "education": 1}, learned) == {}
    # but where no training row lacked the column, a blank is as unseen as 'phd' (an outside check:
    # 500 blanks moved 314 scores, unsaid)
    found = score.unseen_categories(frame, matrix, {"age": 0, "education": 1}, learned, ("education",))
    assert found == {"education": {"OTHER": 1, "phd": 1, score.BLANK: 3}}


def test_csv_output_holds_the_same_rows(happy, work, raw, model_dir):
    output = work / "happy_csv" / "scores.csv"
    ok(run_score(work, raw, output, model_dir["path"]))
    assert all(p.exists() for p in outputs(output).values())
    csv = pd.read_csv(output)
    assert list(csv.columns) == OUTPUT_COLUMNS
    parquet = happy["scores"]
    np.testing.assert_array_equal(csv["borrower_id"], parquet["borrower_id"])
    np.testing.assert_allclose(csv["probability"], parquet["probability"], rtol=0, atol=1e-12)
    for column in ("risk_band", "leading_cause", *REASONS, "action"):
        pd.testing.assert_series_equal(csv[column].astype(object).where(csv[column].notna(), None),
                                       parquet[column].astype(object).where(parquet[column].notna(), None),
                                       check_names=False, check_dtype=False)


@pytest.fixture(scope="module")
def raw_csv(tables, work) -> Path:
    """The raw tables as <table>.csv files, written the way pandas writes them."""
    folder = work / "raw_csv"
    folder.mkdir()
    for name in (*RAW_TABLES, "maintenance_windows"):
        tables[name].to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.mark.parametrize("layout", ["csv", "parquet"])
def test_table_files_score_like_table_folders(layout, happy, tables, raw_csv, work, model_dir):
    """<table>.csv or <table>.parquet files instead of <table>/part-*.parquet folders."""
    if layout == "csv":
        folder = raw_csv
    else:
        folder = work / "raw_files"
        for name in (*RAW_TABLES, "maintenance_windows"):
            io.write_parquet(tables[name], folder / f"{name}.parquet")
    output = work / f"from_{layout}_files" / "scores.parquet"
    ok(run_score(work, folder, output, model_dir["path"]))
    assert summary_of(output)["rejected"] == 0, pd.read_parquet(outputs(output)["rejects"]).head()
    pd.testing.assert_frame_equal(pd.read_parquet(output), happy["scores"])


# ---- 2. a ready features file ------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_features_file_scores_like_the_raw_tables(fmt, happy, features, work, model_dir):
    path = work / f"features.{fmt}"
    if fmt == "parquet":
        io.write_parquet(features, path)
    else:
        features.to_csv(path, index=False)
    output = work / f"from_{fmt}" / "scores.parquet"
    result = run_score(work, path, output, model_dir["path"])
    ok(result)
    got = pd.read_parquet(output)
    expected = happy["scores"]
    assert list(got.columns) == OUTPUT_COLUMNS
    np.testing.assert_array_equal(got["borrower_id"], expected["borrower_id"])
    np.testing.assert_allclose(got["probability"], expected["probability"], rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(got.drop(columns="probability"), expected.drop(columns="probability"))
    assert summary_of(output)["borrowers_in"] == N_BORROWERS == summary_of(output)["scored"]


def test_features_csv_with_a_feature_empty_in_its_first_block(features, work, model_dir):
    """Arrow infers CSV types from the first block (1 MiB): a feature missing for the first ~1,800
    borrowers must still be read as numbers, not fail on the first later value."""
    frame = features.copy()
    frame.loc[:1799, "days_to_first_large_draw"] = np.nan
    assert frame["days_to_first_large_draw"].iloc[1800:].notna().any()
    csv, parquet = work / "late_values.csv", work / "late_values.parquet"
    frame.to_csv(csv, index=False)
    assert csv.stat().st_size > 1 << 20
    io.write_parquet(frame, parquet)
    ok(run_score(work, csv, work / "late_csv" / "s.parquet", model_dir["path"]))
    ok(run_score(work, parquet, work / "late_parquet" / "s.parquet", model_dir["path"]))
    a = pd.read_parquet(work / "late_csv" / "s.parquet")
    b = pd.read_parquet(work / "late_parquet" / "s.parquet")
    assert len(a) == N_BORROWERS
    np.testing.assert_allclose(a["probability"], b["probability"], rtol=0, atol=1e-12)

    # text in that column after the first block: the file and the column are named, nothing written
    frame["days_to_first_large_draw"] = frame["days_to_first_large_draw"].astype(object)
    frame.loc[1900, "days_to_first_large_draw"] = "twelve"
    bad = work / "late_text.csv"
    frame.to_csv(bad, index=False)
    output = work / "late_text" / "s.parquet"
    result = run_score(work, bad, output, model_dir["path"])
    assert result.exit_code != 0 and isinstance(result.exception, ContractError), repr(result.exception)
    assert str(bad) in str(result.exception) and "'days_to_first_large_draw'" in str(result.exception)
    _assert_nothing_written(output)


def test_text_in_a_numeric_feature_names_the_borrowers_and_values(features, work, model_dir):
    """Text where a number belongs stops the file (the column's type is wrong, so is every row's
    reading of it), naming the column, how many rows and the first of them, so that it can be fixed."""
    frame = features.copy()
    frame["credit_score"] = frame["credit_score"].astype(object)
    first, second = frame["borrower_id"].iloc[3], frame["borrower_id"].iloc[7]
    frame.loc[[3, 7], "credit_score"] = ["abc", "7OO"]
    frame.loc[8, "credit_score"] = None  # missing is allowed: not counted
    message = _stopped(frame, "text_score", work, model_dir)
    assert f"{work / 'text_score.csv'}: column 'credit_score' must be numeric" in message, message
    assert f"2 rows are not numbers: borrower {first} 'abc', borrower {second} '7OO'" in message, message
    # ids written with leading zeros are named as written (the rejects keep them so): "borrower 80"
    # is no id a team can search its file for
    zeros = frame.assign(borrower_id=frame["borrower_id"].map(lambda b: f"{b:09d}"))
    message = _stopped(zeros, "text_score_zeros", work, model_dir)
    assert f"borrower {first:09d} 'abc', borrower {second:09d} '7OO'" in message, message


def _stopped(frame: pd.DataFrame, name: str, work: Path, model_dir: dict) -> str:
    """The message of a features CSV that stops the run, having written nothing."""
    frame.to_csv(work / f"{name}.csv", index=False)
    output = work / name / "s.parquet"
    result = run_score(work, work / f"{name}.csv", output, model_dir["path"])
    assert isinstance(result.exception, ContractError), repr(result.exception)
    _assert_nothing_written(output)
    return str(result.exception)


def test_text_in_a_coded_feature_says_what_the_codes_are(features, work, model_dir):
    """A team that writes the trigger's name where the features hold its code learns the codes; a
    blank id elsewhere makes pandas write the ids as floats, yet the message shows them as written."""
    frame = features.copy()
    frame["borrower_id"] = frame["borrower_id"].astype("float64")
    frame.loc[0, "borrower_id"] = np.nan
    frame["trigger"] = frame["trigger"].astype(object)
    frame.loc[[0, 2], "trigger"] = "user_request"
    message = _stopped(frame, "trigger_text", work, model_dir)
    third = int(frame["borrower_id"].iloc[2])
    assert f"2 rows are not numbers: borrower (no id) 'user_request', borrower {third} 'user_request'" \
        in message, message
    assert "it holds codes: What triggered the increase: 0 new user" in message, message


# ---- 3. row-level problems: those borrowers rejected, the rest scored -----------------------------

def _row_of(frame: pd.DataFrame, borrower: int, mask=None) -> int:
    rows = frame.index[(frame["borrower_id"] == borrower) & (True if mask is None else mask)]
    return rows[0]


def _negative_drawdown(t, b):
    t["drawdowns"].loc[_row_of(t["drawdowns"], b), "amount"] = -250.0


def _unknown_line_status(t, b):
    t["statements"].loc[_row_of(t["statements"], b), "line_status"] = "closed"


def _year_1900(t, b):
    t["statements"].loc[_row_of(t["statements"], b), "statement_date"] = pd.Timestamp("1900-01-31")


def _year_2200(t, b):
    t["repayments"].loc[_row_of(t["repayments"], b), "payment_date"] = pd.Timestamp("2200-03-01")


def _duplicate_borrower(t, b):
    t["borrowers"] = pd.concat([t["borrowers"], t["borrowers"][t["borrowers"]["borrower_id"] == b]],
                               ignore_index=True)


def _missing_balance(t, b):
    t["statements"].loc[_row_of(t["statements"], b), "balance"] = np.nan


def _missing_age(t, b):
    age = t["borrowers"]["age"].astype("Int64")
    age[t["borrowers"]["borrower_id"] == b] = pd.NA
    t["borrowers"]["age"] = age


def _no_increase(t, b):
    events = t["limit_events"]
    t["limit_events"] = events[~((events["borrower_id"] == b) & (events["event_type"] == "increase"))]


# (planting function, table it touches, expected start of the reason: table.column)
ROW_PROBLEMS = {
    "negative_drawdown": (_negative_drawdown, "drawdowns", "drawdowns.amount"),
    "unknown_line_status": (_unknown_line_status, "statements", "statements.line_status"),
    "date_1900": (_year_1900, "statements", "statements.statement_date"),
    "date_2200": (_year_2200, "repayments", "repayments.payment_date"),
    "duplicate_borrower": (_duplicate_borrower, "borrowers", "borrowers.borrower_id"),
    "missing_balance": (_missing_balance, "statements", "statements.balance"),
    "missing_age": (_missing_age, "borrowers", "borrowers.age"),
    "no_limit_increase": (_no_increase, "limit_events", "limit_events.event_type"),
}


@pytest.fixture(scope="module")
def planted(tables, work, model_dir) -> dict:
    """One copy of the raw tables with each row-level problem planted in a different borrower,
    borrowers spread over all batches; scored once."""
    t = {name: frame.copy() for name, frame in tables.items()}
    victims, used = {}, set()
    for i, (case, (plant, table, _)) in enumerate(ROW_PROBLEMS.items()):
        present = np.unique(t[table]["borrower_id"])
        start = i * N_BORROWERS // len(ROW_PROBLEMS) + 7
        candidates = present[(present >= start) & ~np.isin(present, list(used))]
        victims[case] = int(candidates[0])
        used.add(victims[case])
        plant(t, victims[case])
    root = work / "planted"
    write_raw(t, root / "raw")
    output = root / "out" / "scores.parquet"
    result = run_score(work, root / "raw", output, model_dir["path"])
    ok(result)
    return {"victims": victims, "stdout": result.output, "scores": pd.read_parquet(output),
            "rejects": pd.read_parquet(outputs(output)["rejects"]), "summary": summary_of(output)}


@pytest.mark.parametrize("case", list(ROW_PROBLEMS))
def test_row_problem_rejects_that_borrower_naming_table_and_column(case, planted):
    if case.startswith("date_") and getattr(contract, "FIRST_DATE", None) is None:
        pytest.skip("the data contract bounds no dates (no FIRST_DATE / LAST_DATE)")
    borrower = planted["victims"][case]
    rejects = planted["rejects"]
    mine = rejects[rejects["borrower_id"] == borrower]
    rows_in = 2 if case == "duplicate_borrower" else 1  # each row of the borrowers table is accounted for
    assert len(mine) == rows_in, f"{case}: borrower {borrower} rejected {len(mine)} times"
    reason = mine["reason"].iloc[0]
    assert isinstance(reason, str) and reason.startswith(ROW_PROBLEMS[case][2]), reason
    assert borrower not in set(planted["scores"]["borrower_id"])


def test_row_problems_reject_exactly_those_borrowers_and_counts_add_up(planted, happy, tables):
    victims = set(planted["victims"].values())
    scores, rejects, summary = planted["scores"], planted["rejects"], planted["summary"]
    rows_in, rejected = N_BORROWERS + 1, len(victims) + 1  # the duplicated borrower: two rows, two rejects
    assert set(rejects["borrower_id"]) == victims and len(rejects) == rejected
    everyone = set(tables["borrowers"]["borrower_id"])
    assert set(scores["borrower_id"]) == everyone - victims and scores["borrower_id"].is_unique
    assert summary["borrowers_in"] == rows_in == summary["scored"] + summary["rejected"]
    assert (summary["scored"], summary["rejected"]) == (N_BORROWERS - len(victims), rejected)
    assert (f"borrowers in {rows_in} = scored {N_BORROWERS - len(victims)} + rejected {rejected}"
            in planted["stdout"])
    # the others are scored exactly as without the bad rows
    clean = happy["scores"].set_index("borrower_id").loc[scores["borrower_id"]].reset_index()
    pd.testing.assert_frame_equal(scores.reset_index(drop=True), clean)


# ---- 4. file-level problems: stop, name the file (and column), write nothing ---------------------

# each takes a copy of the raw folder and returns (the input to give, the path the message must name)

def _input_missing(raw: Path) -> tuple[Path, Path]:
    return raw.parent / "no_such_folder", raw.parent / "no_such_folder"


def _table_missing(name: str):
    def remove(raw: Path) -> tuple[Path, Path]:
        shutil.rmtree(raw / name)
        return raw, raw
    return remove


def _corrupt(table: str, part: int):
    """Random bytes as a table's first part (read when the input is opened) or as an extra part
    (read only midway, when its batch comes)."""
    def corrupt(raw: Path) -> tuple[Path, Path]:
        path = raw / table / io.part_name(part)
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return raw, path
    return corrupt


def _rewritten(table: str, change):
    def rewrite(raw: Path) -> tuple[Path, Path]:
        path = raw / table / io.part_name(0)
        io.write_parquet(change(pd.read_parquet(path)), path)
        return raw, path.parent
    return rewrite


# case: (make the input, the column the message must name)
FILE_PROBLEMS = {
    "input_missing": (_input_missing, None),
    "statements_missing": (_table_missing("statements"), "statements"),
    "borrowers_missing": (_table_missing("borrowers"), "borrowers"),
    "corrupt_parquet": (_corrupt("statements", 0), None),
    "corrupt_second_part": (_corrupt("repayments", 1), None),
    "column_dropped": (_rewritten("statements", lambda f: f.drop(columns="credit_score")), "credit_score"),
}


@pytest.mark.parametrize("case", list(FILE_PROBLEMS))
def test_file_problem_stops_naming_the_file_and_writes_nothing(case, raw, work, model_dir, tmp_path):
    make, column = FILE_PROBLEMS[case]
    copy = shutil.copytree(raw, tmp_path / "raw")
    given, named = make(copy)
    output = tmp_path / "out" / "scores.parquet"
    result = run_score(work, given, output, model_dir["path"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError | FileNotFoundError), repr(result.exception)
    message = str(result.exception)
    assert str(named) in message, message
    if column is not None:
        assert f"'{column}'" in message, message
    _assert_nothing_written(output)


def _features_lacking(features, path):
    io.write_parquet(features.drop(columns="wallet_balance"), path)
    return "wallet_balance"


def _features_text_column(features, path):
    """Text that is not a number in a numeric column (numbers stored as text are numbers)."""
    text = features["credit_score"].astype("str").where(features.index != 3, "unknown")
    io.write_parquet(features.assign(credit_score=text), path)
    return "credit_score"


@pytest.mark.parametrize("write", [_features_lacking, _features_text_column])
def test_features_file_problem_stops_naming_the_file_and_column(write, features, work, model_dir, tmp_path):
    path = tmp_path / "features.parquet"
    column = write(features, path)
    output = tmp_path / "out" / "scores.parquet"
    result = run_score(work, path, output, model_dir["path"])
    assert result.exit_code != 0 and isinstance(result.exception, ContractError), repr(result.exception)
    assert str(path) in str(result.exception)
    if column is not None:
        assert f"'{column}'" in str(result.exception)
    _assert_nothing_written(output)


def _assert_nothing_written(output: Path) -> None:
    for path in outputs(output).values():
        assert not path.exists(), path
    left = sorted(p.name for p in output.parent.iterdir()) if output.parent.exists() else []
    assert left == [], left


def test_command_line_exits_1_with_a_message_and_no_traceback(raw, work, model_dir, tmp_path):
    """The installed command, as a user runs it (params.yaml from the working directory)."""
    copy = shutil.copytree(raw, tmp_path / "raw")
    _rewritten("statements", lambda f: f.drop(columns="wallet_balance"))(copy)
    output = tmp_path / "out" / "scores.parquet"
    done = run_main(work, "--input", str(copy), "--output", str(output), "--model", str(model_dir["path"]))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert str(copy / "statements") in done.stderr and "'wallet_balance'" in done.stderr
    _assert_nothing_written(output)


def test_a_column_in_a_format_the_contract_does_not_read_exits_1_after_writing(raw, work, model_dir,
                                                                               tmp_path):
    """Channel codes of the lender's own system (in Chinese) reject every borrower who ever repaid:
    the outputs are written, with each borrower's reason, but the command exits 1 naming the
    commonest reason, so that a batch job does not pass an unscored file off as scored."""
    copy = shutil.copytree(raw, tmp_path / "raw")
    own_codes = {"auto_debit": "自动扣款", "manual": "手动还款"}
    _rewritten("repayments", lambda f: f.assign(channel=f["channel"].map(own_codes)))(copy)
    output = tmp_path / "out" / "scores.parquet"
    done = run_main(work, "--input", str(copy), "--output", str(output), "--model", str(model_dir["path"]))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"error: {copy}: ") and "Traceback" not in done.stderr
    assert "more than score.max_rejected_share 50%" in done.stderr
    assert "most for: repayments.channel: fails isin(['auto_debit', 'manual'])" in done.stderr
    summary = json.loads(outputs(output)["summary"].read_text())
    rejects = pd.read_parquet(outputs(output)["rejects"])
    assert summary["rejected"] == len(rejects) > N_BORROWERS / 2
    assert sum(summary["reject_reasons"].values()) == len(rejects)
    assert "rejected for repayments.channel: fails isin(['auto_debit', 'manual']): " in done.stdout


def test_command_line_happy_run_matches_the_in_process_bytes(happy, raw, work, model_dir, tmp_path):
    output = tmp_path / "scores.parquet"
    done = run_main(work, "--input", str(raw), "--output", str(output), "--model", str(model_dir["path"]))
    assert done.returncode == 0, done.stderr
    assert f"borrowers in {N_BORROWERS} = scored {N_BORROWERS} + rejected 0" in done.stdout
    assert output.read_bytes() == happy["bytes"]["scores"]
    assert outputs(output)["rejects"].read_bytes() == happy["bytes"]["rejects"]


def test_a_model_takes_features_on_the_window_it_was_trained_for_whatever_params_say(
        tables, features, raw, work, model_dir, tmp_path):
    """params.yaml scores 30 days after the jump; a model trained on 45 days is fed features of its
    45th day from the raw tables, and a features file of the 30th day is rejected for it."""
    from pipeline.model import LABEL_FILE, CalibratedLightGBM

    folder = shutil.copytree(model_dir["path"], tmp_path / "model")
    io.write_json({**make_params().label.model_dump(), "observation_days": 45}, folder / LABEL_FILE)
    output = tmp_path / "raw" / "scores.parquet"
    result = run_score(work, raw, output, folder)
    ok(result)
    assert "its features are taken 45 days after the jump" in result.output
    got = pd.read_parquet(output)
    later = build_features(tables, 45, make_params().features)
    assert (got["scoring_date"] == later["scoring_date"]).all() and len(got) == N_BORROWERS
    assert (later["scoring_date"] - later["jump_date"]).dt.days.eq(45).all()
    np.testing.assert_allclose(got["probability"], CalibratedLightGBM.from_dir(folder).predict(later),
                               rtol=0, atol=1e-12)
    path = tmp_path / "features.parquet"
    io.write_parquet(features, path)
    output = tmp_path / "file" / "scores.parquet"
    result = run_score(work, path, output, folder)
    assert result.exit_code == 1 and "2000 of 2000 borrowers rejected" in str(result.exception)
    reasons = pd.read_parquet(outputs(output)["rejects"])["reason"]
    assert reasons.str.contains("scoring_date: not 45 days after jump_date").all()
    assert reasons.str.contains("value 30 days after it").all()


def test_a_model_takes_features_computed_as_for_its_training_whatever_params_say(
        tables, raw, work, model_dir, tmp_path):
    """An outside check scored one registered version in two checkouts (features.decay_days 90
    and 180): exit 0 both times, probabilities up to 0.22 apart. The settings travel with the model
    and the raw tables' features are computed with them."""
    from pipeline.model import FEATURE_SETTINGS_FILE, CalibratedLightGBM

    folder = shutil.copytree(model_dir["path"], tmp_path / "model")
    theirs = make_params().features.model_copy(update={"decay_days": 20.0, "large_draw_share": 0.5})
    io.write_json(theirs.model_dump(mode="json"), folder / FEATURE_SETTINGS_FILE)
    output = tmp_path / "raw" / "scores.parquet"
    result = run_score(work, raw, output, folder)
    ok(result)
    assert "the model was trained on features computed with features." in result.output
    assert "a features file must have been computed so" in result.output
    assert "features.decay_days 20.0 (params.yaml: " in result.output
    got = pd.read_parquet(output)
    as_trained = build_features(tables, make_params().label.observation_days, theirs)
    as_params = build_features(tables, make_params().label.observation_days, make_params().features)
    fitted = CalibratedLightGBM.from_dir(folder)
    np.testing.assert_allclose(got["probability"], fitted.predict(as_trained), rtol=0, atol=1e-12)
    assert np.abs(fitted.predict(as_params) - got["probability"].to_numpy()).max() > 1e-6


# ---- 5. an interrupted run leaves no output; a re-run gives the uninterrupted bytes ----------------

def test_interrupted_run_leaves_nothing_and_rerun_matches(happy, raw, work, model_dir, tmp_path, monkeypatch):
    output = tmp_path / "scores.parquet"
    real = score.score_batch
    calls, during = [], []

    def fail_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            during.extend(sorted(p.name for p in tmp_path.iterdir()))
            raise KeyboardInterrupt("killed during the second batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(score, "score_batch", fail_on_second_batch)
    result = run_score(work, raw, output, model_dir["path"])
    assert result.exit_code != 0 and len(calls) == 2
    # what a kill at that moment would leave: hidden temporary files only, never a named output
    assert during and all(name.startswith(".") and name.endswith(".tmp") for name in during), during
    # the run unwound: its temporary files are gone too (atomic_path removes them on failure)
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    monkeypatch.setattr(score, "score_batch", real)
    ok(run_score(work, raw, output, model_dir["path"]))
    assert output.read_bytes() == happy["bytes"]["scores"]
    assert outputs(output)["rejects"].read_bytes() == happy["bytes"]["rejects"]
    paths = ("input", "output", "rejects")
    assert ({k: v for k, v in summary_of(output).items() if k not in paths}
            == {k: v for k, v in happy["summary"].items() if k not in paths})


def test_killed_process_leaves_only_hidden_temporary_files(happy, raw, work, model_dir, tmp_path):
    """SIGKILL while the installed command is scoring: no named output, then a clean re-run."""
    output = tmp_path / "scores.parquet"
    command = [str(Path(sys.executable).parent / "limitjump"), "score", "--input", str(raw),
               "--output", str(output), "--model", str(model_dir["path"])]
    process = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(tmp_path.glob(".*.tmp")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if process.poll() is not None:
            pytest.skip("the run ended before it could be killed")
        process.kill()
    finally:
        process.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left and all(name.startswith(".") and name.endswith(".tmp") for name in left), left
    ok(run_score(work, raw, output, model_dir["path"]))
    assert output.read_bytes() == happy["bytes"]["scores"]


# ---- 6. drift against training --------------------------------------------------------------------

def test_training_borrowers_are_stable(features, work, model_dir, happy):
    path = work / "train_features.parquet"
    io.write_parquet(features[features["borrower_id"].isin(model_dir["train_ids"])], path)
    output = work / "train_scored" / "scores.parquet"
    ok(run_score(work, path, output, model_dir["path"]))
    drift = summary_of(output)["drift"]
    assert drift["score"]["psi"] < 0.10 and drift["score"]["flag"] == "stable"
    assert all(v["flag"] == "stable" for v in drift.values()), drift
    assert happy["summary"]["drift"]["score"]["flag"] == "stable"


def test_shifted_wallet_balances_are_flagged(features, work, model_dir):
    """The training borrowers with wallet balances five times larger: only that feature (and
    perhaps the score) moves; every feature is watched here."""
    params = work / "params_all_drift.yaml"
    text = yaml.safe_dump(merge(raw_params(), {"score": {"batch_borrowers": BATCH, "drift_features": 1000},
                                               "engine": {"workers": 1}}),
                          sort_keys=False)
    params.write_text(text)
    trained = features[features["borrower_id"].isin(model_dir["train_ids"])]
    path = work / "shifted_features.parquet"
    io.write_parquet(trained.assign(wallet_balance=trained["wallet_balance"] * 5), path)
    output = work / "shifted" / "scores.parquet"
    result = run_score(work, path, output, model_dir["path"], params)
    ok(result)
    drift = summary_of(output)["drift"]
    assert drift["wallet_balance"]["psi"] >= 0.25 and drift["wallet_balance"]["flag"] == "shifted"
    untouched = {name: v for name, v in drift.items() if name not in ("wallet_balance", "score")}
    assert len(untouched) == len(model_dir["columns"]) - 1
    assert all(v["flag"] == "stable" for v in untouched.values()), untouched
    assert "wallet_balance" in result.output.split("drift flagged:")[1]


def test_psi_flags_follow_the_thresholds():
    reference = {"edges": [0.5], "counts": [500, 500, 0]}
    assert metrics.psi_from_counts(reference, [500, 500, 0])["flag"] == "stable"
    drift = score.Drift({"x": reference})
    for counts in ([200, 0], [100, 0]):  # two batches: 300 below the edge, 0 above
        drift.add({"x": np.r_[np.full(counts[0], 0.1), np.full(counts[1], 0.9)]})
    result = drift.summary()["x"]
    assert result["flag"] == "shifted" and result["psi"] >= 0.25
    for value, flag in ((0.0999, "stable"), (0.10, "watch"), (0.2499, "watch"), (0.25, "shifted")):
        assert metrics.psi_flag(value) == flag


def test_drift_is_judged_beyond_the_training_months_own_movement_and_not_on_a_handful():
    """Known answers from outside: months_of_history moves by PSI 0.4 between training months on
    its calendar fractions, and every scored batch flagged it (2.04 on a batch scored on one day);
    19 rows flagged the score and 9 features."""
    reference = {"edges": [0.5], "counts": [500, 500, 0]}
    skewed = {"x": np.r_[np.full(210, 0.1), np.full(90, 0.9)]}  # PSI 0.16 against 50/50
    plain = score.Drift({"x": reference})
    plain.add(skewed)
    beyond = score.Drift({"x": reference}, {"x": 0.1})
    beyond.add(skewed)
    assert plain.summary()["x"]["flag"] == "watch"
    assert beyond.summary()["x"] == {"psi": plain.summary()["x"]["psi"], "baseline": 0.1, "flag": "stable"}
    few = score.Drift({"x": reference})
    few.add({"x": np.full(19, 0.9)})
    assert few.summary()["x"]["flag"] == score.TOO_FEW_ROWS


# ---- 7. the pure functions ------------------------------------------------------------------------

BANDS = {"low": 0.05, "medium": 0.15, "high": 0.35, "very_high": 1.0}


def test_risk_band_upper_bounds_are_inclusive():
    p = np.array([0.0, 0.049, 0.05, 0.0500001, 0.15, 0.1500001, 0.35, 0.36, 0.999, 1.0])
    expected = ["low", "low", "low", "medium", "medium", "high", "high", "very_high", "very_high",
                "very_high"]
    assert score.risk_band(p, BANDS).tolist() == expected


# features with reasons the catalogue shares, one without a reason, one it does not know
FEATURES = ["utilisation_mean_3m", "utilisation_last", "credit_score", "autodebit_lapsed",
            "increase_amount", "team_feature", "missed_due_dates_3m", "missed_due_dates_6m"]
USES_LINE = "uses most of the credit line"
MISSED = "missed payments recently"


def test_catalogue_shares_the_reasons_the_tests_rely_on():
    assert BY_NAME["utilisation_mean_3m"].reason == BY_NAME["utilisation_last"].reason == USES_LINE
    assert BY_NAME["missed_due_dates_3m"].reason == BY_NAME["missed_due_dates_6m"].reason == MISSED
    assert BY_NAME["increase_amount"].reason == "" and "team_feature" not in BY_NAME
    assert BY_NAME["autodebit_lapsed"].cause == "technical"


def contrib(rows: list[list[float]]) -> np.ndarray:
    """Contribution rows over FEATURES plus the expected value (last column)."""
    return np.array([[*r, -2.0] for r in rows], dtype=float)


def test_reasons_sum_shared_texts_one_per_group_and_order_by_what_raised_the_risk():
    c = contrib([
        # shared text 0.3 + 0.3 beats credit score 0.5; big contributions without a reason are ignored
        [0.3, 0.3, 0.5, 0.1, 2.0, 3.0, -0.2, 0.1],
        # 0.4 alone would lead, but its text sums to -0.1; missed payments 0.15 + 0.15 = 0.3 > 0.2
        [0.4, -0.5, 0.2, 0.0, 0.0, 0.0, 0.15, 0.15],
        # nothing raised the risk
        [-0.1, 0.0, -0.3, 0.0, 1.0, 1.0, 0.0, -0.1],
    ])
    leading = np.array(["liquidity", "credit", "liquidity"], dtype=object)
    got = [list(col) for col in score.reasons(c, FEATURES, leading, 4)]
    assert len(got) == 4
    by_row = [[got[rank][row] for rank in range(4)] for row in range(3)]
    assert by_row[0] == [USES_LINE, "credit score is low", "auto-debit agreement has lapsed", None]
    # the leading cause's reasons first: both are credit here, so by what raised the risk most
    assert by_row[1] == [MISSED, "credit score is low", None, None]
    assert by_row[2] == [None, None, None, None]
    two = score.reasons(c, FEATURES, leading, 2)
    assert len(two) == 2 and [two[0][0], two[1][0]] == [USES_LINE, "credit score is low"]


def test_a_reason_is_given_only_where_its_words_are_true_of_the_value():
    """TreeSHAP credits a feature for lying on the riskier side of the average path; the words
    need more. A missing 3-month utilisation gives no "uses most of the credit line" (the last
    utilisation, known and high, still does); a credit score above the training median gives no
    "credit score is low" however the trees split; a team's own column keeps its own words."""
    c = contrib([[0.4, 0.0, 0.3, 0.0, 0.0, 0.2, 0.0, 0.0],
                 [0.4, 0.1, 0.3, 0.0, 0.0, 0.2, 0.0, 0.0]])
    matrix = np.ones((2, len(FEATURES)))
    matrix[:, FEATURES.index("utilisation_mean_3m")] = np.nan
    matrix[:, FEATURES.index("team_feature")] = np.nan
    matrix[:, FEATURES.index("utilisation_last")] = 0.9
    matrix[:, FEATURES.index("credit_score")] = [580.0, 700.0]
    edges = {"utilisation_last": (0.3, 0.4), "credit_score": (650.0, 720.0), "team_feature": (1.0, 3.0)}
    worded = score.worded_contributions(c, matrix, FEATURES, edges)
    assert worded[0, FEATURES.index("utilisation_mean_3m")] == 0.0 and worded[0, -1] == c[0, -1]
    assert worded[0, FEATURES.index("team_feature")] == 0.2  # not the catalogue's: kept
    assert list(worded[:, FEATURES.index("credit_score")]) == [0.3, 0.0]
    words = {"team_feature": np.array(["team_feature is missing"] * 2, dtype=object)}
    leading = np.array(["credit", "credit"], dtype=object)
    got = [[col[row] for col in score.reasons(worded, FEATURES, leading, 3, words)] for row in range(2)]
    assert got[0] == ["credit score is low", "team_feature is missing", None]
    assert got[1] == ["team_feature is missing", USES_LINE, None]


def test_a_reason_whose_words_name_a_bound_is_said_only_beyond_it():
    """Known answers from the defaults' incoming batch: "utilisation is climbing" had been told
    where utilisation fell (above a negative median) and where only a 12-month slope rose by
    0.0034 a month, "uses most of the credit line" at 0.23 (a median of 0.09), "has been seriously
    overdue" at 2 days, "applied for credit elsewhere" with one inquiry, "has no cash kept back
    for the next installments" with cash for all of them (a median of 2.2); the bound, not the
    training median, decides."""
    features = ["utilisation_slope_6m", "utilisation_last", "max_days_late", "inquiries_3m",
                "credit_score_change_3m", "utilisation_slope_12m", "cash_buffer_over_installments"]
    c = np.array([[0.1] * 7 + [-1.0]] * 2)
    # a rise of 0.02 over m statements, m - 1 months apart: slopes of 0.004 (6) and 0.00182 (12)
    matrix = np.array([[-0.02, 0.23, 2.0, 1.0, 0.0, 0.0018, 1.5],  # all on the median's risky side, none true
                       [0.0041, 0.51, 30.0, 2.0, -5.0, 0.0019, 0.9]])  # each just beyond its words' bound
    medians = {"utilisation_slope_6m": -0.03, "utilisation_last": 0.09, "max_days_late": 0.0,
               "inquiries_3m": 0.0, "credit_score_change_3m": 2.0, "utilisation_slope_12m": 0.0,
               "cash_buffer_over_installments": 2.2}
    worded = score.worded_contributions(c, matrix, features, {k: (v, v) for k, v in medians.items()})
    assert worded[:, :-1].tolist() == [[0.0] * 7, [0.1] * 7]


def test_a_value_at_the_edge_within_a_spreadsheets_rounding_gives_no_reason():
    """Known answer from outside: an .xlsx copy of a features file, which keeps 15 digits, moved
    months_of_history 20.006570302233904, then the edge, just below it: "has little history with
    us" was told of 3 borrowers whose Parquet rows had no such reason."""
    median = 20.006570302233904
    c = np.array([[0.2, -1.0]] * 3)
    matrix = np.array([[median], [float(f"{median:.15g}")], [median - 1e-6 * median]])
    worded = score.worded_contributions(c, matrix, ["months_of_history"],
                                        {"months_of_history": (median, 30.0)})
    assert worded[:, 0].tolist() == [0.0, 0.0, 0.2]


def test_words_without_a_bound_hold_in_the_riskier_third_of_the_training_rows_only():
    """Known answers from outside: "has little history with us" had been told at 19.97 months
    (the median 20.0), "credit score is low" at 683 (691) and "spending jumped after the
    increase" at 1.508 (1.507). Now a value must lie beyond the edge of the training rows' riskier
    third, as the model's reference keeps them; a model from before the thirds keeps its medians."""
    features = ["months_of_history", "credit_score", "post_increase_spend_ratio"]
    c = np.array([[0.1, 0.2, 0.3, -1.0]] * 3)
    matrix = np.array([[19.97, 683.0, 1.508],    # a hair beyond the medians: no words
                       [11.0, 640.0, 2.6],       # in the riskier thirds: all three
                       [12.0, 650.0, 2.5]])      # at the edges: none
    reference = {"thirds": {"months_of_history": [12.0, 30.0], "credit_score": [650.0, 720.0],
                            "post_increase_spend_ratio": [0.8, 2.5]},
                 "medians": {"months_of_history": 20.0, "credit_score": 691.0}}
    worded = score.worded_contributions(c, matrix, features, score.reason_edges(reference))
    assert worded[:, :-1].tolist() == [[0.0, 0.0, 0.0], [0.1, 0.2, 0.3], [0.0, 0.0, 0.0]]
    old = score.reason_edges({"medians": {"months_of_history": 20.0, "credit_score": 691.0}})
    assert old == {"months_of_history": (20.0, 20.0), "credit_score": (691.0, 691.0)}
    assert score.worded_contributions(c, matrix, features, old)[0, :2].tolist() == [0.1, 0.2]


def test_asked_for_the_increase_is_said_of_user_requests_only():
    features = ["trigger", "months_of_history"]
    c = np.array([[0.5, 0.2, -1.0]] * 3)
    trigger = [TRIGGERS.index(t) for t in ("user_request", "score_improvement", "new_user")]
    matrix = np.column_stack([trigger, [2.0, 30.0, 2.0]])
    worded = score.worded_contributions(c, matrix, features, {"trigger": (1.0, 2.0),
                                                              "months_of_history": (14.0, 26.0)})
    assert worded[:, :-1].tolist() == [[0.5, 0.2], [0.0, 0.0], [0.0, 0.2]]  # little history: below 14


def test_every_catalogue_reason_says_where_it_holds():
    """A reason without a side or codes would be given on either side of the median."""
    for f in BY_NAME.values():
        if f.reason:
            assert f.reason_side in (-1, 1) or f.reason_codes is not None, f.name
            assert f.reason_side == f.direction or f.direction == 0, f.name


def test_the_leading_causes_reasons_come_first():
    c = contrib([[0.3, 0.3, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0]])
    got = [col[0] for col in score.reasons(c, FEATURES, np.array(["technical"], dtype=object), 3)]
    assert got == ["auto-debit agreement has lapsed", USES_LINE, "credit score is low"]


def test_no_two_reasons_say_the_same_thing():
    features = ["wallet_balance", "cash_buffer_over_installments", "inquiries_1m", "new_outside_loans_3m"]
    assert len({BY_NAME[f].reason for f in features}) == 4  # four texts, two groups
    c = np.array([[0.5, 0.4, 0.3, 0.2, -1.0]])
    got = [col[0] for col in score.reasons(c, features, np.array(["credit"], dtype=object), 4)]
    assert got == ["applied for credit elsewhere more than once recently", "keeps little cash"]  # 2 groups


def test_one_late_day_is_one_reason_whichever_counts_hold_it():
    """Known answers: a due date forgotten and paid two days later is counted as forgotten, as a
    brief failure, as paid late and as missed recently; it had been told as three reasons. It is
    one now; a borrower with a late day the technical counts do not hold (two late, one technical)
    or a long one (12 days) keeps the arrears reason beside the technical one."""
    features = ["forgotten_due_dates", "short_misses_cured_3d", "debit_failures_system_6m",
                "due_dates_over_0_days_late", "missed_due_dates_3m", "max_days_late"]
    c = np.array([[0.3, 0.2, 0.1, 0.25, 0.15, 0.0, -1.0]] * 4)
    matrix = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 2.0],    # one forgotten day, paid 2 days late
                       [1.0, 0.0, 0.0, 2.0, 2.0, 6.0],    # one forgotten (5 days), one short of funds
                       [1.0, 0.0, 0.0, 1.0, 1.0, 12.0],   # forgotten, paid 12 days late
                       [1.0, 1.0, 0.0, 2.0, 2.0, 6.0]])   # forgotten (2 days: in both), one short of funds
    worded = score.worded_contributions(c, matrix, features, dict.fromkeys(features, (0.0, 0.0)))
    leading = np.array(["technical"] * 4, dtype=object)
    got = [[col[row] for col in score.reasons(worded, features, leading, 4)] for row in range(4)]
    forgot = "has forgotten due dates before (paid in full days later)"
    assert got[0] == [forgot, None]  # two groups: technical misses and arrears
    assert got[1] == got[2] == got[3] == [forgot, "has paid late before"]


def test_without_a_cause_model_the_leading_cause_is_the_cause_that_raised_the_risk_most():
    c = contrib([
        [0.1, 0.1, 0.1, 0.9, 0.0, 0.0, 0.0, 0.0],   # technical 0.9 > liquidity 0.2 > credit 0.1
        [0.5, 0.5, 0.2, 0.0, 5.0, 0.0, 0.3, 0.4],   # profile 5 never leads; credit 0.9 < liquidity 1.0
        [0.0, 0.0, 0.6, 0.1, 9.0, 0.0, 0.3, 0.0],   # credit 0.9
        [-0.1, -0.1, -0.2, -0.3, 2.0, 0.0, 0.0, 0.0],  # no cause raised the risk: unclear, not technical
    ])
    by_cause = score.cause_contributions(c, FEATURES)
    assert list(by_cause.columns) == ["credit", "liquidity", "technical", "profile"]
    np.testing.assert_allclose(by_cause.loc[1].to_numpy(), [0.9, 1.0, 0.0, 5.0])
    assert score.leading_cause_from_contributions(by_cause).tolist() == [
        "technical", "liquidity", "credit", "unclear"]


def test_actions_follow_the_playbook_and_technical_never_cuts_the_limit():
    for key in ("technical", "check", "manual", "maintenance"):
        technical = score.ACTIONS[key]
        assert "remind" in technical and "do not lower the limit" in technical
        for word in ("stop", "reduce", "cut", "decrease", "freeze", "plan"):
            assert word not in technical.replace("do not lower the limit", ""), word
    assert "re-authorise or repair the auto-debit" in score.ACTIONS["technical"]
    assert "confirm the auto-debit agreement" in score.ACTIONS["check"]
    assert "pay before the announced maintenance" in score.ACTIONS["maintenance"]
    assert "offer an auto-debit agreement" in score.ACTIONS["manual"]
    assert "repayment plan" in score.ACTIONS["liquidity"] and "freeze further" in score.ACTIONS["liquidity"]
    credit = score.ACTIONS["credit"]
    assert "stop further limit increases" in credit and "review the exposure" in credit
    assert "contact" in credit and "early" in credit
    assert score.ACTIONS["none"] == "none"


def test_a_technical_action_answers_how_the_borrower_pays():
    """Maintenance first where nothing is wrong with how the borrower pays (row 0 by hand, row 5
    an agreement in order) or where it is a first or second reason (row 2, a lapsed agreement);
    then the channel: by hand a reminder and an agreement (1), an agreement with a fault on record
    its repair (3: it lapsed; 6: a debit failed on it), one in order a check (4: an outside check
    had 4,604 of 5,056 "repair" actions go to agreements with no fault on record)."""
    window = "a due date falls in announced system maintenance"
    cause = np.array(["technical"] * 7 + ["liquidity"], dtype=object)
    reasons = [np.array([None, None, "keeps little cash", None, None, None, None, None], dtype=object),
               np.array([None, None, window, None, None, None, None, None], dtype=object)]
    frame = pd.DataFrame({"autodebit_active": [0, 0, 0, 0, 1, 1, 1, 0.0],
                          "autodebit_lapsed": [0, 0, 1, 1, 0, 0, 0, 0.0],
                          "reauth_pending": 0.0, "autodebit_changed_30d": 0.0,
                          "debit_failures_mandate_6m": [0, 0, 0, 0, 0, 0, 2, 0.0],
                          "due_dates_in_announced_outage": [1, 0, 1, 1, 0, 2, 1, 1.0]})
    dates = pd.DataFrame({"next_due_date": pd.Timestamp("2025-11-22"),
                          "maintenance_due_date": pd.Timestamp("2025-12-22")}, index=range(8))
    got = score.actions(cause, reasons, frame, dates)
    keys = ["maintenance", "manual", "maintenance", "technical", "check", "maintenance", "technical",
            "liquidity"]
    assert got.tolist() == [score.ACTIONS[k] for k in keys]
    assert score.action_key_of(pd.Series(got)).tolist() == keys
    # a timed action whose date the output lacks says where to find it (one had been told to
    # remind before an empty next_due_date, another to pay before an empty maintenance_due_date)
    undated = score.actions(cause, reasons, frame,
                            dates.assign(next_due_date=pd.NaT, maintenance_due_date=pd.NaT))
    suffix = {"manual": score.UNDATED["next_due_date"], "technical": score.UNDATED["next_due_date"],
              "check": score.UNDATED["next_due_date"], "maintenance": score.UNDATED["maintenance_due_date"]}
    assert undated.tolist() == [score.ACTIONS[k] + suffix.get(k, "") for k in keys]
    assert score.action_key_of(pd.Series(undated)).tolist() == keys
    # features that do not say how the borrower pays: the repair, as before the channel was read
    bare = score.actions(cause, reasons, frame[["due_dates_in_announced_outage"]], dates)
    assert bare.tolist() == [score.ACTIONS[k] for k in ("technical",) * 2 + ("maintenance",)
                             + ("technical",) * 4 + ("liquidity",)]


def test_an_agreement_in_order_is_in_force_with_no_fault_on_record():
    frame = pd.DataFrame({"autodebit_active": [1.0, 1.0, 1.0, 1.0, 0.0, 1.0],
                          "autodebit_lapsed": [0.0, 0.0, 0.0, 0.0, 0.0, np.nan],
                          "reauth_pending": [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                          "autodebit_changed_30d": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                          "debit_failures_mandate_6m": [0.0, 0.0, 0.0, 3.0, 0.0, 0.0]})
    assert score.agreement_in_order(frame).tolist() == [True, False, False, False, False, False]
    # a fault a team's file has no column for is none on record; a missing value is not 0
    assert score.agreement_in_order(frame.drop(columns="autodebit_changed_30d")).tolist() == \
        [True, False, True, False, False, False]
    assert not score.agreement_in_order(frame.drop(columns="autodebit_active")).any()


def test_who_pays_by_hand_is_read_off_the_agreement_features():
    frame = pd.DataFrame({"autodebit_active": [0.0, 1.0, 0.0, 0.0, np.nan],
                          "autodebit_lapsed": [0.0, 0.0, 1.0, 0.0, 0.0],
                          "reauth_pending": [0.0, 0.0, 0.0, 1.0, 0.0]})
    # an agreement in force, lapsed or awaiting re-authorisation needs mending; unknown is not "by hand"
    assert score.pays_by_hand(frame).tolist() == [True, False, False, False, False]
    # a column a team's file lacks records nothing; without autodebit_active nothing is known
    assert score.pays_by_hand(frame.drop(columns="reauth_pending")).tolist() == \
        [True, False, False, True, False]
    assert not score.pays_by_hand(frame.drop(columns="autodebit_active")).any()


class StubModel:
    """What score_batch needs of a model: an encoded matrix, probabilities, contributions, cause
    shares (None: no cause model), text categories and the training reference (none here)."""

    features = FEATURES
    categories: dict = {}
    reference: dict = {}

    def __init__(self, p: dict[int, float], rows: dict[int, list[float]],
                 shares: dict[int, list[float]] | None = None, lift: dict[int, float] | None = None):
        self.p, self.rows, self.shares, self.explained = p, rows, shares, []
        self.lift = lift or {}  # what the maintenance floor added to a borrower's probability

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The borrower id in the first column (what the stub's answers are keyed on), known
        values in the others."""
        ids = frame[["borrower_id"]].to_numpy(dtype=float)
        return np.column_stack([ids, np.ones((len(frame), len(FEATURES) - 1))])

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        return np.array([self.p[int(b)] for b in matrix[:, 0]])

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        self.explained.extend(int(b) for b in matrix[:, 0])
        return contrib([self.rows[int(b)] for b in matrix[:, 0]])

    def cause_shares(self, matrix: np.ndarray) -> np.ndarray | None:
        even = [1 / 3] * 3  # a borrower the test gives no shares
        if self.shares is None:
            return None
        return np.array([self.shares.get(int(b), even) for b in matrix[:, 0]])

    def floor_lift(self, matrix: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.array([self.lift.get(int(b), 0.0) for b in matrix[:, 0]])


FRAME = pd.DataFrame({"borrower_id": [1, 2, 3, 4, 5], "team_feature": [0.0, 1.0, 2.0, 3.0, 4.0],
                      "scoring_date": pd.to_datetime(["2026-02-01"] * 5).astype("datetime64[s]"),
                      "next_due_date": pd.to_datetime(["2026-02-10"] * 5).astype("datetime64[s]")})
ROWS = {2: [0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.1, 0.0],     # a lapsed auto-debit
        3: [0.4, 0.4, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0],     # utilisation
        4: [0.0, 0.0, 0.8, 0.0, 0.0, 0.0, 0.5, 0.2]}     # credit score and missed payments
P = {1: 0.01, 2: 0.40, 3: 0.20, 4: 0.90, 5: 0.05}


def test_score_batch_explains_only_risky_borrowers_and_maps_causes_to_actions():
    model = StubModel(P, ROWS)
    out = score.score_batch(model, FRAME, BANDS, ("low",), "7")
    assert list(out.columns) == OUTPUT_COLUMNS
    assert sorted(model.explained) == [2, 3, 4]
    out = out.set_index("borrower_id")
    assert out["risk_band"].tolist() == ["low", "very_high", "high", "very_high", "low"]
    assert out["leading_cause"].tolist() == ["none", "technical", "liquidity", "credit", "none"]
    assert out.loc[[1, 5], "action"].eq("none").all() and out.loc[[1, 5], REASONS].isna().all().all()
    assert out.loc[2, "action"] == score.ACTIONS["technical"]
    assert out.loc[3, "action"] == score.ACTIONS["liquidity"]
    assert out.loc[4, "action"] == score.ACTIONS["credit"]
    assert out.loc[2, "reason_1"] == "auto-debit agreement has lapsed" and out.loc[2, "reason_2"] == MISSED
    assert out.loc[4, REASONS].tolist()[:2] == ["credit score is low", MISSED]
    assert out[["p_credit", "p_liquidity", "p_technical"]].isna().all().all()  # no cause model
    assert out["model_version"].eq("7").all()


def test_without_a_cause_model_only_features_whose_words_are_true_are_evidence_of_a_cause():
    """An outside check: a team model's borrowers with a credit score at its training median got
    "worsening credit" as the leading cause and "stop further increases", no reason of theirs
    saying so. Only a contribution whose words are true of the value is evidence of its cause."""
    at_median = type("AtMedian", (StubModel,), {"reference": {"medians": {"credit_score": 1.0}}})
    only_score = {4: [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0]}  # the stub's credit score is 1.0
    told = score.score_batch(StubModel(P, only_score), FRAME.iloc[[3]], BANDS, ("low",), "7")
    assert told["leading_cause"].tolist() == ["credit"]
    assert told["reason_1"].tolist() == ["credit score is low"]
    out = score.score_batch(at_median(P, only_score), FRAME.iloc[[3]], BANDS, ("low",), "7")
    assert out["leading_cause"].tolist() == ["unclear"], out.T
    assert out["reason_1"].isna().all() and out["action"].tolist() == [score.ACTIONS["unclear"]]
    # a feature that lowered the risk still counts against its cause, whatever its words (a code
    # review: a credit score well above its median had dropped out, and credit led on +0.3)
    above = type("Above", (StubModel,), {"reference": {"medians": {"credit_score": 0.5}}})
    lowered = {4: [0.0, 0.2, -1.0, 0.0, 0.0, 0.0, 0.3, 0.0]}  # utilisation +0.2, credit -1.0 + 0.3
    out = score.score_batch(above(P, lowered), FRAME.iloc[[3]], BANDS, ("low",), "7")
    assert out["leading_cause"].tolist() == ["liquidity"], out.T


def test_with_a_cause_model_the_most_probable_cause_leads_and_the_parts_add_up():
    """The parts add up for every borrower, the quiet ones too (they were blank there, so a
    portfolio's expected misses by cause fell short of its total)."""
    shares = {1: [0.5, 0.25, 0.25], 2: [0.1, 0.2, 0.7], 3: [0.6, 0.3, 0.1], 4: [0.2, 0.5, 0.3], 5: [0, 0, 1]}
    out = score.score_batch(StubModel(P, ROWS, shares), FRAME, BANDS, ("low",), "7").set_index("borrower_id")
    assert out.loc[[2, 3, 4], "leading_cause"].tolist() == ["technical", "credit", "liquidity"]
    parts = out[["p_credit", "p_liquidity", "p_technical"]]
    np.testing.assert_allclose(parts.sum(axis=1), out["probability"])
    np.testing.assert_allclose(parts.loc[2], [0.04, 0.08, 0.28])
    np.testing.assert_allclose(parts.loc[1], [0.005, 0.0025, 0.0025])
    # borrower 3 leads with credit though utilisation raised the risk most: credit reasons first
    assert out.loc[3, "reason_1"] == "credit score is low" and out.loc[3, "reason_2"] == USES_LINE
    assert out.loc[3, "action"] == score.ACTIONS["credit"]
    assert out.loc[[1, 5], "leading_cause"].eq("none").all()  # quiet bands: no cause, no action
    assert out.loc[[1, 5], "action"].eq("none").all() and out.loc[[1, 5], REASONS].isna().all().all()


def test_without_explanations_risky_borrowers_get_no_cause_rather_than_none():
    model = StubModel(P, {})
    out = score.score_batch(model, FRAME, BANDS, ("low",), "7", explain_risky=False).set_index("borrower_id")
    assert model.explained == []
    assert out.loc[1, "action"] == "none" and out.loc[1, "leading_cause"] == "none"
    assert pd.isna(out.loc[2, "action"]) and pd.isna(out.loc[2, "leading_cause"])
    assert out.loc[2, "risk_band"] == "very_high" and out.loc[2, REASONS].isna().all()
    # the cause model's probabilities need no contributions: given all the same
    shares = {1: [0.5, 0.25, 0.25], 2: [0.1, 0.2, 0.7]}
    fast = score.score_batch(StubModel(P, {}, shares), FRAME, BANDS, ("low",), "7", explain_risky=False)
    parts = fast.set_index("borrower_id")[score.CAUSE_PROBABILITIES]
    np.testing.assert_allclose(parts.loc[2], [0.04, 0.08, 0.28])
    np.testing.assert_allclose(parts.sum(axis=1), fast["probability"].to_numpy())


def test_a_leading_cause_no_feature_shows_is_named_as_the_first_reason():
    texts = [np.array([USES_LINE, "auto-debit agreement has lapsed"], dtype=object),
             np.array(["credit score is low", None], dtype=object)]
    got = score.name_the_cause(texts, np.array(["technical", "technical"], dtype=object))
    assert [col[0] for col in got] == [score.CAUSE_REASONS["technical"], USES_LINE]
    assert [col[1] for col in got] == ["auto-debit agreement has lapsed", None]  # already had its own


# ---- a team's own columns ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def team_model(work) -> dict:
    """A model of columns the catalogue does not know, one of them text, trained like
    ``limitjump train lightgbm`` trains one; and 300 new borrowers to score, one of them in a
    segment training never saw."""
    from pipeline.train import categorical_columns, feature_columns, fit_scoring_model, learn_categories

    rng = np.random.default_rng(15)
    n = 3000
    segment = rng.choice(["retail", "small business", "student"], n)
    team_score = rng.normal(size=n)
    risk = 1 / (1 + np.exp(-(-1.5 + 1.2 * team_score + 0.8 * (segment == "student"))))
    frame = pd.DataFrame({"borrower_id": np.arange(1, n + 1),
                          "scoring_date": pd.Timestamp("2025-01-01")
                          + pd.to_timedelta(np.arange(n) // 10, "D"),
                          "team_score": team_score, "segment": pd.array(segment, dtype="str"),
                          "label": (rng.random(n) < risk).astype("int64")})
    # a score some rows lack, so the model learns a blank (one it never saw would be rejected)
    frame.loc[::50, "team_score"] = np.nan
    splits = {"train": frame.iloc[:2000].reset_index(drop=True),
              "valid": frame.iloc[2000:].reset_index(drop=True)}
    columns = feature_columns(splits["train"])
    assert columns == ["team_score", "segment"] and learn_categories(splits["train"], columns)
    out = work / "team_model"
    out.mkdir()
    settings = make_params({"train": {"lightgbm": {"num_boost_round": 80, "early_stopping_rounds": 15}}})
    fit_scoring_model(splits, columns, categorical_columns(splits["train"], columns),
                      settings.train.lightgbm)[0].save(out)
    io.write_json({"model": "lightgbm", "features": columns, "fingerprint": FINGERPRINT},
                  out / "metadata.json")
    new = frame.drop(columns="label").iloc[:300].assign(
        borrower_id=np.arange(10_001, 10_301), scoring_date=pd.Timestamp("2026-01-15"))
    new.loc[0, "segment"] = "pensioner"
    new.loc[1, "team_score"] = np.nan
    return {"path": out, "new": new}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_model_of_a_teams_own_text_and_numeric_columns_scores_with_reasons_named_after_them(
        fmt, team_model, work):
    path = work / f"team_input.{fmt}"
    new = team_model["new"]
    new.to_parquet(path) if fmt == "parquet" else new.to_csv(path, index=False)
    output = work / f"team_scores_{fmt}.parquet"
    ok(run_score(work, path, output, team_model["path"]))
    scores = pd.read_parquet(output).set_index("borrower_id")
    assert len(scores) == len(new) and summary_of(output)["rejected"] == 0
    explained = scores[scores["risk_band"] != "low"]
    assert len(explained) > 50
    # no catalogue column: no cause can be read off the features
    assert explained["leading_cause"].eq("unclear").all()
    words = set(explained[REASONS].stack().dropna())
    assert {"team_score is high", "segment is student"} <= words, words
    assert words <= {"team_score is high", "team_score is low", "team_score is missing",
                     "segment is student", "segment is retail", "segment is small business",
                     "segment is pensioner, never seen in training (scored as missing)"}
    high = explained["reason_1"].eq("team_score is high")
    assert (new.set_index("borrower_id").loc[high[high].index, "team_score"] > 0).all()
    assert np.isfinite(scores.loc[[10_001, 10_002], "probability"]).all()  # unseen segment, missing score


def test_a_text_column_given_as_numbers_reads_as_its_codes(team_model, work):
    """Codes written as numbers (a Parquet float or int column) are the codes, as a CSV's are read
    as text: 1.0 is the category '1' (the pipeline's batch of a team's file to score stopped);
    true/false is no code, and stops the file naming the column."""
    written = {"numbers": 1.0, "codes": "1", "flags": True}
    results = {}
    for name, value in written.items():
        path = work / f"team_{name}.parquet"
        team_model["new"].assign(segment=value).to_parquet(path)
        results[name] = run_score(work, path, work / f"team_{name}_scores.parquet", team_model["path"])
    assert results["numbers"].exit_code == results["codes"].exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(work / "team_numbers_scores.parquet"),
                                  pd.read_parquet(work / "team_codes_scores.parquet"))
    flags = results["flags"].exception
    assert isinstance(flags, ContractError) and "column 'segment' must be text" in str(flags), repr(flags)


def test_causes_sum_to_zero_for_a_model_without_catalogue_features():
    by_cause = score.cause_contributions(np.array([[0.3, -0.1, 0.0], [0.2, 0.4, 0.1]]), ["a", "b"])
    assert by_cause.shape == (2, len(score.CAUSE_CATEGORIES)) and (by_cause.to_numpy() == 0).all()
    assert score.leading_cause_from_contributions(by_cause).tolist() == ["unclear", "unclear"]


def test_a_teams_own_column_is_worded_strictly_beyond_its_thirds_and_an_unseen_category_as_such():
    """Known answers (an outside check): "limit_bal is low" had been said of the training median
    itself, and "education is phd" of a category the model never learned and scored as missing.
    At the median there are no words, so no reason, and the next reason takes the place."""
    from types import SimpleNamespace

    model = SimpleNamespace(features=["limit_bal", "education"], categories={"education": ["university"]},
                            reference={"medians": {"limit_bal": 140000.0}})
    frame = pd.DataFrame({"limit_bal": [140000.0, 100000.0, 200000.0, np.nan],
                          "education": ["university", "phd", None, "UNIVERSITY "]})
    words = score.own_words(model, frame)
    assert words["limit_bal"].tolist() == [None, "limit_bal is low", "limit_bal is high",
                                           "limit_bal is missing"]
    assert words["education"].tolist() == [
        "education is university", "education is phd, never seen in training (scored as missing)",
        "education is missing", "education is university"]
    contrib = np.array([[0.5, 0.2, 0.0]] * 4)  # limit_bal raised the risk most on every row
    first = score.reasons(contrib, model.features, np.array(["unclear"] * 4), 2, words)
    assert first[0].tolist()[0] == "education is university" and first[1][0] is None
    assert first[0].tolist()[1:] == ["limit_bal is low", "limit_bal is high", "limit_bal is missing"]
    # a model with the thirds: words beyond them only (between them, no reason)
    edges = {"thirds": {"limit_bal": [120000.0, 180000.0]}}
    thirds = SimpleNamespace(**{**model.__dict__, "reference": edges})
    assert score.own_words(thirds, frame.assign(limit_bal=[130000.0, 100000.0, 200000.0, 180000.0]))[
        "limit_bal"].tolist() == [None, "limit_bal is low", "limit_bal is high", None]
    unknown = score.own_words(SimpleNamespace(**{**model.__dict__, "reference": {}}), frame)
    assert unknown["limit_bal"].tolist()[:3] == ["limit_bal raised the risk"] * 3
    # a model from before the medians were kept words the side from its decile bins
    bins = {"limit_bal": metrics.psi_reference(np.linspace(50000.0, 250000.0, 101))}
    older = score.own_words(SimpleNamespace(**{**model.__dict__, "reference": {"bins": bins}}), frame)
    assert older["limit_bal"].tolist()[1:] == ["limit_bal is low", "limit_bal is high",
                                               "limit_bal is missing"]


def test_what_the_maintenance_floor_adds_is_technical_risk_with_its_reason_and_action():
    """Borrower 4's booster said 0.05, mostly credit; the floor made it 0.90: technical leads, the
    maintenance comes first and the action is to pay ahead of it. Borrower 3's floor added
    little: the booster's cause still leads and its reasons stand."""
    maintenance = BY_NAME["due_dates_in_announced_outage"].reason
    shares = {2: [0.1, 0.2, 0.7], 3: [0.2, 0.7, 0.1], 4: [0.8, 0.1, 0.1]}
    lift = {3: 0.02, 4: 0.85}
    out = score.score_batch(StubModel(P, ROWS, shares, lift), FRAME, BANDS, ("low",), "7")
    out = out.set_index("borrower_id")
    assert out.loc[4, "leading_cause"] == "technical" and out.loc[4, "reason_1"] == maintenance
    # FRAME gives no maintenance_due_date: the action says where to take it from
    assert out.loc[4, "action"] == score.ACTIONS["maintenance"] + score.UNDATED["maintenance_due_date"]
    np.testing.assert_allclose(out.loc[4, ["p_credit", "p_liquidity", "p_technical"]].to_numpy(dtype=float),
                               [0.05 * 0.8, 0.05 * 0.1, 0.05 * 0.1 + 0.85])
    alone = score.score_batch(StubModel(P, ROWS, shares), FRAME, BANDS, ("low",), "7")
    alone = alone.set_index("borrower_id")
    assert alone.loc[4, "leading_cause"] == "credit"
    assert out.loc[4, "reason_2"] == alone.loc[4, "reason_1"]  # the booster's reasons follow
    np.testing.assert_allclose(out.loc[3, ["p_credit", "p_liquidity", "p_technical"]].to_numpy(dtype=float),
                               [0.18 * 0.2, 0.18 * 0.7, 0.18 * 0.1 + 0.02])
    columns = ["leading_cause", "reason_1", "reason_2", "action"]
    pd.testing.assert_frame_equal(out.loc[[1, 2, 3, 5], columns], alone.loc[[1, 2, 3, 5], columns])
    without = score.score_batch(StubModel(P, ROWS, lift=lift), FRAME, BANDS, ("low",), "7")
    without = without.set_index("borrower_id")  # no cause model: the floor leads where it is most of p
    assert without.loc[4, ["leading_cause", "reason_1"]].tolist() == ["technical", maintenance]
    assert without.loc[3, "leading_cause"] != "technical"


def test_a_reason_led_with_moves_up_where_it_is_and_pushes_the_last_out_where_it_is_not():
    texts = [np.array(["a", "b", "a"], dtype=object), np.array(["m", "c", "b"], dtype=object),
             np.array([None, "d", "c"], dtype=object)]
    got = score.lead_with(texts, np.array([True, True, False]), "m")
    rows = [list(row) for row in zip(*got, strict=True)]
    assert rows == [["m", "a", None], ["m", "b", "c"], ["a", "b", "c"]]


def test_a_reason_led_with_replaces_the_reason_of_its_group():
    """Known answer: the lapse floor's reason had stood beside "auto-debit agreement changed
    recently", two reasons of the autodebit group."""
    lapsed, changed = BY_NAME["autodebit_lapsed"].reason, BY_NAME["autodebit_changed_30d"].reason
    texts = [np.array([changed, USES_LINE], dtype=object), np.array([USES_LINE, changed], dtype=object),
             np.array(["keeps little cash", None], dtype=object)]
    got = score.lead_with(texts, np.array([True, True]), lapsed)
    rows = [list(row) for row in zip(*got, strict=True)]
    assert rows == [[lapsed, USES_LINE, "keeps little cash"], [lapsed, USES_LINE, None]]


def test_what_the_forgetting_floor_adds_leads_with_the_record_it_read_and_asks_for_an_agreement():
    """Borrower 4 pays by hand and has forgotten due dates before: the forgetting floor's lift
    makes technical lead, the forgotten due dates come first and the action is a reminder with
    the offer of an agreement. Without a forgotten due date, paying by hand is the reason."""
    by_hand = FRAME.assign(autodebit_active=0.0, autodebit_lapsed=0.0, reauth_pending=0.0,
                           forgotten_due_dates=[0.0, 0.0, 0.0, 2.0, 0.0])
    shares = {2: [0.1, 0.2, 0.7], 3: [0.2, 0.7, 0.1], 4: [0.8, 0.1, 0.1]}
    out = score.score_batch(StubModel(P, ROWS, shares, {4: 0.85}), by_hand, BANDS, ("low",), "7")
    row = out.set_index("borrower_id").loc[4]
    assert row["leading_cause"] == "technical" and row["action"] == score.ACTIONS["manual"]
    assert row["reason_1"] == BY_NAME["forgotten_due_dates"].reason
    never = score.score_batch(StubModel(P, ROWS, shares, {4: 0.85}),
                              by_hand.assign(forgotten_due_dates=0.0), BANDS, ("low",), "7")
    assert never.set_index("borrower_id").loc[4, "reason_1"] == BY_NAME["autodebit_active"].reason


def test_floor_reasons_follow_the_payment_channel_and_the_record():
    frame = pd.DataFrame({"autodebit_active": [1.0, 0.0, 0.0, 0.0, np.nan],
                          "autodebit_lapsed": [0.0, 0.0, 0.0, 1.0, 0.0],
                          "reauth_pending": [0.0, 0.0, 0.0, 0.0, 0.0],
                          "forgotten_due_dates": [3.0, 1.0, 0.0, 2.0, 2.0]})
    words = {name: BY_NAME[name].reason for name in ("due_dates_in_announced_outage", "forgotten_due_dates",
                                                     "autodebit_active", "autodebit_lapsed")}
    assert score.floor_reasons(frame).tolist() == [
        words["due_dates_in_announced_outage"], words["forgotten_due_dates"], words["autodebit_active"],
        words["autodebit_lapsed"], words["due_dates_in_announced_outage"]]
    # a team's columns without the agreement states: the maintenance floor's reason
    team = frame[["forgotten_due_dates"]]
    assert set(score.floor_reasons(team)) == {words["due_dates_in_announced_outage"]}



def test_a_category_spelt_otherwise_is_named_as_learned_in_the_reasons(team_model):
    """'UNIVERSITY' scored as 'university' but its reason read 'education is UNIVERSITY': the
    reasons of a file spelt otherwise are the learned file's, an unseen value's as written."""
    from pipeline.model import CalibratedLightGBM

    model = CalibratedLightGBM.from_dir(team_model["path"])
    rows = team_model["new"].head(60).reset_index(drop=True)
    respelt = rows.assign(segment=" " + rows["segment"].str.upper().str.replace(" ", "-") + " ")
    assert (respelt["segment"] != rows["segment"]).all()
    words, again = score.own_words(model, rows), score.own_words(model, respelt)
    np.testing.assert_array_equal(again["segment"][1:], words["segment"][1:])
    assert words["segment"][0] == "segment is pensioner, never seen in training (scored as missing)"
    assert again["segment"][0] == "segment is PENSIONER, never seen in training (scored as missing)"
    blank = score.own_words(model, rows.assign(segment=["NULL"] * 60))["segment"]
    assert set(blank) == {"segment is missing"}
