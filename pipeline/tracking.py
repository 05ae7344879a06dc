"""MLflow wiring: where runs go, idempotent runs, the registry's aliases and the promotion log.

Runs are a side effect of DVC stages, so they must never make DVC outputs differ: outputs hold a
content fingerprint, never a run id, and a run is looked up by that fingerprint. A stage that is
repeated or restored from DVC's run cache finds its run and logs nothing twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.models import infer_signature
from mlflow.types import Schema

from pipeline.config import MlflowSettings

FINGERPRINT_TAG = "limitjump.fingerprint"
MODEL_URI_TAG = "limitjump.model_uri"  # MLflow 3 logs models apart from run artifacts
PRIMARY_METRIC = "oot_auc"
PROMOTION_LOG = "promotions.jsonl"


def repo_root() -> Path:
    """The repository root; DVC sets DVC_ROOT to the main one even in temporary experiment copies."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


# mlflow.set_tracking_uri exports the URI to the environment, so the environment alone cannot
# tell a user's MLFLOW_TRACKING_URI from our own: remember both.
_exported_uri: str | None = None
_user_uri: str | None = None


def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it, if they did."""
    value = os.environ.get("MLFLOW_TRACKING_URI")
    return _user_uri if value == _exported_uri else value


def resolve_uri(uri: str, root: Path) -> str:
    """The user's MLFLOW_TRACKING_URI if set, else ``uri`` with a relative sqlite path anchored
    at ``root``."""
    uri = user_tracking_uri() or uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(root / uri[len(prefix):])
    return uri


def connect(settings: MlflowSettings) -> tuple[MlflowClient, str]:
    """Point MLflow at the store and return a client and the experiment id; the experiment keeps
    its artifacts next to a local store, never relative to the working directory."""
    global _exported_uri, _user_uri
    root = repo_root()
    _user_uri = user_tracking_uri()
    uri = resolve_uri(settings.tracking_uri, root)
    mlflow.set_tracking_uri(uri)
    _exported_uri = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        location = (root / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        experiment_id = client.create_experiment(settings.experiment, artifact_location=location,
                                                 tags={"primary_metric": PRIMARY_METRIC})
    else:
        experiment_id = experiment.experiment_id
    return client, experiment_id


def find_run(client: MlflowClient, experiment_id: str, fingerprint: str) -> Run | None:
    runs = client.search_runs([experiment_id], f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'",
                              max_results=1)
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


def provenance() -> dict[str, str]:
    """Git commit, whether the tree had uncommitted changes, and the DVC experiment, as tags.

    Git is asked in the working directory, the checkout the code runs in: under ``dvc exp run
    --queue`` or ``--temp`` that is the experiment's own copy (its baseline commit plus the queued
    changes), not DVC_ROOT, whose HEAD may have moved since the experiment was queued."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=Path.cwd(), capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    commit = git("rev-parse", "HEAD")
    tags = {"git.commit": commit or "unknown", "mlflow.source.git.commit": commit or "unknown",
            "git.dirty": str(bool(git("status", "--porcelain", "--untracked-files=no"))).lower()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_STAGE"):
        tags["dvc.stage"] = os.environ["DVC_STAGE"]
    return tags


@contextmanager
def training_run(settings: MlflowSettings, name: str, fingerprint: str) -> Iterator[Run | None]:
    """A new run, or None if a run with this fingerprint already exists. The fingerprint tag is
    set last, so a run that failed halfway is never taken for a finished one."""
    client, experiment_id = connect(settings)
    existing = find_run(client, experiment_id, fingerprint)
    if existing is not None:
        print(f"MLflow: {name} already logged as run {existing.info.run_id}; nothing to log",
              file=sys.stderr)
        yield None
        return
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.set_tags({**provenance(), "model": name})
        yield run
        mlflow.set_tag(FINGERPRINT_TAG, fingerprint)


def log_params(params: dict) -> None:
    flat = {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in flatten(params).items()}
    items = sorted(flat.items())
    for i in range(0, len(items), 100):  # MLflow caps the batch size
        mlflow.log_params(dict(items[i:i + 100]))


def log_dataset(frame: pd.DataFrame, path: Path, digest: str, context: str) -> None:
    """Record a split with the digest of the file it came from (the same content DVC hashes)."""
    with warnings.catch_warnings():  # MLflow's hints on local sources and integer columns: noise here
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=str(path.resolve()), name=path.stem,
                                          digest=digest[:16])
        # seeds the cached property, so MLflow never infers the schema from the whole frame
        dataset.__dict__["schema"] = dataset_schema(frame)
        mlflow.log_input(dataset, context=context)


def dataset_schema(frame: pd.DataFrame) -> Schema:
    """The schema MLflow would infer for ``frame``, inferred from a few rows. MLflow decides
    whether a column is required by testing every value in Python (half a minute for a 600k-row
    split); the first rows plus, for each column with a missing value, one row where it is
    missing carry the same dtypes and the same required flags."""
    missing = frame.isna().to_numpy()
    has_missing = missing.any(axis=0)
    rows = np.union1d(np.arange(min(len(frame), 100)), missing.argmax(axis=0)[has_missing])
    return infer_signature(frame.iloc[rows]).inputs


def log_json(data: Any, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        mlflow.log_artifact(str(path))


def run_for_fingerprint(settings: MlflowSettings, fingerprint: str) -> Run:
    client, experiment_id = connect(settings)
    run = find_run(client, experiment_id, fingerprint)
    if run is None:
        raise LookupError(f"no MLflow run with {FINGERPRINT_TAG}={fingerprint} in experiment "
                          f"{settings.experiment}; run the train stage first")
    return run


# ---- the registry -----------------------------------------------------------------------------

def register_version(settings: MlflowSettings, run: Run, fingerprint: str) -> str:
    """The registered version of the run's model, created once (found by fingerprint after)."""
    client, _ = connect(settings)
    name = settings.registered_model
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="Calibrated LightGBM: probability of a "
                                       "missed repayment after a credit-limit jump")
    for version in client.search_model_versions(f"name='{name}'"):
        if version.tags.get(FINGERPRINT_TAG) == fingerprint:
            return version.version
    source = run.data.tags.get(MODEL_URI_TAG, f"runs:/{run.info.run_id}/model")
    version = mlflow.register_model(source, name, tags={FINGERPRINT_TAG: fingerprint})
    return version.version


def alias_version(settings: MlflowSettings, alias: str) -> str | None:
    client, _ = connect(settings)
    try:
        return client.get_model_version_by_alias(settings.registered_model, alias).version
    except mlflow.exceptions.MlflowException:
        return None


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
