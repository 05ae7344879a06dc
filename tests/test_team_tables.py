"""A team's own tables (``pipeline.team_tables``): read as the pipeline's names and rules, on
small hand-built files; scoring them through the command is in test_sources.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import sources
from pipeline.contract import ContractError
from pipeline.team_tables import team_table
from tests.conftest import team_frame, team_settings


def test_a_teams_zoned_dates_keep_the_day_written(tmp_path):
    """Arrow read '2025-01-31T05:00:00+08:00' as UTC, the day before, in a team's CSV."""
    path = tmp_path / "team.csv"
    team_frame().assign(as_of=lambda f: f["as_of"] + "T05:00:00+08:00").to_csv(path, index=False)
    out = team_table(path, team_settings(), labelled=True)
    assert out["scoring_date"].dt.strftime("%Y-%m-%d").tolist() == team_frame()["as_of"].tolist()


@pytest.mark.parametrize("name", ["credit limit", "limit:bal", "bal[1]"])
def test_a_teams_column_name_a_model_cannot_keep_stops_at_features(tmp_path, name):
    """LightGBM renames 'credit limit' to 'credit_limit' and refuses JSON's characters: training
    stopped with a traceback, after the features and split stages had passed."""
    path = tmp_path / "team.csv"
    team_frame().rename(columns={"amount": name}).to_csv(path, index=False)
    with pytest.raises(ContractError, match=r"columns \[.*\] have names a model cannot keep.*rename them"):
        team_table(path, team_settings(), labelled=True)


def test_a_teams_csv_with_a_column_named_twice_stops_naming_the_file_and_both_places(tmp_path):
    path = tmp_path / "team.csv"
    path.write_text("customer_id,as_of,amount,amount,bad\n1,2025-01-31,2,3,0\n")
    with pytest.raises(ContractError, match=rf"{path}: a column is named more than once: 'amount' "
                                            r"\(columns 3, 4\)"):
        team_table(path, team_settings(), labelled=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_teams_table_keeps_every_row_under_the_pipelines_names(fmt, tmp_path):
    path = tmp_path / f"team.{fmt}"
    frame = team_frame()
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    out = team_table(path, team_settings(), labelled=True)
    assert out["borrower_id"].tolist() == [7, 3, 9, 4] and out["label"].tolist() == [0, 1, 0, 1]
    assert out["scoring_date"].dt.strftime("%Y-%m-%d").tolist() == frame["as_of"].tolist()
    assert (out["jump_date"] == out["scoring_date"]).all()
    assert set(out.columns) == {"borrower_id", "scoring_date", "jump_date", "label", "segment", "amount"}
    unlabelled = team_table(path, team_settings(), labelled=False)
    assert "label" not in unlabelled and "bad" in unlabelled  # scoring files have no label to name


def test_a_teams_long_ids_written_as_decimals_stop_as_such(tmp_path):
    """18-digit ids written as decimals have lost digits: the message said the ids repeat."""
    path = tmp_path / "team.csv"
    ids = ["110101199003070001.0", "110101199003070002.0", "110101199003070003.0", "4.0"]
    team_frame().assign(customer_id=ids).to_csv(path, index=False)
    with pytest.raises(ContractError, match=r"'customer_id' holds ids of 2\*\*53 or more written as "
                                            r"decimals.*3 rows, the first \[1, 2, 3\]"):
        team_table(path, team_settings(), labelled=True)
    team_frame().assign(customer_id=[i.removesuffix(".0") for i in ids]).to_csv(path, index=False)
    assert team_table(path, team_settings(), labelled=True)["borrower_id"].iloc[0] == 110101199003070001


def test_a_teams_file_to_score_keeps_its_bad_rows_for_the_scorer_to_reject(tmp_path):
    """A blank id, a repeated id and a date that is no date in a team's file to score: the
    pipeline's batch keeps every row, and the scorer rejects those with their reasons and scores
    the rest, as with the file itself (the batch stopped at the first bad row)."""
    path = tmp_path / "score.csv"
    team_frame().drop(columns="bad").assign(
        customer_id=[7, None, 9, 9], as_of=["2025-01-31", "2025-02-28", "2025-03-31", "31.04.2025"]
    ).to_csv(path, index=False)
    batch = team_table(path, team_settings(), labelled=False)
    assert len(batch) == 4 and batch["jump_date"].equals(batch["scoring_date"])
    batch.to_parquet(tmp_path / "features.parquet")
    file = sources.FeaturesFile(tmp_path / "features.parquet", ["amount"], pd.Timestamp("2030-01-01"))
    loaded = file.load(*file.ranges(100)[0])
    assert loaded.features["borrower_id"].tolist() == [7]
    assert sorted(loaded.rejects["reason"]) == ["borrower_id: duplicate borrower"] * 2
    assert len(file.orphans()) == 1  # the blank id: a reject of its own
    with pytest.raises(ContractError, match="has no id"):  # a labelled file still stops
        team_table(path, team_settings(label_column="amount"), labelled=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_teams_text_ids_are_kept_as_written(fmt, tmp_path):
    """A team's customer numbers as text, or digits with leading zeros: kept as the file writes
    them (a CSV's '007' lost its zeros, and text stopped the run)."""
    for ids in (["C7", "C3", "C9", "C4"], ["007", "003", "009", "004"]):
        path = tmp_path / f"team.{fmt}"
        frame = team_frame().assign(customer_id=ids)
        frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
        out = team_table(path, team_settings(), labelled=True)
        assert out["borrower_id"].tolist() == ids


def test_a_missing_team_table_says_so(tmp_path):
    """A path of params.yaml that names nothing is a command that cannot run as given (exit 2), as
    `limitjump score` says of a missing --input; it had exited 1, as bad data does."""
    from pipeline.errors import UsageError
    with pytest.raises(UsageError, match=r"nowhere\.csv: no such file or folder \(source\.tables"):
        team_table(tmp_path / "nowhere.csv", team_settings(), labelled=True)


@pytest.mark.parametrize("change, column, words", [
    (lambda f: f.drop(columns="as_of"), "as_of", "missing columns"),
    (lambda f: f.assign(customer_id=[7, 3, 7, 4]), "customer_id", "repeats an id: 2 rows, the first [1, 3]"),
    (lambda f: f.assign(customer_id=[7, None, 9, 4]), "customer_id", "has no id: 1 rows, the first [2]"),
    (lambda f: f.assign(customer_id=[7.5, 3, 9, 4]), "customer_id", "whole number: 1 rows, the first [1]"),
    (lambda f: f.assign(customer_id=["C7", "C3", "C7", "C4"]), "customer_id", "repeats an id: 2 rows"),
    (lambda f: f.assign(customer_id=["C7", " ", "C9", None]), "customer_id",
     "has no id: 2 rows, the first [2, 4]"),
    (lambda f: f.assign(bad=[0, 2, 0, None]), "bad", "must be 0 or 1: 2 rows, the first [2, 4]"),
    (lambda f: f.assign(as_of=["2025-01-31", "soon", "2025-03-31", None]), "as_of", "must be a date"),
    (lambda f: f.assign(label=1), "label", "names the pipeline uses (label for the label)"),
    (lambda f: f.assign(miss_cause="credit"), "miss_cause",
     "names the pipeline uses (miss_cause for the simulator's cause of a miss)"),
    (lambda f: f.assign(credit_score=600), "credit_score", "names of feature catalogue entries"),
])
def test_a_bad_team_table_stops_naming_file_column_and_rows(change, column, words, tmp_path):
    path = tmp_path / "team.csv"
    change(team_frame()).to_csv(path, index=False)
    with pytest.raises(ContractError) as err:
        team_table(path, team_settings(), labelled=True)
    assert str(path) in str(err.value) and f"'{column}'" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("spoilt, first_rows", [
    ({3: "-", 17: "unknown"}, [4, 18]),  # 1 = the first data row
    ({5: "12,500"}, [6]),
])
def test_a_teams_column_of_numbers_with_some_text_stops_naming_the_rows(spoilt, first_rows, tmp_path):
    """Read as text, it would be learned as a category with a level per number."""
    frame = pd.concat([team_frame()] * 10, ignore_index=True).assign(customer_id=range(40))
    frame["limit_bal"] = (1000.0 * np.arange(40)).astype(object)
    for row, value in spoilt.items():
        frame.loc[row, "limit_bal"] = value
    path = tmp_path / "team.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ContractError) as err:
        team_table(path, team_settings(), labelled=True)
    message = str(err.value)
    assert str(path) in message and "column 'limit_bal' holds numbers" in message, message
    assert f"{len(first_rows)} rows, the first {first_rows} (data rows counted from 1" in message, message
    assert "learned as a category" in message
    # a file to score is not learned from: it is told what the model reads (an outside check)
    with pytest.raises(ContractError, match="the model reads the column as numbers") as err:
        team_table(path, team_settings(), labelled=False)
    assert "learned" not in str(err.value)


def test_a_teams_numbers_stored_as_text_are_read_as_numbers(tmp_path):
    frame = pd.concat([team_frame()] * 10, ignore_index=True).assign(customer_id=range(40))
    written = [f"{1000.5 * k}" for k in range(36)] + [None, "None", " ", "NULL"]
    frame["limit_bal"] = pd.array(written, dtype="str")
    path = tmp_path / "team.parquet"
    frame.to_parquet(path)
    out = team_table(path, team_settings(), labelled=True)
    assert pd.api.types.is_float_dtype(out["limit_bal"]) and out["limit_bal"].iloc[3] == 3001.5
    assert out["limit_bal"].isna().tolist() == [False] * 36 + [True] * 4  # every way of writing nothing


def test_a_teams_category_of_a_few_numeric_codes_and_a_word_stays_text(tmp_path):
    frame = pd.concat([team_frame()] * 10, ignore_index=True).assign(customer_id=range(40))
    frame["grade"] = ["1", "2", "3", "4", "5", "X", "2", "3"] * 5
    path = tmp_path / "team.csv"
    frame.to_csv(path, index=False)
    out = team_table(path, team_settings(), labelled=True)
    assert sorted(out["grade"].astype(str).unique()) == ["1", "2", "3", "4", "5", "X"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_teams_codes_written_with_leading_zeros_are_codes_in_every_format(fmt, tmp_path):
    """Known answer from outside: 'branch_code' 01/02/07/10 was learned as the numbers 1, 2, 7,
    10 from a CSV (Arrow infers integers) and as the categories '01'... from Parquet or .xlsx."""
    frame = pd.concat([team_frame()] * 10, ignore_index=True).assign(customer_id=range(40))
    frame["branch_code"] = ["01", "02", "07", "10"] * 10
    frame["late_count"] = [0, 1, 2, 3] * 10  # numbers, no zero before a digit: stays numbers
    path = tmp_path / f"team.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    out = team_table(path, team_settings(), labelled=True)
    assert sorted(out["branch_code"].astype(str).unique()) == ["01", "02", "07", "10"]
    assert pd.api.types.is_integer_dtype(out["late_count"])


@pytest.mark.parametrize("spoil, said", [
    (lambda f: f.assign(amount=[1.5, np.inf, 3.0, 4.0]),
     "row 2: amount: fails being a finite number (value inf)"),
    (lambda f: f.assign(as_of=["2025-01-31", "1970-01-01", "2025-03-31", "2025-04-30"]),
     "row 2: scoring_date: fails in_range"),
    (lambda f: f.assign(inquiries_3m=[1, -1, 2, 1.5]), "2 rows hold values the scorer would reject"),
])
def test_a_teams_training_rows_keep_the_rules_the_scorer_keeps(spoil, said, tmp_path):
    """Known answers from outside: an infinity, a 1970 scoring date and -1 or 1.5 inquiries (a
    catalogue column) trained the model, while scoring the same rows rejected them."""
    path = tmp_path / "team.parquet"
    spoil(team_frame()).to_parquet(path)
    names = {"catalogue": ["inquiries_3m"]} if "inquiries_3m" in spoil(team_frame()) else {}
    with pytest.raises(ContractError) as err:
        team_table(path, team_settings(**names), labelled=True)
    assert str(path) in str(err.value) and said in str(err.value), str(err.value)
    assert team_table(path, team_settings(**names), labelled=False) is not None  # scoring rejects rows


def test_a_teams_date_column_is_named_not_left_out(tmp_path):
    """An 'open_date' column had been dropped from both models without a word."""
    path = tmp_path / "team.parquet"
    team_frame().assign(open_date=pd.to_datetime(["2020-01-01"] * 4)).to_parquet(path)
    with pytest.raises(ContractError, match=r"columns \['open_date'\] hold dates, which a model cannot read"):
        team_table(path, team_settings(), labelled=True)


def test_a_teams_column_gets_the_catalogues_meaning_only_when_listed(tmp_path):
    path = tmp_path / "team.csv"
    team_frame().assign(credit_score=[600, 650, 700, 580]).to_csv(path, index=False)
    out = team_table(path, team_settings(catalogue=["credit_score"]), labelled=True)
    assert out["credit_score"].tolist() == [600, 650, 700, 580]
    with pytest.raises(ContractError, match=r"catalogue names columns the file lacks: \['inquiries_3m'\]"):
        team_table(path, team_settings(catalogue=["credit_score", "inquiries_3m"]), labelled=True)


def test_a_teams_file_to_score_without_a_feature_of_its_training_file_stops_naming_both(tmp_path):
    """Known answer from outside: a score file with 'limit_bl' for 'limit_bal' passed
    simulate-batch and stopped the scorer naming the pipeline's data/incoming."""
    from pipeline.team_tables import score_table

    trained, to_score = tmp_path / "features.csv", tmp_path / "score.csv"
    team_frame().to_csv(trained, index=False)
    t = team_settings(features=str(trained), score=str(to_score))
    team_frame().drop(columns="bad").to_csv(to_score, index=False)
    assert len(score_table(t)) == 4
    team_frame().drop(columns="bad").rename(columns={"amount": "amont"}).to_csv(to_score, index=False)
    with pytest.raises(ContractError, match=rf"{to_score}: lacks feature columns of {trained} \['amount'\]; "
                                            "the file writes 'amont' for 'amount'"):
        score_table(t)
