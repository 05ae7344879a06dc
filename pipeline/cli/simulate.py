"""``limitjump simulate``: borrower histories (data/raw) and their ground truth (data/truth)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline import io
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import COUNTERFACTUAL_DIR, RAW_DIR, SIMULATION_REPORT, TRUTH_DIR
from pipeline.config import SimulateSettings, truth_replicates
from pipeline.contract import RAW_TABLES, TRUTH_TABLES, validate
from pipeline.engine import map_shards
from pipeline.simulate import World, build_world, shard_bounds, simulate_shard
from pipeline.simulate.realism import (
    FAIL,
    MIN_CLASS,
    NOT_APPLICABLE,
    realism_report,
    struck_by_unforeseen_outages,
)


@app.command()
def simulate(params: Path = PARAMS) -> None:
    """Simulate borrower histories and their ground truth, shard by shard (nothing with a team's
    own tables: the outputs then only say so, as DVC expects them)."""
    p = load(params)
    if p.source.kind == "tables":
        note = {"source": "tables", "simulated": False, "features": p.source.tables.features}
        with (io.atomic_dir(RAW_DIR) as raw, io.atomic_dir(TRUTH_DIR) as truth,
              io.atomic_dir(COUNTERFACTUAL_DIR) as what_if):
            for folder in (raw, truth, what_if):
                io.write_json(note, folder / "source.json")
        io.write_json(note, SIMULATION_REPORT)
        typer.echo(f"source: tables ({p.source.tables.features}); nothing simulated")
        return
    world = build_world(p.simulate, p.label)
    shards = list(range(len(shard_bounds(p.simulate))))
    with (io.atomic_dir(RAW_DIR) as raw, io.atomic_dir(TRUTH_DIR) as truth,
          io.atomic_dir(COUNTERFACTUAL_DIR) as what_if):
        windows = world.outages.windows
        validate(windows, "maintenance_windows", "maintenance_windows (simulated)")
        io.write_parquet(windows, raw / "maintenance_windows" / io.part_name(0))
        for _ in map_shards(write_shard, shards, p.engine, "simulate", p.simulate, world,
                            {"ground_truth": truth, "counterfactual": what_if}, raw,
                            borrowers=int, total=p.simulate.n_borrowers, parent_works=True):
            pass
    ground_truth = io.read_dataset(TRUTH_DIR)
    struck = struck_by_unforeseen_outages(ground_truth, _due_on_window_days(windows), windows, p.label)
    report = realism_report(ground_truth, truth_replicates(p.simulate, p.label), p.label, struck)
    io.write_json(report, SIMULATION_REPORT)
    results = report["checks"]
    failed = [name for name, result in results.items() if result == FAIL]
    not_applicable = [name for name, result in results.items() if result == NOT_APPLICABLE]
    quality = report["p_true"]
    # the slope over the borrowers no unforeseen outage struck tells one world's outage days from
    # Monte-Carlo noise
    slopes = (_figure(quality["calibration_slope"]),
              _figure(quality["calibration_slope_spared_by_unforeseen_outages"]))
    typer.echo(f"simulated {report['borrowers']} borrowers, miss rate {report['miss_rate']:.3f}, "
               f"true-probability AUC {_figure(quality['auc'])}, calibration slope {slopes[1]} over the "
               f"borrowers no unforeseen outage struck ({slopes[0]} with its "
               f"{quality['struck_by_unforeseen_outages']['borrowers']}), p_true exactly 0 for "
               f"{quality['share_exactly_zero']:.1%} of borrowers; "
               f"realism checks failed: {failed or 'none'}; not applicable to this label: "
               f"{not_applicable or 'none'}")


def _due_on_window_days(windows: pd.DataFrame) -> pd.DataFrame:
    """The simulated installments due on a maintenance window's day: all the realism report needs
    of a table too large to read whole at a million borrowers."""
    days = sorted(set(windows["start_time"].dt.normalize()))
    if not days:  # pyarrow's "in" wants values
        return pd.DataFrame({"borrower_id": pd.Series(dtype="int64"),
                             "due_date": pd.Series(dtype="datetime64[ms]")})
    return io.read_dataset(RAW_DIR / "installments", ["borrower_id", "due_date"], [("due_date", "in", days)])


def _figure(value: float | None) -> str:
    return f"n/a (fewer than {MIN_CLASS} misses or repayments)" if value is None else f"{value:.3f}"


def write_shard(index: int, settings: SimulateSettings, world: World, truth: dict[str, Path],
                raw: Path) -> int:
    """Simulate one shard, check it against the contract and write its files; the borrowers in it.
    ``truth`` maps each truth table to its folder."""
    tables = simulate_shard(index, settings, world)
    for name in (*RAW_TABLES, *TRUTH_TABLES):
        validate(tables[name], name, f"{name} (simulated shard {index})")
        folder = truth.get(name, raw / name)
        io.write_parquet(tables[name], folder / io.part_name(index))
    return len(tables["borrowers"])
