"""``limitjump score``: score new borrowers in batches with bounded memory.

Input is either a folder of raw tables in the data contract (features are computed with the same
code as in training) or a ready features file, Parquet or CSV (``pipeline.sources`` reads and
checks both). Borrowers are read in batches, scored on the engine and written as they come back
to temporary files; the scores, the rejects and the summary then appear together or not at all
(``io.output_set``), the summary holding the digests of the other two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipeline.artifacts import load_model
from pipeline.batches import report_problems, score_all
from pipeline.cli import PARAMS, app, load, params_file, say_feature_settings
from pipeline.config import as_trained
from pipeline.metrics import MIN_PSI_ROWS
from pipeline.outputs import check_paths


@app.command(name="score")
def score_command(
        input: Annotated[Path, typer.Option("--input", help="Raw tables folder or features file.")],
        output: Annotated[Path, typer.Option("--output", help="Scores file (.parquet or .csv).")],
        model_uri: Annotated[str | None, typer.Option(
            "--model", help="MLflow model URI or a local model folder; default: "
            "models:/<mlflow.registered_model>@champion.")] = None,
        params: Path = PARAMS) -> None:
    """Score borrowers: probability, risk band, reasons, suggested action."""
    p = load(params)
    model_uri = model_uri or f"models:/{p.mlflow.registered_model}@champion"
    check_paths(input, output)
    model, version = load_model(model_uri, p.mlflow)
    given = params_file(params).name
    if model.label and model.label != p.label:
        typer.echo(f"the model predicts the label it was trained for ({model.label}), not the one "
                   f"{given} now states ({p.label}); its features are taken "
                   f"{model.label.observation_days} days after the jump")
    say_feature_settings(model.feature_settings, p.features, given)
    p = as_trained(p, model.label, model.feature_settings)
    today = pd.Timestamp.today().normalize()
    summary = score_all(input, model, version, output, p, today)
    flagged = [k for k, v in summary["drift"].items() if v["flag"] in ("watch", "shifted")] or "none"
    unjudged = "" if summary["scored"] >= MIN_PSI_ROWS else f" (not judged on fewer than {MIN_PSI_ROWS} rows)"
    typer.echo(f"borrowers in {summary['borrowers_in']} = scored {summary['scored']} + rejected "
               f"{summary['rejected']}; bands {summary['bands']}; drift flagged: {flagged}{unjudged}")
    report_problems(summary, p.score.max_rejected_share, typer.echo, lambda text: typer.echo(text, err=True))

