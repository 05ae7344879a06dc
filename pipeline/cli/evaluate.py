"""``limitjump evaluate``: out-of-time evaluation of both models and of the true probability;
headline metrics for DVC, plot data, PNG plots and an HTML model card, and one MLflow run of its
own that links to the models' runs (a finished training run is never reopened)."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import typer

from pipeline import card, evaluate, io, model, plots, registry, tracking
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import (
    DECISION_PLOTS,
    DECISION_REPORT,
    EVALUATION_FIGURES,
    EVALUATION_PLOTS,
    EVALUATION_REPORT,
    GATES,
    METRICS,
    MODEL_CARD,
    MODELS,
    MONITOR_DIR,
    SPLIT_DIR,
    SPLIT_REPORT,
    TRUTH_DIR,
)
from pipeline.config import Params


@app.command(name="evaluate")
def evaluate_command(params: Path = PARAMS) -> None:
    """Evaluate on the out-of-time test split (against the simulator's truth, when it simulated)."""
    p = load(params)
    s = p.evaluate
    frames = io.read_splits(SPLIT_DIR, ("train", "test"))
    truth = (evaluate.truth_of(io.read_dataset(TRUTH_DIR, columns=evaluate.TRUTH_COLUMNS), frames)
             if p.source.kind == "simulator" else None)
    metadata = {name: json.loads((MODELS / name / "metadata.json").read_text())
                for name in ("lightgbm", "scorecard")}
    fitted = model.CalibratedLightGBM.from_dir(MODELS / "lightgbm")
    scorecard = json.loads((MODELS / "scorecard" / "scorecard.json").read_text())
    scores = evaluate.scores(evaluate.predictors(fitted, scorecard), frames, truth)
    reports, plot_data = evaluate.reports(frames, scores, truth, metadata["lightgbm"]["features"], fitted,
                                          evaluate.read_directions(MODELS / "lightgbm"), s, p.score)
    gates = json.loads(GATES.read_text())
    headlines = {name: evaluate.headline(r) for name, r in reports.items()}

    with io.atomic_dir(EVALUATION_PLOTS) as out:
        for name, kinds in plot_data.items():
            for kind, frame in kinds.items():
                io.write_json(frame.to_dict("records"), out / kind / f"{name}.json")
    with io.atomic_dir(EVALUATION_FIGURES) as out:
        figures = [EVALUATION_FIGURES / f.name for f in plots.render_all(plot_data, reports, out)]
    details = card.read_details(p, metadata["lightgbm"]["data_digests"], MODELS, SPLIT_REPORT,
                                (DECISION_REPORT, DECISION_PLOTS), MONITOR_DIR)
    with io.atomic_path(MODEL_CARD, ".html") as tmp:
        tmp.write_text(card.model_card(reports, gates, p, figures, details))
    io.write_json(reports, EVALUATION_REPORT)
    io.write_json(evaluate.headline_metrics(headlines, gates), METRICS)
    _log_run(p, reports, gates, figures, headlines, metadata, details)
    aucs = ", ".join(f"{name} {figures['oot_auc']:.4f}" for name, figures in headlines.items())
    lgb = headlines["lightgbm"]
    typer.echo(f"out-of-time AUC: {aucs}; lightgbm ECE {lgb['oot_ece']:.4f}, PSI {lgb['psi']:.3f}")


def _log_run(p: Params, reports: dict, gates: dict, figures: list[Path], headlines: dict,
             metadata: dict, details: dict) -> None:
    """One evaluation run, tagged with the runs and the version it evaluates; metrics on the
    LightGBM logged model too (MLflow 3 shows them on the model's page). Idempotent by content."""
    runs = {name: tracking.run_for_fingerprint(p.mlflow, metadata[name]["fingerprint"])
            for name in ("lightgbm", "scorecard")}
    version = tracking.version_for_fingerprint(p.mlflow, metadata["lightgbm"]["fingerprint"])
    # the card too: it shows the monitoring and the decision, which no headline holds, so a change
    # to them alone had left the run's card stale
    fingerprint = io.text_digest(json.dumps({"reports": headlines, "gates": gates,
                                             "models": [m["fingerprint"] for m in metadata.values()],
                                             "card": io.file_digest(MODEL_CARD)},
                                            sort_keys=True, default=str))
    links = {"limitjump.lightgbm_run": runs["lightgbm"].info.run_id,
             "limitjump.scorecard_run": runs["scorecard"].info.run_id,
             "limitjump.model_version": version.version if version else "unregistered"}
    auc = headlines["lightgbm"]["oot_auc"]
    description = (f"Out-of-time evaluation of LightGBM version {links['limitjump.model_version']} "
                   f"(AUC {auc:.4f}) beside the scorecard"
                   + (" and the truth" if "truth" in headlines else "")
                   + (registry.other_verdict(version, gates) if tracking.in_experiment() else ""))
    with tracking.new_run(p.mlflow, "evaluate", fingerprint, description, links) as run:
        if run is None:
            return
        model_id = runs["lightgbm"].data.tags.get(tracking.MODEL_URI_TAG, "").removeprefix("models:/")
        for name, figures_of in headlines.items():
            tracking.log_metrics({f"{name}.{k}": v for k, v in figures_of.items()},
                                 model_id=model_id if name == "lightgbm" and model_id else None)
        provenance = {**details["provenance"], "model_version": links["limitjump.model_version"],
                      "lightgbm_run": links["limitjump.lightgbm_run"],
                      "scorecard_run": links["limitjump.scorecard_run"],
                      "evaluation_run": run.info.run_id,
                      "git_commit": tracking.commit_text(tracking.provenance()),
                      "generated": datetime.now(UTC).isoformat(timespec="seconds")}
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp) / MODEL_CARD.name
            page.write_text(card.model_card(reports, gates, p, figures,
                                            {**details, "provenance": provenance}))
            tracking.log_artifact(page)
        tracking.log_artifact(EVALUATION_REPORT)
        for f in figures:
            tracking.log_artifact(f, "figures")
