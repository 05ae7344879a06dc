"""MLflow end to end, in a temporary clone on a small configuration, through the real clients: the
training runs, the logged model (data loaded by the installed package: no pickles, no stored code),
registration without promotion, ``limitjump promote``, the evaluation's own run (finished runs are
never rewritten), ``mlflow models predict`` and ``serve`` on whole numbers, the README's snippet
from a subdirectory, the champion on several processes and on Dask, and a queued DVC experiment.
(A tracking server, with users and two experiments at once, is tested in tests/test_team.py.)

The module fixture runs ``dvc repro evaluate`` once, commits what it left and snapshots the runs;
the tests read it. The last tests change the clone (more versions, promotions, an experiment) and
check that no finished run was rewritten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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

from pipeline import io, processes, team, tracking
from pipeline.config import load_params
from pipeline.model import CalibratedLightGBM
from tests.conftest import ROOT, free_port, merge, raw_params
from tests.test_pipeline_e2e import clone_project, project_env

BIN = Path(sys.executable).parent
NAME = "limitjump"  # experiment and registered model in params.yaml
SMALL = {"engine": {"workers": 2},
         "simulate": {"n_borrowers": 4000, "shard_size": 2000, "truth_replicates": 4},
         # evaluate waits for the monitor (the card shows it): a short, small stream
         "monitor": {"months": 6, "borrowers_per_month": 400, "truth_replicates": 2},
         "train": {"lightgbm": {"num_boost_round": 60, "early_stopping_rounds": 10}},
         # relaxed so that a small, noisy model is promoted
         "register": {"min_oot_auc": 0.5, "max_calibration_error": 0.2, "min_gain_over_scorecard": -1.0,
                      "min_test_misses": 20}}
METRICS = ("auc", "ks", "brier", "log_loss")
# outputs of earlier runs, in case the working tree holds them unignored: never part of a clone
LEFTOVERS = ("models/lightgbm", "models/scorecard", "reports/gates.json", "reports/train/lightgbm.json",
             "reports/train/scorecard.json", "promotions.jsonl", "mlflow.db", "mlartifacts", "mlruns",
             "reports/metrics.json", "reports/plots", "reports/params_valid.json", "reports/simulation.json",
             "reports/split.json")
NOISE = ("INFO mlflow", "Registered model", "Downloading artifacts", "Successfully registered")
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
    """The small pipeline, trained, registered and evaluated once into the clone's own store, by
    ``dvc repro`` (so that experiments can be queued from the commit that follows)."""
    root = small_clone(tmp_path_factory.mktemp("mlflow") / "clone")
    env = env_for(root)
    started = time.perf_counter()
    repro = run(["dvc", "repro", "evaluate"], root, env)
    print(f"pipeline in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    ran_from = head(root)
    baseline = commit(root, "reproduced")
    first = root.parent / "first_lightgbm"  # models/lightgbm as registered, before any retraining
    shutil.copytree(root / "models" / "lightgbm", first)
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    return SimpleNamespace(
        root=root, env=env, uri=f"sqlite:///{root}/mlflow.db", head=ran_from, baseline=baseline,
        first_model=first, params=load_params(root / "params.yaml"), repro=repro,
        metadata={kind: json.loads((root / "models" / kind / "metadata.json").read_text())
                  for kind in ("scorecard", "lightgbm")},
        reports={kind: json.loads((root / "reports" / "train" / f"{kind}.json").read_text())
                 for kind in ("scorecard", "lightgbm")},
        gates=json.loads((root / "reports" / "gates.json").read_text()),
        snapshot=_snapshot(client))


def _snapshot(client: MlflowClient) -> dict:
    """Every run's status, end time, params, metrics (with their history), tags and artifacts."""
    experiment = client.get_experiment_by_name(NAME)
    out = {}
    for r in client.search_runs([experiment.experiment_id], max_results=1000):
        history = {k: [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, k)]
                   for k in r.data.metrics}
        artifacts = sorted(a.path for a in client.list_artifacts(r.info.run_id))
        out[r.info.run_id] = {"status": r.info.status, "end_time": r.info.end_time, "params": r.data.params,
                              "history": history, "tags": r.data.tags, "artifacts": artifacts}
    return out


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
    """Runs by what they are (the ``model`` tag: scorecard, lightgbm, evaluate)."""
    experiment = client.get_experiment_by_name(NAME)
    out: dict[str, list] = {}
    for r in client.search_runs([experiment.experiment_id], max_results=1000):
        out.setdefault(r.data.tags["model"], []).append(r)
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


def _whole_numbers(project, rows: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same rows twice: every feature rounded to a whole number, once as floats, once as
    integers (nullable where training had missing values, so some cells stay empty)."""
    floats = _test_features(project).head(rows).round()
    ints = floats.copy()
    for c in ints.columns:
        ints[c] = ints[c].astype("Int64")
    assert ints.isna().any().any(), "the example should carry missing values"
    return floats, ints


def test_each_model_is_one_run_with_params_data_metrics_and_provenance(project, store):
    experiment = store.get_experiment_by_name(NAME)
    assert experiment.artifact_location == (project.root / "mlartifacts").as_uri()
    assert experiment.tags["primary_metric"] == "oot_auc"
    runs = _runs(store)
    # evaluate's card needs decide, which logs its model and that model's evaluation
    kinds = {"evaluate", "lightgbm", "scorecard", "monitor", "decision", "decision-evaluation"}
    assert kinds <= set(runs)
    assert all(len(runs[kind]) == 1 for kind in kinds)
    assert all(kind.startswith("monitor-") for kind in set(runs) - kinds)
    for kind in ("scorecard", "lightgbm"):
        r = _first_run(store, kind, project)
        assert r.info.status == "FINISHED"
        assert r.info.run_name == f"{kind} · {project.head[:7]}"  # says what it is
        assert r.data.tags["mlflow.note.content"].startswith(("Calibrated", "WoE"))
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
    # "auto" settings are logged with what they resolved to on the training rows
    assert lightgbm.data.params["train.lightgbm.min_data_in_leaf"] == "auto"
    rows = project.metadata["lightgbm"]["rows"]["train"]
    assert lightgbm.data.params["train.lightgbm.min_data_in_leaf_used"] == str(min(200, max(20, rows // 20)))
    assert lightgbm.data.params["train.lightgbm.calibration_used"] in ("isotonic", "platt")


def test_stage_output_is_quiet(project):
    assert "Running stage 'evaluate'" in project.repro
    assert not any(noise in project.repro for noise in NOISE), project.repro


def test_logged_model_is_data_with_signature_example_and_linked_datasets(project, store, tmp_path):
    r = _first_run(store, "lightgbm", project)
    uri = r.data.tags[tracking.MODEL_URI_TAG]
    logged = store.get_logged_model(uri.removeprefix("models:/"))
    assert logged.source_run_id == r.info.run_id
    # the model's metrics name the dataset they were measured on
    linked = {(m.key, m.dataset_name) for m in logged.metrics}
    assert ("test_auc", "test") in linked and ("valid_auc", "valid") in linked
    info = mlflow.models.get_model_info(uri)
    features = project.metadata["lightgbm"]["features"]
    # no input schema, so whole numbers, text and blanks pass MLflow; the example names the columns
    assert info.signature.inputs is None
    assert info.signature.outputs.to_dict()[0]["tensor-spec"]["dtype"] == "float64"
    assert info.saved_input_example_info is not None
    pyfunc = info.flavors["python_function"]
    assert pyfunc["loader_module"] == "pipeline.model"  # the installed package's code
    assert "python_model" not in pyfunc and pyfunc.get("code") is None  # no pickle, no code stored
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model")))
    assert not list(local.rglob("*.py"))
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == features and 0 < len(example) <= 5
    for name in ("model.txt", "calibration.json", "categories.json", "label.json"):
        assert io.file_digest(local / pyfunc["data"] / name) == io.file_digest(project.first_model / name)
    assert pickles(local) == [] and pickles(project.root / "mlartifacts") == []
    assert (project.root / "mlartifacts").is_dir() and not (project.root / "mlruns").exists()


def test_the_readmes_python_snippet_loads_the_registered_model_from_a_subdirectory(project):
    """README, "To load a registered model in Python, from anywhere in the repository": MLflow 3
    would otherwise open a new, empty mlflow.db in the working directory."""
    snippet = ("import json, mlflow, pandas as pd\n"
               "from pipeline.config import load_params, repo_root\n"
               "from pipeline.tracking import use_project_store\n"
               "print('uri', use_project_store(load_params(repo_root() / 'params.yaml').mlflow))\n"
               f"model = mlflow.pyfunc.load_model('models:/{NAME}/1')\n"
               "rows = pd.read_parquet('../data/split/test.parquet').head(5)\n"
               "print('p', json.dumps([float(v) for v in model.predict(rows)]))\n")
    output = run([sys.executable, "-c", snippet], project.root / "docs", project.env)
    said = dict(line.split(" ", 1) for line in output.splitlines() if line.startswith(("uri ", "p ")))
    assert said["uri"] == project.uri and not (project.root / "docs" / "mlflow.db").exists()
    rows = pd.read_parquet(project.root / "data" / "split" / "test.parquet").head(5)
    expected = CalibratedLightGBM.from_dir(project.first_model).predict(rows)
    np.testing.assert_allclose(json.loads(said["p"]), expected, rtol=0, atol=1e-12)


def test_registration_records_gates_and_digests_and_moves_no_champion(project, store):
    fingerprint = project.metadata["lightgbm"]["fingerprint"]
    assert project.gates["passed"] is True and project.gates["failed"] == []
    assert project.gates["challenger_fingerprint"] == fingerprint
    assert set(project.gates["gates"]) == {"min_oot_auc", "max_calibration_error", "beats_scorecard",
                                           "min_test_misses"}
    version = store.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == _first_run(store, "lightgbm", project).info.run_id
    assert version.tags[tracking.FINGERPRINT_TAG] == fingerprint
    assert version.tags[tracking.GATE_TAG] == "true" and version.description
    digests = json.loads(version.tags[tracking.FILES_TAG])
    assert digests["model.txt"] == io.file_digest(project.first_model / "model.txt")
    with pytest.raises(mlflow.exceptions.MlflowException):
        store.get_model_version_by_alias(NAME, "champion")  # only `limitjump promote` moves it
    assert not (project.root / tracking.PROMOTION_LOG).exists()
    assert "now @challenger" in project.repro


def test_evaluation_is_its_own_run_linked_to_the_models(project, store, tmp_path):
    evaluation = _runs(store)["evaluate"][0]
    tags = evaluation.data.tags
    assert tags["limitjump.lightgbm_run"] == _first_run(store, "lightgbm", project).info.run_id
    assert tags["limitjump.scorecard_run"] == _first_run(store, "scorecard", project).info.run_id
    assert tags["limitjump.model_version"] == "1"
    headline = json.loads((project.root / "reports" / "metrics.json").read_text())
    assert evaluation.data.metrics["lightgbm.oot_auc"] == pytest.approx(headline["lightgbm"]["auc"], abs=1e-4)
    page = Path(mlflow.artifacts.download_artifacts(f"runs:/{evaluation.info.run_id}/model_card.html",
                                                    dst_path=str(tmp_path))).read_text()
    provenance = page[page.index('id="provenance"'):page.index('id="checks"')]
    for value in (evaluation.info.run_id, tags["limitjump.lightgbm_run"], project.head):
        assert value in provenance
    # the copy DVC keeps names no run, version or time: it depends only on what DVC tracks
    kept = (project.root / "reports" / "model_card.html").read_text()
    assert evaluation.info.run_id not in kept and "generated" not in kept[:kept.index('id="checks"')]


def test_evaluating_again_logs_nothing_and_rewrites_nothing(project, store):
    out = run(["limitjump", "evaluate"], project.root, project.env)
    assert "already logged" in out
    assert _snapshot(store) == project.snapshot


def test_training_again_logs_no_second_run(project, store):
    before = {name: len(found) for name, found in _runs(store).items()}
    out = run(["limitjump", "train", "lightgbm"], project.root, project.env)
    assert "already logged" in out
    assert {name: len(found) for name, found in _runs(store).items()} == before


def test_mlflow_models_predict_takes_whole_numbers_csv_and_json(project, store, tmp_path):
    floats, ints = _whole_numbers(project)
    expected = CalibratedLightGBM.from_dir(project.first_model).predict(floats)
    env = {**project.env, "MLFLOW_TRACKING_URI": project.uri}
    floats.to_csv(tmp_path / "floats.csv", index=False)
    ints.to_csv(tmp_path / "ints.csv", index=False)
    (tmp_path / "ints.json").write_text(json.dumps(
        {"dataframe_split": json.loads(ints.to_json(orient="split", index=False))}))
    for name, kind in (("floats.csv", "csv"), ("ints.csv", "csv"), ("ints.json", "json")):
        out = tmp_path / f"{name}.out"
        run([str(BIN / "mlflow"), "models", "predict", "-m", f"models:/{NAME}/1", "-i",
             str(tmp_path / name), "-t", kind, "--env-manager", "local", "-o", str(out)], tmp_path, env)
        got = np.asarray(json.loads(out.read_text())["predictions"], dtype=float)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=name)
    # pyfunc.predict on the frames themselves
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    for frame in (floats, ints, pd.read_csv(tmp_path / "ints.csv")):
        np.testing.assert_allclose(np.asarray(pyfunc.predict(frame)), expected, rtol=0, atol=1e-12)
    with pytest.raises(mlflow.exceptions.MlflowException, match="lacks 1 of the model's columns"):
        pyfunc.predict(floats.drop(columns=floats.columns[0]))
    # a value the scorer would reject refuses the request, named, rather than get a probability
    negative = floats.copy()
    negative.iloc[2, negative.columns.get_loc("increase_amount")] = -5.0
    with pytest.raises(mlflow.exceptions.MlflowException,
                       match=r"1 of 40 rows .* refuses: 'increase_amount' fails in_range.*row 2 -5.0"):
        pyfunc.predict(negative)
    # rows taken on another day after the jump than the model's window are refused, named
    dated = pd.read_parquet(project.root / "data" / "split" / "test.parquet").head(40)
    local = CalibratedLightGBM.from_dir(project.first_model)
    np.testing.assert_allclose(np.asarray(pyfunc.predict(dated)), local.predict(dated), rtol=0, atol=1e-12)
    dated.loc[3, "jump_date"] -= pd.Timedelta(days=15)
    with pytest.raises(mlflow.exceptions.MlflowException,
                       match=r"1 of 40 rows .* not 30 days after jump_date.*row 3 45 days"):
        pyfunc.predict(dated)
    # and a scoring date after today, which `limitjump score` rejects, had been scored
    dated = dated.assign(jump_date=dated["scoring_date"] - pd.Timedelta(days=30))
    dated.loc[5, ["jump_date", "scoring_date"]] = [pd.Timestamp("2099-12-02"), pd.Timestamp("2100-01-01")]
    with pytest.raises(mlflow.exceptions.MlflowException, match="1 of 40 rows have a scoring_date after to"):
        pyfunc.predict(dated)
    # text where a number belongs: the client's error names the column and the row
    text = ints.astype({"trigger": object})
    text.iloc[1, text.columns.get_loc("trigger")] = "score_improvement"
    text.to_csv(tmp_path / "text.csv", index=False)
    done = subprocess.run([str(BIN / "mlflow"), "models", "predict", "-m", f"models:/{NAME}/1", "-i",
                           str(tmp_path / "text.csv"), "-t", "csv", "--env-manager", "local"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "column 'trigger' must hold numbers: 1 of" in done.stderr
    assert "row 1 'score_improvement'" in done.stderr
    # a column given twice in a CSV, which pandas reads as 'credit_score' and 'credit_score.1': the
    # first copy had been scored, exit 0
    twice = ints.copy()
    twice.insert(0, "credit_score", 400, allow_duplicates=True)
    twice.to_csv(tmp_path / "twice.csv", index=False)
    done = subprocess.run([str(BIN / "mlflow"), "models", "predict", "-m", f"models:/{NAME}/1", "-i",
                           str(tmp_path / "twice.csv"), "-t", "csv", "--env-manager", "local"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "'credit_score' (its copy read as 'credit_score.1')" in done.stderr


@pytest.mark.timeout(300)
def test_mlflow_models_serve_takes_the_same_whole_numbers(project, tmp_path):
    floats, ints = _whole_numbers(project, rows=10)
    expected = CalibratedLightGBM.from_dir(project.first_model).predict(floats)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}/1", "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
            env={**project.env, "MLFLOW_TRACKING_URI": project.uri})
    try:
        url = f"http://127.0.0.1:{port}"
        team.wait_healthy(url, server, log, timeout=90)
        request = urllib.request.Request(f"{url}/invocations", data=ints.to_csv(index=False).encode(),
                                         headers={"Content-Type": "text/csv"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            got = np.asarray(json.loads(response.read())["predictions"], dtype=float)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        # MLflow's `inputs` JSON, as records and as columns, which MLflow hands on as a list and
        # a dict (a traceback before): the same probabilities
        for orient in ("records", "columns"):
            body = json.dumps({"inputs": json.loads(ints.to_json(orient=orient))}).encode()
            request = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                got = np.asarray(json.loads(response.read())["predictions"], dtype=float)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=orient)
        # a bad request is answered with what is wrong, not "an unexpected error" and a stack trace
        twice = pd.concat([ints, ints[["age"]]], axis=1)  # two extracts joined side by side
        body = json.dumps({"dataframe_split": json.loads(twice.to_json(orient="split", index=False))})
        request = urllib.request.Request(f"{url}/invocations", data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        answer = json.loads(refused.value.read())
        assert refused.value.code == 400 and "stack_trace" not in answer, answer
        assert "1 column name more than once: ['age']" in answer["message"], answer
        text = ints.astype({"credit_score": object})
        text.iloc[2, text.columns.get_loc("credit_score")] = "good"
        request = urllib.request.Request(f"{url}/invocations", data=text.to_csv(index=False).encode(),
                                         headers={"Content-Type": "text/csv"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        answer = json.loads(refused.value.read())
        assert refused.value.code == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
        assert "column 'credit_score' must hold numbers: 1 of 10 rows" in answer["message"], answer
        assert "row 2 'good'" in answer["message"] and "stack_trace" not in answer
        blank = ints.copy()
        blank.loc[4, "age"] = pd.NA  # always known: the scorer rejects such a row
        request = urllib.request.Request(f"{url}/invocations", data=blank.to_csv(index=False).encode(),
                                         headers={"Content-Type": "text/csv"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        answer = json.loads(refused.value.read())
        assert refused.value.code == 400, answer
        assert "1 of 10 rows hold values the features contract refuses: 'age' fails not_nullable in 1 row " \
            "(row 4 missing)" in answer["message"], answer
    finally:
        processes.stop_tree(server.pid)


def test_readme_snippet_works_from_a_subdirectory(project, tmp_path):
    readme = (ROOT / "README.md").read_text()
    snippet = readme[readme.index("```python\nimport mlflow"):]
    snippet = snippet[len("```python\n"):snippet.index("```", 10)]
    frame = _test_features(project).head(5)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    rows = str(tmp_path / "rows.csv")
    script = snippet + f"\nimport pandas as pd\nprint(model.predict(pd.read_csv({rows!r})).tolist())\n"
    where = project.root / "reports" / "somewhere"
    where.mkdir(parents=True, exist_ok=True)
    run(["limitjump", "promote", "--version", "1"], where, project.env)  # the snippet loads @champion
    out = subprocess.run([sys.executable, "-c", script], cwd=where, env=project.env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    expected = CalibratedLightGBM.from_dir(project.first_model).predict(frame)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert list(where.iterdir()) == [] and not list(project.root.glob("reports/**/mlflow.db"))


@pytest.mark.timeout(600)
def test_the_champion_scores_on_two_workers_and_on_dask(project, tmp_path):
    """The registered champion (not a local folder) on two local workers (threads for the
    features path, processes for the raw-tables path) and on a Dask cluster: the same bytes as
    one worker."""
    _promote(project, "1")
    outputs = {}
    for engine in ({"kind": "local", "workers": 1}, {"kind": "local", "workers": 2},
                   {"kind": "dask", "workers": 2}):
        for source in ("features", "raw"):
            params = tmp_path / f"{engine['kind']}{engine['workers']}.yaml"
            params.write_text(yaml.safe_dump(merge(raw_params(), merge(SMALL, {
                "engine": engine, "score": {"batch_borrowers": 700}})), sort_keys=False))
            out = tmp_path / f"{source}-{params.stem}.parquet"
            text = run(["limitjump", "score", "--input", str(project.root / "data" / source), "--output",
                        str(out), "--model", f"models:/{NAME}@champion", "--params", str(params)],
                       project.root, project.env)
            assert "borrowers in 4000 = scored" in text, text
            outputs.setdefault(source, []).append(out.read_bytes())
    for source, results in outputs.items():
        assert len(set(results)) == 1, f"{source}: the engines disagree"
    scores = pd.read_parquet(tmp_path / "raw-local2.parquet")
    assert (scores["model_version"] == "1").all() and len(scores) > 0


def test_promote_moves_the_champion_only_when_the_gates_hold(project, store):
    """Runs last among the local tests: it retrains and registers more versions."""
    champion = _promote(project, "1")  # promoted by the snippet test, or here
    assert champion["decision"] in ("promoted", "already_champion")
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == "1"
    # a no-op adds its own record and leaves the promotion's (it had overwritten it with
    # "already_champion", no figures and itself as the previous champion)
    assert _promote(project, "1")["decision"] == "already_champion"
    tags = store.get_model_version(NAME, "1").tags
    assert json.loads(tags["limitjump.promotion"])["decision"] == "promoted"
    records = [json.loads(v) for k, v in sorted(tags.items()) if k.startswith("limitjump.promotion.")]
    assert [r["decision"] for r in records][-1] == "already_champion" and len(records) >= 2

    # a version that fails its own gates is never promoted, whatever its AUC
    write_params(project.root, merge(SMALL, {"register": {"min_oot_auc": 0.99},
                                             "train": {"lightgbm": {"num_leaves": 15}}}))
    run(["limitjump", "train", "lightgbm"], project.root, project.env)
    out = run(["limitjump", "register"], project.root, project.env)
    assert "registered version 2" in out and "fails min_oot_auc" in out
    assert store.get_model_version(NAME, "2").tags[tracking.GATE_TAG] == "false"
    refused = _promote(project, "2")
    assert refused["decision"] == "refused" and refused["failed_gates"] == ["min_oot_auc"]
    # what it was judged by, for an auditor: the gates, the params file and its digest, the figures
    params = project.root / "params.yaml"
    assert refused["gates"]["min_oot_auc"] == 0.99 and refused["params_file"] == str(params.resolve())
    assert refused["params_sha256"] == io.file_digest(params)
    assert refused["own_figures"]["min_oot_auc"] < 0.99
    # the registry records the refusal too, where the whole team sees it
    recorded = json.loads(store.get_model_version(NAME, "2").tags["limitjump.promotion"])
    assert recorded["decision"] == "refused" and recorded["failed_gates"] == ["min_oot_auc"]
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == "1"
    # the gates lowered to the model's reach, a plain registration of the same model judges it
    # again (a team that set its own gates could not promote the version registered before)
    write_params(project.root, merge(SMALL, {"train": {"lightgbm": {"num_leaves": 15}}}))
    out = run(["limitjump", "register"], project.root, project.env)
    assert "registered version 2 (passes its gates)" in out
    assert store.get_model_version(NAME, "2").tags[tracking.GATE_TAG] == "true"
    assert store.get_model_version(NAME, "2").tags["limitjump.failed_gates"] == "none"
    # and says so where the UI shows it (its description had still read "own gates failed")
    assert store.get_model_version(NAME, "2").description.endswith("own gates passed")

    # a version that passes its own gates is promoted only if it beats the champion on the same rows
    write_params(project.root, merge(SMALL, {"train": {"lightgbm": {"num_leaves": 7}}}))
    run(["limitjump", "train", "lightgbm"], project.root, project.env)
    run(["limitjump", "register"], project.root, project.env)
    third = _promote(project, "3")
    figures = third["figures"]
    gain = figures["challenger_auc"] - figures["champion_auc"]
    needed = project.params.gate.min_gain_over_champion
    assert third["decision"] == ("promoted" if gain >= needed else "refused")
    assert figures["rows"] == len(_test_features(project))
    winner = "3" if third["decision"] == "promoted" else "1"
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == winner
    # and the way back is refused: the loser never beats the winner
    back = _promote(project, "1" if winner == "3" else "3")
    assert back["decision"] in ("refused", "already_champion")
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == winner

    log = [json.loads(line) for line in (project.root / tracking.PROMOTION_LOG).read_text().splitlines()]
    assert [e["version"] for e in log][-3:] == [2, 3, int(back["version"])]
    assert all(e["time"] and e["by"] and e["git.commit"] == project.baseline for e in log)
    # none of this rewrote a finished run
    after = _snapshot(store)
    assert {k: after[k] for k in project.snapshot} == project.snapshot

    # a version of another label is not compared with the champion on one label's rows: it is
    # refused, and promoted only when a person adopts the new label
    write_params(project.root, merge(SMALL, {"label": {"dpd_threshold": 7}}))
    run(["dvc", "repro", "register"], project.root, project.env)
    newest = str(max(int(v.version) for v in store.search_model_versions(f"name='{NAME}'")))
    assert newest == "4" and store.get_model_version(NAME, newest).tags[tracking.GATE_TAG] == "true"
    # promote without --version takes @challenger, which the plain `dvc repro` pointed at its version
    assert str(store.get_model_version_by_alias(NAME, "challenger").version) == newest
    other = _promote(project, None)
    assert str(other["version"]) == newest
    assert other["decision"] == "refused" and other["failed_gates"] == ["same_label"]
    labels = {role: other["figures"][f"{role}_label"]["dpd_threshold"] for role in ("challenger", "champion")}
    assert labels == {"challenger": 7, "champion": 1}
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == winner
    adopted = _promote(project, newest, "--new-label")
    assert adopted["decision"] == "promoted" and adopted["figures"] == other["figures"]
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == newest

    # a checkout whose model is not @challenger's (what `dvc exp apply` restores, or a teammate's
    # `dvc repro` moved @challenger to its own): promote names both and moves nothing, unless told
    registered = project.root / "models" / "registered.json"
    ours = registered.read_text()
    applied = store.get_model_version(NAME, "3").tags[tracking.FINGERPRINT_TAG]
    registered.write_text(json.dumps({**json.loads(ours), "fingerprint": applied}))
    refused = subprocess.run(["limitjump", "promote"], cwd=project.root, env=project.env,
                             capture_output=True, text=True, timeout=600)
    registered.write_text(ours)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    said = " ".join(refused.stderr.split())
    assert f"@challenger is version {newest}" in said and "--version 3 for this checkout's" in said
    assert str(store.get_model_version_by_alias(NAME, "champion").version) == newest
    assert all(e["git.dirty"] in ("true", "false") for e in
               map(json.loads, (project.root / tracking.PROMOTION_LOG).read_text().splitlines()))


def _promote(project, version: str | None, *flags: str) -> dict:
    """The promotion's log entry; its exit code 1 when it refused, else 0 (promoted, or the
    champion already)."""
    chosen = ["--version", version] if version is not None else []
    done = subprocess.run(["limitjump", "promote", *chosen, *flags], cwd=project.root, env=project.env,
                          capture_output=True, text=True, timeout=600)
    entry = json.loads((project.root / tracking.PROMOTION_LOG).read_text().splitlines()[-1])
    assert done.returncode == (1 if entry["decision"] == "refused" else 0), done.stdout + done.stderr
    return entry


# ---- a queued DVC experiment (runs last: it needs the clone back at its commit) -------------

QUEUE_LINE = r"(?m)^[0-9a-f]{7}\s+(\S+)\s+.*\b(Queued|Running|Success|Failed)\s*$"  # name, status


def run_queue(project: Path, env: dict, jobs: int, expected: int, timeout: float = 600) -> dict[str, str]:
    """``dvc queue start -j jobs``, wait until ``expected`` experiments are done, stop the workers;
    every experiment must have succeeded (else its log is shown). {name: status}."""
    started = time.perf_counter()
    try:
        run(["dvc", "queue", "start", "-j", str(jobs)], project, env)
        deadline = time.monotonic() + timeout
        while True:
            out = run(["dvc", "queue", "status"], project, env)
            tasks = dict(re.findall(QUEUE_LINE, out))
            if len(tasks) == expected and not {"Queued", "Running"} & set(tasks.values()):
                break
            assert time.monotonic() < deadline, f"queue not done after {timeout:.0f} s\n{out}"
            time.sleep(3)
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=project, env=env, capture_output=True,
                       timeout=120)
    print(f"{expected} queued experiment(s) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    failed = {name: subprocess.run(["dvc", "queue", "logs", name], cwd=project, env=env, capture_output=True,
                                   text=True).stdout[-3000:]
              for name, state in tasks.items() if state != "Success"}
    assert not failed, f"{out}\n{failed}"
    return tasks


# a leaf size, not a leaf count: on 4,000 borrowers a leaf of 200 rows caps the trees below 15
# leaves, so only the leaf size changes the model (and the metrics the table must show). One
# experiment: two running at once are tested against the team server (tests/test_team.py).
LEAVES = "40"
# -n 2: the experiments hang on the commit before HEAD (HEAD moved after queueing)
# the README's command (the test checks it is the README's)
EXP_SHOW = ["dvc", "exp", "show", "--no-pager", "-n", "2", "--only-changed",
            "--drop", "^(data|models|reports|pipeline)/[^:]*$|^(scorecard|truth)\\."
            "|^lightgbm\\.(brier|ks|psi)$"]


@pytest.mark.timeout(900)
def test_a_queued_experiment_is_a_run_in_the_root_store_and_touches_no_production(project, store):
    """``dvc exp run --queue`` runs in a temporary copy under .dvc/tmp/exps; DVC sets DVC_ROOT to
    the clone, so the relative sqlite URI in params lands in the clone's mlflow.db, and the run
    records which experiment it was and which commit it ran from. Production does not move."""
    root, env = project.root, project.env
    run(["git", "checkout", "--", "."], root, env)  # the workspace back at the reproduced commit
    assert head(root) == project.baseline
    before = _snapshot(store)
    aliases = {alias: store.get_model_version_by_alias(NAME, alias).version
               for alias in ("champion", "challenger")}
    versions_before = {v.version for v in store.search_model_versions(f"name='{NAME}'")}
    log_before = (root / tracking.PROMOTION_LOG).read_text()

    run(["dvc", "exp", "run", "--queue", "-S", f"train.lightgbm.min_data_in_leaf={LEAVES}", "evaluate"],
        root, env)
    # HEAD moves after queueing: the experiment still runs on, and records, its baseline commit
    with open(root / "README.md", "a") as fh:
        fh.write("\nA change committed after the experiment was queued.\n")
    assert commit(root, "after queueing") != project.baseline

    tasks = run_queue(root, env, jobs=1, expected=1)
    (name,) = tasks

    after = _snapshot(store)
    assert {k: after[k] for k in before} == before  # no finished run rewritten
    new = [store.get_run(run_id) for run_id in set(after) - set(before)]
    kinds = [r.data.tags["model"] for r in new]
    assert kinds.count("lightgbm") == kinds.count("evaluate") == 1 and "scorecard" not in kinds
    assert all(k.startswith("monitor") for k in kinds if k not in ("lightgbm", "evaluate"))  # new model
    trained = next(r for r in new if r.data.tags["model"] == "lightgbm")
    tags = trained.data.tags
    assert trained.data.params["train.lightgbm.min_data_in_leaf"] == LEAVES
    assert tags["dvc.exp_name"] == name and trained.info.run_name == f"lightgbm · exp {name}"
    assert tags["dvc.stage"] == "train@lightgbm"
    assert tags["git.commit"] == project.baseline, "the run must name the commit it ran from"
    assert tags["git.dirty"] == "true"  # the queued params differ from that commit
    assert "oot_auc" in trained.data.metrics and tracking.MODEL_URI_TAG in tags

    # the experiment registers and tags a version; production does not move
    versions = {v.version: v for v in store.search_model_versions(f"name='{NAME}'")}
    (added,) = set(versions) - versions_before
    assert versions[added].tags.get("dvc.exp_name") == name and versions[added].run_id == trained.info.run_id
    assert {alias: store.get_model_version_by_alias(NAME, alias).version for alias in aliases} == aliases
    assert (root / tracking.PROMOTION_LOG).read_text() == log_before

    # the experiment's headline metrics and its param fit a 200-column terminal, next to its name:
    # a table wider than the terminal is cut with "…" (outside checks found the README's command
    # cut after the LightGBM's metrics, the swept param out of sight)
    assert f"--drop '{EXP_SHOW[-1]}'" in (ROOT / "README.md").read_text()
    table = run(EXP_SHOW, root, {**env, "COLUMNS": "200"})
    print(table)
    assert "…" not in table and name in table
    for header in ("lightgbm.auc", "lightgbm.ece", "lightgbm.gap", "min_data_in_leaf"):
        assert header in table, header


@pytest.mark.timeout(900)
def test_the_decision_model_is_registered_and_recommends_through_every_client(project, tmp_path):
    """``dvc repro decide`` logs a run and registers the decision model under its own name;
    ``limitjump recommend`` gives the same recommendations from the local folder on one worker,
    from the registered version on two and on Dask; ``mlflow models predict`` on the registered
    version takes whole numbers with missing values and agrees with the local model."""
    write_params(project.root, SMALL)  # the fixture's label: the promotion test leaves another
    run(["dvc", "repro", "decide"], project.root, project.env)
    client = MlflowClient(project.uri)
    assert [str(v.version) for v in client.search_model_versions(f"name='{NAME}-decision'")] == ["1"]
    run(["dvc", "repro", "decide"], project.root, project.env)  # nothing changed: no second version
    assert len(client.search_model_versions(f"name='{NAME}-decision'")) == 1
    # the model's run and its evaluation's, linked, each once
    experiment = client.get_experiment_by_name(project.params.mlflow.experiment).experiment_id
    runs = {kind: client.search_runs([experiment], f"tags.model = '{kind}'")
            for kind in ("decision", "decision-evaluation")}
    assert [len(found) for found in runs.values()] == [1, 1], runs
    evaluation = runs["decision-evaluation"][0]
    assert evaluation.data.tags["limitjump.decision_run"] == runs["decision"][0].info.run_id
    assert evaluation.data.tags["limitjump.model_version"] == "1"
    assert "ours_profit_per_borrower" in evaluation.data.metrics
    assert "decision.json" in {a.path for a in client.list_artifacts(evaluation.info.run_id)}
    local = str(project.root / "models" / "decision")
    registered = f"models:/{NAME}-decision/1"
    results = []
    for model, engine in ((local, {"kind": "local", "workers": 1}),
                          (registered, {"kind": "local", "workers": 2}),
                          (registered, {"kind": "dask", "workers": 2})):
        params = tmp_path / f"{engine['kind']}{engine['workers']}.yaml"
        params.write_text(yaml.safe_dump(merge(raw_params(), merge(SMALL, {
            "engine": engine, "score": {"batch_borrowers": 700}})), sort_keys=False))
        out = tmp_path / f"{params.stem}.parquet"
        text = run(["limitjump", "recommend", "--input", str(project.root / "data" / "raw"),
                    "--output", str(out), "--model", model, "--params", str(params)],
                   project.root, project.env)
        assert "borrowers in 4000 = recommended" in text, text
        results.append(pd.read_parquet(out))
    for other in results[1:]:
        pd.testing.assert_frame_equal(other, results[0])
    assert results[0]["recommended_amount"].isin(project.params.simulate.jump.line_test_amounts).all()

    from pipeline.catalog import BY_NAME
    from pipeline.decision import DECISION_FEATURES, DecisionModel
    from pipeline.features import build_features
    from pipeline.shards import read_shard

    features = build_features(read_shard(project.root / "data" / "raw", 0), 0, project.params.features)
    features = features.head(40)[["borrower_id", "scoring_date", *DECISION_FEATURES]]
    floats = features.copy()
    floats[list(DECISION_FEATURES)] = floats[list(DECISION_FEATURES)].round()
    decision_model = DecisionModel.from_dir(local)
    # blanks as a user's file has them, where training had blanks: one where it had none is refused
    nullable = [f for f in DECISION_FEATURES if BY_NAME[f].domain.nullable]
    blankable = [f for f in nullable if f not in decision_model.never_missing]
    floats.loc[::4, blankable[:3]] = np.nan
    ints = floats.astype({c: "Int64" for c in DECISION_FEATURES})
    assert ints.isna().any().any(), "the example should carry missing values"
    expected = decision_model.recommend(floats)
    never = [f for f in nullable if f in decision_model.never_missing][0]
    ints.assign(**{never: ints[never].mask(ints.index == 2)}).to_csv(tmp_path / "blank.csv", index=False)
    refused = subprocess.run([str(BIN / "mlflow"), "models", "predict", "-m", registered, "-i",
                              str(tmp_path / "blank.csv"), "-t", "csv", "--env-manager", "local"],
                             cwd=tmp_path, env={**project.env, "MLFLOW_TRACKING_URI": project.uri},
                             capture_output=True, text=True)
    assert refused.returncode != 0 and f"'{never}' fails known_in_every_training_row in 1 row (row 2 " \
        "missing)" in refused.stderr, refused.stderr[-2000:]
    ints.to_csv(tmp_path / "ints.csv", index=False)
    out = tmp_path / "predicted.json"
    run([str(BIN / "mlflow"), "models", "predict", "-m", registered, "-i", str(tmp_path / "ints.csv"),
         "-t", "csv", "--env-manager", "local", "-o", str(out)], tmp_path,
        {**project.env, "MLFLOW_TRACKING_URI": project.uri})
    got = pd.DataFrame(json.loads(out.read_text())["predictions"])
    np.testing.assert_array_equal(got["recommended_amount"], expected["recommended_amount"])
    np.testing.assert_allclose(got["p_miss"], expected["p_miss"], rtol=0, atol=1e-12)
