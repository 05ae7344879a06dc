"""MLflow end to end, in a temporary clone on a small configuration: the training runs, the logged
model (a pyfunc of the calibrated probability, no pickles), the gated registry, and a real
``mlflow server`` queried through its REST API.

The module fixture runs simulate -> features -> split -> train scorecard -> train lightgbm ->
register once; the tests read what it left. Only the last local test changes the clone (a refused
promotion), and the tests before it compare against copies taken by the fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from pipeline import io, tracking
from pipeline.config import load_params
from pipeline.model import CalibratedLightGBM
from tests.conftest import merge, raw_params
from tests.test_pipeline_e2e import clone_project, project_env

BIN = Path(sys.executable).parent
NAME = "limitjump"  # experiment and registered model in params.yaml
SMALL = {"engine": {"workers": 2},
         "simulate": {"n_borrowers": 4000, "shard_size": 2000, "truth_replicates": 4},
         "train": {"lightgbm": {"num_boost_round": 60, "early_stopping_rounds": 10}},
         # relaxed so that a small, noisy model is promoted
         "register": {"min_oot_auc": 0.5, "max_calibration_error": 0.2, "min_gain_over_scorecard": -1.0}}
METRICS = ("auc", "ks", "brier", "log_loss")
# outputs of earlier runs, in case the working tree holds them unignored: never part of a clone
LEFTOVERS = ("models/lightgbm", "models/scorecard", "reports/gates.json", "reports/train/lightgbm.json",
             "reports/train/scorecard.json", "promotions.jsonl", "mlflow.db", "mlartifacts", "mlruns")
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]

pytestmark = pytest.mark.slow


# ---- helpers (also used by test_dvc_queue.py) ------------------------------------------------

def small_clone(dest: Path, overrides: dict | None = None) -> Path:
    """A clone of the working tree with the small params committed, and no outputs of earlier runs."""
    dest.mkdir(parents=True)
    clone_project(dest)
    subprocess.run([*GIT, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *LEFTOVERS],
                   cwd=dest, check=True)
    for name in LEFTOVERS:
        path = dest / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    write_params(dest, merge(SMALL, overrides or {}))
    commit(dest, "small params")
    return dest


def write_params(project: Path, overrides: dict) -> None:
    """The working tree's params.yaml with ``overrides``, into the clone."""
    (project / "params.yaml").write_text(yaml.safe_dump(merge(raw_params(), overrides), sort_keys=False))


def commit(project: Path, message: str) -> str:
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", message], cwd=project, check=True)
    return head(project)


def head(project: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True,
                          check=True).stdout.strip()


def env_for(project: Path, **extra: str) -> dict:
    """The venv on PATH, the clone's own code first on the import path (the venv's editable install
    points at the main working tree), and no MLflow or DVC variables from this process."""
    env = project_env(project)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(project)
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict, timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def pickles(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle")]


# ---- the local store -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The small pipeline, trained and registered once into the clone's own sqlite store."""
    root = small_clone(tmp_path_factory.mktemp("mlflow") / "clone")
    env = env_for(root)
    started = time.perf_counter()
    for command in (["simulate"], ["features"], ["split"], ["train", "scorecard"], ["train", "lightgbm"],
                    ["register"]):
        run(["limitjump", *command], root, env)
    print(f"pipeline in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    first = root.parent / "first_lightgbm"  # models/lightgbm as registered, before any retraining
    shutil.copytree(root / "models" / "lightgbm", first)
    return SimpleNamespace(
        root=root, env=env, uri=f"sqlite:///{root}/mlflow.db", head=head(root), first_model=first,
        params=load_params(root / "params.yaml"),
        metadata={kind: json.loads((root / "models" / kind / "metadata.json").read_text())
                  for kind in ("scorecard", "lightgbm")},
        reports={kind: json.loads((root / "reports" / "train" / f"{kind}.json").read_text())
                 for kind in ("scorecard", "lightgbm")},
        gates=json.loads((root / "reports" / "gates.json").read_text()),
        promotions=(root / tracking.PROMOTION_LOG).read_text().splitlines())


@pytest.fixture
def store(project):
    """MLflow pointed at the clone's store for this test; its globals and variables reset after."""
    previous = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(project.uri)
    mlflow.set_registry_uri(project.uri)
    yield MlflowClient(project.uri)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _runs(client: MlflowClient) -> dict[str, list]:
    experiment = client.get_experiment_by_name(NAME)
    out: dict[str, list] = {}
    for r in client.search_runs([experiment.experiment_id], max_results=1000):
        out.setdefault(r.info.run_name, []).append(r)
    return out


def _first_run(client: MlflowClient, kind: str, project):
    """The run the fixture logged for ``kind`` (found by the fingerprint its output holds)."""
    found = [r for r in _runs(client)[kind]
             if r.data.tags.get(tracking.FINGERPRINT_TAG) == project.metadata[kind]["fingerprint"]]
    assert len(found) == 1
    return found[0]


def _test_features(project) -> pd.DataFrame:
    test = pd.read_parquet(project.root / "data" / "split" / "test.parquet")
    return test[project.metadata["lightgbm"]["features"]]


def test_each_model_is_one_run_with_params_data_metrics_and_provenance(project, store):
    experiment = store.get_experiment_by_name(NAME)
    assert experiment.artifact_location == (project.root / "mlartifacts").as_uri()
    assert experiment.tags["primary_metric"] == "oot_auc"
    runs = _runs(store)
    assert sorted(runs) == ["lightgbm", "scorecard"]
    assert all(len(found) == 1 for found in runs.values())
    for kind in ("scorecard", "lightgbm"):
        r = _first_run(store, kind, project)
        assert r.info.status == "FINISHED"
        assert r.info.artifact_uri.startswith((project.root / "mlartifacts").as_uri())
        metrics = r.data.metrics
        assert metrics["oot_auc"] == metrics["test_auc"]
        for split in ("valid", "test"):
            for name in METRICS:
                assert np.isfinite(metrics[f"{split}_{name}"]), (kind, split, name)
        for name, value in project.reports[kind].items():
            assert metrics[name] == pytest.approx(value, rel=1e-12), (kind, name)
        # every param of the stage, flattened, plus the label and split definitions
        settings = getattr(project.params.train, kind).model_dump()
        expected = tracking.flatten({"train": {kind: settings}, "label": project.params.label.model_dump(),
                                     "split": project.params.split.model_dump()})
        for name, value in expected.items():
            text = json.dumps(value) if isinstance(value, list | tuple) else str(value)
            assert r.data.params[name] == text, name
        # provenance: the clone's commit, with nothing uncommitted
        tags = r.data.tags
        assert tags["git.commit"] == project.head
        assert tags["git.dirty"] == "false"
        assert tags["model"] == kind
        assert "dvc.exp_name" not in tags  # not run by `dvc exp run`
        # the three splits, with the digest of the file each came from
        inputs = {d.dataset.name: d for d in r.inputs.dataset_inputs}
        assert sorted(inputs) == ["test", "train", "valid"]
        for name, logged in inputs.items():
            digest = io.file_digest(project.root / "data" / "split" / f"{name}.parquet")
            assert logged.dataset.digest == digest[:16]
            context = {t.key: t.value for t in logged.tags}["mlflow.data.context"]
            assert context == ("training" if name == "train" else name)
    lightgbm = _first_run(store, "lightgbm", project)
    assert lightgbm.data.params["train.lightgbm.num_leaves"] == "31"
    assert lightgbm.data.metrics["trees"] == project.metadata["lightgbm"]["params"]["trees"] > 0
    assert lightgbm.data.params["train.lightgbm.trees"] == str(int(lightgbm.data.metrics["trees"]))


def test_logged_model_is_code_with_signature_and_example_and_no_pickles(project, store, tmp_path):
    r = _first_run(store, "lightgbm", project)
    uri = r.data.tags[tracking.MODEL_URI_TAG]
    logged = store.get_logged_model(uri.removeprefix("models:/"))
    assert logged.source_run_id == r.info.run_id
    info = mlflow.models.get_model_info(uri)
    features = project.metadata["lightgbm"]["features"]
    assert info.signature is not None
    assert info.signature.inputs.input_names() == features
    assert info.signature.outputs.to_dict()[0]["tensor-spec"]["dtype"] == "float64"
    assert info.saved_input_example_info is not None
    pyfunc = info.flavors["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"  # "models from code"
    assert "python_model" not in pyfunc  # the key of a cloudpickled python_model.pkl
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model")))
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == features and 0 < len(example) <= 5
    for name in ("model.txt", "calibration.json", "categories.json"):
        assert io.file_digest(local / "artifacts" / name) == io.file_digest(project.first_model / name)
    assert pickles(local) == []
    assert pickles(project.root / "mlartifacts") == []
    assert (project.root / "mlartifacts").is_dir() and not (project.root / "mlruns").exists()


def test_champion_returns_the_calibrated_probability(project, store):
    frame = _test_features(project)
    champion = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    scores = np.asarray(champion.predict(frame))
    assert scores.shape == (len(frame),) and scores.dtype == np.float64
    assert ((scores > 0) & (scores < 1)).all()
    assert len(np.unique(scores)) > 2  # a probability, not a class label
    local = CalibratedLightGBM.from_dir(project.first_model)
    np.testing.assert_allclose(scores, local.predict(None, frame), rtol=0, atol=1e-12)
    assert not np.allclose(scores, local.raw(frame))  # calibrated, not the booster's raw output


def test_mlflow_models_predict_cli(project, tmp_path):
    frame = _test_features(project).head(50)
    frame.to_csv(tmp_path / "in.csv", index=False)
    run([str(BIN / "mlflow"), "models", "predict", "-m", f"models:/{NAME}@champion",
         "-i", str(tmp_path / "in.csv"), "-t", "csv", "--env-manager", "local",
         "-o", str(tmp_path / "out.json")], tmp_path, {**project.env, "MLFLOW_TRACKING_URI": project.uri})
    predictions = json.loads((tmp_path / "out.json").read_text())["predictions"]
    expected = CalibratedLightGBM.from_dir(project.first_model).predict(None, frame)
    np.testing.assert_allclose(np.asarray(predictions, dtype=float), expected, rtol=0, atol=1e-12)


def test_training_again_logs_no_second_run(project, store):
    before = {name: len(found) for name, found in _runs(store).items()}
    out = run(["limitjump", "train", "lightgbm"], project.root, project.env)
    assert "already logged" in out
    assert {name: len(found) for name, found in _runs(store).items()} == before


def test_first_registration_is_promoted(project, store):
    fingerprint = project.metadata["lightgbm"]["fingerprint"]
    assert project.gates["decision"] == "promoted" and project.gates["failed"] == []
    assert project.gates["challenger_fingerprint"] == fingerprint
    assert set(project.gates["gates"]) == {"min_oot_auc", "max_calibration_error", "beats_scorecard"}
    assert all(g["passed"] for g in project.gates["gates"].values())
    assert len(project.promotions) == 1
    entry = json.loads(project.promotions[0])
    assert entry["decision"] == "promoted" and entry["previous_champion"] is None
    assert entry["fingerprint"] == fingerprint and entry["failed_gates"] == []
    assert entry["figures"] == {name: g["value"] for name, g in project.gates["gates"].items()}
    assert entry["time"]
    first = store.get_model_version(NAME, str(entry["version"]))
    assert first.run_id == _first_run(store, "lightgbm", project).info.run_id
    assert first.tags[tracking.FINGERPRINT_TAG] == fingerprint
    assert first.tags["previous_champion"] == "none"
    assert json.loads(first.tags["gate_results"]) == entry["figures"]
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == str(entry["version"])


def test_a_failed_gate_refuses_and_keeps_the_champion(project, store):
    """Runs last among the local tests: it retrains and registers a second version."""
    champion = str(store.get_model_version_by_alias(NAME, "champion").version)
    lines = (project.root / tracking.PROMOTION_LOG).read_text().splitlines()
    write_params(project.root, merge(SMALL, {"register": {"min_oot_auc": 0.99},
                                             "train": {"lightgbm": {"num_leaves": 15}}}))
    run(["limitjump", "train", "lightgbm"], project.root, project.env)
    out = run(["limitjump", "register"], project.root, project.env)
    assert "refused version" in out and "min_oot_auc" in out

    gates = json.loads((project.root / "reports" / "gates.json").read_text())
    assert gates["decision"] == "refused"
    assert "min_oot_auc" in gates["failed"]
    assert gates["gates"]["min_oot_auc"]["passed"] is False
    assert gates["gates"]["min_oot_auc"]["threshold"] == 0.99
    assert "not_worse_than_champion" in gates["gates"]  # compared with the champion on the same rows

    new_lines = (project.root / tracking.PROMOTION_LOG).read_text().splitlines()
    assert new_lines[:len(lines)] == lines and len(new_lines) == len(lines) + 1  # appended
    entry = json.loads(new_lines[-1])
    assert entry["decision"] == "refused" and "min_oot_auc" in entry["failed_gates"]
    assert str(entry["previous_champion"]) == champion
    assert str(entry["version"]) != champion
    assert entry["figures"]["min_oot_auc"] == gates["gates"]["min_oot_auc"]["value"]

    assert str(store.get_model_version_by_alias(NAME, "champion").version) == champion
    assert str(store.get_model_version_by_alias(NAME, "challenger").version) == str(entry["version"])
    retrained = [r for r in _runs(store)["lightgbm"] if r.data.params["train.lightgbm.num_leaves"] == "15"]
    assert len(retrained) == 1
    assert retrained[0].data.tags["git.dirty"] == "true"  # params.yaml changed, not committed
    version = store.get_model_version(NAME, str(entry["version"]))
    assert version.run_id == retrained[0].info.run_id


# ---- a real tracking server ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow server exited {server.returncode}\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow server not healthy after {timeout} s\n{log.read_text()}")


def _stop(server: subprocess.Popen) -> None:
    """The server's whole process group (uvicorn forks), by the id of the process started here."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


@pytest.mark.timeout(900)
def test_tracking_server_receives_runs_and_registry(project, tmp_path):
    work = tmp_path / "work"  # a copy of the clone with its data but no store or models
    shutil.copytree(project.root, work, ignore=shutil.ignore_patterns(
        "mlflow.db", "mlartifacts", "promotions.jsonl", "lightgbm", "scorecard", "gates.json", "tmp"))
    write_params(work, SMALL)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
             "--default-artifact-root", str(tmp_path / "art"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**env_for(work), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        started = time.perf_counter()
        _wait_healthy(url, server, log)
        print(f"mlflow server healthy in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        env = env_for(work, MLFLOW_TRACKING_URI=url)
        for command in (["train", "scorecard"], ["train", "lightgbm"], ["register"]):
            run(["limitjump", *command], work, env)

        api = f"{url}/api/2.0/mlflow"
        experiments = _request(f"{api}/experiments/search",
                               {"filter": f"name = '{NAME}'", "max_results": 10})["experiments"]
        assert len(experiments) == 1
        experiment_id = experiments[0]["experiment_id"]
        runs = _request(f"{api}/runs/search", {"experiment_ids": [experiment_id], "max_results": 100})["runs"]
        by_name = {r["info"]["run_name"]: r for r in runs}
        assert sorted(by_name) == ["lightgbm", "scorecard"] and len(runs) == 2
        for kind, r in by_name.items():
            assert r["info"]["status"] == "FINISHED"
            metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
            assert 0.5 < metrics["oot_auc"] <= 1 and metrics["oot_auc"] == metrics["test_auc"]
            assert {f"{s}_{m}" for s in ("valid", "test") for m in METRICS} <= set(metrics)
            params = {p["key"]: p["value"] for p in r["data"]["params"]}
            assert f"train.{kind}.min_iv" in params or f"train.{kind}.num_leaves" in params
            tags = {t["key"]: t["value"] for t in r["data"]["tags"]}
            assert tags["git.commit"] == project.head and tags[tracking.FINGERPRINT_TAG]
            assert len(r["inputs"]["dataset_inputs"]) == 3
        assert {m["key"] for m in by_name["lightgbm"]["data"]["metrics"]} >= {"trees"}

        champion = _request(f"{api}/registered-models/alias?name={NAME}&alias=champion")["model_version"]
        assert champion["version"] == "1"
        assert champion["run_id"] == by_name["lightgbm"]["info"]["run_id"]
        challenger = _request(f"{api}/registered-models/alias?name={NAME}&alias=challenger")["model_version"]
        assert challenger["version"] == "1"

        # everything went to the server: no local store, artifacts under the server's root
        assert not (work / "mlflow.db").exists() and not (work / "mlartifacts").exists()
        assert list((tmp_path / "art").rglob("model.txt")) and pickles(tmp_path / "art") == []
    finally:
        _stop(server)
