"""``limitjump score``: score new borrowers in batches with bounded memory.

Input is either a folder of raw tables in the data contract (features are computed with the same
code as in training) or a ready features file, Parquet or CSV (``pipeline.sources`` reads and
checks both). Borrowers are read in batches, scored on the engine and written as they come back
to temporary files; the scores, the rejects and the summary then appear together or not at all
(``io.output_set``), the summary holding the digests of the other two.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipeline import io, metrics, score
from pipeline.artifacts import load_model
from pipeline.cli import PARAMS, app, load
from pipeline.config import Params, with_label
from pipeline.engine import map_shards, on_one_core
from pipeline.model import CalibratedLightGBM, encode
from pipeline.readers import is_csv
from pipeline.sources import (
    Batch,
    FeaturesFile,
    RawTables,
    Writer,
    check_paths,
    check_rejected_share,
    open_source,
    output_paths,
    reject_reasons,
)

REJECT_COLUMNS = ["borrower_id", "reason"]


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
    summary = run(open_source(input, p, model.features, tuple(model.categories), today), model, version,
                  output, p)
    typer.echo(f"borrowers in {summary['borrowers_in']} = scored {summary['scored']} + rejected "
               f"{summary['rejected']}; bands {summary['bands']}; drift flagged: "
               f"{[k for k, v in summary['drift'].items() if v['flag'] != 'stable'] or 'none'}")
    if summary["unattributed_rows"]:
        typer.echo(f"rows that belong to no borrower (not used): {summary['unattributed_rows']}")
    report_rejects(summary, p)


def report_rejects(summary: dict, p: Params) -> None:
    """The commonest reasons borrowers were rejected; a non-zero exit when too many were."""
    for reason, n in list(summary["reject_reasons"].items())[:3]:
        typer.echo(f"  rejected for {reason}: {n}")
    check_rejected_share(summary, p.score.max_rejected_share)


def score_range(bounds: tuple[int, int], path: Path, p: Params, model: CalibratedLightGBM,
                version: str, watched: list[str], today: pd.Timestamp) -> tuple[Batch, pd.DataFrame, dict]:
    """Everything about the borrowers with ids in ``bounds``: read, validated, scored. Runs
    wherever the engine puts it (this process, a local worker process, a Dask worker)."""
    batch = open_source(path, p, model.features, tuple(model.categories), today).load(*bounds)
    if batch.features.empty:
        return batch, pd.DataFrame(columns=score.OUTPUT_COLUMNS), {}
    scored = score.score_batch(model, batch.features, p.score.bands, tuple(p.score.quiet_bands), version,
                               explain_risky=p.score.explain)
    # the training reference's bins are of the encoded values (a text category's code)
    watched_values = encode(batch.features, watched, model.categories)
    values = {"score": scored["probability"].to_numpy(),
              **{f: watched_values[:, j] for j, f in enumerate(watched)}}
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
    tally = _Tally(s.bands, drift)
    return write_batches(source, output, p, tally, "score", score_range, score.OUTPUT_COLUMNS,
                         (model, version, watched), {"model_version": version})


def write_batches(source: RawTables | FeaturesFile, output: Path, p: Params, tally, description: str,
                  work, columns: list[str], args: tuple, about: dict) -> dict:
    """``work(bounds, path, p, *args, today)`` on every batch of borrower ids on the engine; its
    results and the batch's rejects are written in id order as they come back, and ``tally``
    counts them. The results, the rejects and the summary (``tally``'s, ``about``, the digests of
    the other two) appear only when all is done, the summary last."""
    paths = output_paths(output)
    csv = is_csv(output)
    outputs = [paths["scores"], paths["rejects"], paths["summary"]]
    with io.output_set(outputs) as (results, rejected, summary), ThreadPoolExecutor(max_workers=1) as aside:
        # the count of rows that belong to no borrower scans every table once more: when the
        # batches run elsewhere it runs beside them rather than after (at 1M, 5 s of 53 with the
        # set lookup that ids with gaps need, 0.5 s with the range test of gapless ids)
        unattributed = None if on_one_core(p.engine) else aside.submit(source.unattributed)
        with Writer(results, csv) as results_out, Writer(rejected, csv) as rejects_out:
            done = map_shards(work, source.ranges(p.score.batch_borrowers), p.engine, description,
                              source.path, p, *args, source.today,
                              borrowers=lambda result: result[0].borrowers_in,
                              # a features file's batches are mostly LightGBM and Arrow, which
                              # release Python's lock; raw tables' features are mostly pandas,
                              # in worker processes that each hold one batch after another
                              threads=isinstance(source, FeaturesFile),
                              release=isinstance(source, RawTables))
            reasons: Counter[str] = Counter()
            for batch, rows, values in done:
                tally.add(batch, rows, values)
                reasons.update(reject_reasons(batch.rejects))
                rejects_out.write(batch.rejects)
                if len(rows):
                    results_out.write(rows)
            orphans = source.orphans()
            tally.add(Batch(pd.DataFrame(), orphans, len(orphans)), pd.DataFrame(), {})
            reasons.update(reject_reasons(orphans))
            rejects_out.write(orphans)
            results_out.ensure(columns)
            rejects_out.ensure(REJECT_COLUMNS)
        result = {**tally.summary(), **about, "reject_reasons": dict(reasons.most_common(10)),
                  "unattributed_rows": unattributed.result() if unattributed else source.unattributed(),
                  "input": str(source.path), "output": str(output), "rejects": str(paths["rejects"]),
                  "sha256": {"scores": io.content_digest(results), "rejects": io.content_digest(rejected)}}
        summary.write_text(io.json_text(result))
    return result


class _Tally:
    """Counts, bands and drift over the batches; borrowers in = scored + rejected, or it fails."""

    def __init__(self, bands: dict[str, float], drift: score.Drift):
        self.counts = {"borrowers_in": 0, "scored": 0, "rejected": 0}
        self.bands, self.drift = dict.fromkeys(bands, 0), drift

    def add(self, batch: Batch, scored: pd.DataFrame, values: dict) -> None:
        self.counts["borrowers_in"] += batch.borrowers_in
        self.counts["rejected"] += len(batch.rejects)
        self.counts["scored"] += len(scored)
        if len(scored):
            for band, n in scored["risk_band"].value_counts().items():
                self.bands[band] += int(n)
            self.drift.add(values)

    def summary(self) -> dict:
        c = self.counts
        if c["borrowers_in"] != c["scored"] + c["rejected"]:
            raise RuntimeError(f"internal error, a borrower was lost: {c}")
        return {**c, "bands": self.bands, "drift": self.drift.summary()}

