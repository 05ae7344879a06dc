"""``limitjump tune``: Optuna's search of the LightGBM's parameters (``tune.enabled``), the best
written to reports/tune/best.json for the train stage, the trials logged to MLflow as child runs
of one parent run. Off, it writes ``{"enabled": false}`` without reading any data."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import typer

from pipeline import io, tracking, train, tune
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import SPLIT_DIR, TUNE_BEST
from pipeline.config import Params

OFF = {"enabled": False}


@app.command(name="tune")
def tune_command(params: Path = PARAMS) -> None:
    """Search the LightGBM's parameters on the train and validation splits (tune.enabled)."""
    p = load(params)
    if not p.tune.enabled:
        io.write_json(OFF, TUNE_BEST)
        typer.echo("tune: off (tune.enabled: false); training uses train.lightgbm as it is")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is MLflow's job
    paths = {name: SPLIT_DIR / f"{name}.parquet" for name in ("train", "valid")}
    splits = io.read_splits(SPLIT_DIR, tuple(paths))
    columns = train.feature_columns(splits["train"])
    categorical = train.categorical_columns(splits["train"], columns)
    categories = train.learn_categories(splits["train"], columns)
    study = tune.run_study(splits["train"], splits["valid"], columns, categorical, categories,
                           p.train.lightgbm, p.tune)
    best = tune.best(study, p.tune.metric)
    io.write_json(best, TUNE_BEST)
    _log(p, study, best, splits, paths)
    typer.echo(f"tune: best validation {p.tune.metric} {best['value']:.4f} (trial {best['trial']}, "
               f"{best['trials']['complete']} complete, {best['trials']['pruned']} pruned): "
               f"{json.dumps(best['params'], sort_keys=True)}")


def _log(p: Params, study: optuna.Study, best: dict, splits: dict, paths: dict) -> None:
    """One parent run ("tune · <commit>") with the search's settings and result, and a child run
    per trial. Keyed by what the search found and on which data, so a repeated search logs
    nothing twice (trial durations vary from run to run and are left out of the key)."""
    records = tune.trials(study)
    digests = {name: io.file_digest(path) for name, path in paths.items()}
    settings = {"tune": p.tune.model_dump(), "train": {"lightgbm": p.train.lightgbm.model_dump()}}
    fingerprint = io.text_digest(json.dumps(
        {"best": best, "data": digests, **settings,
         "trials": [{k: v for k, v in r.items() if k != "seconds"} for r in records]},
        sort_keys=True, default=str))
    description = (f"Optuna search of the LightGBM's parameters: {len(records)} trials, best validation "
                   f"{p.tune.metric} {best['value']:.4f}")
    with tracking.new_run(p.mlflow, "tune", fingerprint, description) as run:
        if run is None:
            return
        tracking.log_params({**settings, "best": best["params"]})
        for name, frame in splits.items():
            tracking.log_dataset(frame, paths[name], digests[name], "training" if name == "train" else name)
        tracking.log_metrics({f"best_valid_{p.tune.metric}": best["value"], "best_trees": best["trees"],
                              **{f"trials_{state}": n for state, n in best["trials"].items()}})
        tracking.log_json(best, "best.json")
        metric = f"valid_{p.tune.metric}"
        for record in records:
            with tracking.child_run(f"trial {record['number']}", {"trial.state": record["state"],
                                                                 "trial.number": str(record["number"])}):
                tracking.log_params(record["params"])
                tracking.log_history(f"{metric}_by_round", record["steps"])  # what the pruner saw
                final = {metric: record["value"], "trees": record["trees"], "seconds": record["seconds"]}
                tracking.log_metrics({k: v for k, v in final.items() if v is not None})  # pruned: no value
