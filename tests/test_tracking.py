"""pipeline.tracking on its own: where runs go, idempotent runs, registry versions, verified model
files, failing fast on a bad store, the promotion log.

Every test works in its own temporary repository (a folder with dvc.yaml and params.yaml) with
its own sqlite store: nothing touches the repository's mlflow.db. MLflow keeps the tracking URI in
module globals and in the environment (``set_tracking_uri`` exports MLFLOW_TRACKING_URI), so the
fixture below resets both.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline import io, tracking
from pipeline.config import ConfigError, MlflowSettings
from pipeline.errors import InputError
from pipeline.model import CalibratedLightGBM

ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE")
SETTINGS = MlflowSettings(tracking_uri="sqlite:///mlflow.db", experiment="unit", registered_model="unit")



def tiny_model_dir(folder: Path) -> Path:
    """A real calibrated LightGBM folder (text model and JSON), trained on 400 random rows."""
    import lightgbm as lgb

    from pipeline import io, model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] + rng.normal(size=400) > 1).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1},
                        lgb.Dataset(pd.DataFrame(x, columns=["a", "b"]), y), num_boost_round=5)
    folder.mkdir(parents=True)
    booster.save_model(str(folder / model.BOOSTER_FILE))
    io.write_json({"method": "platt", "intercept": 0.0, "slope": 1.0}, folder / model.CALIBRATION_FILE)
    io.write_json({}, folder / model.CATEGORIES_FILE)
    io.write_json({"importance": {"a": 1.0, "b": 0.5}, "bins": {}}, folder / model.REFERENCE_FILE)
    return folder


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh working directory, no MLflow or DVC variables, and MLflow's globals reset after."""
    for name in ENV:
        monkeypatch.setenv(name, "")  # remembers the original value, restored at teardown
        monkeypatch.delenv(name)
    for marker in ("dvc.yaml", "params.yaml"):
        (tmp_path / marker).write_text("")
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

def test_relative_sqlite_path_is_anchored_at_the_root(monkeypatch):
    monkeypatch.setenv("DVC_ROOT", "/some/repo")
    assert tracking.resolve_uri("sqlite:///mlflow.db") == "sqlite:////some/repo/mlflow.db"
    assert tracking.resolve_uri("sqlite:///stores/runs.db") == "sqlite:////some/repo/stores/runs.db"


@pytest.mark.parametrize("uri", ["sqlite:////abs/path/mlflow.db", "http://127.0.0.1:5000",
                                 "https://mlflow.example.com", "postgresql://u@h/db"])
def test_absolute_and_remote_uris_are_unchanged(uri):
    assert tracking.resolve_uri(uri) == uri


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5055")
    assert tracking.resolve_uri("sqlite:///mlflow.db") == "http://127.0.0.1:5055"


def test_root_is_found_from_any_subdirectory_and_dvc_root_wins(tmp_path, monkeypatch):
    deep = tmp_path / "reports" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert tracking.repo_root() == tmp_path.resolve()
    client, _ = _client()
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert not (deep / "mlflow.db").exists()
    main = tmp_path / "main"
    main.mkdir()
    monkeypatch.setenv("DVC_ROOT", str(main))
    assert tracking.repo_root() == main.resolve()


def test_outside_a_repository_no_store_is_created(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dvc.yaml").unlink()
    monkeypatch.chdir(outside)
    with pytest.raises(ConfigError, match="not inside a limitjump repository"):
        _client()
    assert not list(outside.iterdir()) and not (tmp_path / "mlflow.db").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("uri", ["http://127.0.0.1:{port}", "http://", "nosuchscheme://x",
                                 # a database server that is down: MLflow had retried for 100 s
                                 "postgresql://mlflow@127.0.0.1:{port}/mlflow",
                                 "postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow"])
def test_a_store_that_cannot_be_reached_fails_fast_with_its_address(monkeypatch, uri):
    uri = uri.format(port=_closed_port())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(InputError) as err:
        _client()
    assert time.monotonic() - started < 15
    assert uri in str(err.value)


def test_a_password_in_the_stores_address_is_never_shown(monkeypatch):
    uri = f"postgresql://mlflow:s3cret@127.0.0.1:{_closed_port()}/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(InputError) as err:
        _client()
    assert "s3cret" not in str(err.value) and "mlflow:***@127.0.0.1" in str(err.value)


def test_a_store_that_is_not_there_is_not_made_to_read_a_model_from(tmp_path, monkeypatch):
    """Known answer from outside: scoring with models:/ against a mistyped sqlite path made an empty
    store (and its folders) and then said to promote a version first."""
    store = tmp_path / "no" / "such" / "runs.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    with pytest.raises(InputError, match=f"no MLflow store at {store}"):
        tracking.connect(SETTINGS, existing=True)
    with pytest.raises(InputError, match=f"no MLflow store at {store}"):  # as promote looks one up
        tracking.get_version(SETTINGS, "challenger")
    assert not (tmp_path / "no").exists()


def test_a_corrupt_store_is_named(tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="mlflow.db is not a SQLite database"):
        _client()


def test_store_and_artifacts_live_at_dvc_root_not_the_working_directory(experiment_copy):
    main, copy = experiment_copy
    client, experiment_id = _client()
    assert mlflow.get_tracking_uri() == f"sqlite:///{main.resolve()}/mlflow.db"
    assert (main / "mlflow.db").exists() and not (copy / "mlflow.db").exists()
    experiment = client.get_experiment(experiment_id)
    assert experiment.artifact_location == (main.resolve() / "mlartifacts").as_uri()
    assert experiment.tags["primary_metric"] == tracking.PRIMARY_METRIC
    with tracking.new_run(SETTINGS, "lightgbm", "fp-artifacts", "a test run") as run:
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
    with tracking.new_run(SETTINGS, "lightgbm", "fp-1", "a test run") as run:
        assert run is not None
        tracking.log_params({"train": {"lightgbm": {"num_leaves": 31, "tags": ["a", "b"]}}})
        mlflow.log_metric(tracking.PRIMARY_METRIC, 0.8)
    with tracking.new_run(SETTINGS, "lightgbm", "fp-1", "a test run") as again:
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
    with tracking.new_run(SETTINGS, "lightgbm", "fp-2", "a test run") as other:
        assert other is not None
    assert len(_all_runs(client, experiment_id)) == 2


def test_a_child_run_carries_its_parents_provenance(monkeypatch):
    """A search by experiment, commit or stage finds a sweep's trials as it finds their parent."""
    monkeypatch.setenv("DVC_EXP_NAME", "sweep-1")
    monkeypatch.setenv("DVC_STAGE", "tune")
    client, experiment_id = _client()
    with tracking.new_run(SETTINGS, "tune", "fp-parent", "a test run") as parent:
        with tracking.child_run("trial 0", {"trial.state": "COMPLETE"}) as child:
            pass
    found = client.search_runs([experiment_id], "tags.`dvc.exp_name` = 'sweep-1'")
    assert {r.info.run_id for r in found} == {parent.info.run_id, child.info.run_id}
    tags = client.get_run(child.info.run_id).data.tags
    parent_tags = client.get_run(parent.info.run_id).data.tags
    assert tags["trial.state"] == "COMPLETE" and tags["dvc.stage"] == "tune"
    assert tags["git.commit"] == parent_tags["git.commit"]
    assert tags["mlflow.parentRunId"] == parent.info.run_id


def test_fingerprint_is_set_only_when_the_block_completes():
    client, experiment_id = _client()
    with tracking.new_run(SETTINGS, "lightgbm", "fp-late", "a test run") as run:
        assert tracking.find_run(client, experiment_id, "fp-late") is None  # not yet
    assert tracking.find_run(client, experiment_id, "fp-late").info.run_id == run.info.run_id


KILLED_MIDWAY = """
import os, signal, mlflow
from pipeline import tracking
from pipeline.config import MlflowSettings
settings = MlflowSettings(tracking_uri="sqlite:///mlflow.db", experiment="unit", registered_model="unit")
with tracking.new_run(settings, "lightgbm", "fp-killed", "a test run"):
    with tracking.child_run("trial 0"):
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_runs_of_a_killed_process_are_ended_by_the_next_run_and_no_living_ones():
    """Known answer from outside: a training run killed with SIGKILL stayed RUNNING forever, named
    like the finished runs, and looked in the UI like training under way."""
    client, experiment_id = _client()
    killed = subprocess.run([sys.executable, "-c", KILLED_MIDWAY], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    left = {r.info.run_name: r for r in _all_runs(client, experiment_id)}
    assert {r.info.status for r in left.values()} == {"RUNNING"} and len(left) == 2
    # a run of a process that lives (this one), as another stage's under way beside it
    alive = client.create_run(experiment_id, tags={tracking.PID_TAG: str(os.getpid()),
                                                   tracking.HOST_TAG: io.HOST})
    with tracking.new_run(SETTINGS, "lightgbm", "fp-next", "a test run") as later:
        assert later is not None
    statuses = {r.info.run_id: r.info.status for r in _all_runs(client, experiment_id)}
    assert [statuses[r.info.run_id] for r in left.values()] == ["KILLED", "KILLED"]
    assert statuses[alive.info.run_id] == "RUNNING" and statuses[later.info.run_id] == "FINISHED"


def test_every_reader_takes_the_first_of_two_runs_two_machines_logged_with_one_fingerprint():
    """The lock keeps writers of one machine apart; two machines may both log a fingerprint. The
    first run is then the one for every reader (MLflow's default order is the latest first)."""
    client, experiment_id = _client()
    logged = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.set_tag(tracking.FINGERPRINT_TAG, "fp-twice")
        logged.append(run.info.run_id)
        time.sleep(0.01)  # start times in milliseconds: the two differ
    assert tracking.find_run(client, experiment_id, "fp-twice").info.run_id == logged[0]
    assert tracking.run_for_fingerprint(SETTINGS, "fp-twice").info.run_id == logged[0]


def test_a_failed_block_leaves_no_run_under_its_fingerprint():
    client, experiment_id = _client()
    with pytest.raises(RuntimeError, match="halfway"):
        with tracking.new_run(SETTINGS, "lightgbm", "fp-fail", "a test run") as run:
            mlflow.log_metric("valid_auc", 0.7)
            raise RuntimeError("failed halfway")
    assert mlflow.active_run() is None
    assert tracking.find_run(client, experiment_id, "fp-fail") is None
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    with pytest.raises(InputError, match="fp-fail"):
        tracking.run_for_fingerprint(SETTINGS, "fp-fail")
    # so the retry logs a run of its own
    with tracking.new_run(SETTINGS, "lightgbm", "fp-fail", "a test run") as retry:
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
    assert "dvc.exp_name" not in clean and tracking.commit_text(clean) == head
    (tmp_path / "f.txt").write_text("two")
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-tern")
    monkeypatch.setenv("DVC_STAGE", "train@lightgbm")
    dirty = tracking.provenance()
    assert dirty["git.dirty"] == "true"
    # the model card names the commit with its changes (an outside check: it had named it alone)
    assert tracking.commit_text(dirty) == f"{head} with uncommitted changes (the run's tag git.dirty)"
    assert dirty["dvc.exp_name"] == "brisk-tern" and dirty["dvc.stage"] == "train@lightgbm"
    with tracking.new_run(SETTINGS, "lightgbm", "fp-tags", "a test run") as run:
        pass
    tags = MlflowClient(mlflow.get_tracking_uri()).get_run(run.info.run_id).data.tags
    assert tags["git.commit"] == head and tags["git.dirty"] == "true"
    assert tags["dvc.exp_name"] == "brisk-tern"


def test_what_dvc_repro_writes_does_not_make_a_run_dirty(tmp_path, monkeypatch):
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    (tmp_path / "reports").mkdir()
    for name in ("dvc.lock", "reports/metrics.json", "params.yaml"):
        (tmp_path / name).write_text("one")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    (tmp_path / "dvc.lock").write_text("two")  # the stages before this one ran
    (tmp_path / "reports" / "metrics.json").write_text("two")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # asked from a subdirectory: the whole tree still counts
    assert tracking.provenance()["git.dirty"] == "false"
    (tmp_path / "params.yaml").write_text("two")
    assert tracking.provenance()["git.dirty"] == "true"


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
    """A run whose logged model is data (a model folder) loaded by the installed package, as
    train and decide log theirs (``tracking.log_served_model``)."""
    folder = tiny_model_dir(tmp_path / fingerprint)
    example = pd.DataFrame({"a": [0.0, 2.0], "b": [1.0, 0.5]})
    with tracking.new_run(SETTINGS, "lightgbm", fingerprint, "a run with a model") as run:
        model_id = tracking.log_served_model("pipeline.model", folder, example,
                                             CalibratedLightGBM.from_dir(folder).predict(example))
    assert run is not None
    logged = tracking.run_for_fingerprint(SETTINGS, fingerprint)
    assert logged.data.tags[tracking.MODEL_URI_TAG] == f"models:/{model_id}"
    return logged, folder


def _register(tmp_path: Path, fingerprint: str):
    from pipeline.model import MODEL_FILES

    run, folder = _run_with_model(tmp_path, fingerprint)
    tags = {tracking.FILES_TAG: json.dumps(tracking.file_digests(folder, MODEL_FILES))}
    return tracking.register_version(SETTINGS, run, fingerprint, tags, "a version"), run, folder


def test_register_version_is_idempotent(tmp_path):
    version, first, _ = _register(tmp_path, "fp-model-1")
    assert tracking.register_version(SETTINGS, first, "fp-model-1", {}, "again").version == version.version
    client = MlflowClient(mlflow.get_tracking_uri())
    versions = client.search_model_versions(f"name='{SETTINGS.registered_model}'")
    assert len(versions) == 1
    assert versions[0].tags[tracking.FINGERPRINT_TAG] == "fp-model-1"
    assert versions[0].run_id == first.info.run_id and versions[0].description == "a version"
    second, _, _ = _register(tmp_path, "fp-model-2")
    assert second.version != version.version
    assert len(client.search_model_versions(f"name='{SETTINGS.registered_model}'")) == 2
    assert tracking.version_for_fingerprint(SETTINGS, "fp-model-1").version == version.version


def test_registration_leaves_the_finished_run_unchanged(tmp_path):
    run, folder = _run_with_model(tmp_path, "fp-untouched")
    client = MlflowClient(mlflow.get_tracking_uri())
    before = client.get_run(run.info.run_id)
    tracking.register_version(SETTINGS, run, "fp-untouched", {}, "v")
    tracking.set_alias(SETTINGS, "champion", "1", {"x": "y"})
    after = client.get_run(run.info.run_id)
    assert after.info.end_time == before.info.end_time
    assert after.data.to_dictionary() == before.data.to_dictionary()


def test_aliases_and_verified_loading(tmp_path):
    from pipeline.artifacts import load_model

    version, _, folder = _register(tmp_path, "fp-alias")
    with pytest.raises(InputError, match="promote"):
        tracking.get_version(SETTINGS, "champion")
    with pytest.raises(InputError) as other:  # `limitjump promote` moves the risk model's alias only
        tracking.get_version(SETTINGS, "champion", SETTINGS.decision_model)
    assert "no version 'champion'" in str(other.value) and "promote" not in str(other.value)
    tracking.set_alias(SETTINGS, "champion", version.version, {"previous_champion": "none"})
    assert tracking.get_version(SETTINGS, "@champion").version == version.version
    assert tracking.get_version(SETTINGS, "champion").tags["previous_champion"] == "none"
    # the model built from the verified files, as a scoring command loads it
    loaded, number = load_model(f"models:/{SETTINGS.registered_model}@champion", SETTINGS)
    assert isinstance(loaded, CalibratedLightGBM)
    frame = pd.DataFrame({"a": [0.0, 2.0], "b": [1, 1]})  # integers too
    expected = CalibratedLightGBM.from_dir(folder).predict(frame)
    np.testing.assert_array_equal(loaded.predict(frame), expected)
    assert str(number) == str(version.version)
    # MLflow's own loader runs the installed package's code on the same files
    pyfunc = mlflow.pyfunc.load_model(f"models:/{SETTINGS.registered_model}@champion")
    np.testing.assert_array_equal(pyfunc.predict(frame), expected)
    # the logged model downloaded whole (its MLmodel beside data/) scores as a local folder: it
    # had been refused as "not a scoring model"
    downloaded = Path(mlflow.artifacts.download_artifacts(f"models:/{SETTINGS.registered_model}@champion",
                                                          dst_path=str(tmp_path / "downloaded")))
    local, tag = load_model(str(downloaded), SETTINGS)
    np.testing.assert_array_equal(local.predict(frame), expected)
    assert tag.startswith("local:")


def test_a_changed_artifact_is_refused(tmp_path):
    version, _, _ = _register(tmp_path, "fp-tamper")
    stored = next((tmp_path / "mlartifacts").rglob("calibration.json"))
    stored.write_text(json.dumps({"method": "platt", "intercept": 5.0, "slope": 1.0}))
    with pytest.raises(InputError, match="calibration.json does not match the digest"):
        with tracking.registered_files(SETTINGS, f"models:/{SETTINGS.registered_model}/{version.version}"):
            pass


@pytest.mark.parametrize("uri", ["models:/other@champion", "runs:/abc/model", "models:/unit"])
def test_model_uris_other_than_the_registered_model_are_refused(uri):
    _client()
    with pytest.raises(InputError, match="expected models:/unit"):
        with tracking.registered_files(SETTINGS, uri):
            pass


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
        assert tracking.resolve_uri(settings.tracking_uri) == store
    assert not (tmp_path / "other.db").exists()


def test_writers_of_one_key_take_turns_and_other_keys_do_not_wait():
    import threading

    events: list[str] = []

    def write(name: str, key: str, hold: float) -> None:
        with tracking.one_writer("store", key):
            events.append(f"{name} in")
            time.sleep(hold)
            events.append(f"{name} out")

    first = threading.Thread(target=write, args=("a", "fp", 0.4))
    first.start()
    time.sleep(0.1)  # a holds the lock of "fp"
    second = threading.Thread(target=write, args=("b", "fp", 0.0))
    other = threading.Thread(target=write, args=("c", "another fp", 0.0))
    second.start(), other.start()
    for thread in (first, second, other):
        thread.join()
    assert events.index("a out") < events.index("b in")  # the same key waited
    assert events.index("c out") < events.index("a out")  # another key did not


def test_a_version_another_machine_registered_first_is_kept_and_the_later_deleted(tmp_path):
    """Two machines that both found no version of a fingerprint both create one; each then keeps
    the lowest number, so both end with the same version and the registry with one."""
    first, run, _ = _register(tmp_path, "fp-race")
    client = MlflowClient(mlflow.get_tracking_uri())
    source = run.data.tags[tracking.MODEL_URI_TAG]
    late = client.create_model_version(SETTINGS.registered_model, source, run_id=run.info.run_id,
                                       tags={tracking.FINGERPRINT_TAG: "fp-race"})
    kept = tracking._first_of_fingerprint(client, SETTINGS.registered_model, "fp-race", late)
    assert kept.version == first.version != late.version
    left = client.search_model_versions(f"name='{SETTINGS.registered_model}'")
    assert [v.version for v in left] == [first.version]
    assert tracking._first_of_fingerprint(client, SETTINGS.registered_model, "fp-race", first).version \
        == first.version  # the first writer keeps its own


def test_a_writer_who_may_not_delete_tags_its_duplicate_version_and_keeps_the_first(tmp_path, monkeypatch):
    """A team member with EDIT on the model cannot delete a version (MLflow answers 403): the
    later version is marked as the first's duplicate and the first is kept all the same."""
    first, run, _ = _register(tmp_path, "fp-edit")
    client = MlflowClient(mlflow.get_tracking_uri())
    late = client.create_model_version(SETTINGS.registered_model, run.data.tags[tracking.MODEL_URI_TAG],
                                       run_id=run.info.run_id, tags={tracking.FINGERPRINT_TAG: "fp-edit"})

    def refused(*_args):
        raise MlflowException("API request to endpoint /api/2.0/mlflow/model-versions/delete failed "
                              "with error code 403 != 200. Response body: 'Permission denied'")
    monkeypatch.setattr(client, "delete_model_version", refused)
    kept = tracking._first_of_fingerprint(client, SETTINGS.registered_model, "fp-edit", late)
    assert kept.version == first.version != late.version
    marked = client.get_model_version(SETTINGS.registered_model, late.version)
    assert marked.tags[tracking.DUPLICATE_TAG] == str(first.version)
    assert tracking.version_for_fingerprint(SETTINGS, "fp-edit").version == first.version


def test_a_wrong_decision_model_uri_names_only_versions_since_no_alias_is_set_on_it():
    _client()
    with pytest.raises(InputError) as refused:
        with tracking.registered_files(SETTINGS, "models:/unit@champion", decision=True):
            pass
    said = str(refused.value)
    assert f"expected models:/{SETTINGS.decision_model}/<version> or a local model folder" in said
    assert "@<alias>" not in said
