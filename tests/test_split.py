from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.split import SPLITS, out_of_time, summary


def frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    dates = pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    return pd.DataFrame({"borrower_id": np.arange(n), "jump_date": dates.astype("datetime64[s]"),
                         "label": rng.integers(0, 2, n)})


def test_oldest_train_newest_test_and_no_date_in_two_splits():
    f = frame()
    f["split"] = out_of_time(f["jump_date"], (0.6, 0.2, 0.2))
    ranges = f.groupby("split")["jump_date"].agg(["min", "max"])
    assert ranges.loc["train", "max"] < ranges.loc["valid", "min"]
    assert ranges.loc["valid", "max"] < ranges.loc["test", "min"]
    assert f.groupby("jump_date")["split"].nunique().max() == 1
    shares = f["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.02 and abs(shares["test"] - 0.2) < 0.02


def test_summary_counts_rows_and_misses():
    f = frame(50)
    f["split"] = out_of_time(f["jump_date"], (0.5, 0.25, 0.25))
    report = summary(f)
    assert sum(report[s]["rows"] for s in SPLITS) == 50
    assert sum(report[s]["misses"] for s in SPLITS) == f["label"].sum()
    train = f[f["split"] == "train"]
    assert report["train"]["miss_rate"] == train["label"].mean()
