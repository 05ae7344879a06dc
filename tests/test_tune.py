"""pipeline/tune.py and ``limitjump tune``: a seeded search repeats itself, the pruner stops bad
trials, the best values are what training then uses, tuning off changes nothing, and the trials
are MLflow child runs of one parent.

The data is made here (3,000 rows, five numeric columns and a text one, a logistic label): a
trial boosts in a fraction of a second, and trial counts, not a time budget, bound every search.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

import pipeline.cli.tune  # noqa: F401  (registers the command on the app)
from pipeline import train, tune
from pipeline.cli import app
from pipeline.cli.paths import SPLIT_DIR, TUNE_BEST
from pipeline.config import TuneSettings
from pipeline.model import encode
from tests.conftest import make_params, merge, raw_params

# one thread: on a busy machine two OpenMP threads wait on each other for most of a small trial
FAST = {"num_boost_round": 300, "early_stopping_rounds": 20, "num_threads": 1}
SEARCH = TuneSettings(enabled=True, n_trials=8, timeout_seconds=None, seed=3, metric="log_loss")


def frames(rows: int = 3000, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    segment = rng.choice(["a", "b", "c"], size=rows)
    logit = -1.5 + x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + (segment == "c")
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)]).assign(
        segment=segment, borrower_id=np.arange(rows), label=label)
    cut = rows * 2 // 3
    return {"train": frame.iloc[:cut].reset_index(drop=True),
            "valid": frame.iloc[cut:].reset_index(drop=True)}


@pytest.fixture(scope="module")
def data():
    splits = frames()
    columns = train.feature_columns(splits["train"])
    categorical = train.categorical_columns(splits["train"], columns)
    return {**splits, "columns": columns, "categorical": categorical,
            "categories": train.learn_categories(splits["train"], columns),
            "settings": make_params({"train": {"lightgbm": FAST}}).train.lightgbm}


def search(data, settings: TuneSettings = SEARCH, space=tune.search_space):
    return tune.run_study(data["train"], data["valid"], data["columns"], data["categorical"],
                          data["categories"], data["settings"], settings, space)


def test_the_same_seed_finds_the_same_best_values(data):
    first, again = tune.best(search(data), "log_loss"), tune.best(search(data), "log_loss")
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert sum(first["trials"].values()) == SEARCH.n_trials
    assert set(first["params"]) == {"num_leaves", "min_data_in_leaf", "lambda_l2", "feature_fraction",
                                    "bagging_fraction", "learning_rate"}


def test_training_with_the_best_values_scores_what_the_search_found(data):
    found = tune.best(search(data), "log_loss")
    settings = train.with_params(data["settings"], found["params"])
    booster = train.fit_lightgbm(data["train"], data["valid"], data["columns"], data["categorical"],
                                 data["categories"], settings)
    raw = booster.predict(encode(data["valid"], data["columns"], data["categories"]))
    loss = tune.METRICS["log_loss"][2](data["valid"]["label"].to_numpy(), raw)
    assert booster.num_trees() == found["trees"]
    assert loss == pytest.approx(found["value"], abs=1e-6)


def wasteful(trial, train_rows):
    """A space where a learning rate up to a thousand times too small makes trials hopeless."""
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 0.3, log=True)}


def test_the_pruner_stops_hopeless_trials_and_the_trial_count_holds(data):
    study = search(data, SEARCH.model_copy(update={"n_trials": 12}), wasteful)
    found = tune.best(study, "log_loss")
    assert len(study.trials) == 12
    assert found["trials"]["pruned"] >= 1, found
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert all(t.number >= tune.STARTUP_TRIALS for t in pruned)
    assert all(max(t.intermediate_values) >= tune.WARMUP_ROUNDS for t in pruned)


def test_the_auc_search_maximises(data):
    study = search(data, SEARCH.model_copy(update={"metric": "auc", "n_trials": 6}))
    found = tune.best(study, "auc")
    assert study.direction.name == "MAXIMIZE"
    assert found["value"] == round(max(t.value for t in study.trials if t.value is not None), 6)
    assert 0.6 < found["value"] < 1


def test_tuning_needs_bagging():
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="bagging_freq"):
        make_params({"tune": {"enabled": True}, "train": {"lightgbm": {"bagging_freq": 0}}})


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch repository with the splits, params (tuning on, 6 trials) and its own sqlite
    store; MLflow's globals reset after."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("")
    search = {"enabled": True, "n_trials": 6, "timeout_seconds": None, "seed": 5}
    params = merge(raw_params(), {"tune": search, "train": {"lightgbm": FAST},
                                  "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    SPLIT_DIR.mkdir(parents=True)
    for name, frame in frames().items():
        frame.to_parquet(SPLIT_DIR / f"{name}.parquet")
    yield tmp_path
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_each_trial_is_a_child_run_of_one_parent(project):
    runner = CliRunner()
    done = runner.invoke(app, ["tune"])
    assert done.exit_code == 0, done.output
    best = json.loads(TUNE_BEST.read_text())
    assert best["enabled"] and sum(best["trials"].values()) == 6
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("limitjump").experiment_id
    parents = client.search_runs([experiment], "tags.model = 'tune'")
    assert len(parents) == 1 and parents[0].info.run_name.startswith("tune · ")
    parent = parents[0]
    assert parent.data.params["best.num_leaves"] == str(best["params"]["num_leaves"])
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == [f"trial {i}" for i in range(6)]
    states = {c.data.tags["trial.state"] for c in children}
    assert states <= {"complete", "pruned"} and "complete" in states
    history = client.get_metric_history(children[0].info.run_id, "valid_log_loss_by_round")
    assert [m.step for m in history][:2] == [tune.REPORT_EVERY, 2 * tune.REPORT_EVERY]

    text = TUNE_BEST.read_text()
    assert runner.invoke(app, ["tune"]).exit_code == 0
    assert TUNE_BEST.read_text() == text  # the same bytes, and nothing logged twice
    assert len(client.search_runs([experiment], "")) == 7


def test_tuning_off_writes_only_the_switch(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tune"]["enabled"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = CliRunner().invoke(app, ["tune"])
    assert done.exit_code == 0, done.output
    assert json.loads(TUNE_BEST.read_text()) == {"enabled": False}
    assert not (project / "mlflow.db").exists()
