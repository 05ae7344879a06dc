"""Batch scoring throughput (goal: the features-file path at least 0.7x a bare Booster.predict).

Usage: python bench/score.py [--borrowers 1000000] [--project DIR]
In one run: ``limitjump score`` on a features file (with reasons, and with ``score.explain:
false``: probability and band only) and on the raw tables of the same borrowers, a bare
``Booster.predict`` on the same feature matrix, and the raw-tables path on a tenth of the
borrowers, to show that peak memory does not grow with the input (goal: within 1.2x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import yaml
from measure import clean, prepare, run

from pipeline.model import CalibratedLightGBM


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--borrowers", type=int, default=1_000_000)
    parser.add_argument("--project", type=Path, help="reuse a prepared scratch project")
    args = parser.parse_args()
    project = prepare(args.project, args.borrowers, upto="train")
    def score(source: str, output: str, explain: bool = True):
        settings = yaml.safe_load((project / "params.yaml").read_text())
        settings["score"]["explain"] = explain
        (project / f"params_explain_{explain}.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        return run(["limitjump", "score", "--input", source, "--output", output, "--model",
                    "models/lightgbm", "--params", f"params_explain_{explain}.yaml"], project)

    no_reasons = score("data/features", "out/n.parquet", explain=False)
    features = score("data/features", "out/f.parquet")
    raw = score("data/raw", "out/r.parquet")
    tenth(project / "data" / "raw", project / "small_raw")
    small = score("small_raw", "out/s.parquet")

    frame = pd.read_parquet(project / "data" / "features")
    booster = CalibratedLightGBM.from_dir(project / "models" / "lightgbm")
    matrix = booster.matrix(frame)
    start = time.perf_counter()
    booster.booster.predict(matrix)
    bare = time.perf_counter() - start
    n = len(frame)
    rates = {"features file, probability and band only": n / no_reasons.wall,
             "features file, with reasons (TreeSHAP)": n / features.wall,
             "raw tables, with reasons": n / raw.wall, "bare Booster.predict": n / bare}
    for name, rate in rates.items():
        print(f"{name:42}: {rate:10,.0f} borrowers/s")
    bare_rate = rates["bare Booster.predict"]
    plain = rates["features file, probability and band only"] / bare_rate
    explained = rates["features file, with reasons (TreeSHAP)"] / bare_rate
    print(f"features-file path / bare predict: {plain:.3f} without reasons, {explained:.3f} with them "
          "(goal >= 0.7)")
    print(f"peak memory: features file {features.peak:.0f} MB, raw tables {raw.peak:.0f} MB, "
          f"raw tables on a tenth {small.peak:.0f} MB; ratio full / tenth {raw.peak / small.peak:.2f} "
          f"(goal <= 1.2)")
    if args.project is None:
        clean(project)


if __name__ == "__main__":
    main()
