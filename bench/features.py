"""Feature throughput and memory: pipeline.features against an independent DuckDB implementation
(goal: ours no slower than 1.5x DuckDB).

Usage: python bench/features.py [--borrowers 1000000] [--data DIR]
Without --data, simulates that many borrowers in a scratch project (the repository's params.yaml
with simulate.n_borrowers and engine.workers: 2) and uses its data/raw. Then times, each in its
own child process so that the peak memories do not mix:
  ours    the work of `limitjump features`: per shard file, read the raw tables and call
          build_features, sequentially in one process, writing nothing;
  duckdb  bench/features_duckdb.py over the whole raw directory (DuckDB's default threads).
Prints both times, the ratio ours / DuckDB, both peak memories (whole process tree), and the
largest absolute difference per feature over a sample of 2,000 borrowers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from measure import ROOT, clean, run, scratch_project

from pipeline.catalog import NAMES

GOAL = 1.5  # ours / DuckDB wall time, at most
SAMPLE = 2_000
ATOL = 1e-9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--borrowers", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, help="an existing raw directory (data/raw of a project)")
    parser.add_argument("--child", choices=("ours", "duckdb"), help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.sample, args.out)
    else:
        bench(args.borrowers, args.data)


def bench(borrowers: int, data: Path | None) -> None:
    """Simulate if needed, time both implementations, compare them on a sample."""
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        raw = data.resolve() if data else simulate(work / "project", borrowers)
        ids = sample_ids(raw, work / "sample.npy")
        shards = len(list((raw / "borrowers").glob("part-*.parquet")))
        print(f"data: {raw}  ({count_borrowers(raw):,} borrowers in {shards} shards)")
        results = {which: time_child(which, raw, ids, work) for which in ("ours", "duckdb")}
        report(results, shards)
        compare(pd.read_parquet(work / "ours.parquet"), pd.read_parquet(work / "duckdb.parquet"))
    finally:
        clean(work)


def simulate(project: Path, borrowers: int) -> Path:
    scratch_project(project, {"simulate.n_borrowers": borrowers, "engine.workers": 2})
    measured = run(["limitjump", "simulate"], project)
    print(f"simulated {borrowers:,} borrowers in {measured.wall:.1f} s "
          f"(peak memory {measured.peak:.0f} MB)")
    return project / "data" / "raw"


def count_borrowers(raw: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in (raw / "borrowers").glob("part-*.parquet"))


def sample_ids(raw: Path, path: Path) -> Path:
    """A fixed random sample of borrower ids, saved for both children."""
    ids = pd.read_parquet(raw / "borrowers", columns=["borrower_id"])["borrower_id"].to_numpy()
    chosen = np.sort(np.random.default_rng(0).choice(ids, size=min(SAMPLE, ids.size), replace=False))
    np.save(path, chosen)
    return path


def time_child(which: str, raw: Path, ids: Path, work: Path) -> dict:
    """Run one implementation in a child process: its own timing of the feature work (imports
    and the sample write-out excluded) and the peak memory of the child's process tree."""
    out = work / f"{which}.parquet"
    args = [sys.executable, str(Path(__file__).resolve()), "--child", which, "--data", str(raw),
            "--sample", str(ids), "--out", str(out)]
    measured = run(args, ROOT)
    result = json.loads(out.with_suffix(".json").read_text())
    return {**result, "process_seconds": measured.wall, "peak_mb": measured.peak}


def report(results: dict, shards: int) -> None:
    ours, duck = results["ours"], results["duckdb"]
    labels = {"ours": f"ours   (build_features, {shards} shards, 1 process)",
              "duckdb": f"duckdb (one query, {duck['threads']} threads)"}
    width = max(map(len, labels.values()))
    for which, result in results.items():
        print(f"{labels[which]:<{width}}  {result['seconds']:8.1f} s   "
              f"peak memory {result['peak_mb']:7.0f} MB   (child process {result['process_seconds']:.1f} s)")
    ratio = ours["seconds"] / duck["seconds"]
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(f"ratio ours / duckdb: {ratio:.2f}  (goal <= {GOAL}: {verdict})")
    print(f"peak memory ours / duckdb: {ours['peak_mb'] / duck['peak_mb']:.2f}")


def compare(ours: pd.DataFrame, duck: pd.DataFrame) -> None:
    """Largest absolute difference per feature over the sample; a NaN on one side only counts
    as an infinite difference."""
    ours = ours.sort_values("borrower_id", ignore_index=True)
    duck = duck.sort_values("borrower_id", ignore_index=True)
    same_keys = all(ours[c].equals(duck[c]) for c in ("borrower_id", "scoring_date", "jump_date"))
    features = list(NAMES)
    worst = {}
    for name in features:
        a, b = ours[name].to_numpy(dtype=float), duck[name].to_numpy(dtype=float)
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
        worst[name] = float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))
    print(f"agreement on {len(ours):,} sampled borrowers (ids and dates "
          f"{'identical' if same_keys else 'DIFFER'}); max |ours - duckdb| per feature:")
    width = max(map(len, worst), default=0) + 1
    cells = [f"{name:<{width}}{value:9.2e}" for name, value in worst.items()]
    for row in range(0, len(cells), 3):
        print("  " + "   ".join(cells[row:row + 3]))
    bad = [name for name, value in worst.items() if not value <= ATOL]
    if same_keys and not bad and len(ours) == len(duck):
        print(f"OK: all {len(features)} features within {ATOL:g}")
    else:
        print(f"MISMATCH: {len(bad)} features beyond {ATOL:g}: {bad}")


# --- the children: one implementation each ---------------------------------------------------

def child(which: str, raw: Path, ids_path: Path, out: Path) -> None:
    """Compute every borrower's features; save the sample's rows and the seconds taken."""
    from pipeline.config import load_params

    params = load_params(ROOT / "params.yaml")
    observation_days, settings = params.label.observation_days, params.features
    ids = np.load(ids_path)
    if which == "ours":
        seconds, sample, extra = run_ours(raw, ids, observation_days, settings)
    else:
        seconds, sample, extra = run_duckdb(raw, ids, observation_days, settings)
    sample.to_parquet(out, index=False)
    out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, **extra}))


Timed = tuple[float, pd.DataFrame, dict]  # seconds, the sample's rows, extra facts to report


def run_ours(raw: Path, ids: np.ndarray, observation_days: int, settings) -> Timed:
    from pipeline import io
    from pipeline.cli.features import read_shard
    from pipeline.features import build_features

    seconds, kept = 0.0, []
    for index in [io.part_index(f) for f in io.parts(raw / "borrowers")]:
        start = time.perf_counter()
        frame = build_features(read_shard(raw, index), observation_days, settings)
        seconds += time.perf_counter() - start
        kept.append(frame[frame["borrower_id"].isin(ids)])  # outside the timing: not our work
        del frame
    return seconds, pd.concat(kept, ignore_index=True), {}


def run_duckdb(raw: Path, ids: np.ndarray, observation_days: int, settings) -> Timed:
    import duckdb
    from features_duckdb import duckdb_features

    con = duckdb.connect()
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    start = time.perf_counter()
    frame = duckdb_features(raw, observation_days, settings)
    seconds = time.perf_counter() - start
    return seconds, frame[frame["borrower_id"].isin(ids)].reset_index(drop=True), {"threads": threads}


if __name__ == "__main__":
    main()
