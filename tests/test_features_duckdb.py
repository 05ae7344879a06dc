"""The DuckDB implementation of the features (bench/features_duckdb.py) agrees with
pipeline.features on every column: an independent check of the feature definitions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.catalog import NAMES
from pipeline.features import build_features
from tests import handmade
from tests.conftest import make_params, simulate_tables

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = make_params().features


def _load_bench_module():
    # bench/ is a folder of scripts, not a package: load the module from its path
    spec = importlib.util.spec_from_file_location("features_duckdb", ROOT / "bench" / "features_duckdb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


duckdb_features = _load_bench_module().duckdb_features


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    params = make_params({"engine": {"workers": 1},
                          "simulate": {"n_borrowers": 3000, "shard_size": 3000, "truth_replicates": 2}})
    sim = simulate_tables(params)
    return {name: frame for name, frame in sim.items() if name != "ground_truth"}


def assert_same_features(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    assert list(theirs.columns) == list(ours.columns) == ["borrower_id", "scoring_date", "jump_date",
                                                          *NAMES]
    for column in ("borrower_id", "scoring_date", "jump_date"):
        np.testing.assert_array_equal(theirs[column].to_numpy(), ours[column].to_numpy(), err_msg=column)
    for name in NAMES:
        assert theirs[name].dtype == np.float64, name
        np.testing.assert_allclose(theirs[name].to_numpy(), ours[name].to_numpy(dtype=float),
                                   rtol=0, atol=1e-9, equal_nan=True, err_msg=name)


def test_duckdb_agrees_on_simulated_borrowers(tables):
    assert_same_features(build_features(tables, 30, SETTINGS), duckdb_features(tables, 30, SETTINGS))


def test_duckdb_reads_parquet_directories(tables, tmp_path):
    few = {name: frame[frame["borrower_id"] < 200] if name != "maintenance_windows" else frame
           for name, frame in tables.items()}
    for name, frame in few.items():
        (tmp_path / name).mkdir()
        frame.to_parquet(tmp_path / name / "part-00000.parquet", index=False)
    assert_same_features(build_features(few, 30, SETTINGS), duckdb_features(tmp_path, 30, SETTINGS))


def _due(bid: int, day: str, amount: float) -> dict:
    return dict(borrower_id=bid, due_date=day, scheduled_amount=amount, arrears_amount=0.0)


def _paid(bid: int, day: str, amount: float, due: str | None = None) -> dict:
    return dict(borrower_id=bid, payment_date=day, due_date=due or day, amount=amount, channel="manual")


def _event(bid: int, day: str, kind: str, detail: str = "user_action") -> dict:
    return dict(borrower_id=bid, event_date=day, event_type=kind, detail=detail)


def test_duckdb_agrees_on_edge_cases():
    """Same-day platform events in the wrong file order, due dates on the 31st (month
    arithmetic runs over into the next month), due dates of zero, a loan ending exactly at the
    jump, a borrower with no rows at all and a maintenance window over several days."""
    first = handmade.borrower(1, jump="2025-01-15")
    first["platform_events"] = [
        _event(1, "2025-01-20", "autodebit_authorised"),
        _event(1, "2025-01-20", "reauth_required"),
        _event(1, "2025-02-01", "autodebit_authorised"),
        _event(1, "2025-02-01", "autodebit_revoked", "expired")]
    first["installments"] = [_due(1, "2024-12-31", 500.0), _due(1, "2025-01-31", 500.0)]
    first["repayments"] = [_paid(1, "2024-12-31", 200.0), _paid(1, "2024-12-31", 300.0, "2025-01-31"),
                           _paid(1, "2025-02-03", 499.5)]
    second = handmade.borrower(2, jump="2025-03-01")
    second["installments"] = [_due(2, "2024-11-29", 0.0), _due(2, "2024-12-29", 100.0)]
    second["repayments"] = [_paid(2, "2025-01-05", 100.0)]
    second["bureau_loans"] = [dict(borrower_id=2, open_date="2023-01-30", lender_type="bank",
                                   amount=1000.0, tenor_months=25, monthly_installment=50.0)]
    empty = handmade.borrower(3, old_limit=0.0, trigger="new_user")
    windows = [dict(window_id=0, window_kind="planned", announced_date="2025-01-01",
                    start_time="2025-02-27 22:00:00", end_time="2025-03-04 02:00:00")]
    tables = handmade.tables(first, second, empty, maintenance_windows=windows)
    assert_same_features(build_features(tables, 30, SETTINGS), duckdb_features(tables, 30, SETTINGS))
