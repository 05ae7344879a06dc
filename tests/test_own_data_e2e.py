"""End to end with a team's own tables (README "Your own data"): ``source: tables`` in params,
``dvc repro`` in a fresh clone, on the example under tests/data/team_example. Its own file, so
that it runs beside the defaults' end-to-end test rather than after it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import raw_params
from tests.test_pipeline_e2e import clone_project, project_env, run_ok


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_teams_own_tables_run_through_the_same_stages(tmp_path):
    """``source: tables`` on the example (README "Your own data"): nothing simulated, every row
    of the team's file in one split or the embargo, both models trained and evaluated without a
    truth, the team's file to score scored under its text ids with reasons named after its
    columns; then idle."""
    project = clone_project(tmp_path / "clone")
    env = project_env(project)
    params = raw_params()
    params["source"]["kind"] = "tables"
    t = params["source"]["tables"]
    # the file to score names its customers as a lender may, in text ('C003001')
    to_score = pd.read_csv(project / t["score"])
    to_score[t["id_column"]] = "C" + to_score[t["id_column"]].astype("str").str.zfill(6)
    to_score.to_csv(project / "score_text_ids.csv", index=False)
    t["score"] = "score_text_ids.csv"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = run_ok(["dvc", "repro"], project, env)
    assert "nothing simulated" in first and "Running stage 'score'" in first
    team = pd.read_csv(project / t["features"])
    split = json.loads((project / "reports" / "split.json").read_text())
    assert sum(split[name]["rows"] for name in ("train", "valid", "test", "embargo")) == len(team)
    test = pd.read_parquet(project / "data" / "split" / "test.parquet")
    assert test["scoring_date"].min() > pd.read_parquet(project / "data" / "split" / "train.parquet")[
        "scoring_date"].max()
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"lightgbm", "scorecard", "gates_passed"}
    assert 0.55 < metrics["lightgbm"]["auc"] < 0.75 and 0.55 < metrics["scorecard"]["auc"] < 0.75
    scores = pd.read_parquet(project / "data" / "scored" / "scores.parquet")
    assert scores["borrower_id"].tolist() == sorted(to_score[t["id_column"]])
    reasons = set(scores[[f"reason_{i}" for i in range(1, 5)]].stack().dropna())
    assert reasons and all(r.split(" is ")[0] in to_score.columns for r in reasons), reasons
    # the registered version through MLflow's client gives the scorer's probabilities: it had
    # refused every row, its features taken on the day of the team's date, not 30 days after a jump
    incoming = pd.read_parquet(project / "data" / "incoming" / "features.parquet")
    incoming.to_csv(tmp_path / "incoming.csv", index=False)
    run_ok(["mlflow", "models", "predict", "-m", "models:/limitjump/1", "-i", str(tmp_path / "incoming.csv"),
            "-t", "csv", "--env-manager", "local", "-o", str(tmp_path / "predicted.json")],
           project, {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"})
    predicted = json.loads((tmp_path / "predicted.json").read_text())["predictions"]
    assert sorted(predicted) == pytest.approx(sorted(scores["probability"]), abs=1e-12)
    assert "Data and pipelines are up to date" in run_ok(["dvc", "repro"], project, env)
