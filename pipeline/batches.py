"""Batch runs over borrowers (scoring, recommending): every batch of borrower ids worked on the
engine, its results and rejects written in id order as they come back, and every borrower counted:
borrowers in = done + rejected, or the run fails. The results, the rejects and the summary appear
together or not at all (``io.output_set``), the summary holding the digests of the other two.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from pipeline import io, metrics, score
from pipeline.config import Params
from pipeline.engine import map_shards, on_one_core
from pipeline.model import CalibratedLightGBM
from pipeline.outputs import Writer, check_rejected_share, output_paths, reject_reasons
from pipeline.readers import is_csv
from pipeline.score import UNSEEN, Drift
from pipeline.sources import Batch, FeaturesFile, RawTables, open_source

REJECT_DTYPES = {"borrower_id": "int64", "reason": "str"}


@dataclass(frozen=True)
class Work:
    """What every batch of a run is given beyond its ids: how to open the source (``open``) and
    ``call``, the model's work on the batch's features (its rows, and what the tally counts
    beside them). One object, not a tuple: the engine ships each argument to Dask workers once,
    and an empty one (no text categories) it cannot ship."""

    features: list[str]
    text: tuple[str, ...]
    observation_days: int | None
    call: Callable[[pd.DataFrame], tuple[pd.DataFrame, dict]]
    never_missing: tuple[str, ...] = ()  # features the model may not be given blank

    def open(self, path: Path, p: Params, today: pd.Timestamp) -> RawTables | FeaturesFile:
        """The input at ``path`` for the model's ``features`` (``text``: those it learned as text
        categories; ``observation_days``: None for the label's), as ``sources.open_source``."""
        return open_source(path, p.source, p.features, p.label.observation_days, self.features, self.text,
                           today, self.observation_days, self.never_missing)


def score_all(path: Path, model: CalibratedLightGBM, version: str, output: Path, p: Params,
              today: pd.Timestamp) -> dict:
    """Score every batch of borrower ids at ``path`` on the engine (``write_batches``), counting
    the bands, the drift of the score and the watched features, and the categories the model
    never learned."""
    s = p.score
    model.threads = 1  # the engine's workers are the parallelism: one LightGBM thread each
    watched = metrics.watched_features(model.reference["importance"], s.drift_features)
    drift = Drift({name: model.reference["bins"][name] for name in ["score", *watched]},
                  model.reference.get("baseline"))
    work = partial(score.score_and_watch, model=model, settings=s, version=version, watched=watched)
    return write_batches(path, today, output, p, ScoreTally(s.bands, drift), "score",
                         Work(model.features, tuple(model.categories), None, work, model.never_missing),
                         score.OUTPUT_DTYPES,
                         {"model_version": version})


def recommend_all(path: Path, model, output: Path, p: Params, today: pd.Timestamp, about: dict) -> dict:
    """Recommend an increase to every batch of borrower ids at ``path`` on the engine
    (``write_batches``) with ``model``, a ``decision.DecisionModel`` (not imported: scoring does
    not load the decision's code), counting the borrowers per amount."""
    return write_batches(path, today, output, p, RecommendTally(), "recommend",
                         Work(list(model.features), (), model.observation_days, partial(_recommended, model),
                              model.never_missing),
                         model.output_dtypes(), about)


def _recommended(model, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """A decision model's rows of ``frame``, and nothing counted beside them."""
    return model.recommend(frame), {}


def work_range(bounds: tuple[int, int], path: Path, p: Params, work: Work, today: pd.Timestamp
               ) -> tuple[Batch, pd.DataFrame, dict]:
    """The borrowers with ids in ``bounds`` read from ``path`` and validated, and ``work.call`` of
    their features: their rows and what the tally counts beside them. Runs wherever the engine
    puts it (this process, a local worker process, a Dask worker), so it and ``work.call`` are
    pickled: module-level functions."""
    batch = work.open(path, p, today).load(*bounds)
    if batch.features.empty:
        return batch, pd.DataFrame(), {}
    rows, values = work.call(batch.features)
    batch.features = batch.features.iloc[:0]  # not needed by the caller: do not ship it back
    return batch, rows, values


def write_batches(path: Path, today: pd.Timestamp, output: Path, p: Params, tally: Tally, description: str,
                  work: Work, dtypes: dict[str, str], about: dict) -> dict:
    """``work_range`` of ``work`` on every batch of borrower ids at ``path`` (``today``: the run's
    date, after which no record may be dated) on the engine; its results and the batch's rejects
    are written in id order as they come back, and ``tally`` counts them. The results, the
    rejects and the summary (``tally``'s, ``about``, the digests of the other two) appear only
    when all is done, the summary last. ``dtypes``: the results' columns and pandas dtypes, which
    an output without a row still has."""
    source = work.open(path, p, today)
    paths = output_paths(output)
    csv = is_csv(output)
    outputs = [paths["scores"], paths["rejects"], paths["summary"]]
    with io.output_set(outputs) as (results, rejected, summary), ThreadPoolExecutor(max_workers=1) as aside:
        # the count of rows that belong to no borrower scans every table once more: when the
        # batches run elsewhere it runs beside them rather than after (at 1M, 5 s of 53 with the
        # set lookup that ids with gaps need, 0.5 s with the range test of gapless ids)
        unattributed = None if on_one_core(p.engine) else aside.submit(source.unattributed)
        with Writer(results, csv) as results_out, Writer(rejected, csv) as rejects_out:
            done = map_shards(work_range, source.ranges(p.score.batch_borrowers), p.engine, description,
                              source.path, p, work, source.today,
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
            # an input whose every borrower was rejected tells the ids' type by its rejects
            results_out.ensure(dtypes, rejects_out.id_type())
            rejects_out.ensure(REJECT_DTYPES, results_out.id_type())
        result = {**tally.summary(), **about, "reject_reasons": dict(reasons.most_common(10)),
                  "unattributed_rows": unattributed.result() if unattributed else source.unattributed(),
                  "input": str(source.path), "output": str(output), "rejects": str(paths["rejects"]),
                  "sha256": {"scores": io.content_digest(results), "rejects": io.content_digest(rejected)}}
        summary.write_text(io.json_text(result))
    return result


def report_problems(summary: dict, max_rejected_share: float, say: Callable[[str], None],
                    warn: Callable[[str], None] | None = None) -> None:
    """``say`` the rows of raw tables that belong to no borrower, the categories the model never
    learned, and the commonest reasons borrowers were rejected; RejectedShareError when more than
    ``max_rejected_share`` of them were (``outputs.check_rejected_share``). Warnings go to ``warn``
    (the CLI's standard error), if given."""
    if summary.get("unattributed_rows"):
        say(f"rows that belong to no borrower (not used): {summary['unattributed_rows']}")
    for column, unseen in summary.get(UNSEEN, {}).items():
        said = ", ".join(f"{value!r} {n}" for value, n in unseen["values"].items())
        (warn or say)(f"warning: {unseen['rows']} scored rows of '{column}' hold categories the model "
                      f"never learned, scored as missing: {said}")
    for reason, n in list(summary["reject_reasons"].items())[:3]:
        say(f"  rejected for {reason}: {n}")
    check_rejected_share(summary, max_rejected_share)


class Tally:
    """Borrowers in = ``done`` + rejected over the batches, or the summary fails; a subclass
    counts more of the rows it is given (``count``) and says it in ``figures``."""

    done = "done"

    def __init__(self) -> None:
        self.counts = {"borrowers_in": 0, self.done: 0, "rejected": 0}

    def add(self, batch: Batch, rows: pd.DataFrame, values: dict) -> None:
        self.counts["borrowers_in"] += batch.borrowers_in
        self.counts["rejected"] += len(batch.rejects)
        self.counts[self.done] += len(rows)
        if len(rows):
            self.count(rows, values)

    def count(self, rows: pd.DataFrame, values: dict) -> None:
        """What a subclass counts of a batch's results (``values``: what the work returned beside them)."""

    def figures(self) -> dict:
        return {}

    def summary(self) -> dict:
        c = self.counts
        if c["borrowers_in"] != c[self.done] + c["rejected"]:
            raise RuntimeError(f"internal error, a borrower was lost: {c}")
        return {**c, **self.figures()}


class ScoreTally(Tally):
    """The borrowers per risk band, and the drift of the score and the watched features."""

    done = "scored"

    def __init__(self, bands: dict[str, float], drift: Drift):
        super().__init__()
        self.bands, self.drift = dict.fromkeys(bands, 0), drift
        self.unseen: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def count(self, rows: pd.DataFrame, values: dict) -> None:
        for band, n in rows["risk_band"].value_counts().items():
            self.bands[band] += int(n)
        self.drift.add(values)
        for column, found in values.get(UNSEEN, {}).items():
            self.unseen[column].update(found)

    def figures(self) -> dict:
        unseen = {c: {"rows": sum(found.values()), "values": dict(found.most_common(5))}
                  for c, found in sorted(self.unseen.items())}
        return {"bands": self.bands, "drift": self.drift.summary(), UNSEEN: unseen}


class RecommendTally(Tally):
    """The borrowers per recommended amount."""

    done = "recommended"

    def __init__(self) -> None:
        super().__init__()
        self.amounts: Counter[float] = Counter()

    def count(self, rows: pd.DataFrame, values: dict) -> None:
        self.amounts.update({float(a): int(n) for a, n in rows["recommended_amount"].value_counts().items()})

    def figures(self) -> dict:
        # a list, amounts as numbers: JSON keys would be text
        return {"amounts": [{"amount": a, "borrowers": n} for a, n in sorted(self.amounts.items())]}
