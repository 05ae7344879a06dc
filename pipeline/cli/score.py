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

from pipeline import metrics, score
from pipeline.artifacts import load_model
from pipeline.batches import UNSEEN, ScoreTally, report_problems, write_batches
from pipeline.cli import PARAMS, app, load
from pipeline.config import Params, with_label
from pipeline.model import CalibratedLightGBM, encode, unseen_categories
from pipeline.outputs import check_paths
from pipeline.sources import Batch, FeaturesFile, RawTables, open_source


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
    if model.label and model.label != p.label:
        typer.echo(f"the model predicts the label it was trained for ({model.label}), not the one "
                   f"params.yaml now states ({p.label}); its features are taken "
                   f"{model.label.observation_days} days after the jump")
    p = with_label(p, model.label)
    today = pd.Timestamp.today().normalize()
    summary = run(open_source(input, p.source, p.features, p.label.observation_days, model.features,
                             tuple(model.categories), today), model, version,
                  output, p)
    typer.echo(f"borrowers in {summary['borrowers_in']} = scored {summary['scored']} + rejected "
               f"{summary['rejected']}; bands {summary['bands']}; drift flagged: "
               f"{[k for k, v in summary['drift'].items() if v['flag'] != 'stable'] or 'none'}")
    report_problems(summary, p.score.max_rejected_share, typer.echo, lambda text: typer.echo(text, err=True))


def score_range(bounds: tuple[int, int], path: Path, p: Params, model: CalibratedLightGBM,
                version: str, watched: list[str], today: pd.Timestamp) -> tuple[Batch, pd.DataFrame, dict]:
    """Everything about the borrowers with ids in ``bounds``: read, validated, scored. Runs
    wherever the engine puts it (this process, a local worker process, a Dask worker)."""
    batch = open_source(path, p.source, p.features, p.label.observation_days, model.features,
                        tuple(model.categories), today).load(*bounds)
    if batch.features.empty:
        return batch, pd.DataFrame(columns=score.OUTPUT_COLUMNS), {}
    scored = score.score_batch(model, batch.features, p.score.bands, tuple(p.score.quiet_bands), version,
                               explain_risky=p.score.explain)
    # the training reference's bins are of the encoded values (a text category's code)
    watched_values = encode(batch.features, watched, model.categories)
    values = {"score": scored["probability"].to_numpy(),
              **{f: watched_values[:, j] for j, f in enumerate(watched)},
              UNSEEN: unseen_categories(batch.features, model.categories)}
    batch.features = batch.features.iloc[:0]  # not needed by the caller: do not ship it back
    return batch, scored, values


def run(source: RawTables | FeaturesFile, model: CalibratedLightGBM, version: str, output: Path,
        p: Params) -> dict:
    """Score every batch of borrower ids on the engine, writing results in id order as they
    come back; the three outputs appear only when all is done, the summary last."""
    s = p.score
    model.threads = 1  # the engine's workers are the parallelism: one LightGBM thread each
    watched = metrics.watched_features(model.reference["importance"], s.drift_features)
    drift = score.Drift({name: model.reference["bins"][name] for name in ["score", *watched]})
    tally = ScoreTally(s.bands, drift)
    return write_batches(source, output, p, tally, "score", score_range, score.OUTPUT_COLUMNS,
                         (model, version, watched), {"model_version": version})
