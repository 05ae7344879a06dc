"""``limitjump train scorecard|lightgbm``: fit one model, save it under models/, log one MLflow run."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipeline import io, model, tracking, train
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import MAINTENANCE_HISTORY, MODELS, SPLIT_DIR, TRAIN_REPORTS, TUNE_BEST
from pipeline.config import Params


class Kind(StrEnum):
    scorecard = "scorecard"
    lightgbm = "lightgbm"


@app.command(name="train")
def train_command(kind: Annotated[Kind, typer.Argument(help="Which model to train.")],
                  params: Path = PARAMS) -> None:
    """Train one model on the train split; validation for early stopping and calibration."""
    p = load(params)
    splits = io.read_splits(SPLIT_DIR)
    digests = {name: io.file_digest(SPLIT_DIR / f"{name}.parquet") for name in splits}
    columns = train.feature_columns(splits["train"])
    categorical = train.categorical_columns(splits["train"], columns)
    constant = train.constant_columns(splits["train"], columns)
    if constant:
        why = ("a column your file leaves blank or fills with one value?" if p.source.kind == "tables" else
               "events too rare for the training rows to hold one, a window shorter than "
               "features.bureau_lag_days, or a table the data lack?")
        typer.echo(f"warning: {len(constant)} features hold one value for every training borrower, so no "
                   f"model learns from them: {', '.join(constant)} ({why})", err=True)
    out = MODELS / kind.value
    with io.atomic_dir(out) as tmp:
        fit = _fit_lightgbm if kind is Kind.lightgbm else _fit_scorecard
        scores, settings, log_model = fit(p, splits, columns, categorical, tmp)
        figures = {f"{split}_{k}": v for split in scores
                   for k, v in train.evaluate_split(splits[split]["label"].to_numpy(), scores[split]).items()}
        figures[tracking.PRIMARY_METRIC] = figures["test_auc"]
        metadata = {"model": kind.value, "features": columns, "categorical": categorical,
                    "rows": {k: len(v) for k, v in splits.items()},
                    "misses": {k: int(v["label"].sum()) for k, v in splits.items()}, "data_digests": digests,
                    "params": settings, "metrics": figures}
        metadata["fingerprint"] = _fingerprint(tmp, metadata)
        io.write_json(metadata, tmp / "metadata.json")
    io.write_json(figures, TRAIN_REPORTS / f"{kind.value}.json")
    description = (f"{DESCRIPTIONS[kind.value]}; out-of-time AUC {figures['test_auc']:.4f}, "
                   f"ECE {figures['test_ece']:.4f}")
    with tracking.new_run(p.mlflow, kind.value, metadata["fingerprint"], description) as run:
        if run is not None:
            # the features' settings too: runs that differ only there differ in Compare
            tracking.log_params({"train": {kind.value: settings}, "label": p.label.model_dump(),
                                 "split": p.split.model_dump(), "features": p.features.model_dump()})
            datasets = {name: tracking.log_dataset(frame, SPLIT_DIR / f"{name}.parquet", digests[name],
                                                   "training" if name == "train" else name)
                        for name, frame in splits.items()}
            model_id = log_model(out, splits["test"][columns])
            for split in scores:  # each split's metrics linked to its dataset and the logged model
                tracking.log_metrics({k: v for k, v in figures.items() if k.startswith(f"{split}_")},
                                     model_id=model_id, dataset=datasets[split])
            tracking.log_metrics({tracking.PRIMARY_METRIC: figures[tracking.PRIMARY_METRIC]},
                                 model_id=model_id, dataset=datasets["test"])
            for f in sorted(out.iterdir()):
                tracking.log_artifact(f, "files")
    typer.echo(f"{kind.value}: validation AUC {figures['valid_auc']:.4f}, out-of-time AUC "
               f"{figures['test_auc']:.4f}, out-of-time ECE {figures['test_ece']:.4f}")


DESCRIPTIONS = {"lightgbm": "Calibrated monotone LightGBM: probability of a missed repayment after "
                            "a credit-limit jump",
                "scorecard": "WoE logistic scorecard (the transparent baseline)"}


def _fingerprint(folder: Path, metadata: dict) -> str:
    """Content hash of the model files and what produced them (the data, the features, the
    figures): the run's identity. Not the params as written: settings that resolve alike
    (``calibration: platt`` where ``auto`` chose Platt) make the same files, one model, which had
    been registered twice; what they resolved to is in the files."""
    files = {f.name: io.file_digest(f) for f in sorted(folder.iterdir())}
    produced = {k: v for k, v in metadata.items() if k != "params"}
    return io.text_digest(json.dumps({"files": files, **produced}, sort_keys=True, default=str))


def _fit_lightgbm(p: Params, splits: dict, columns: list[str], categorical: list[str], out: Path):
    s, tuned = train.tuned_settings(p.train.lightgbm, p.tune.enabled, TUNE_BEST)
    maintenance = json.loads(MAINTENANCE_HISTORY.read_text()) if MAINTENANCE_HISTORY.is_file() else None
    fitted, valid_scores = train.fit_scoring_model(splits, columns, categorical, s, maintenance, p.label,
                                                   own_data=p.source.kind == "tables",
                                                   feature_settings=p.features)
    fitted.save(out)
    booster = fitted.booster
    # each monotone constraint against the training data's own trend: kept with the model, logged,
    # and named in the model card when one contradicts the data
    directions = train.direction_check(splits["train"], columns)
    # rounded: a correlation's last bits vary from machine to machine, and the file is a DVC output
    rounded = directions.round({"binned_trend": 6, "rank_correlation": 6, "z": 3})
    io.write_json(rounded.to_dict("records"), out / model.DIRECTIONS_FILE)
    contradicted = directions.loc[directions["contradicts"], "feature"].tolist()
    if contradicted:
        typer.echo(f"warning: monotone constraints contradict the training data: {contradicted}", err=True)
    rows = len(splits["train"])
    if not booster.feature_importance("split").sum():
        typer.echo(f"warning: the risk model split on nothing: leaves of {train.leaf_size(s, rows)} rows "
                   f"(train.lightgbm.min_data_in_leaf) cannot be filled twice from {rows} training rows, so "
                   "its features rank no one", err=True)
    # what "auto" resolved to on these rows, logged beside the setting itself
    settings = {**s.model_dump(), "trees": booster.num_trees(), "contradicted_directions": len(contradicted),
                "min_data_in_leaf_used": train.leaf_size(s, rows), "lambda_l2_used": train.leaf_l2(s, rows),
                "calibration_used": fitted.calibration["method"], **({"tuned": tuned} if tuned else {}),
                **({f"cause_{k}_used": fitted.causes[1][k] for k in ("num_leaves", "min_data_in_leaf")}
                   if fitted.causes else {})}
    scores = {"valid": valid_scores, "test": fitted.predict(splits["test"])}

    def log_model(folder: Path, example_pool: pd.DataFrame) -> str:
        """The model as MLflow data (the folder's files) loaded by the installed package."""
        example = example_pool.dropna().head(5)
        tracking.log_metrics({"trees": booster.num_trees()})
        return tracking.log_served_model("pipeline.model", folder, example, fitted.predict(example))

    return scores, settings, log_model


def _fit_scorecard(p: Params, splits: dict, columns: list[str], categorical: list[str], out: Path):
    card = train.fit_scorecard(splits["train"], columns, categorical, p.train.scorecard)
    io.write_json(card, out / "scorecard.json")
    io.write_csv(train.scorecard_points(card), out / "scorecard_points.csv")

    def log_model(folder: Path, example_pool: pd.DataFrame) -> None:
        tracking.log_metrics({"characteristics": len(card["variables"])})

    settings = {**p.train.scorecard.model_dump(), "characteristics": len(card["variables"])}
    scores = {name: train.scorecard_predict(card, splits[name]) for name in ("valid", "test")}
    return scores, settings, log_model
