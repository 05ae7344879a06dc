"""``limitjump features``: point-in-time features per borrower shard (data/features)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import typer

from pipeline import io
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import FEATURES_DIR, RAW_DIR
from pipeline.config import EngineSettings, FeatureSettings
from pipeline.engine import arrow_on_system_allocator, map_shards, one_malloc_arena
from pipeline.features import COLUMNS_READ, build_features
from pipeline.shards import read_shard_batches
from pipeline.team_tables import team_table


@app.command()
def features(params: Path = PARAMS) -> None:
    """Compute features at each borrower's scoring date from the raw tables only."""
    p = load(params)
    if p.source.kind == "tables":  # a team's features, in the pipeline's names, every row kept
        t = p.source.tables
        frame = team_table(Path(t.features), t, labelled=True)
        with io.atomic_dir(FEATURES_DIR) as out:
            io.write_parquet(frame, out / io.part_name(0))
        typer.echo(f"features of {len(frame)} borrowers from {t.features}")
        return
    shards = [io.part_index(f) for f in io.parts(RAW_DIR / "borrowers")]
    if not shards:
        raise FileNotFoundError(f"{RAW_DIR / 'borrowers'}: no shards; run `limitjump simulate` first")
    with io.atomic_dir(FEATURES_DIR) as out:
        rows = sum(write_shards(shards, RAW_DIR, out, p.label.observation_days, p.features, p.engine))
    typer.echo(f"features of {rows} borrowers in {len(shards)} shards")


def write_shards(shards: list[int], raw: Path, out: Path, observation_days: int,
                 settings: FeatureSettings, engine: EngineSettings) -> Iterator[int]:
    """``write_shard`` for every shard on the engine; the borrowers of each, in shard order.

    Local workers are threads of this process: the reading and writing are Arrow's, outside
    Python's lock, and the features are numpy passes over whole columns, mostly outside it too
    (two threads building features in memory ran 1.29-1.69x one), so threads keep both cores
    busy without worker processes' start-up, imports and memory. At 1M borrowers (2026-12-04),
    whole shards: two threads took 14.6-15.2 s and 884-892 MB, two processes 15.3-15.5 s and
    1,315-1,334 MB. Batches (``engine.batch_borrowers``) trade time for memory: two threads took
    17.7 s and 973 MB with whole shards (row groups of 32,768 rows), 19.5-22.3 s and 629 MB in
    batches of 8,334, 21.1-24.4 s and 516-553 MB of 5,000, 25.9-30.9 s and 469-482 MB of 3,125.
    Python's lock still holds two threads below two cores' worth, so ``engine.features_workers:
    processes`` offers worker processes to a team with memory to spare, this process building
    shards beside them: at 1M borrowers in batches of 5,000, with one worker process 13.6-13.8 s
    and 600-615 MB, two threads 16.1-17.6 s and 438-448 MB, one worker 24.2-25.1 s and 288 MB
    (2026-12-06)."""
    one_malloc_arena()
    return map_shards(write_shard, shards, engine, "features", raw, out, observation_days, settings,
                      engine.batch_borrowers, borrowers=int, threads=engine.features_workers == "threads",
                      parent_works=True)


def write_shard(index: int, raw: Path, out: Path, observation_days: int, settings: FeatureSettings,
                batch_borrowers: int) -> int:
    """The features of shard ``index``, built ``batch_borrowers`` borrowers at a time: a borrower's
    features read only their own rows, so the batches give the same frame as the whole shard,
    while a worker holds (and decodes) one batch's raw rows at a time, not the shard's."""
    arrow_on_system_allocator()
    ends = io.borrower_ends(raw / "borrowers", index, batch_borrowers)
    build = functools.partial(build_features, observation_days=observation_days, settings=settings)
    frames = list(map(build, read_shard_batches(raw, index, ends, COLUMNS_READ)))
    frame = pd.concat(frames, ignore_index=True)
    io.write_parquet(frame, out / io.part_name(index))
    return len(frame)
