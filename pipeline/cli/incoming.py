"""``limitjump simulate-batch``: an incoming batch of new borrowers to score (data/incoming).

The same simulator with another seed and later scoring dates; every borrower's rows stop at
their scoring date, as in an export taken when they are scored, and there is no ground truth.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline import io
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import INCOMING_DIR
from pipeline.config import SimulateSettings
from pipeline.contract import validate
from pipeline.engine import map_shards
from pipeline.simulate import World, build_world, shard_bounds, simulate_shard
from pipeline.simulate.new_borrowers import announced_windows, batch_settings, cut_at_scoring
from pipeline.team_tables import score_table


@app.command(name="simulate-batch")
def simulate_batch(params: Path = PARAMS) -> None:
    """Simulate new borrowers to score, cut at their scoring dates; with a team's own tables, its
    file to score, in the pipeline's names."""
    p = load(params)
    if p.source.kind == "tables":
        t = p.source.tables
        frame = score_table(t)
        with io.atomic_dir(INCOMING_DIR) as out:
            io.write_parquet(frame, out / "features.parquet")
        typer.echo(f"incoming batch: {len(frame)} borrowers from {t.score} in {INCOMING_DIR}")
        return
    settings = batch_settings(p.simulate, p.incoming)
    world = build_world(settings, p.label)
    shards = list(range(len(shard_bounds(settings))))
    with io.atomic_dir(INCOMING_DIR) as out:
        io.write_parquet(announced_windows(world.outages.windows, p.incoming.last_scoring_date),
                         out / "maintenance_windows" / io.part_name(0))
        rows = sum(map_shards(write_shard, shards, p.engine, "simulate batch", settings, world, out,
                              borrowers=int, total=settings.n_borrowers, parent_works=True))
    typer.echo(f"incoming batch: {rows} borrowers scored between {p.incoming.first_scoring_date} "
               f"and {p.incoming.last_scoring_date} in {INCOMING_DIR}")


def write_shard(index: int, settings: SimulateSettings, world: World, out: Path) -> int:
    tables = simulate_shard(index, settings, world)
    for name, frame in cut_at_scoring(tables).items():
        validate(frame, name, f"{name} (incoming shard {index})")
        io.write_parquet(frame, out / name / io.part_name(index))
    return len(tables["ground_truth"])
