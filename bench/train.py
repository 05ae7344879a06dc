"""The LightGBM train command against a bare ``lightgbm.train`` (goal: at most 1.3x).

Usage: python bench/train.py [--borrowers 1000000] [--project DIR]
In one run: the command ``limitjump train lightgbm`` (loading the splits, fitting, calibrating,
saving and logging to MLflow), then, in this process, ``lightgbm.train`` with the same parameters
and early stopping on the same matrices, already in memory. Prints both times and the ratio.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightgbm as lgb
import pandas as pd
from measure import prepared, project_parser, run

from pipeline import train
from pipeline.config import load_params
from pipeline.model import encode


def bare_seconds(project: Path) -> tuple[float, int]:
    settings = load_params(project / "params.yaml").train.lightgbm
    frames = {n: pd.read_parquet(project / "data" / "split" / f"{n}.parquet") for n in ("train", "valid")}
    columns = train.feature_columns(frames["train"])
    categorical = train.categorical_columns(frames["train"], columns)
    params = train.lightgbm_params(settings, columns, categorical, len(frames["train"]))
    matrices = {n: encode(f, columns, {}) for n, f in frames.items()}
    start = time.perf_counter()
    dtrain = lgb.Dataset(matrices["train"], frames["train"]["label"], feature_name=columns,
                         categorical_feature=categorical)
    dvalid = lgb.Dataset(matrices["valid"], frames["valid"]["label"], reference=dtrain)
    booster = lgb.train(params, dtrain, settings.num_boost_round, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)])
    return time.perf_counter() - start, booster.best_iteration


def main() -> None:
    args = project_parser(__doc__).parse_args()
    with prepared(args, upto="split") as project:
        command = run(["limitjump", "train", "lightgbm"], project)
        bare, trees = bare_seconds(project)
    print(f"limitjump train lightgbm: {command.wall:7.1f} s (peak memory {command.peak:.0f} MB)")
    print(f"bare lightgbm.train     : {bare:7.1f} s ({trees} trees, same params, early stopping)")
    print(f"ratio command / bare    : {command.wall / bare:.2f}  (goal <= 1.3)")


if __name__ == "__main__":
    main()
