"""Batch scoring throughput (goals: the features-file path at least 0.7x a bare Booster.predict;
with reasons, at least 0.8x a bare ``pred_contrib`` on the borrowers that are explained) and
memory on ten times the input (goal: within 1.2x).

Usage: python bench/score.py [--borrowers 1000000] [--project DIR] [--repeats 3] [--memory-only]
                             [--json FILE]
In one run: ``limitjump score`` on a features file (with reasons, and with ``score.explain:
false``: probability and band only) and on the raw tables of the same borrowers, and a bare
``Booster.predict`` on the same feature matrix. The features-file path without reasons is the
figure that varies most from run to run (by a fifth at 1M on these shared machines), so it and the
bare predict run --repeats times, alternated, and its ratio is the ratio of the medians (all runs
in the JSON). Then the raw-tables path, probability and band only, on all borrowers and on a tenth
of them, for the peak memory of the whole process tree: with the default allocators, and with the
lean ones (Arrow's system allocator and glibc returning any freed block over 1 MB at once), which
trade speed for memory. --memory-only runs that last part alone, and --json then keeps the other
figures of the file it replaces.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from statistics import median

import pandas as pd
import yaml
from measure import Measured, prepared, project_parser, run, write_json

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


class Bare:
    """The bare LightGBM calls on the project's feature matrix, loaded once (not timed)."""

    def __init__(self, project: Path):
        frame = pd.read_parquet(project / "data" / "features")
        self.model = CalibratedLightGBM.from_dir(project / "models" / "lightgbm")
        self.ids, self.matrix = frame["borrower_id"], self.model.matrix(frame)

    def predict_seconds(self) -> float:
        start = time.perf_counter()
        self.model.booster.predict(self.matrix)
        return time.perf_counter() - start

    def contrib_seconds(self, scores: Path, quiet: list[str]) -> tuple[float, int]:
        """Seconds of a bare ``pred_contrib`` on the rows the command explained (outside the quiet
        bands of ``scores``), and how many those are."""
        scored = pd.read_parquet(scores, columns=["borrower_id", "risk_band"])
        explained = self.ids.isin(scored.loc[~scored["risk_band"].isin(quiet), "borrower_id"]).to_numpy()
        start = time.perf_counter()
        self.model.booster.predict(self.matrix[explained], pred_contrib=True)
        return time.perf_counter() - start, int(explained.sum())


def features_file_ratio(project: Path, bare: Bare, n: int, repeats: int) -> dict:
    """The features-file path without reasons against a bare predict, alternated ``repeats``
    times (see ``ratio_of_medians``)."""
    command, predict = [], []
    for _ in range(repeats):
        command.append(score(project, "data/features", False).wall)
        predict.append(bare.predict_seconds())
    return ratio_of_medians(command, predict, n)


def ratio_of_medians(command: list[float], predict: list[float], n: int) -> dict:
    """Every run's seconds, the rates (borrowers/s) of the medians, their ratio (bare over command:
    1.0 means no overhead) and the range of the paired runs' ratios."""
    ratios = [p / c for c, p in zip(command, predict, strict=True)]
    return {"command_seconds": command, "bare_predict_seconds": predict,
            "rate": n / median(command), "bare_rate": n / median(predict),
            "ratio": median(predict) / median(command), "ratio_range": [min(ratios), max(ratios)]}


def main() -> None:
    parser = project_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args()
    with prepared(args, upto="train") as project:
        n = len(pd.read_parquet(project / "data" / "features", columns=["borrower_id"]))
        if args.memory_only:
            figures = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
            if args.json and figures.get("borrowers", n) != n:
                raise SystemExit(f"--memory-only keeps the other figures of {args.json}: they must be of "
                                 f"{n:,} borrowers too")
            figures.update(borrowers=n, memory=memory_figures(project))
            report_memory(figures)
            if args.json:
                write_json(args.json, figures)
            return
        bare = Bare(project)
        plain = features_file_ratio(project, bare, n, args.repeats)
        raw_reasons = score(project, "data/raw").wall
        with_reasons = score(project, "data/features").wall  # its scores say who was explained
        quiet = yaml.safe_load((project / "params.yaml").read_text())["score"]["quiet_bands"]
        contrib, explained = bare.contrib_seconds(project / "out" / "scores.parquet", quiet)
        memory = memory_figures(project)
    figures = {
        "borrowers": n, "repeats": args.repeats, "features_file": plain,
        "reasons": {"explained": explained, "features_file_seconds": with_reasons,
                    "rate_explained": explained / with_reasons, "bare_contrib_rate": explained / contrib,
                    "ratio": contrib / with_reasons, "raw_tables_seconds": raw_reasons,
                    "raw_tables_rate": n / raw_reasons},
        "memory": memory,
    }
    report(figures)
    if args.json:
        write_json(args.json, figures)


def memory_figures(project: Path) -> dict:
    """Raw tables, probability and band only, on all borrowers and a tenth of them, with each
    set of allocators: the peak memory of the process tree and the time of each run."""
    tenth(project / "data" / "raw", project / "small_raw")
    out = {}
    for allocators, env in (("default", None), ("lean", LEAN)):
        m = {size: score(project, source, False, env) for size, source in (("all", "data/raw"),
                                                                            ("tenth", "small_raw"))}
        out[allocators] = {"all_mb": m["all"].peak, "tenth_mb": m["tenth"].peak, "all_seconds": m["all"].wall,
                           "tenth_seconds": m["tenth"].wall, "ratio": m["all"].peak / m["tenth"].peak}
    return out


def report(f: dict) -> None:
    plain, reasons, n = f["features_file"], f["reasons"], f["borrowers"]
    print(f"features file, probability and band only: {plain['rate']:,.0f} borrowers/s (median of "
          f"{f['repeats']}) vs a bare predict {plain['bare_rate']:,.0f}/s: {plain['ratio']:.3f} "
          f"(runs {plain['ratio_range'][0]:.3f} to {plain['ratio_range'][1]:.3f}; goal >= 0.7)")
    print(f"with reasons, explained borrowers: {reasons['explained']:,} of {n:,}, "
          f"{reasons['rate_explained']:,.0f}/s vs a bare pred_contrib {reasons['bare_contrib_rate']:,.0f}/s: "
          f"{reasons['ratio']:.3f} (goal >= 0.8)")
    print(f"raw tables with reasons: {reasons['raw_tables_rate']:,.0f} borrowers/s")
    report_memory(f)


def report_memory(f: dict) -> None:
    n = f["borrowers"]
    for allocators, m in f["memory"].items():
        print(f"raw tables, {allocators} allocators: {n:,} borrowers {m['all_seconds']:.1f} s, peak "
              f"{m['all_mb']:.0f} MB; a tenth {m['tenth_seconds']:.1f} s, peak {m['tenth_mb']:.0f} MB; "
              f"ratio {m['ratio']:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
