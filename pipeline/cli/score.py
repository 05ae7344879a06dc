"""``limitjump score``: score new borrowers in batches with bounded memory.

Input is either a folder of raw tables in the data contract (features are computed with the same
code as in training) or a ready features file, Parquet or CSV. Borrowers are read in batches
(pyarrow dataset scans, pruned by borrower id), scored and written as they go to temporary files
that replace the outputs only at the end: a killed run leaves no partial output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import typer

from pipeline import io, score, tracking
from pipeline.cli import PARAMS, app, load
from pipeline.config import Params
from pipeline.contract import RAW_TABLES, TABLES, ContractError, violations
from pipeline.features import MissingJump, build_features
from pipeline.model import CalibratedLightGBM

DEFAULT_MODEL = "models:/limitjump@champion"
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string(),
               "datetime64[s]": pa.timestamp("s")}


@app.command(name="score")
def score_command(
        input: Annotated[Path, typer.Option("--input", help="Raw tables folder or features file.")],
        output: Annotated[Path, typer.Option("--output", help="Scores file (.parquet or .csv).")],
        model_uri: Annotated[str, typer.Option("--model", help="MLflow model URI or a local model folder.")]
        = DEFAULT_MODEL,
        params: Path = PARAMS) -> None:
    """Score borrowers: probability, risk band, reasons, suggested action."""
    p = load(params)
    if not input.exists():
        raise FileNotFoundError(f"{input}: no such file or folder")
    model, version = load_model(model_uri, p)
    source = RawTables(input, p) if _is_raw(input) else FeaturesFile(input, model.features)
    summary = run(source, model, version, output, p)
    typer.echo(f"borrowers in {summary['borrowers_in']} = scored {summary['scored']} + rejected "
               f"{summary['rejected']}; bands {summary['bands']}; drift flagged: "
               f"{[k for k, v in summary['drift'].items() if v['flag'] != 'stable'] or 'none'}")


def run(source, model: CalibratedLightGBM, version: str, output: Path, p: Params) -> dict:
    """Stream every batch through the scorer; outputs appear only when all is done."""
    s = p.score
    watched = _watched_features(model, s.drift_features)
    drift = score.Drift({name: model.reference["bins"][name] for name in ["score", *watched]})
    counts = {"borrowers_in": 0, "scored": 0, "rejected": 0}
    bands = dict.fromkeys(s.bands, 0)
    rejects_path = output.with_name(output.stem + ".rejects" + output.suffix)
    with io.atomic_path(output, output.suffix) as out_tmp, \
            io.atomic_path(rejects_path, output.suffix) as rej_tmp, \
            _Writer(out_tmp) as scores_out, _Writer(rej_tmp) as rejects_out:
        for batch in source.batches(s.batch_borrowers):
            counts["borrowers_in"] += batch.borrowers_in
            rejects_out.write(batch.rejects)
            counts["rejected"] += len(batch.rejects)
            if len(batch.features):
                scored = score.score_batch(model, batch.features, s.bands, tuple(s.quiet_bands), version)
                scores_out.write(scored)
                counts["scored"] += len(scored)
                for band, n in scored["risk_band"].value_counts().items():
                    bands[band] += int(n)
                drift.add({"score": scored["probability"].to_numpy(),
                           **{f: batch.features[f].to_numpy(dtype=float) for f in watched}})
        scores_out.ensure(score.OUTPUT_COLUMNS)
        rejects_out.ensure(["borrower_id", "reason"])
    summary = {**counts, "bands": bands, "drift": drift.summary(), "model_version": version,
               "input": str(source.path), "output": str(output), "rejects": str(rejects_path)}
    if summary["borrowers_in"] != summary["scored"] + summary["rejected"]:
        raise RuntimeError(f"internal error: {summary}")  # a borrower must never be lost
    io.write_json(summary, output.with_name(output.stem + ".summary.json"))
    return summary


def load_model(uri: str, p: Params) -> tuple[CalibratedLightGBM, str]:
    """The model and its version: a registered MLflow model, or a local folder of model files."""
    folder = Path(uri)
    if folder.is_dir():
        metadata = folder / "metadata.json"
        tag = json.loads(metadata.read_text())["fingerprint"][:12] if metadata.exists() else "unknown"
        return CalibratedLightGBM.from_dir(folder), f"local:{tag}"
    client, _ = tracking.connect(p.mlflow)
    loaded = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    return loaded, _version_of(client, uri)


def _version_of(client, uri: str) -> str:
    name = uri.removeprefix("models:/")
    if "@" in name:
        model_name, alias = name.split("@", 1)
        return str(client.get_model_version_by_alias(model_name, alias).version)
    return name.rsplit("/", 1)[-1]


def _watched_features(model: CalibratedLightGBM, n: int) -> list[str]:
    importance = model.reference.get("importance", {})
    ranked = sorted(importance, key=importance.get, reverse=True)
    return [f for f in ranked if f in model.reference.get("bins", {})][:n]


def _is_raw(path: Path) -> bool:
    return path.is_dir() and any((path / f"borrowers{ext}").exists() for ext in ("", ".parquet", ".csv"))


@dataclass
class Batch:
    features: pd.DataFrame
    rejects: pd.DataFrame
    borrowers_in: int


class _Writer:
    """Appends frames to one Parquet or CSV file."""

    def __init__(self, path: Path):
        self.path, self.writer = path, None

    def __enter__(self) -> _Writer:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty and self.writer is not None:
            return
        table = io.to_arrow(frame)
        if self.writer is None:
            csv = self.path.name.endswith(".csv.tmp")
            self.writer = (pacsv.CSVWriter(str(self.path), table.schema) if csv
                           else pq.ParquetWriter(str(self.path), table.schema, compression="zstd"))
        if len(table):
            self.writer.write_table(table)

    def ensure(self, columns: list[str]) -> None:
        """Even an empty output gets its columns."""
        if self.writer is None:
            self.write(pd.DataFrame({c: pd.array([], dtype="str") for c in columns}))

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()


def _rejects(ids: np.ndarray, reasons: list[str] | np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"borrower_id": np.asarray(ids, dtype="int64"),
                         "reason": pd.array(np.asarray(reasons, dtype=object), dtype="str")})


def _dataset(path: Path, fmt: str | None = None, schema: pa.Schema | None = None) -> ds.Dataset:
    fmt = fmt or ("csv" if path.suffix == ".csv" or any(path.glob("*.csv")) else "parquet")
    if fmt == "csv":
        options = pacsv.ConvertOptions(column_types=schema) if schema is not None else None
        return ds.dataset(str(path), format=ds.CsvFileFormat(convert_options=options))
    return ds.dataset(str(path), format="parquet")


def _read(dataset: ds.Dataset, path: Path, **kwargs) -> pd.DataFrame:
    """A (filtered) read; unreadable or mistyped data stops with the file named."""
    try:
        return dataset.to_table(**kwargs).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        raise ContractError(f"{path}: cannot read: {err}") from err


@dataclass
class FeaturesFile:
    """A features file (or folder of them): one row per borrower, the model's columns."""

    path: Path
    features: list[str]
    dataset: ds.Dataset = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.dataset = _dataset(self.path)
            names = self.dataset.schema.names
        except (pa.ArrowInvalid, OSError) as err:
            raise ContractError(f"{self.path}: cannot read: {err}") from err
        missing = [c for c in ["borrower_id", "scoring_date", *self.features] if c not in names]
        if missing:
            raise ContractError(f"{self.path}: missing columns {missing}")
        for c in ["borrower_id", *self.features]:
            kind = self.dataset.schema.field(c).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
                raise ContractError(f"{self.path}: column '{c}' must be numeric, found {kind}")

    def batches(self, size: int) -> Iterator[Batch]:
        ids = _read(self.dataset, self.path, columns=["borrower_id"])["borrower_id"]
        if ids.empty:
            raise ContractError(f"{self.path}: no rows")
        values, counts = np.unique(ids.dropna().to_numpy(), return_counts=True)
        duplicated = values[counts > 1]
        for record_batch in self.dataset.to_batches(batch_size=size):
            frame = _read_batch(record_batch, self.path)
            bad = frame["borrower_id"].isna() | frame["scoring_date"].isna()
            dup = frame["borrower_id"].isin(duplicated)
            reasons = np.where(dup, "duplicate borrower_id", "missing borrower_id or scoring_date")
            rejected = frame[bad | dup]
            rejects = _rejects(rejected["borrower_id"].fillna(-1), reasons[(bad | dup).to_numpy()])
            keep = frame[~(bad | dup)].copy()
            keep["scoring_date"] = pd.to_datetime(keep["scoring_date"]).astype("datetime64[s]")
            yield Batch(keep.reset_index(drop=True), rejects, len(frame))


def _read_batch(record_batch: pa.RecordBatch, path: Path) -> pd.DataFrame:
    try:
        return record_batch.to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ContractError(f"{path}: cannot read: {err}") from err


class RawTables:
    """A folder of raw tables (``<table>/`` folders of Parquet, or ``<table>.parquet|.csv``)."""

    def __init__(self, path: Path, p: Params):
        self.path, self.params = path, p
        self.tables = {name: self._locate(name) for name in (*RAW_TABLES, "maintenance_windows")}
        self.datasets = {name: self._open(name, where) for name, where in self.tables.items()}
        self.windows = self._conform(_read(self.datasets["maintenance_windows"],
                                           self.tables["maintenance_windows"]), "maintenance_windows")
        self._row_failures(self.windows, "maintenance_windows")

    def _locate(self, name: str) -> Path:
        for candidate in (self.path / name, self.path / f"{name}.parquet", self.path / f"{name}.csv"):
            if candidate.exists():
                return candidate
        raise ContractError(f"{self.path}: table '{name}' is missing (expected {name}/, "
                            f"{name}.parquet or {name}.csv)")

    def _open(self, name: str, where: Path) -> ds.Dataset:
        schema = pa.schema([(c.name, ARROW_TYPES[c.dtype]) for c in TABLES[name].columns])
        try:
            dataset = _dataset(where, schema=schema)
            names = dataset.schema.names
        except (pa.ArrowInvalid, OSError) as err:
            raise ContractError(f"{where}: cannot read: {err}") from err
        missing = [c for c in TABLES[name].names if c not in names]
        if missing:
            raise ContractError(f"{where}: table '{name}' lacks columns {missing}")
        return dataset

    def _conform(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """Safe casts to the contract's dtypes (other int widths, date resolutions, object
        strings); anything else is left for the contract to report."""
        out = frame[TABLES[name].names].copy()
        for col in TABLES[name].columns:
            values = out[col.name]
            if col.dtype == "datetime64[s]" and pd.api.types.is_datetime64_any_dtype(values):
                out[col.name] = values.astype("datetime64[s]")
            elif col.dtype == "int64" and pd.api.types.is_integer_dtype(values):
                out[col.name] = values.astype("int64")
            elif col.dtype == "float64" and pd.api.types.is_numeric_dtype(values) and not \
                    pd.api.types.is_bool_dtype(values):
                out[col.name] = values.astype("float64")
            elif col.dtype == "str" and (pd.api.types.is_string_dtype(values) or values.dtype == object):
                out[col.name] = values.astype("str").where(values.notna(), None).astype("str")
        return out

    def _row_failures(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """(borrower_id, reason) of every failing row, after stopping on any failure that
        concerns the file itself (or a table no borrower owns, like maintenance windows)."""
        failures = violations(frame, name)
        whole = failures[failures["row"].isna()]
        if not whole.empty or (name == "maintenance_windows" and not failures.empty):
            first = (whole if not whole.empty else failures).iloc[0]
            raise ContractError(f"{self.tables[name]}: column '{first['column']}' fails "
                                f"{first['check']} (value {first['value']})")
        if failures.empty:
            return _rejects(np.array([], dtype="int64"), [])
        rows = failures["row"].astype("int64").to_numpy()
        reason = (name + "." + failures["column"] + ": fails " + failures["check"]
                  + " (value " + failures["value"] + ")")
        return pd.DataFrame({"borrower_id": frame["borrower_id"].to_numpy()[rows],
                             "reason": reason.to_numpy()})

    def batches(self, size: int) -> Iterator[Batch]:
        ids = _read(self.datasets["borrowers"], self.tables["borrowers"], columns=["borrower_id"])
        ids = ids["borrower_id"].dropna().astype("int64").to_numpy()
        if ids.size == 0:
            raise ContractError(f"{self.tables['borrowers']}: no borrowers")
        unique = np.unique(ids)
        for lo in range(0, unique.size, size):
            yield self._batch(unique[lo], unique[min(lo + size, unique.size) - 1])

    def _batch(self, first: int, last: int) -> Batch:
        where = (ds.field("borrower_id") >= first) & (ds.field("borrower_id") <= last)
        tables, failures = {}, []
        for name in RAW_TABLES:
            tables[name] = self._conform(_read(self.datasets[name], self.tables[name], filter=where), name)
            failures.append(self._row_failures(tables[name], name))
        everyone = np.unique(tables["borrowers"]["borrower_id"].to_numpy())
        bad = pd.concat(failures).drop_duplicates("borrower_id")  # a borrower's first failure
        clean = {n: f[~f["borrower_id"].isin(bad["borrower_id"])] for n, f in tables.items()}
        clean["maintenance_windows"] = self.windows
        features, no_jump = _features_or_rejects(clean, self.params)
        rejected = pd.concat([bad, no_jump])
        rejected = rejected[rejected["borrower_id"].isin(everyone)].sort_values("borrower_id")
        return Batch(features, _rejects(rejected["borrower_id"].to_numpy(), rejected["reason"].to_numpy()),
                     int(everyone.size))


def _features_or_rejects(tables: dict, p: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of every borrower that has a jump; those without one are rejected."""
    none = _rejects(np.array([], dtype="int64"), [])
    if tables["borrowers"].empty:
        return pd.DataFrame(), none
    try:
        return build_features(tables, p.label.observation_days, p.features), none
    except MissingJump as err:
        missing = _rejects(err.borrower_ids, ["limit_events: no limit increase"] * len(err.borrower_ids))
        rest = {n: (f[~f["borrower_id"].isin(err.borrower_ids)] if "borrower_id" in f else f)
                for n, f in tables.items()}
        if rest["borrowers"].empty:
            return pd.DataFrame(), missing
        return build_features(rest, p.label.observation_days, p.features), missing
