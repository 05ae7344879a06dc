"""Hand-built raw tables (in the data contract) for tests with known answers."""

from __future__ import annotations

import pandas as pd

from pipeline.contract import TABLES, TRUTH_TABLES, validate


def _frame(table: str, rows: list[dict]) -> pd.DataFrame:
    spec = TABLES[table]
    data = {}
    for col in spec.columns:
        values = [r.get(col.name) for r in rows]
        if col.dtype == "datetime64[s]":
            data[col.name] = pd.to_datetime(pd.Series(values, dtype="object")).astype("datetime64[s]")
        elif col.dtype == "str":
            data[col.name] = pd.array(values, dtype="str")
        else:
            data[col.name] = pd.Series(values, dtype=col.dtype)
    frame = pd.DataFrame(data, columns=spec.names)
    validate(frame, table, f"handmade {table}")
    return frame


def borrower(bid: int, onboard: str = "2024-01-05", income: float = 10_000.0,
             old_limit: float = 10_000.0, increase: float = 50_000.0, jump: str = "2025-03-01",
             trigger: str = "marketing_campaign") -> dict[str, list[dict]]:
    """A borrower with an initial limit and one increase, and nothing else yet."""
    return {
        "borrowers": [dict(borrower_id=bid, onboard_date=onboard, age=30, city_tier=2,
                           employment_type="salaried", declared_monthly_income=income)],
        "limit_events": [
            dict(borrower_id=bid, event_date=onboard, event_type="initial", trigger=None,
                 old_limit=0.0, new_limit=old_limit, test_cell=None),
            dict(borrower_id=bid, event_date=jump, event_type="increase", trigger=trigger,
                 old_limit=old_limit, new_limit=old_limit + increase, test_cell="policy")],
    }


def tables(*borrowers: dict[str, list[dict]], **extra: list[dict]) -> dict[str, pd.DataFrame]:
    """Every table of the contract from per-borrower rows plus extra rows per table."""
    rows: dict[str, list[dict]] = {name: [] for name in TABLES if name not in TRUTH_TABLES}
    for b in borrowers:
        for name, r in b.items():
            rows[name] += r
    for name, r in extra.items():
        rows[name] += r
    return {name: _frame(name, r) for name, r in rows.items()}
