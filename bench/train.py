"""The LightGBM train command against bare ``lightgbm.train`` calls (goal: at most 1.3x).

Usage: python bench/train.py [--borrowers 1000000] [--project DIR] [--json FILE]
In one run: the command ``limitjump train lightgbm`` (loading the splits, fitting the risk model
and the cause model, calibrating, saving and logging to MLflow), then, in this process, on
matrices already in memory and with the same parameters:
  main       ``lightgbm.train`` of the risk model, early stopping on the validation split;
  all fits   that, plus the boosting the command does for the cause model (3 classes on the
             training misses, stopped on the validation misses for each of its tree sizes, then
             boosted again with the best for as many rounds on both), i.e. every tree the command
             grows, bare.
Prints the times and the command's ratio to each: the first is the goal as first stated (when
the command trained the risk model alone); the second is the command's overhead over the same
boosting.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
from measure import prepared, project_parser, run, split_matrices, write_json

from pipeline import causes, train
from pipeline.config import load_params

GOAL = 1.3


def bare_seconds(project: Path) -> dict[str, float]:
    """Seconds of each bare fit, and the risk model's trees."""
    settings = load_params(project / "params.yaml").train.lightgbm
    frames, x, codes, columns, categorical = split_matrices(project, ("train", "valid"))
    params = train.lightgbm_params(settings, columns, categorical, len(frames["train"]))
    stop = [lgb.early_stopping(settings.early_stopping_rounds, verbose=False)]

    start = time.perf_counter()
    dtrain = lgb.Dataset(x["train"], frames["train"]["label"], feature_name=columns,
                         categorical_feature=categorical)
    dvalid = lgb.Dataset(x["valid"], frames["valid"]["label"], reference=dtrain)
    booster = lgb.train(params, dtrain, settings.num_boost_round, valid_sets=[dvalid], callbacks=stop)
    main = time.perf_counter() - start

    missed = {n: codes[n] >= 0 for n in codes}
    cause_params = causes.cause_params(params)
    start = time.perf_counter()
    ctrain = lgb.Dataset(x["train"][missed["train"]], codes["train"][missed["train"]],
                         feature_name=columns, categorical_feature=categorical, free_raw_data=False,
                         params={"feature_pre_filter": False})
    cvalid = lgb.Dataset(x["valid"][missed["valid"]], codes["valid"][missed["valid"]], reference=ctrain,
                         params={"feature_pre_filter": False})
    stopped = {(leaves, leaf): lgb.train({**cause_params, "num_leaves": leaves, "min_data_in_leaf": leaf},
                                         ctrain, settings.num_boost_round, valid_sets=[cvalid],
                                         callbacks=stop)
               for leaves in settings.cause_num_leaves for leaf in settings.cause_leaf_sizes}
    best = min(stopped, key=lambda size: stopped[size].best_score["valid_0"]["multi_logloss"])
    both = lgb.Dataset(np.vstack([x[n][missed[n]] for n in x]),
                       np.concatenate([codes[n][missed[n]] for n in x]),
                       feature_name=columns, categorical_feature=categorical)
    lgb.train({**cause_params, "num_leaves": best[0], "min_data_in_leaf": best[1]},
              both, stopped[best].best_iteration or stopped[best].current_iteration())
    cause = time.perf_counter() - start
    return {"main_seconds": main, "cause_seconds": cause, "all_fits_seconds": main + cause,
            "trees": booster.best_iteration}


def main() -> None:
    parser = project_parser(__doc__)
    args = parser.parse_args()
    with prepared(args, upto="split") as project:
        command = run(["limitjump", "train", "lightgbm"], project)
        bare = bare_seconds(project)
    figures = {"borrowers": args.borrowers, "command_seconds": command.wall, "peak_mb": command.peak, **bare,
               "ratio_to_main": command.wall / bare["main_seconds"],
               "ratio_to_all_fits": command.wall / bare["all_fits_seconds"],
               "overhead_seconds": command.wall - bare["all_fits_seconds"]}
    print(f"limitjump train lightgbm: {command.wall:7.1f} s (peak memory {command.peak:.0f} MB)")
    print(f"bare risk model         : {bare['main_seconds']:7.1f} s ({bare['trees']} trees, early stopping)")
    print(f"bare cause model        : {bare['cause_seconds']:7.1f} s (stopped for each tree size, "
          "then boosted again)")
    print(f"ratio command / risk model fit: {figures['ratio_to_main']:.2f}  (goal <= {GOAL})")
    print(f"ratio command / all its fits  : {figures['ratio_to_all_fits']:.2f}  (goal <= {GOAL})")
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
