"""Shared fixtures: the repository's params with overrides, and one small simulated population."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import Params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a test's server."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bench_module(name: str):
    """A script of bench/ as a module: bench/ is a folder of scripts, not a package, whose scripts
    import their shared helpers (``measure``) from their own folder."""
    folder = str(ROOT / "bench")
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def make_params(overrides: dict | None = None) -> Params:
    """The repository's params.yaml with some keys changed."""
    return parse_params(merge(raw_params(), overrides or {}), "test params")


def team_settings(**names):
    """``source.tables`` for a team's file of ``team_frame``'s names, ``names`` changed."""
    return make_params({"source": {"tables": {"id_column": "customer_id", "label_column": "bad",
                                              "date_column": "as_of", **names}}}).source.tables


def team_frame() -> pd.DataFrame:
    """A team's four borrowers: an id, a date, a category with a blank, an amount and a label."""
    return pd.DataFrame({"customer_id": [7, 3, 9, 4],
                         "as_of": ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"],
                         "segment": ["a", "b", None, "a"], "amount": [1.5, None, 3.0, 4.0],
                         "bad": [0, 1, 0, 1]})


SMALL = {"engine": {"workers": 1},
         "simulate": {"n_borrowers": 6000, "shard_size": 3000, "truth_replicates": 8,
                      # every cohort, so that the counterfactual's tests have a thousand borrowers
                      "counterfactual": {"share": 0.2, "since": "2023-01-01"}}}


def simulate_tables(params: Params) -> dict[str, pd.DataFrame]:
    """Every table of a whole simulation, shards concatenated."""
    from pipeline.simulate import build_world, shard_bounds, simulate_shard

    world = build_world(params.simulate, params.label)
    shards = [simulate_shard(i, params.simulate, world) for i in range(len(shard_bounds(params.simulate)))]
    tables = {name: pd.concat([s[name] for s in shards], ignore_index=True) for name in shards[0]}
    tables["maintenance_windows"] = world.outages.windows
    return tables


def realism_of(tables: dict[str, pd.DataFrame], replicates: int, label,
               truth: pd.DataFrame | None = None) -> dict:
    """The realism report of a simulation's tables (of ``truth``, some of its ground truth's rows)."""
    from pipeline.simulate.realism import realism_report, struck_by_unforeseen_outages

    truth = tables["ground_truth"] if truth is None else truth
    struck = struck_by_unforeseen_outages(truth, tables["installments"], tables["maintenance_windows"], label)
    return realism_report(truth, replicates, label, struck)


# the longest files, longest first: with one file per worker (xdist --dist loadfile, its reordering by
# test count switched off in pyproject.toml) they start at once instead of last, and the short files
# fill the other worker
LONGEST = ("test_pipeline_e2e.py", "test_own_data_e2e.py", "test_mlflow_integration.py", "test_team.py",
           "test_labels.py")


def model_never_told_of_maintenance(n: int = 3000):
    """A calibrated LightGBM of credit score, auto-debit and due dates in announced maintenance,
    trained on rows where no due date ever fell in maintenance (the feature is always 0)."""
    from pipeline import train

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"borrower_id": np.arange(n), "credit_score": rng.normal(650, 60, n).round(),
                          "autodebit_active": rng.integers(0, 2, n).astype(float),
                          "due_dates_in_announced_outage": np.zeros(n)})
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp((frame["credit_score"] - 560) / 30))).astype(int)
    columns = train.feature_columns(frame)
    settings = make_params({"train": {"lightgbm": {"num_boost_round": 40, "early_stopping_rounds": 10}}})
    cut = 2 * n // 3
    return train.fit_calibrated_lightgbm(frame.iloc[:cut], frame.iloc[cut:], columns, [], {},
                                         settings.train.lightgbm)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST)))  # stable: order within a file kept


@pytest.fixture(scope="session")
def small_params() -> Params:
    return make_params(SMALL)


@pytest.fixture(scope="session")
def small_sim(small_params) -> dict[str, pd.DataFrame]:
    """6,000 borrowers in two shards: the raw tables and the ground truth."""
    return simulate_tables(small_params)


def in_training(features: pd.DataFrame) -> np.ndarray:
    """The rows ``build_model_dir`` trains on: the earliest 70% by jump date."""
    return features["jump_date"].rank(method="first").to_numpy() / len(features) <= 0.7


def build_model_dir(tables: dict[str, pd.DataFrame], features: pd.DataFrame, out: Path,
                    fingerprint: str = "test") -> dict:
    """A small calibrated LightGBM on ``features`` (labels from the ground truth), saved the way
    ``limitjump train lightgbm`` saves one."""
    from pipeline import io
    from pipeline.train import categorical_columns, feature_columns, fit_scoring_model

    frame = features.copy()
    truth = tables["ground_truth"].set_index("borrower_id").loc[frame["borrower_id"]]
    frame["label"] = truth["label"].to_numpy()
    frame["miss_cause"] = truth["first_miss_cause"].to_numpy()  # so the model has its cause model
    train = in_training(frame)
    splits = {"train": frame[train].reset_index(drop=True), "valid": frame[~train].reset_index(drop=True)}
    settings = make_params({"train": {"lightgbm": {"num_boost_round": 80, "early_stopping_rounds": 15}}})
    columns = feature_columns(splits["train"])
    out.mkdir(parents=True, exist_ok=True)
    fit_scoring_model(splits, columns, categorical_columns(splits["train"], columns),
                      settings.train.lightgbm)[0].save(out)
    io.write_json({"model": "lightgbm", "features": columns, "fingerprint": fingerprint},
                  out / "metadata.json")
    reference = json.loads((out / "reference.json").read_text())
    return {"path": out, "columns": columns, "importance": reference["importance"],
            "train_ids": splits["train"]["borrower_id"].to_numpy()}


@pytest.fixture
def silent_listener():
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the server closed at the end of the test
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in accepted:
        conn.close()
