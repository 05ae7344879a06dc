"""``limitjump recommend``: every borrower recommended or rejected with a reason, from raw tables
or a decision-features file, the same bytes on a rerun; bad input as in scoring."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import pipeline.cli.recommend  # noqa: F401 (registers the command)
from pipeline import decision
from pipeline.cli import app
from pipeline.contract import features_table
from pipeline.features import build_features
from tests.conftest import make_params, merge, raw_params
from tests.test_score import ROW_PROBLEMS, ok, outputs, summary_of, write_raw


@pytest.fixture(scope="module")
def work(tmp_path_factory, small_sim, small_params):
    """Params in batches of 700, the small simulation's raw tables, and a decision model fitted
    on its borrowers."""
    folder = tmp_path_factory.mktemp("recommend")
    (folder / "params.yaml").write_text(yaml.safe_dump(merge(raw_params(), {
        "score": {"batch_borrowers": 700}, "engine": {"workers": 1}}), sort_keys=False))
    write_raw(small_sim, folder / "raw")
    frame = build_features(small_sim, 0, small_params.features)
    jumps = small_sim["limit_events"].query("event_type == 'increase'").set_index("borrower_id")
    ids = frame["borrower_id"]
    frame[decision.AMOUNT] = (jumps["new_limit"] - jumps["old_limit"]).loc[ids].to_numpy()
    frame["label"] = small_sim["ground_truth"].set_index("borrower_id")["label"].loc[ids].to_numpy()
    frame["balance_months"] = frame[decision.AMOUNT] * 0.5  # enough for a model to exist
    tested = frame[(jumps["test_cell"] == "line_test").loc[ids].to_numpy()]
    grid = np.asarray(small_params.simulate.jump.line_test_amounts, dtype=float)
    (folder / "model").mkdir()
    decision.fit(frame, grid, 4, small_params.decision, tested).save(folder / "model")
    (folder / "older_model").mkdir()  # trained before the catalogue gained forgotten_due_dates
    decision.fit(frame, grid, 4, small_params.decision, tested, features=OLDER).save(folder / "older_model")
    decision_columns = ["borrower_id", "scoring_date", *decision.DECISION_FEATURES]
    frame[decision_columns].to_parquet(folder / "decision_features.parquet")
    return folder


OLDER = tuple(f for f in decision.DECISION_FEATURES if f != "forgotten_due_dates")


def run(work, input, output, model="model"):
    return CliRunner().invoke(app, ["recommend", "--input", str(input), "--output", str(output),
                                    "--model", str(work / model), "--params", str(work / "params.yaml")])


@pytest.fixture(scope="module")
def happy(work):
    output = work / "happy" / "recommendations.parquet"
    first = run(work, work / "raw", output)
    ok(first)
    first_bytes = output.read_bytes()
    ok(run(work, work / "raw", output))
    return {"output": output, "stdout": first.output, "bytes": first_bytes,
            "rows": pd.read_parquet(output), "summary": summary_of(output)}


def test_every_borrower_gets_an_amount_from_the_grid_within_the_appetite(happy, small_sim, small_params):
    rows, summary = happy["rows"], happy["summary"]
    assert summary["borrowers_in"] == len(small_sim["borrowers"]) == summary["recommended"] == len(rows)
    assert rows["borrower_id"].is_unique
    assert rows["recommended_amount"].isin(small_params.simulate.jump.line_test_amounts).all()
    increased = rows["recommended_amount"] > 0
    assert (rows.loc[increased, "p_miss"] <= small_params.decision.appetite).all()
    assert rows["binding_reason"].isin(decision.REASONS).all()
    at_20k = rows["p_miss_at_20000"].to_numpy()
    assert (at_20k >= rows["p_miss_at_0"].to_numpy() - 1e-12).all()  # never less risk for more
    assert f"borrowers in {len(rows)} = recommended {len(rows)} + rejected 0" in happy["stdout"]
    counts = rows["recommended_amount"].value_counts().sort_index()
    assert summary["amounts"] == [{"amount": a, "borrowers": n} for a, n in counts.items()]  # in order


def test_a_rerun_gives_the_same_bytes(happy):
    assert happy["output"].read_bytes() == happy["bytes"]


def test_the_default_model_is_the_projects_wherever_the_command_runs(work, happy, tmp_path, monkeypatch):
    """Without --model, the decision model beside the params file (models/decision), from any
    directory: it was looked for in the working directory, so a scheduler's job failed."""
    project = tmp_path / "project"
    shutil.copytree(work / "model", project / "models" / "decision")
    shutil.copy(work / "params.yaml", project / "params.yaml")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    output = tmp_path / "out" / "recommendations.parquet"
    ok(CliRunner().invoke(app, ["recommend", "--input", str(work / "raw"), "--output", str(output),
                                "--params", str(project / "params.yaml")]))
    assert output.read_bytes() == happy["bytes"]
    assert summary_of(output)["model"] == str(project / "models" / "decision")


def test_a_decision_features_file_recommends_like_the_raw_tables(work, happy):
    output = work / "file" / "out.csv"
    ok(run(work, work / "decision_features.parquet", output))
    got = pd.read_csv(output)
    expected = happy["rows"]
    np.testing.assert_array_equal(got["recommended_amount"], expected["recommended_amount"])
    np.testing.assert_allclose(got["p_miss"], expected["p_miss"], rtol=0, atol=1e-9)


def test_features_taken_after_the_jump_are_rejected_not_recommended(work, happy):
    """A scoring features file (taken a month after the jump) given to the decision, which is
    made at the jump: its rows are rejected with the reason, the rows taken at the jump are
    recommended as from the raw tables."""
    frame = pd.read_parquet(work / "decision_features.parquet")
    frame["jump_date"] = frame["scoring_date"] + pd.Timedelta(hours=13, minutes=45)  # timed, same day
    late = frame["borrower_id"] % 3 == 0
    frame.loc[late, "jump_date"] = frame.loc[late, "scoring_date"] - pd.Timedelta(days=30)
    frame.to_csv(work / "late.csv", index=False)
    output = work / "late" / "out.parquet"
    ok(run(work, work / "late.csv", output))
    rejects = pd.read_parquet(outputs(output)["rejects"])
    assert sorted(rejects["borrower_id"]) == sorted(frame.loc[late, "borrower_id"])
    assert (rejects["reason"] == "scoring_date: not the jump_date, as a decision at the jump needs "
            "(value 30 days after it)").all()
    got = pd.read_parquet(output)
    pd.testing.assert_frame_equal(got, happy["rows"][~happy["rows"]["borrower_id"].isin(
        rejects["borrower_id"])].reset_index(drop=True))


def test_a_model_trained_on_fewer_features_recommends_from_raw_tables_and_older_files(work):
    """A decision model registered before the catalogue grew reads the features it was trained
    on (a LightGBM traceback on the column count before): from the raw tables, and from a
    decision-features file written before the new feature existed, alike."""
    from_raw = work / "older" / "raw.parquet"
    ok(run(work, work / "raw", from_raw, model="older_model"))
    pd.read_parquet(work / "decision_features.parquet").drop(columns="forgotten_due_dates").to_csv(
        work / "older.csv", index=False)
    from_file = work / "older" / "file.parquet"
    ok(run(work, work / "older.csv", from_file, model="older_model"))
    got, expected = pd.read_parquet(from_file), pd.read_parquet(from_raw)
    np.testing.assert_array_equal(got["recommended_amount"], expected["recommended_amount"])
    np.testing.assert_allclose(got["p_miss"], expected["p_miss"], rtol=0, atol=1e-9)
    assert summary_of(from_raw)["recommended"] == len(expected) > 0


def test_text_ids_are_recommended_under_the_ids_the_file_wrote(work, happy):
    """A decision-features file with customer numbers as text: the same amounts, under its ids."""
    frame = pd.read_parquet(work / "decision_features.parquet")
    frame["borrower_id"] = "C" + frame["borrower_id"].astype("str").str.zfill(9)
    frame.to_csv(work / "text_ids.csv", index=False)
    output = work / "text" / "out.parquet"
    ok(run(work, work / "text_ids.csv", output))
    got, expected = pd.read_parquet(output), happy["rows"]
    assert got["borrower_id"].tolist() == ("C" + expected["borrower_id"].astype("str").str.zfill(9)).tolist()
    np.testing.assert_array_equal(got["recommended_amount"], expected["recommended_amount"])


def test_bad_rows_reject_their_borrowers_naming_table_and_column(work, happy, small_sim):
    t = {name: frame.copy() for name, frame in small_sim.items()}
    victims = {}
    for i, (case, (plant, table, _)) in enumerate(ROW_PROBLEMS.items()):
        present = np.unique(t[table]["borrower_id"])
        victims[case] = int(present[(present >= 300 * i + 11) & ~np.isin(present, list(victims.values()))][0])
        plant(t, victims[case])
    write_raw(t, work / "planted")
    output = work / "planted_out" / "out.parquet"
    ok(run(work, work / "planted", output))
    rows, rejects = pd.read_parquet(output), pd.read_parquet(outputs(output)["rejects"])
    for case, borrower in victims.items():
        reason = rejects.loc[rejects["borrower_id"] == borrower, "reason"].iloc[0]
        assert reason.startswith(ROW_PROBLEMS[case][2]), (case, reason)
    assert set(rejects["borrower_id"]) == set(victims.values())
    summary = summary_of(output)
    assert summary["borrowers_in"] == summary["recommended"] + summary["rejected"] == len(t["borrowers"])
    clean = happy["rows"].set_index("borrower_id").loc[rows["borrower_id"]].reset_index()
    pd.testing.assert_frame_equal(rows, clean)


def test_a_file_without_a_decision_feature_stops_naming_it_and_writes_nothing(work):
    frame = pd.read_parquet(work / "decision_features.parquet").drop(columns=["limit_before_jump"])
    frame.to_csv(work / "short.csv", index=False)
    output = work / "short_out" / "out.parquet"
    result = run(work, work / "short.csv", output)
    assert result.exit_code != 0  # in-process the error stays on the result (the command prints it)
    message = str(result.exception)
    assert "short.csv" in message and "limit_before_jump" in message
    assert not output.exists() and not outputs(output)["summary"].exists()


def test_a_folder_that_is_not_a_decision_model_is_named(work, tmp_path):
    result = CliRunner().invoke(app, ["recommend", "--input", str(work / "raw"), "--output",
                                      str(tmp_path / "out.parquet"), "--model", str(tmp_path),
                                      "--params", str(work / "params.yaml")])
    assert result.exit_code != 0 and "not a decision model" in str(result.exception)
    missing = CliRunner().invoke(app, ["recommend", "--input", str(work / "raw"), "--output",
                                       str(tmp_path / "out.parquet"), "--model", str(tmp_path / "nowhere"),
                                       "--params", str(work / "params.yaml")])
    assert missing.exit_code != 0 and "no such model folder" in str(missing.exception)
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("key, value", [("appetite", 0.0), ("no_increase_when_past_due", False)])
def test_a_policy_the_model_was_not_built_with_is_said_and_the_models_is_applied_and_recorded(
        work, happy, small_params, key, value):
    """The appetite, the economics and the past-due rule travel with the model. An outside check
    turned the past-due rule off in params: the model's was applied, silently, and the summary's
    policy left it out."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["decision"][key] = value
    (work / f"other_{key}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = work / f"other_{key}" / "recommendations.parquet"
    done = CliRunner().invoke(app, ["recommend", "--input", str(work / "raw"), "--output", str(output),
                                    "--model", str(work / "model"),
                                    "--params", str(work / f"other_{key}.yaml")])
    ok(done)
    built = getattr(small_params.decision, key)
    assert f"decision.{key} {built} (other_{key}.yaml: {value})" in done.output  # the file given
    assert summary_of(output)["policy"] == decision.policy_of(small_params.decision)
    assert output.read_bytes() == happy["bytes"]  # the model's policy, as the notice says
    assert "params.yaml:" not in happy["stdout"]  # the same policy: nothing said


def test_a_decision_model_computes_raw_tables_features_as_for_its_training(work, happy, small_sim, tmp_path):
    """An outside check recommended with one registered decision model under two params files
    (features.decay_days 180 and 90): 58 of 4,000 amounts differed, silently. The settings travel
    with the model (decision.json) and the raw tables' features are computed with them."""
    model = decision.DecisionModel.from_dir(work / "model")
    theirs = make_params().features.model_copy(update={"decay_days": 20.0})
    model.feature_settings = theirs
    folder = tmp_path / "decayed_model"
    folder.mkdir()
    model.save(folder)
    assert decision.DecisionModel.from_dir(folder).feature_settings == theirs
    output = tmp_path / "decayed" / "recommendations.parquet"
    done = CliRunner().invoke(app, ["recommend", "--input", str(work / "raw"), "--output", str(output),
                                    "--model", str(folder), "--params", str(work / "params.yaml")])
    ok(done)
    assert "features.decay_days 20.0 (params.yaml: " in done.output
    expected = model.recommend(build_features(small_sim, 0, theirs))
    got = pd.read_parquet(output)
    by_id = expected.set_index("borrower_id")
    np.testing.assert_allclose(got["p_miss"], by_id.loc[got["borrower_id"], "p_miss"])
    assert not np.allclose(got["p_miss"], happy["rows"]["p_miss"])


def test_a_decision_model_built_for_another_label_says_so(work, happy, tmp_path):
    """Known answer from outside: a decision model of the dpd 7 experiment recommended under dpd 1
    params without a word, and decision.json did not record the label its p_miss is the chance of."""
    model = decision.DecisionModel.from_dir(work / "model")
    model.label = make_params().label.model_copy(update={"dpd_threshold": 7})
    folder = tmp_path / "dpd7_model"
    folder.mkdir()
    model.save(folder)
    assert decision.DecisionModel.from_dir(folder).label == model.label
    output = tmp_path / "dpd7" / "recommendations.parquet"
    done = CliRunner().invoke(app, ["recommend", "--input", str(work / "raw"), "--output", str(output),
                                    "--model", str(folder), "--params", str(work / "params.yaml")])
    ok(done)
    assert "p_miss is the chance of the label it was built for" in done.output
    assert "dpd_threshold=7" in done.output
    np.testing.assert_allclose(pd.read_parquet(output)["p_miss"], happy["rows"]["p_miss"])  # same model


def test_an_increase_row_without_its_new_limit_is_recommended_as_with_it(work, happy, small_sim):
    """At decision time the new limit does not exist yet: every borrower was rejected for a blank
    limit_events.new_limit, a value the decision never reads."""
    tables = {name: frame.copy() for name, frame in small_sim.items()}
    increase = tables["limit_events"]["event_type"] == "increase"
    tables["limit_events"]["new_limit"] = tables["limit_events"]["new_limit"].where(~increase)
    write_raw(tables, work / "raw_no_new_limit")
    output = work / "no_new_limit" / "recommendations.parquet"
    ok(run(work, work / "raw_no_new_limit", output))
    pd.testing.assert_frame_equal(pd.read_parquet(output), happy["rows"])
    assert summary_of(output)["rejected"] == 0


def test_a_blank_the_decision_model_never_saw_in_training_rejects_its_borrower(work, happy):
    """LightGBM reads a missing value it never saw in training as 0, so a blank credit score was
    recommended on as a score of 0. The decision model records the features no training row lacked
    that a tree splits on, and `recommend` rejects a borrower who lacks one, naming it; the rest are
    recommended as before."""
    model = decision.DecisionModel.from_dir(work / "model")
    frame = pd.read_parquet(work / "decision_features.parquet")
    nullable = [c for c in model.never_missing if features_table([c]).column(c).nullable]
    assert nullable, "the contract allows blanks in some feature the model never saw blank"
    column = nullable[0]
    blank = frame.head(1).assign(**{column: np.nan})
    np.testing.assert_array_equal(model.curves(blank)["p_miss"],
                                  model.curves(blank.assign(**{column: 0.0}))["p_miss"])
    frame.loc[[4, 9], column] = np.nan
    frame.to_parquet(work / "blank.parquet")
    output = work / "blank" / "out.parquet"
    ok(run(work, work / "blank.parquet", output))
    rejects = pd.read_parquet(outputs(output)["rejects"])
    assert sorted(rejects["borrower_id"]) == sorted(frame.loc[[4, 9], "borrower_id"])
    assert rejects["reason"].str.startswith(f"{column}: fails known_in_every_training_row").all()
    got = pd.read_parquet(output)
    assert len(got) + len(rejects) == len(frame)
    pd.testing.assert_frame_equal(got, happy["rows"][~happy["rows"]["borrower_id"].isin(
        rejects["borrower_id"])].reset_index(drop=True))
