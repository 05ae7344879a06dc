"""Batch scoring throughput (goals: the features-file path at least 0.7x a bare Booster.predict;
with reasons, at least 0.8x a bare ``pred_contrib`` on the borrowers that are explained) and
memory on ten times the input (goal: within 1.2x).

Usage: python bench/score.py [--borrowers 1000000] [--project DIR]
In one run: ``limitjump score`` on a features file (with reasons, and with ``score.explain:
false``: probability and band only) and on the raw tables of the same borrowers, and a bare
``Booster.predict`` on the same feature matrix. Then the raw-tables path, probability and band
only, on all borrowers and on a tenth of them, for the peak memory of the whole process tree:
with the default allocators, and with the lean ones (Arrow's system allocator and glibc returning
any freed block over 1 MB at once), which trade speed for memory.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pandas as pd
import yaml
from measure import Measured, prepared, project_parser, run

from pipeline.model import CalibratedLightGBM

LEAN = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_MMAP_THRESHOLD_": str(2**20)}


def tenth(raw: Path, out: Path) -> Path:
    """A raw-tables folder with the first tenth of the shards (links, no copies)."""
    shutil.rmtree(out, ignore_errors=True)
    parts = sorted((raw / "borrowers").glob("part-*.parquet"))
    shards = parts[: max(1, len(parts) // 10)]
    for table in raw.iterdir():
        (out / table.name).mkdir(parents=True, exist_ok=True)
        for part in shards if table.name != "maintenance_windows" else list(table.glob("*")):
            os.symlink(table / part.name, out / table.name / part.name)
    return out


def score(project: Path, source: str, explain: bool = True, env: dict | None = None) -> Measured:
    settings = yaml.safe_load((project / "params.yaml").read_text())
    settings["score"]["explain"] = explain
    (project / f"params_explain_{explain}.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return run(["limitjump", "score", "--input", source, "--output", "out/scores.parquet", "--model",
                "models/lightgbm", "--params", f"params_explain_{explain}.yaml"], project, env)


def bare_rates(project: Path) -> tuple[float, float, int]:
    """Borrowers per second of a bare ``predict`` on every row and of a bare ``pred_contrib`` on
    the rows the command explained (outside the quiet bands), and how many those are."""
    frame = pd.read_parquet(project / "data" / "features")
    model = CalibratedLightGBM.from_dir(project / "models" / "lightgbm")
    matrix = model.matrix(frame)
    start = time.perf_counter()
    model.booster.predict(matrix)
    predict = len(frame) / (time.perf_counter() - start)
    quiet = yaml.safe_load((project / "params.yaml").read_text())["score"]["quiet_bands"]
    scored = pd.read_parquet(project / "out" / "scores.parquet", columns=["borrower_id", "risk_band"])
    explained = frame["borrower_id"].isin(scored.loc[~scored["risk_band"].isin(quiet), "borrower_id"])
    start = time.perf_counter()
    model.booster.predict(matrix[explained.to_numpy()], pred_contrib=True)
    return predict, int(explained.sum()) / (time.perf_counter() - start), int(explained.sum())


def main() -> None:
    args = project_parser(__doc__).parse_args()
    with prepared(args, upto="train") as project:
        n = len(pd.read_parquet(project / "data" / "features", columns=["borrower_id"]))
        rates = {"raw tables, with reasons": n / score(project, "data/raw").wall,
                 "features file, probability and band only": n / score(project, "data/features", False).wall}
        with_reasons = score(project, "data/features").wall  # its scores say who was explained
        rates["features file, with reasons (TreeSHAP)"] = n / with_reasons
        predict, contrib, explained = bare_rates(project)
        rates.update({"bare Booster.predict": predict, "bare pred_contrib, explained rows": contrib})
        tenth(project / "data" / "raw", project / "small_raw")
        memory = {(allocators, size): score(project, source, False, env)
                  for allocators, env in (("default", None), ("lean", LEAN))
                  for size, source in (("all", "data/raw"), ("tenth", "small_raw"))}
    for name, rate in rates.items():
        print(f"{name:42}: {rate:10,.0f} borrowers/s")
    bare = rates["bare Booster.predict"]
    print(f"features-file path / bare predict: "
          f"{rates['features file, probability and band only'] / bare:.3f} without reasons, "
          f"{rates['features file, with reasons (TreeSHAP)'] / bare:.3f} with them (goal >= 0.7)")
    print(f"with reasons, explained borrowers: {explained:,} of {n:,}, {explained / with_reasons:,.0f}/s, "
          f"{explained / with_reasons / rates['bare pred_contrib, explained rows']:.3f} of a bare "
          f"pred_contrib on them (goal >= 0.8)")
    for allocators in ("default", "lean"):
        full, small = memory[allocators, "all"], memory[allocators, "tenth"]
        print(f"raw tables, {allocators} allocators: {n:,} borrowers {full.wall:.1f} s, "
              f"peak {full.peak:.0f} MB; a tenth {small.wall:.1f} s, peak {small.peak:.0f} MB; "
              f"ratio {full.peak / small.peak:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
