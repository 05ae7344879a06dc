"""``limitjump evaluate``: out-of-time evaluation of both models and of the true probability;
metrics for DVC, plot data, PNG plots and an HTML model card, logged to each model's run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import typer

from pipeline import card, evaluate, io, model, plots, tracking, train
from pipeline.cli import PARAMS, app, load
from pipeline.cli.register import REPORT as GATES
from pipeline.cli.simulate import TRUTH_DIR
from pipeline.cli.split import SPLIT_DIR
from pipeline.cli.train import MODELS

REPORTS = Path("reports")
PLOTS = REPORTS / "plots"
FIGURES = REPORTS / "figures"


def predictors() -> dict:
    """Each model's probability function, from its files under models/."""
    booster = model.CalibratedLightGBM.from_dir(MODELS / "lightgbm")
    scorecard = json.loads((MODELS / "scorecard" / "scorecard.json").read_text())
    return {"scorecard": lambda f: train.scorecard_predict(scorecard, f),
            "lightgbm": lambda f: booster.predict(None, f)}


@app.command(name="evaluate")
def evaluate_command(params: Path = PARAMS) -> None:
    """Evaluate on the out-of-time test split against the simulator's truth."""
    p = load(params)
    s = p.evaluate
    frames = {name: pd.read_parquet(SPLIT_DIR / f"{name}.parquet") for name in ("train", "test")}
    truth = io.read_dataset(TRUTH_DIR, columns=["borrower_id", "p_true", "first_miss_cause"])
    truth = truth.set_index("borrower_id")
    aligned = {name: truth.loc[f["borrower_id"]].reset_index(drop=True) for name, f in frames.items()}
    features = json.loads((MODELS / "lightgbm" / "metadata.json").read_text())["features"]
    scores = {name: {split: fn(f) for split, f in frames.items()} for name, fn in predictors().items()}
    scores["truth"] = {split: aligned[split]["p_true"].to_numpy() for split in frames}

    test, y = frames["test"], frames["test"]["label"].to_numpy()
    reports, plot_data = {}, {}
    for name, sc in scores.items():
        reports[name] = evaluate.model_report(test, sc["test"], aligned["test"], frames["train"],
                                              sc["train"], features, s)
        plot_data[name] = evaluate.curves(y, sc["test"], sc["train"], s.bins)
    gates = json.loads(GATES.read_text()) if GATES.exists() else None
    headlines = {name: evaluate.headline(r) for name, r in reports.items()}

    with io.atomic_dir(PLOTS) as out:
        for name, kinds in plot_data.items():
            for kind, frame in kinds.items():
                io.write_json(frame.to_dict("records"), out / kind / f"{name}.json")
    with io.atomic_dir(FIGURES) as out:
        figures = [FIGURES / f.name for f in plots.render_all(plot_data, reports, out)]
    html = card.model_card(reports, gates, p, figures)
    (REPORTS / "model_card.html").write_text(html)
    io.write_json(reports, REPORTS / "evaluation.json")
    io.write_json(headlines, REPORTS / "metrics.json")
    _log_to_runs(p, headlines, figures)
    lgb, sc, tr = (headlines[n] for n in ("lightgbm", "scorecard", "truth"))
    typer.echo(f"out-of-time AUC: lightgbm {lgb['oot_auc']:.4f}, scorecard {sc['oot_auc']:.4f}, "
               f"truth {tr['oot_auc']:.4f}; lightgbm ECE {lgb['oot_ece']:.4f}, PSI {lgb['psi']:.3f}")


def _log_to_runs(p, headlines: dict, figures: list[Path]) -> None:
    """The same numbers on each model's MLflow run, with the plots and the model card."""
    for name in ("scorecard", "lightgbm"):
        fingerprint = json.loads((MODELS / name / "metadata.json").read_text())["fingerprint"]
        run = tracking.run_for_fingerprint(p.mlflow, fingerprint)
        with mlflow.start_run(run_id=run.info.run_id):
            mlflow.log_metrics({f"eval_{k}": v for k, v in headlines[name].items()})
            mlflow.log_artifact(str(REPORTS / "model_card.html"))
            for f in figures:
                mlflow.log_artifact(str(f), artifact_path="figures")
