"""MLflow wiring: where the store is, idempotent runs, the registry and the promotion log.

Three rules keep MLflow and DVC from contradicting each other:
- Runs are a side effect of DVC stages and must never make DVC outputs differ: outputs hold a
  content fingerprint, never a run id, a version or a time; a run is looked up by its fingerprint,
  so a stage that is repeated or restored from DVC's run cache logs nothing twice.
- A finished run is never reopened: evaluation logs its own run, linked to the models' runs.
- No stage moves @champion; only ``limitjump promote`` does, and it appends to the promotion log.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.config import MlflowSettings, repo_root, tracking_uri_problem
from pipeline.errors import UsageError

# MLflow is imported by the functions that call it: its import takes 1-2 s, which a command's
# --help, a local model folder's scoring and the stages that log nothing should not pay
if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature
    from mlflow.types import Schema

FINGERPRINT_TAG = "limitjump.fingerprint"
# the tags ``provenance`` may set
PROVENANCE_TAGS = ("git.commit", "mlflow.source.git.commit", "git.dirty", "dvc.exp_name", "dvc.stage")
PID_TAG, HOST_TAG = "limitjump.pid", "limitjump.host"  # which process logs a run, to end it if killed
MODEL_URI_TAG = "limitjump.model_uri"  # MLflow 3 logs models apart from run artifacts
FILES_TAG = "limitjump.files"  # digests of the model's data files, recorded at registration
GATE_TAG = "limitjump.gates_passed"
FAILED_GATES_TAG = "limitjump.failed_gates"  # the own gates a version failed at registration, or "none"
GATE_VALUES_TAG = "limitjump.gate_values"  # their figures, unrounded: promote judges them by today's gates
DUPLICATE_TAG = "limitjump.duplicate_of"  # a version another machine registered first
PRIMARY_METRIC = "oot_auc"
PROMOTION_LOG = "promotions.jsonl"
CONNECT_TIMEOUT = 5.0  # seconds to reach a tracking server before giving up


# mlflow.set_tracking_uri exports the URI to the environment, so the environment alone cannot
# tell a user's MLFLOW_TRACKING_URI from our own: remember both.
_exported_uri: str | None = None
_user_uri: str | None = None


def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it, if they did."""
    value = os.environ.get("MLFLOW_TRACKING_URI")
    return _user_uri if value == _exported_uri else value


def resolve_uri(uri: str) -> str:
    """The user's MLFLOW_TRACKING_URI if set, else ``uri`` with a relative sqlite path anchored
    at the repository root (never the working directory: no stray stores)."""
    uri = user_tracking_uri() or uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(repo_root() / uri[len(prefix):])
    return uri


def _quiet() -> None:
    """Stage output shows our messages, not MLflow's INFO lines or download progress bars."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # a server that is down should fail in seconds, not after MLflow's 7 retries (about 4 minutes)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


SERVER_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


def check_reachable(uri: str) -> None:
    """A tracking server or a database server must accept a connection within seconds (MLflow
    retries a database ten times, for 100 s, and then shows SQLAlchemy's traceback); a sqlite
    file must be a database. Raise UsageError naming the address otherwise."""
    problem = tracking_uri_problem(uri)
    if problem:
        raise UsageError(problem)
    parsed = urlparse(uri)
    server = parsed.scheme.split("+")[0]  # postgresql+psycopg2: the driver after the '+'
    if server in SERVER_PORTS and parsed.hostname:  # no host: a database's Unix socket
        try:
            socket.create_connection((parsed.hostname, parsed.port or SERVER_PORTS[server]),
                                     timeout=CONNECT_TIMEOUT).close()
        except OSError as err:
            raise UsageError(f"cannot reach the MLflow tracking server at {shown(uri)}: {err}") from err
    elif (path := _sqlite_file(uri)) is not None:
        if path.is_file() and path.stat().st_size and _header(path) != b"SQLite format 3":
            raise UsageError(f"the MLflow store {path} is not a SQLite database (corrupt or not a store)")


def _sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store (``resolve_uri`` made it absolute), else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def shown(uri: str) -> str:
    """``uri`` with its password, if it holds one, written as ***: messages and logs show it."""
    parsed = urlparse(uri)
    if not parsed.password:
        return uri
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()


def _header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(15)


def connect(settings: MlflowSettings, existing: bool = False) -> tuple[MlflowClient, str]:
    """Point MLflow at the store and return a client and the experiment id; the experiment keeps
    its artifacts next to a local store, never relative to the working directory. A store that
    cannot be reached or read stops here, with its address; so does a SQLite file that is not
    there when only an ``existing`` store can serve (reading a registered model), which MLflow
    would make, empty, and then find no model in."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    global _exported_uri, _user_uri
    _quiet()
    _user_uri = user_tracking_uri()
    uri = resolve_uri(settings.tracking_uri)
    check_reachable(uri)
    store_file = _sqlite_file(uri)
    if existing and store_file is not None and not store_file.is_file():
        raise UsageError(f"no MLflow store at {store_file} (the tracking URI "
                         f"{uri}): a plain `dvc repro` makes and fills the project's; name the store "
                         "that holds the model (MLFLOW_TRACKING_URI, or mlflow.tracking_uri in params.yaml)")
    mlflow.set_tracking_uri(uri)
    _exported_uri = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_registry_uri(uri)
    try:
        client = MlflowClient(uri)  # a SQL store connects (and migrates) as the client is made
        experiment = client.get_experiment_by_name(settings.experiment)
        if experiment is not None:
            return client, experiment.experiment_id
        # artifacts beside the SQLite file (the repository root by default; a user's own file too)
        location = (store_file.parent / "mlartifacts").as_uri() if store_file is not None else None
        return client, client.create_experiment(settings.experiment, artifact_location=location,
                                                tags={"primary_metric": PRIMARY_METRIC})
    except MlflowException as err:
        raise UsageError(f"the MLflow store {shown(uri)} cannot be used: {_first_line(err)}") from err
    except Exception as err:  # SQLAlchemy, requests: their own exception trees, one cause (the store)
        if type(err).__module__.split(".")[0] not in ("sqlalchemy", "requests", "urllib3"):
            raise
        raise UsageError(f"the MLflow store {shown(uri)} cannot be used: {_first_line(err)}") from err


def use_project_store(settings: MlflowSettings) -> str:
    """Point MLflow at the project's store (``settings``, the repository's ``mlflow`` params;
    MLFLOW_TRACKING_URI if set) and return its URI:
    ``mlflow.pyfunc.load_model("models:/limitjump@champion")`` then works from any directory."""
    import mlflow

    connect(settings)
    return mlflow.get_tracking_uri()


def _first_line(err: Exception) -> str:
    return (getattr(err, "message", None) or str(err)).strip().splitlines()[0][:300]


def find_run(client: MlflowClient, experiment_id: str, fingerprint: str) -> Run | None:
    """The first run logged with ``fingerprint``: should writers on two machines both have logged
    it (``one_writer`` holds on one machine only), every reader takes the same one."""
    runs = client.search_runs([experiment_id], f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'",
                              max_results=1, order_by=["attributes.start_time ASC", "attributes.run_id ASC"])
    return runs[0] if runs else None


def flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lightgbm": {"num_leaves": 31}}} -> {"train.lightgbm.num_leaves": 31}."""
    out = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


PIPELINE_WRITES = ("dvc.lock", "reports")  # tracked in git, rewritten by dvc repro itself


def provenance() -> dict[str, str]:
    """Git commit, whether the tree had uncommitted changes, and the DVC experiment, as tags.

    Changes are those to code, params and inputs: what ``dvc repro`` itself writes (dvc.lock, the
    reports kept in git) while it runs does not make the stages after the first "dirty".
    Git is asked in the working directory, the checkout the code runs in: under ``dvc exp run
    --queue`` or ``--temp`` that is the experiment's own copy (its baseline commit plus the queued
    changes), not DVC_ROOT, whose HEAD may have moved since the experiment was queued."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=Path.cwd(), capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    commit = git("rev-parse", "HEAD")
    tags = {"git.commit": commit or "unknown", "mlflow.source.git.commit": commit or "unknown",
            "git.dirty": str(bool(git("status", "--porcelain", "--untracked-files=no", "--", ":/",
                                      *(f":(top,exclude){path}" for path in PIPELINE_WRITES)))).lower()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_STAGE"):
        tags["dvc.stage"] = os.environ["DVC_STAGE"]
    return tags


def in_experiment() -> bool:
    """Whether this runs under ``dvc exp run`` (workspace, --temp or --queue): DVC names every
    experiment, plain ``dvc repro`` sets no name."""
    return bool(os.environ.get("DVC_EXP_NAME"))


def commit_text(tags: dict[str, str]) -> str:
    """The commit a run's code came from, as the model card names it: a card had named a commit
    whose tree had uncommitted changes (params of another size) as if it were that commit's."""
    dirty = " with uncommitted changes (the run's tag git.dirty)" if tags.get("git.dirty") == "true" else ""
    return tags.get("git.commit", "unknown") + dirty


def run_label(tags: dict[str, str]) -> str:
    """What a run is, for its name in the MLflow UI: the DVC experiment or the short commit."""
    if tags.get("dvc.exp_name"):
        return f"exp {tags['dvc.exp_name']}"
    commit = tags.get("git.commit", "unknown")[:7]
    return f"{commit}{'+changes' if tags.get('git.dirty') == 'true' else ''}"


@contextmanager
def new_run(settings: MlflowSettings, kind: str, fingerprint: str, description: str,
            tags: dict[str, str] | None = None) -> Iterator[Run | None]:
    """A new run named after what it is, or None if a run with this fingerprint already exists.
    The fingerprint tag is set last, so a run that failed halfway is never taken for a finished
    one."""
    import mlflow

    client, experiment_id = connect(settings)
    with one_writer(mlflow.get_tracking_uri(), experiment_id, fingerprint):
        existing = find_run(client, experiment_id, fingerprint)
        if existing is not None:
            print(f"MLflow: {kind} already logged as run {existing.info.run_name!r}; nothing to log",
                  file=sys.stderr)
            yield None
            return
        end_abandoned(client, experiment_id)
        origin = provenance()
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{kind} · {run_label(origin)}") as run:
            mlflow.set_tags({**origin, "model": kind, "mlflow.note.content": description,
                             PID_TAG: str(os.getpid()), HOST_TAG: io.HOST, **(tags or {})})
            yield run
            mlflow.set_tag(FINGERPRINT_TAG, fingerprint)


def end_abandoned(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the runs of this host left RUNNING by a process that is gone, and their child
    runs: a run killed (SIGKILL, a lost machine) never ends itself, and the UI showed it as
    training forever beside the finished runs of the same name. Returns their ids."""
    from mlflow.exceptions import MlflowException

    found = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = "
                               f"'{io.HOST}'", max_results=1000)
    gone = [r.info.run_id for r in found
            if PID_TAG in r.data.tags and not io.running(int(r.data.tags[PID_TAG]))]
    children = [r.info.run_id for parent in gone for r in client.search_runs(
        [experiment_id], f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{parent}'")]
    for run_id in gone + children:
        try:
            client.set_terminated(run_id, "KILLED")
        except MlflowException:  # another account's run on a team server: theirs to end
            pass
    return gone + children


@contextmanager
def one_writer(*key: str) -> Iterator[None]:
    """Processes of this machine that would log the same ``key`` (store, experiment, fingerprint)
    take turns, the later one then finding the first's run: MLflow has no unique key on tags, so
    two writers that both look and find nothing both create (two `dvc exp run` of one params
    change under `dvc queue start -j 2` logged every run twice)."""
    with io.machine_lock(chr(0).join(key), wait=True):
        yield


@contextmanager
def child_run(name: str, tags: dict[str, str] | None = None) -> Iterator[Run]:
    """A run nested under the active one, in its experiment: MLflow tags it with the parent's id
    (``mlflow.parentRunId``) and the UI lists it under the parent. It carries the parent's
    provenance tags (commit, experiment, stage), copied rather than asked of git again, so that a
    search by tag finds it (an outside check found a sweep's trials missing from a search for
    their experiment)."""
    import mlflow

    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("a child run needs an active parent run (tracking.new_run)")
    inherited = {k: v for k, v in mlflow.get_run(parent.info.run_id).data.tags.items()
                 if k in PROVENANCE_TAGS}
    with mlflow.start_run(experiment_id=parent.info.experiment_id, run_name=name, nested=True,
                          tags={**inherited, **(tags or {})}) as run:
        yield run


BATCH_METRICS = 1000  # MLflow's cap on metrics in one log_batch request


def log_history(key: str, values: dict[int, float]) -> None:
    """A metric's values by step on the active run, a request per thousand rather than per value."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    run_id = mlflow.active_run().info.run_id
    now = int(datetime.now(UTC).timestamp() * 1000)
    points = [Metric(key, float(v), now, int(step)) for step, v in sorted(values.items())]
    client = MlflowClient()
    for i in range(0, len(points), BATCH_METRICS):
        client.log_batch(run_id, metrics=points[i:i + BATCH_METRICS], synchronous=True)


def log_params(params: dict) -> None:
    import mlflow

    flat = {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in flatten(params).items()}
    items = sorted(flat.items())
    for i in range(0, len(items), 100):  # MLflow caps the batch size
        mlflow.log_params(dict(items[i:i + 100]))


def log_metrics(values: dict[str, float], **links: Any) -> None:
    """``values`` on the active run; ``links`` as MLflow's (``model_id``, ``dataset``)."""
    import mlflow

    mlflow.log_metrics(values, **links)


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    """A file, or every file of a folder, as artifacts of the active run."""
    import mlflow

    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_dataset(frame: pd.DataFrame, path: Path, digest: str, context: str):
    """Record a split with the digest of the file it came from (the same content DVC hashes);
    returns the dataset, so metrics can be linked to it."""
    import mlflow

    with warnings.catch_warnings():  # MLflow's hints on local sources and integer columns: noise here
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=str(path.resolve()), name=path.stem,
                                          digest=digest[:16])
        # seeds the cached property, so MLflow never infers the schema from the whole frame
        dataset.__dict__["schema"] = dataset_schema(frame)
        mlflow.log_input(dataset, context=context)
    return dataset


def dataset_schema(frame: pd.DataFrame) -> Schema:
    """The schema MLflow would infer for ``frame``, inferred from a few rows. MLflow decides
    whether a column is required by testing every value in Python (half a minute for a 600k-row
    split); the first rows plus, for each column with a missing value, one row where it is
    missing carry the same dtypes and the same required flags."""
    from mlflow.models import infer_signature

    missing = frame.isna().to_numpy()
    has_missing = missing.any(axis=0)
    rows = np.union1d(np.arange(min(len(frame), 100)), missing.argmax(axis=0)[has_missing])
    return infer_signature(frame.iloc[rows]).inputs


def model_signature(example: pd.DataFrame, output: np.ndarray) -> ModelSignature:
    """The output (a probability per row) and no input schema, on purpose: users send whole numbers
    for codes, counts and amounts, text for categories, and blanks. MLflow refuses int64 for a
    column declared double ("Can not safely convert int64 to float64"), and its scoring server
    cannot read CSV for columns declared of type any; with no input schema ``pyfunc.predict``,
    ``mlflow models predict`` and ``mlflow models serve`` accept the same rows alike. The model
    checks its columns itself and names any that are missing; the input example lists them.
    MLflow's hint that integer columns cannot hold missing values is about the input schema we
    drop, or an output id the model always fills: silenced, not to alarm whoever reads the log."""
    from mlflow.models import ModelSignature, infer_signature

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        return ModelSignature(inputs=None, outputs=infer_signature(example, output).outputs)


def pip_requirements() -> list[str]:
    """Exact versions of what a logged model needs, given rather than inferred (inferring spawns
    a process and takes seconds)."""
    return [f"{name}=={version(name)}" for name in ("mlflow", "lightgbm", "pandas", "numpy")]


def log_served_model(loader_module: str, folder: Path, example: pd.DataFrame, output: Any) -> str:
    """The model as MLflow data (``folder``'s files) that the installed package loads
    (``loader_module``), in the active run, with ``example`` rows and their ``output`` as its
    signature and input example; its URI tagged on the run (``MODEL_URI_TAG``). Returns its id."""
    import mlflow

    info = mlflow.pyfunc.log_model(
        name="model", loader_module=loader_module, data_path=str(folder),
        signature=model_signature(example, output), input_example=example,
        pip_requirements=pip_requirements())
    mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return info.model_id


def log_json(data: Any, name: str, artifact_path: str | None = None) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def run_for_fingerprint(settings: MlflowSettings, fingerprint: str) -> Run:
    client, experiment_id = connect(settings)
    run = find_run(client, experiment_id, fingerprint)
    if run is None:
        raise UsageError(f"no MLflow run with {FINGERPRINT_TAG}={fingerprint} in experiment "
                         f"{settings.experiment}; run the train stage first")
    return run


# ---- the registry -----------------------------------------------------------------------------

def file_digests(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of each of ``names`` that the folder holds."""
    return {name: io.file_digest(folder / name) for name in names if (folder / name).is_file()}


def register_version(settings: MlflowSettings, run: Run, fingerprint: str, tags: dict[str, str],
                     description: str, decision: bool = False) -> ModelVersion:
    """The registered version of the run's model, created once (found by fingerprint after),
    with ``tags`` (the data files' digests, the gates' results, where it came from). The
    decision model (``decision``) has its own registered name (``MlflowSettings.decision_model``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client, _ = connect(settings)
    name = settings.decision_model if decision else settings.registered_model
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=(
            "How much to raise a limit: miss probability, balance and profit at every amount"
            if decision else "Calibrated LightGBM: probability of a missed repayment after a "
            "credit-limit jump"))
    with one_writer(mlflow.get_registry_uri(), name, fingerprint):
        existing = version_for_fingerprint(settings, fingerprint, name)
        if existing is not None:
            return existing
        source = run.data.tags[MODEL_URI_TAG]
        created = client.create_model_version(name, source, run_id=run.info.run_id, description=description,
                                              tags={FINGERPRINT_TAG: fingerprint, **tags},
                                              model_id=source.removeprefix("models:/"))
    return _first_of_fingerprint(client, name, fingerprint, created)


def _first_of_fingerprint(client: MlflowClient, name: str, fingerprint: str,
                          created: ModelVersion) -> ModelVersion:
    """The first version registered with ``fingerprint``; ``created``, if another machine's
    writer registered one before it, is deleted. A version carries its fingerprint from the
    moment it exists and numbers only grow, so every writer keeps the same one. Deleting takes
    MANAGE on the model; a writer with EDIT tags its version as the duplicate instead."""
    from mlflow.exceptions import MlflowException

    first = min([created, *_with_fingerprint(client, name, fingerprint)], key=lambda v: int(v.version))
    if first.version != created.version:
        try:
            client.delete_model_version(name, created.version)
        except MlflowException:
            client.set_model_version_tag(name, created.version, DUPLICATE_TAG, str(first.version))
    return first


def set_version_tags(settings: MlflowSettings, version: ModelVersion, tags: dict[str, str],
                     description: str | None = None) -> None:
    """``tags`` on a registered version of the risk model, those it holds already left as they
    are, and its ``description`` when one is given (it tells the UI's reader the same verdict)."""
    client, _ = connect(settings)
    for key, value in tags.items():
        if version.tags.get(key) != value:
            client.set_model_version_tag(settings.registered_model, version.version, key, value)
    if description is not None and version.description != description:
        client.update_model_version(settings.registered_model, version.version, description=description)


def version_for_fingerprint(settings: MlflowSettings, fingerprint: str,
                            name: str | None = None) -> ModelVersion | None:
    client, _ = connect(settings)
    found = _with_fingerprint(client, name or settings.registered_model, fingerprint)
    return found[0] if found else None


def _with_fingerprint(client: MlflowClient, name: str, fingerprint: str) -> list[ModelVersion]:
    """The versions of ``name`` registered with ``fingerprint``, the first registered first."""
    found = client.search_model_versions(f"name='{name}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'")
    return sorted(found, key=lambda v: int(v.version))


NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")  # MLflow's codes for none


class NoVersion(UsageError):
    """The registry answered, and has no such version or alias."""


def get_version(settings: MlflowSettings, ref: str, name: str | None = None) -> ModelVersion:
    """A version of the registered model (or of ``name``) by number or by alias ("champion",
    "@champion")."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client, _ = connect(settings, existing=True)
    name = name or settings.registered_model
    try:
        if ref.lstrip("@").isdigit():
            return client.get_model_version(name, ref.lstrip("@"))
        return client.get_model_version_by_alias(name, ref.lstrip("@"))
    except MlflowException as err:
        if err.error_code not in NOT_FOUND:  # refused (401, 403) or failed: said as such, not "no version"
            raise UsageError(f"model {name}: the registry at {shown(mlflow.get_tracking_uri())} did not "
                             f"give version {ref!r}: {_first_line(err)}") from err
        # only the risk model has a promotion command; the decision model's aliases are set by hand
        promotable = name == settings.registered_model and "champion" in ref
        hint = " (promote a version first: limitjump promote)" if promotable else ""
        raise NoVersion(f"model {name}: no version {ref!r} in the registry at "
                        f"{shown(mlflow.get_tracking_uri())}{hint}") from err


def fetch_model_files(version: ModelVersion, dest: Path) -> Path:
    """Download a version's model files into ``dest`` and check them against the digests recorded
    at registration; return their folder. No code from the artifact store is run or kept."""
    import mlflow
    from mlflow.models import Model

    recorded = json.loads(version.tags.get(FILES_TAG, "{}"))
    if not recorded:
        raise UsageError(f"model {version.name} version {version.version} has no {FILES_TAG} tag: "
                         "it was not registered by limitjump register")
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}",
                                                     dst_path=str(dest)))
    folder = local / Model.load(str(local)).flavors["python_function"]["data"]
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file() or io.file_digest(path) != digest:
            raise UsageError(f"model {version.name} version {version.version}: {name} does not match "
                             "the digest recorded at registration (the artifact store was changed)")
    return folder


@contextmanager
def registered_files(settings: MlflowSettings, uri: str,
                     decision: bool = False) -> Iterator[tuple[Path, str]]:
    """``models:/<name>@<alias>`` or ``models:/<name>/<version>``: a temporary folder of the
    version's files, verified against the digests recorded at registration (for the installed
    package to build the model from), and the version number. ``decision``: the limit-increase
    decision model, registered under its own name."""
    expected = settings.decision_model if decision else settings.registered_model
    name, _, ref = uri.removeprefix("models:/").replace("@", "/@", 1).partition("/")
    if not uri.startswith("models:/") or name != expected or not ref:
        # no alias is ever set on the decision model: only its versions can be named
        alias = "" if decision else f"models:/{expected}@<alias>, "
        raise UsageError(f"model URI {uri!r}: expected {alias}models:/{expected}/<version> or a local "
                         "model folder")
    version = get_version(settings, ref, expected)
    with tempfile.TemporaryDirectory() as tmp:
        yield fetch_model_files(version, Path(tmp)), str(version.version)


def set_alias(settings: MlflowSettings, alias: str, version: str, tags: dict[str, str]) -> None:
    client, _ = connect(settings)
    client.set_registered_model_alias(settings.registered_model, alias, version)
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, version, key, value)


def append_promotion_log(entry: dict) -> Path:
    """Append-only history of promotions and refusals (MLflow keeps no history of aliases)."""
    path = repo_root() / PROMOTION_LOG
    entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **entry}
    with open(path, "a") as fh:
        fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
    return path
