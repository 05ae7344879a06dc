"""pipeline.tracking on its own: where runs go, idempotent runs, registry versions, the promotion log.

Every test works in its own temporary directory with its own sqlite store: nothing touches the
repository's mlflow.db. MLflow keeps the tracking URI in module globals and in the environment
(``set_tracking_uri`` exports MLFLOW_TRACKING_URI), so the fixture below resets both.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipeline import tracking
from pipeline.config import MlflowSettings

ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE")
SETTINGS = MlflowSettings(tracking_uri="sqlite:///mlflow.db", experiment="unit", registered_model="unit")

# A model logged as code (no pickle), small enough to log in milliseconds.
CONSTANT_MODEL = '''
import mlflow
import numpy as np
import pandas as pd


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return [0.5] * len(model_input)


mlflow.models.set_model(Constant())
'''


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh working directory, no MLflow or DVC variables, and MLflow's globals reset after."""
    for name in ENV:
        monkeypatch.setenv(name, "")  # remembers the original value, restored at teardown
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # forgets the URI (and unsets the variable it exported)
    mlflow.set_registry_uri(None)


@pytest.fixture
def experiment_copy(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """What ``dvc exp run --temp`` does: the stage runs in a copy, DVC_ROOT names the main repo."""
    main, copy = tmp_path / "main", tmp_path / "copy"
    main.mkdir()
    copy.mkdir()
    monkeypatch.setenv("DVC_ROOT", str(main))
    monkeypatch.chdir(copy)
    return main, copy


def _client() -> tuple[MlflowClient, str]:
    return tracking.connect(SETTINGS)


def _all_runs(client: MlflowClient, experiment_id: str) -> list:
    return client.search_runs([experiment_id], max_results=1000)


# ---- where runs go ---------------------------------------------------------------------------

def test_relative_sqlite_path_is_anchored_at_the_root():
    root = Path("/some/repo")
    assert tracking.resolve_uri("sqlite:///mlflow.db", root) == "sqlite:////some/repo/mlflow.db"
    assert tracking.resolve_uri("sqlite:///stores/runs.db", root) == "sqlite:////some/repo/stores/runs.db"


@pytest.mark.parametrize("uri", ["sqlite:////abs/path/mlflow.db", "http://127.0.0.1:5000",
                                 "https://mlflow.example.com", "postgresql://u@h/db"])
def test_absolute_and_remote_uris_are_unchanged(uri):
    assert tracking.resolve_uri(uri, Path("/some/repo")) == uri


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5055")
    assert tracking.resolve_uri("sqlite:///mlflow.db", Path("/some/repo")) == "http://127.0.0.1:5055"


def test_root_is_dvc_root_when_set(tmp_path, monkeypatch):
    assert tracking.repo_root() == tmp_path.resolve()  # the working directory by default
    main = tmp_path / "main"
    main.mkdir()
    monkeypatch.setenv("DVC_ROOT", str(main))
    monkeypatch.chdir(tmp_path.parent)
    assert tracking.repo_root() == main.resolve()


def test_store_and_artifacts_live_at_dvc_root_not_the_working_directory(experiment_copy):
    main, copy = experiment_copy
    client, experiment_id = _client()
    assert mlflow.get_tracking_uri() == f"sqlite:///{main.resolve()}/mlflow.db"
    assert (main / "mlflow.db").exists() and not (copy / "mlflow.db").exists()
    experiment = client.get_experiment(experiment_id)
    assert experiment.artifact_location == (main.resolve() / "mlartifacts").as_uri()
    assert experiment.tags["primary_metric"] == tracking.PRIMARY_METRIC
    with tracking.training_run(SETTINGS, "lightgbm", "fp-artifacts") as run:
        tracking.log_json({"a": 1}, "a.json")
    assert (main / "mlartifacts" / run.info.run_id / "artifacts" / "a.json").exists()
    assert not list(copy.iterdir())


def test_flatten():
    nested = {"train": {"lightgbm": {"num_leaves": 31, "seed": 7}, "scorecard": {"pdo": 20}},
              "label": {"observation_days": 30}, "top": [1, 2], "empty": {}}
    assert tracking.flatten(nested) == {
        "train.lightgbm.num_leaves": 31, "train.lightgbm.seed": 7, "train.scorecard.pdo": 20,
        "label.observation_days": 30, "top": [1, 2]}
    assert tracking.flatten({"a": 1}, "x.") == {"x.a": 1}


# ---- idempotent runs -------------------------------------------------------------------------

def test_dataset_schema_matches_mlflows_inference_on_the_whole_frame():
    rows = 500
    frame = pd.DataFrame({"amount": np.linspace(0, 1, rows), "late": np.linspace(0, 1, rows),
                          "count": np.arange(rows), "tier": ["a", "b"] * (rows // 2)})
    frame.loc[[107, 451], "late"] = np.nan  # both past the head: only the full scan would see them
    frame.loc[499, "tier"] = None
    with warnings.catch_warnings():  # MLflow's hint on integer columns
        warnings.simplefilter("ignore", UserWarning)
        full = mlflow.data.from_pandas(frame, digest="unused").schema
        fast = tracking.dataset_schema(frame)
    assert fast == full
    assert [c.name for c in fast.inputs if not c.required] == ["late", "tier"]


def test_training_run_is_idempotent(capsys):
    client, experiment_id = _client()
    with tracking.training_run(SETTINGS, "lightgbm", "fp-1") as run:
        assert run is not None
        tracking.log_params({"train": {"lightgbm": {"num_leaves": 31, "tags": ["a", "b"]}}})
        mlflow.log_metric(tracking.PRIMARY_METRIC, 0.8)
    with tracking.training_run(SETTINGS, "lightgbm", "fp-1") as again:
        assert again is None
    assert "already logged" in capsys.readouterr().err
    runs = _all_runs(client, experiment_id)
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    logged = runs[0]
    assert logged.info.status == "FINISHED"
    assert logged.data.tags[tracking.FINGERPRINT_TAG] == "fp-1"
    assert logged.data.tags["model"] == "lightgbm"
    assert logged.data.params == {"train.lightgbm.num_leaves": "31", "train.lightgbm.tags": '["a", "b"]'}
    assert logged.data.metrics == {tracking.PRIMARY_METRIC: 0.8}
    assert tracking.run_for_fingerprint(SETTINGS, "fp-1").info.run_id == run.info.run_id
    # another fingerprint is another run
    with tracking.training_run(SETTINGS, "lightgbm", "fp-2") as other:
        assert other is not None
    assert len(_all_runs(client, experiment_id)) == 2


def test_fingerprint_is_set_only_when_the_block_completes():
    client, experiment_id = _client()
    with tracking.training_run(SETTINGS, "lightgbm", "fp-late") as run:
        assert tracking.find_run(client, experiment_id, "fp-late") is None  # not yet
    assert tracking.find_run(client, experiment_id, "fp-late").info.run_id == run.info.run_id


def test_a_failed_block_leaves_no_run_under_its_fingerprint():
    client, experiment_id = _client()
    with pytest.raises(RuntimeError, match="halfway"):
        with tracking.training_run(SETTINGS, "lightgbm", "fp-fail") as run:
            mlflow.log_metric("valid_auc", 0.7)
            raise RuntimeError("failed halfway")
    assert mlflow.active_run() is None
    assert tracking.find_run(client, experiment_id, "fp-fail") is None
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    with pytest.raises(LookupError, match="fp-fail"):
        tracking.run_for_fingerprint(SETTINGS, "fp-fail")
    # so the retry logs a run of its own
    with tracking.training_run(SETTINGS, "lightgbm", "fp-fail") as retry:
        assert retry is not None and retry.info.run_id != run.info.run_id
    assert tracking.find_run(client, experiment_id, "fp-fail").info.run_id == retry.info.run_id


def test_provenance_tags(tmp_path, monkeypatch):
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    (tmp_path / "f.txt").write_text("one")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    clean = tracking.provenance()
    assert clean["git.commit"] == head and clean["git.dirty"] == "false"
    assert "dvc.exp_name" not in clean
    (tmp_path / "f.txt").write_text("two")
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-tern")
    monkeypatch.setenv("DVC_STAGE", "train@lightgbm")
    dirty = tracking.provenance()
    assert dirty["git.dirty"] == "true"
    assert dirty["dvc.exp_name"] == "brisk-tern" and dirty["dvc.stage"] == "train@lightgbm"
    with tracking.training_run(SETTINGS, "lightgbm", "fp-tags") as run:
        pass
    tags = MlflowClient(mlflow.get_tracking_uri()).get_run(run.info.run_id).data.tags
    assert tags["git.commit"] == head and tags["git.dirty"] == "true"
    assert tags["dvc.exp_name"] == "brisk-tern"


def test_provenance_is_that_of_the_working_directory(tmp_path, monkeypatch):
    """Under `dvc exp run --queue`, DVC_ROOT is the main repository but the code runs in the
    experiment's copy, whose commit is the experiment's baseline: the copy's commit is the truth."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    heads = {}
    for name in ("main", "copy"):
        repo = tmp_path / name
        repo.mkdir()
        (repo / "f.txt").write_text(name)
        for args in (["init", "-q"], ["add", "f.txt"], ["commit", "-q", "-m", name]):
            subprocess.run([*git, *args], cwd=repo, check=True)
        heads[name] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                     text=True, check=True).stdout.strip()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "main"))
    monkeypatch.chdir(tmp_path / "copy")
    assert tracking.provenance()["git.commit"] == heads["copy"] != heads["main"]


def test_provenance_outside_git():
    tags = tracking.provenance()
    assert tags["git.commit"] == "unknown" and tags["git.dirty"] == "false"


# ---- the registry ----------------------------------------------------------------------------

def _run_with_model(tmp_path: Path, fingerprint: str):
    code = tmp_path / "constant_model.py"
    code.write_text(CONSTANT_MODEL)
    with tracking.training_run(SETTINGS, "lightgbm", fingerprint) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=[])
        mlflow.set_tag(tracking.MODEL_URI_TAG, info.model_uri)
    assert run is not None
    return tracking.run_for_fingerprint(SETTINGS, fingerprint)


def test_register_version_is_idempotent(tmp_path):
    first = _run_with_model(tmp_path, "fp-model-1")
    version = tracking.register_version(SETTINGS, first, "fp-model-1")
    assert tracking.register_version(SETTINGS, first, "fp-model-1") == version
    client = MlflowClient(mlflow.get_tracking_uri())
    versions = client.search_model_versions(f"name='{SETTINGS.registered_model}'")
    assert len(versions) == 1
    assert versions[0].tags[tracking.FINGERPRINT_TAG] == "fp-model-1"
    assert versions[0].run_id == first.info.run_id
    second = _run_with_model(tmp_path, "fp-model-2")
    assert str(tracking.register_version(SETTINGS, second, "fp-model-2")) != str(version)
    assert len(client.search_model_versions(f"name='{SETTINGS.registered_model}'")) == 2
    assert tracking.register_version(SETTINGS, first, "fp-model-1") == version


def test_aliases(tmp_path):
    run = _run_with_model(tmp_path, "fp-alias")
    version = tracking.register_version(SETTINGS, run, "fp-alias")
    assert tracking.alias_version(SETTINGS, "champion") is None
    tracking.set_alias(SETTINGS, "champion", version, {"previous_champion": "none"})
    assert str(tracking.alias_version(SETTINGS, "champion")) == str(version)
    model = MlflowClient(mlflow.get_tracking_uri()).get_model_version(SETTINGS.registered_model, version)
    assert model.tags["previous_champion"] == "none"
    loaded = mlflow.pyfunc.load_model(f"models:/{SETTINGS.registered_model}@champion")
    assert list(loaded.predict(pd.DataFrame({"x": [1.0, 2.0]}))) == [0.5, 0.5]


# ---- the promotion log -----------------------------------------------------------------------

def test_promotion_log_appends_json_lines_at_the_root(experiment_copy):
    main, copy = experiment_copy
    first = tracking.append_promotion_log({"decision": "promoted", "version": "1",
                                           "previous_champion": None, "figures": {"min_oot_auc": 0.8}})
    second = tracking.append_promotion_log({"decision": "refused", "version": "2",
                                            "previous_champion": "1", "failed_gates": ["min_oot_auc"]})
    assert first == second == main.resolve() / tracking.PROMOTION_LOG
    assert not (copy / tracking.PROMOTION_LOG).exists()
    lines = first.read_text().splitlines()
    assert len(lines) == 2
    entries = [json.loads(line) for line in lines]
    assert [e["decision"] for e in entries] == ["promoted", "refused"]
    assert entries[0]["figures"] == {"min_oot_auc": 0.8} and entries[0]["previous_champion"] is None
    assert entries[1]["failed_gates"] == ["min_oot_auc"]
    assert all(e["time"].endswith("+00:00") for e in entries)


def test_a_users_tracking_uri_survives_repeated_connections(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports the URI; a second connect must still see the user's."""
    from pipeline import tracking
    from pipeline.config import MlflowSettings

    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'user.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    settings = MlflowSettings(tracking_uri="sqlite:///other.db", experiment="e", registered_model="m")
    for _ in range(2):
        tracking.connect(settings)
        assert tracking.resolve_uri(settings.tracking_uri, tmp_path) == store
    assert not (tmp_path / "other.db").exists()
