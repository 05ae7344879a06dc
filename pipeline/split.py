"""Out-of-time split: the oldest jump cohorts train, the next validate, the most recent test."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test")


def out_of_time(jump_date: pd.Series, fractions: tuple[float, float, float]) -> pd.Series:
    """Split name per row. Whole jump dates go to one split (so a borrower, and everyone who
    jumped the same day, is in exactly one), the cut-offs placed where the cumulative share of
    rows first reaches each fraction."""
    dates = np.sort(jump_date.unique())
    share = np.cumsum(jump_date.value_counts().reindex(dates).to_numpy()) / len(jump_date)
    train_end = dates[np.searchsorted(share, fractions[0] - 1e-12)]
    valid_end = dates[np.searchsorted(share, fractions[0] + fractions[1] - 1e-12)]
    names = np.select([jump_date <= train_end, jump_date <= valid_end], ["train", "valid"], "test")
    return pd.Series(names, index=jump_date.index, name="split")


def summary(frame: pd.DataFrame) -> dict[str, dict]:
    """Rows, misses, miss rate and jump-date range per split."""
    out = {}
    for name in SPLITS:
        part = frame[frame["split"] == name]
        out[name] = {
            "rows": int(len(part)),
            "misses": int(part["label"].sum()),
            "miss_rate": float(part["label"].mean()) if len(part) else float("nan"),
            "first_jump_date": str(part["jump_date"].min().date()) if len(part) else None,
            "last_jump_date": str(part["jump_date"].max().date()) if len(part) else None,
        }
    return out
