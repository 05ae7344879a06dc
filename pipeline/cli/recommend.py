"""``limitjump recommend``: how much to raise each borrower's limit, in batches.

The input is what ``limitjump score`` reads, at the decision date: a folder of raw tables whose
``limit_events`` hold the review as an increase row (its trigger and the limit before it; the new
limit is not read), or a decision-features file (``borrower_id``, ``scoring_date`` = the decision
date, and the decision features). Every borrower in is recommended or rejected with the reason,
as in scoring; the outputs appear together or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipeline import decision
from pipeline.artifacts import load_model
from pipeline.batches import recommend_all, report_problems
from pipeline.cli import PARAMS, app, load, params_file, say_feature_settings
from pipeline.cli.paths import DECISION_MODEL
from pipeline.config import as_trained
from pipeline.outputs import check_paths


@app.command()
def recommend(
        input: Annotated[Path, typer.Option("--input", help="Raw tables folder or decision-features file.")],
        output: Annotated[Path, typer.Option("--output", help="Recommendations (.parquet or .csv).")],
        model_uri: Annotated[str | None, typer.Option(
            "--model", help="Decision model folder or MLflow URI (models:/limitjump-decision/<version>); "
            f"default: the project's {DECISION_MODEL}, beside its params file.")] = None,
        params: Path = PARAMS) -> None:
    """Recommend a limit increase per borrower: the amount, why, and the miss probability and
    expected profit at every candidate amount."""
    p = load(params)
    # the project's model wherever the command runs, as score's @champion is the project's registry's
    model_uri = model_uri or str(params_file(params).resolve().parent / DECISION_MODEL)
    check_paths(input, output)
    model, _ = load_model(model_uri, p.mlflow, decision=True)
    changed = decision.policy_changes(model.settings, p.decision)
    given = params_file(params).name
    if model.label and model.label != p.label:  # as score says of a risk model
        typer.echo(f"the decision model's p_miss is the chance of the label it was built for "
                   f"({model.label}), not the one {given} now states ({p.label}); its appetite and "
                   "profits are that label's")
    say_feature_settings(model.feature_settings, p.features, given)
    p = as_trained(p, None, model.feature_settings)
    if changed:  # as score says of a model trained for another label: the model's are applied
        typer.echo("the decision model recommends under the appetite and economics it was built with, "
                   f"not {given}'s: " + "; ".join(f"decision.{k} {built} ({given}: {asked})"
                                                     for k, (built, asked) in changed.items())
                   + "; `dvc repro decide` builds one with them", err=True)
    today = pd.Timestamp.today().normalize()
    summary = recommend_all(input, model, output, p, today,
                            {"model": model_uri, "policy": decision.policy_of(model.settings)})
    typer.echo(f"borrowers in {summary['borrowers_in']} = recommended {summary['recommended']} + "
               f"rejected {summary['rejected']}; amounts {summary['amounts']}")
    report_problems(summary, p.score.max_rejected_share, typer.echo, lambda text: typer.echo(text, err=True))

