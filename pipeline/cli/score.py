"""``limitjump score``: score new borrowers in batches with bounded memory.

Input is either a folder of raw tables in the data contract (features are computed with the same
code as in training) or a ready features file, Parquet or CSV. Borrowers are read in batches
(pyarrow dataset scans, pruned by borrower id), scored and written as they go to temporary files
that replace the outputs only at the end: a killed run leaves no partial output.
"""

from __future__ import annotations

import json
import re
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
from pipeline.engine import map_shards
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
    summary = run(open_source(input, p, model.features), model, version, output, p)
    typer.echo(f"borrowers in {summary['borrowers_in']} = scored {summary['scored']} + rejected "
               f"{summary['rejected']}; bands {summary['bands']}; drift flagged: "
               f"{[k for k, v in summary['drift'].items() if v['flag'] != 'stable'] or 'none'}")


def open_source(path: Path, p: Params, features: list[str]) -> RawTables | FeaturesFile:
    return RawTables(path, p) if _is_raw(path) else FeaturesFile(path, features)


def score_range(bounds: tuple[int, int], path: Path, p: Params, model: CalibratedLightGBM,
                version: str, watched: list[str]) -> tuple[Batch, pd.DataFrame, dict]:
    """Everything about the borrowers with ids in ``bounds``: read, validated, scored. Runs
    wherever the engine puts it (this process, a local worker process, a Dask worker)."""
    batch = open_source(path, p, model.features).load(*bounds)
    if batch.features.empty:
        return batch, pd.DataFrame(columns=score.OUTPUT_COLUMNS), {}
    scored = score.score_batch(model, batch.features, p.score.bands, tuple(p.score.quiet_bands), version,
                               explain_risky=p.score.explain)
    values = {"score": scored["probability"].to_numpy(),
              **{f: batch.features[f].to_numpy(dtype=float) for f in watched}}
    batch.features = batch.features.iloc[:0]  # not needed by the caller: do not ship it back
    return batch, scored, values


def run(source, model: CalibratedLightGBM, version: str, output: Path, p: Params) -> dict:
    """Score every batch of borrower ids on the engine, writing results in id order as they
    come back; outputs appear only when all is done."""
    s = p.score
    watched = _watched_features(model, s.drift_features)
    drift = score.Drift({name: model.reference["bins"][name] for name in ["score", *watched]})
    counts = {"borrowers_in": 0, "scored": 0, "rejected": 0}
    bands = dict.fromkeys(s.bands, 0)
    rejects_path = output.with_name(output.stem + ".rejects" + output.suffix)
    with io.atomic_path(output, output.suffix) as out_tmp, \
            io.atomic_path(rejects_path, output.suffix) as rej_tmp, \
            _Writer(out_tmp) as scores_out, _Writer(rej_tmp) as rejects_out:
        results = map_shards(score_range, source.ranges(s.batch_borrowers), p.engine, "score",
                             source.path, p, model, version, watched)
        for batch, scored, values in results:
            counts["borrowers_in"] += batch.borrowers_in
            rejects_out.write(batch.rejects)
            counts["rejected"] += len(batch.rejects)
            if len(scored):
                scores_out.write(scored)
                counts["scored"] += len(scored)
                for band, n in scored["risk_band"].value_counts().items():
                    bands[band] += int(n)
                drift.add(values)
        orphans = source.orphans()
        rejects_out.write(orphans)
        counts["borrowers_in"] += len(orphans)
        counts["rejected"] += len(orphans)
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
    try:
        loaded = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except mlflow.exceptions.MlflowException as err:
        raise FileNotFoundError(f"model {uri} cannot be loaded: {err.message} (has a model passed "
                                "the promotion gate yet? see reports/gates.json)") from err
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
    """A folder holding any table of the contract (then a missing table is reported by name)."""
    return path.is_dir() and any((path / f"{name}{ext}").exists()
                                 for name in (*RAW_TABLES, "maintenance_windows")
                                 for ext in ("", ".parquet", ".csv"))


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
        # an empty field is a missing value, in text columns too (as pandas and most tools write it)
        options = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True)
        return ds.dataset(str(path), format=ds.CsvFileFormat(convert_options=options))
    return ds.dataset(str(path), format="parquet")


def _read(dataset: ds.Dataset, path: Path, **kwargs) -> pd.DataFrame:
    """A (filtered) read; unreadable or mistyped data stops with the file named."""
    try:
        return dataset.to_table(**kwargs).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        raise _unreadable(path, err, dataset) from err


def _unreadable(path: Path, err: Exception, dataset: ds.Dataset) -> ContractError:
    """The file and Arrow's message; Arrow numbers the CSV column that fails to convert, so name it."""
    found = re.search(r"CSV column #(\d+)", str(err))
    names = dataset.schema.names
    column = f" (column '{names[int(found[1])]}')" if found and int(found[1]) < len(names) else ""
    return ContractError(f"{path}: cannot read{column}: {err}")


@dataclass
class FeaturesFile:
    """A features file (or folder of them): one row per borrower, the model's columns."""

    path: Path
    features: list[str]
    dataset: ds.Dataset = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.dataset = _dataset(self.path)
            if isinstance(self.dataset.format, ds.CsvFileFormat):
                # CSV types are inferred from the first block only: a feature empty there (null) or
                # whole there (int) would fail on later rows, so numeric features are read as float
                inferred = self.dataset.schema
                floats = pa.schema([(c, pa.float64()) for c in self.features if c in inferred.names
                                    and _is_number(inferred.field(c).type)])
                self.dataset = _dataset(self.path, "csv", floats)
            names = self.dataset.schema.names
        except (pa.ArrowInvalid, OSError) as err:
            raise ContractError(f"{self.path}: cannot read: {err}") from err
        missing = [c for c in ["borrower_id", "scoring_date", *self.features] if c not in names]
        if missing:
            raise ContractError(f"{self.path}: missing columns {missing}")
        for c in ["borrower_id", *self.features]:
            kind = self.dataset.schema.field(c).type
            if not _is_number(kind):
                raise ContractError(f"{self.path}: column '{c}' must be numeric, found {kind}")

    def ranges(self, size: int) -> list[tuple[int, int]]:
        ids = _read(self.dataset, self.path, columns=["borrower_id"])["borrower_id"]
        if ids.empty:
            raise ContractError(f"{self.path}: no rows")
        return _id_ranges(ids, size)

    def load(self, first: int, last: int) -> Batch:
        """Rows of borrowers ``first``..``last``; duplicated ids and missing scoring dates are
        rejected (all rows of an id fall in the same range, so duplicates are seen here)."""
        where = (ds.field("borrower_id") >= first) & (ds.field("borrower_id") <= last)
        frame = _read(self.dataset, self.path, filter=where)
        dup = frame["borrower_id"].duplicated(keep=False)
        bad = dup | frame["scoring_date"].isna()
        reasons = np.where(dup, "borrower_id: duplicate borrower", "scoring_date: missing")
        rejects = _rejects(frame.loc[bad, "borrower_id"], reasons[bad.to_numpy()])
        keep = frame[~bad].copy()
        keep["scoring_date"] = pd.to_datetime(keep["scoring_date"]).astype("datetime64[s]")
        return Batch(keep.reset_index(drop=True), rejects, len(frame))

    def orphans(self) -> pd.DataFrame:
        """Rows without a borrower id belong to no range; each is one rejected row."""
        rows = _read(self.dataset, self.path, columns=["borrower_id"],
                     filter=ds.field("borrower_id").is_null())
        return _rejects(np.full(len(rows), -1), ["borrower_id: missing"] * len(rows))


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)


def _id_ranges(ids: pd.Series, size: int) -> list[tuple[int, int]]:
    """Consecutive (first, last) id ranges of ``size`` distinct borrowers each."""
    unique = np.unique(ids.dropna().astype("int64").to_numpy())
    return [(int(unique[lo]), int(unique[min(lo + size, unique.size) - 1]))
            for lo in range(0, unique.size, size)]


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
        # a failure of the table's key (a duplicate) names the key, not the duplicated value
        column = failures["column"].where(failures["column"].isin(TABLES[name].names),
                                          ", ".join(TABLES[name].key))
        reason = (name + "." + column + ": fails " + failures["check"]
                  + " (value " + failures["value"].fillna("missing") + ")")
        return pd.DataFrame({"borrower_id": frame["borrower_id"].to_numpy()[rows],
                             "reason": reason.to_numpy()})

    def ranges(self, size: int) -> list[tuple[int, int]]:
        ids = _read(self.datasets["borrowers"], self.tables["borrowers"], columns=["borrower_id"])
        if ids["borrower_id"].dropna().empty:
            raise ContractError(f"{self.tables['borrowers']}: no borrowers")
        return _id_ranges(ids["borrower_id"], size)

    def orphans(self) -> pd.DataFrame:
        """Rows of other tables whose borrower is not in ``borrowers`` are not borrowers: none."""
        return _rejects(np.array([], dtype="int64"), [])

    def load(self, first: int, last: int) -> Batch:
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
        missing = _rejects(err.borrower_ids,
                           ["limit_events.event_type: no limit increase"] * len(err.borrower_ids))
        rest = {n: (f[~f["borrower_id"].isin(err.borrower_ids)] if "borrower_id" in f else f)
                for n, f in tables.items()}
        if rest["borrowers"].empty:
            return pd.DataFrame(), missing
        return build_features(rest, p.label.observation_days, p.features), missing
