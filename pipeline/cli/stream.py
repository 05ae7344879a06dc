"""``limitjump simulate-stream``: consecutive monthly batches of new borrowers after the training
period (data/stream), for the monitor.

The same simulator and world as training (its campaigns and rule change are dated, so the stream
crosses them), another seed. Three folders, kept apart as a lender receives them: ``features``
(known on the scoring date), ``labels`` (each with the date it matures) and ``truth`` (p_true, for
evaluation only).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline import io
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import SPLIT_REPORT, STREAM_DIR
from pipeline.config import FeatureSettings, LabelSettings, SimulateSettings
from pipeline.contract import LABEL_MATURES, STREAM_TABLES, validate
from pipeline.engine import map_shards
from pipeline.features import build_features
from pipeline.simulate import World, build_world, shard_bounds, simulate_shard
from pipeline.simulate.new_borrowers import STREAM_ID_OFFSET, stream_settings
from pipeline.split import STREAM_RECORD, fitted_until, label_matures, stream_record, stream_start


@app.command(name="simulate-stream")
def simulate_stream(params: Path = PARAMS) -> None:
    """Simulate monthly batches of new borrowers with features, maturing labels and the truth
    (nothing with a team's own tables: the output then only says so, as DVC expects it)."""
    p = load(params)
    if p.source.kind == "tables":
        with io.atomic_dir(STREAM_DIR) as out:
            io.write_json({"source": "tables", "simulated": False}, out / "source.json")
        typer.echo("source: tables; no stream simulated")
        return
    months = stream_start(p.monitor, fitted_until(SPLIT_REPORT))
    settings = stream_settings(p.simulate, p.label, months)
    world = build_world(settings, p.label)
    shards = list(range(len(shard_bounds(settings))))
    with io.atomic_dir(STREAM_DIR) as out:
        rows = sum(map_shards(write_shard, shards, p.engine, "simulate stream", settings, world, p.label,
                              p.features, out, borrowers=int, total=settings.n_borrowers, parent_works=True))
        io.write_json(stream_record(months), out / STREAM_RECORD)
    typer.echo(f"stream: {rows} borrowers scored over {months.months} months from "
               f"{months.first_month} in {STREAM_DIR}")


def write_shard(index: int, settings: SimulateSettings, world: World, label: LabelSettings,
                features: FeatureSettings, out: Path) -> int:
    tables = simulate_shard(index, settings, world)
    tables["maintenance_windows"] = world.outages.windows
    # features read only rows dated before each borrower's scoring date
    frame = build_features(tables, label.observation_days, features)
    truth = tables["ground_truth"]
    truth[LABEL_MATURES] = label_matures(truth["scoring_date"], label, settings.calendar.due_day_offset)
    parts = {"features": frame, **{name: truth[table.names] for name, table in STREAM_TABLES.items()}}
    for name, part in parts.items():
        if name in STREAM_TABLES:
            validate(part, STREAM_TABLES[name], f"{name} (simulated stream shard {index})")
        part = part.assign(borrower_id=part["borrower_id"] + STREAM_ID_OFFSET)
        io.write_parquet(part.reset_index(drop=True), out / name / io.part_name(index))
    return len(frame)
