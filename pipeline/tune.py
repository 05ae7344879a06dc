"""Tuning the LightGBM with Optuna, as pure functions: a seeded TPE search over the train and
validation splits through the training's own ``fit_lightgbm``, pruned as the trees are boosted.

The objective is a figure of the booster before calibration on the validation split, the split
early stopping already watches; the out-of-time test split stays unseen. Log loss (the default)
is the figure early stopping minimises, so a trial is judged by what stopped it; it is a proper
scoring rule, sensitive to every probability, where AUC changes only when a pair of rows swaps
order and is noisier on a small validation set (a flatter signal for the sampler and the
pruner). ``tune.metric: auc`` searches for ranking alone, calibration being fitted afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

import numpy as np
import optuna
import pandas as pd

from pipeline import metrics
from pipeline.config import LightGBMSettings, TuneSettings
from pipeline.lgbm import lgb
from pipeline.model import CalibratedLightGBM
from pipeline.train import LABEL, MIN_LEAF, fit_lightgbm, with_params

# tune.metric: LightGBM's name for it (reported while boosting, for the pruner), the study's
# direction, and the project's own measure of the finished booster
METRICS: dict[str, tuple[str, str, Callable]] = {
    "log_loss": ("binary_logloss", "minimize", lambda y, p: metrics.probability_quality(y, p)["log_loss"]),
    "auc": ("auc", "maximize", lambda y, p: metrics.ranking(y, p)["auc"]),
}

# The pruner: a trial whose validation figure is worse than the median of earlier trials' at the
# same boosting round stops there. No trial is pruned before STARTUP_TRIALS have finished (so at
# least one completes, whatever the time budget) nor before WARMUP_ROUNDS rounds, where every
# trial is still far from its best; the figure is reported every REPORT_EVERY rounds. Rounds
# are compared as they are, so a trial with a low learning rate looks worse early than it ends:
# the learning rate's range below stays within a factor of ten for that reason.
STARTUP_TRIALS = 5
WARMUP_ROUNDS = 50
REPORT_EVERY = 10
# Tried values are rounded to this many significant digits before a trial uses them: the
# best.json the train stage reads then holds exactly what the best trial trained with.
DIGITS = 4


def leaf_range(train_rows: int) -> tuple[int, int]:
    """min_data_in_leaf from LightGBM's default (20) to a tenth of the training rows, that tenth
    kept within [40, 400]: a larger leaf leaves too few splits, a smaller one fits noise."""
    return MIN_LEAF, int(np.clip(train_rows // 10, 2 * MIN_LEAF, 400))


def search_space(trial: optuna.Trial, train_rows: int) -> dict:
    """What is searched, around train.lightgbm's defaults (31 leaves, rate 0.05, fractions 0.8,
    L2 and leaf size sized to the data): log scales where a value matters by its ratio."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", *leaf_range(train_rows), log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 0.01, 100.0, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
    }


def rounded(values: dict) -> dict:
    return {k: float(f"{v:.{DIGITS}g}") if isinstance(v, float) else v for k, v in values.items()}


def _pruning(trial: optuna.Trial, name: str) -> Callable:
    """A LightGBM callback: report the validation figure every REPORT_EVERY rounds and stop the
    trial when the pruner says so."""
    def callback(env: lgb.callback.CallbackEnv) -> None:
        step = env.iteration + 1
        if step % REPORT_EVERY:
            return
        trial.report(next(r[2] for r in env.evaluation_result_list if r[1] == name), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {step}")
    return callback


def objective(trial: optuna.Trial, train: pd.DataFrame, valid: pd.DataFrame, columns: list[str],
              categorical: list[str], categories: dict[str, list], settings: LightGBMSettings,
              metric: str, space: Callable = search_space) -> float:
    """One trial: the settings with the tried values, boosted and stopped as training does."""
    name, _, measure = METRICS[metric]
    tried = with_params(settings, rounded(space(trial, len(train))))
    extra = [] if name == "binary_logloss" else [name]
    booster = fit_lightgbm(train, valid, columns, categorical, categories, tried,
                           callbacks=[_pruning(trial, name)], also_evaluate=extra)
    trial.set_user_attr("trees", booster.num_trees())
    raw = CalibratedLightGBM(booster, None, categories).raw(valid)
    return measure(valid[LABEL].to_numpy(), raw)


def run_study(train: pd.DataFrame, valid: pd.DataFrame, columns: list[str], categorical: list[str],
              categories: dict[str, list], settings: LightGBMSettings, tune: TuneSettings,
              space: Callable = search_space) -> optuna.Study:
    """The seeded search, trial after trial in this process (parallel trials would make the
    sampler's choices depend on which finished first)."""
    _, direction, _ = METRICS[tune.metric]
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=tune.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=WARMUP_ROUNDS,
                                           interval_steps=REPORT_EVERY))
    study.optimize(partial(objective, train=train, valid=valid, columns=columns, categorical=categorical,
                           categories=categories, settings=settings, metric=tune.metric, space=space),
                   n_trials=tune.n_trials, timeout=tune.timeout_seconds)
    return study


def best(study: optuna.Study, metric: str) -> dict:
    """What the train stage reads (reports/tune/best.json): the best trial's values, and how the
    search went. Rounded, so the same search gives the same bytes."""
    top = study.best_trial
    states = Counter(t.state.name.lower() for t in study.trials)
    return {"enabled": True, "metric": metric, "value": round(top.value, 6), "trial": top.number,
            "params": rounded(top.params), "trees": top.user_attrs["trees"],
            "trials": {"complete": states["complete"], "pruned": states["pruned"]}}


def trials(study: optuna.Study) -> list[dict]:
    """Every trial as MLflow records it: tried values, state, final and intermediate figures."""
    return [{"number": t.number, "state": t.state.name.lower(), "params": rounded(t.params),
             "value": t.value, "trees": t.user_attrs.get("trees"), "steps": dict(t.intermediate_values),
             "seconds": t.duration.total_seconds()}
            for t in study.trials]
