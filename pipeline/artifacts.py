"""Where a scoring command's model comes from: a local folder of model files, or a registered
version of the MLflow registry built from files checked against the digests recorded at
registration (``tracking.registered_files``, which imports MLflow only then: a local folder scores without
it)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import tracking
from pipeline.config import MlflowSettings
from pipeline.decision import DecisionModel
from pipeline.errors import UsageError
from pipeline.model import CalibratedLightGBM


def load_model(uri: str, settings: MlflowSettings, decision: bool = False
               ) -> tuple[CalibratedLightGBM | DecisionModel, str]:
    """The model and its version: ``local:<fingerprint>`` for a folder (content-derived, so DVC
    outputs stay reproducible), the version number for ``models:/...``. ``decision``: the
    limit-increase decision model, registered under its own name."""
    kind = DecisionModel if decision else CalibratedLightGBM
    folder = _model_files(Path(uri))
    if folder.is_dir():
        metadata = folder / "metadata.json"
        tag = json.loads(metadata.read_text())["fingerprint"][:12] if metadata.exists() else "unknown"
        return kind.from_dir(folder), f"local:{tag}"
    if not uri.startswith("models:/"):  # a mistyped folder: said before any store is opened (or made)
        stage, registered = (("decide", f"{settings.decision_model}/<version>") if decision else
                             ("train@lightgbm", f"{settings.registered_model}@champion or /<version>"))
        raise UsageError(f"{uri}: no such model folder (run `dvc repro {stage}`, "
                         f"or give models:/{registered})")
    with tracking.registered_files(settings, uri, decision) as (files, version):
        return kind.from_dir(files), version


def _model_files(folder: Path) -> Path:
    """The folder of model files: ``folder``, or, for a logged model downloaded from MLflow (its
    ``MLmodel`` beside a ``data/`` folder), the files its pyfunc loads, which are the same."""
    logged = folder / "MLmodel"
    if not logged.is_file() or (folder / "model.txt").is_file():
        return folder
    import yaml

    flavors = (yaml.safe_load(logged.read_text()) or {}).get("flavors", {})
    data = flavors.get("python_function", {}).get("data")
    return folder / data if data and (folder / data).is_dir() else folder
