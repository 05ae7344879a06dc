"""``limitjump register``: register the new LightGBM as @challenger; promote it to @champion only
if every gate in params holds. Every decision is appended to the promotion log."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import typer

from pipeline import io, metrics, registry, tracking
from pipeline.cli import PARAMS, app, load
from pipeline.cli.split import SPLIT_DIR
from pipeline.cli.train import MODELS

REPORT = Path("reports/gates.json")


@app.command()
def register(params: Path = PARAMS) -> None:
    """Register the LightGBM model and apply the promotion gate."""
    p = load(params)
    challenger = json.loads((MODELS / "lightgbm" / "metadata.json").read_text())
    scorecard = json.loads((MODELS / "scorecard" / "metadata.json").read_text())
    fingerprint = challenger["fingerprint"]
    run = tracking.run_for_fingerprint(p.mlflow, fingerprint)
    version = tracking.register_version(p.mlflow, run, fingerprint)
    previous = tracking.alias_version(p.mlflow, "champion")
    tracking.set_alias(p.mlflow, "challenger", version, {})

    test = pd.read_parquet(SPLIT_DIR / "test.parquet")
    champion_auc = None
    if previous is not None and previous != version:
        champion = mlflow.pyfunc.load_model(f"models:/{p.mlflow.registered_model}@champion")
        champion_auc = metrics.ranking(test["label"], champion.predict(test))["auc"]
    result = registry.gate(challenger["metrics"], scorecard["metrics"], champion_auc,
                           challenger["metrics"]["test_auc"], p.gate)
    io.write_json({"challenger_fingerprint": fingerprint, **result}, REPORT)

    figures = {name: g["value"] for name, g in result["gates"].items()}
    if previous == version:  # a repeated stage: nothing to promote, but the audit trail says so
        result["decision"] = "already_champion"
    if result["decision"] == "promoted":
        tracking.set_alias(p.mlflow, "champion", version, {
            "previous_champion": previous or "none", "gate_results": json.dumps(figures)})
    log = tracking.append_promotion_log({
        "decision": result["decision"], "version": version, "previous_champion": previous,
        "failed_gates": result["failed"], "figures": figures, "fingerprint": fingerprint})
    verdict = {"promoted": f"promoted version {version} to @champion (was {previous or 'none'})",
               "already_champion": f"version {version} is already @champion",
               "refused": f"refused version {version}: failed {', '.join(result['failed'])}"}
    typer.echo(f"{verdict[result['decision']]}; logged in {log}")
