"""Features and scoring on the local engine and on Dask, and what 100M borrowers would take.

Usage: python bench/engine.py [--borrowers 1000000] [--project DIR] [--workers 2] [--json FILE]
                              [--stages STAGE ...] [--skip-dask]
In one run, on this machine: ``limitjump features`` and ``limitjump score`` (raw tables) with
``engine.kind: local`` and with ``engine.kind: dask`` (a LocalCluster of the same number of
workers), their wall time and the peak memory of the largest single process (a worker); scoring
runs with ``score.explain: false`` (bench/score.py measures the cost of reasons). From the
measured cost per bucket (core-seconds per shard of ``simulate.shard_size`` borrowers) it
estimates the wall time of 100M borrowers on N workers. Then the speed-up of ``--workers`` over
one worker on the local engine for ``simulate``, ``features`` and ``score`` (a features file:
worker threads; raw tables: worker processes) (goal: at least 1.7x with 2 workers). --stages
limits the speed-ups to some of them, --skip-dask leaves the Dask comparison out; --json writes
the figures the README quotes.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from measure import prepared, project_parser, run, write_json

TARGET = 100_000_000
SPEEDUP = {"simulate": ["limitjump", "simulate"], "features": ["limitjump", "features"],
           "score, features file": ["limitjump", "score", "--input", "data/features", "--output",
                                    "out/speedup.parquet", "--model", "models/lightgbm"],
           "score, raw tables": ["limitjump", "score", "--input", "data/raw", "--output",
                                 "out/speedup.parquet", "--model", "models/lightgbm"]}


def set_engine(project: Path, kind: str, workers: int) -> int:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["engine"].update(kind=kind, workers=workers)
    params["score"]["explain"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params["simulate"]["shard_size"]


def main() -> None:
    parser = project_parser(__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", nargs="+", choices=list(SPEEDUP), default=list(SPEEDUP), metavar="STAGE")
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    results = {}
    with prepared(args, upto="train") as project:
        shard_size = set_engine(project, "local", args.workers)
        for kind in () if args.skip_dask else ("local", "dask"):
            shard_size = set_engine(project, kind, args.workers)
            results[kind, "features"] = run(["limitjump", "features"], project)
            results[kind, "score"] = run(["limitjump", "score", "--input", "data/raw", "--output",
                                          f"out/{kind}.parquet", "--model", "models/lightgbm"], project)
        speedup = {}
        for stage in args.stages:
            for n in (1, args.workers):
                set_engine(project, "local", n)
                speedup[stage, n] = run(SPEEDUP[stage], project).wall
        set_engine(project, "local", args.workers)
    buckets = -(-args.borrowers // shard_size)
    print(f"{args.borrowers:,} borrowers in {buckets} buckets of {shard_size:,}, {args.workers} workers")
    for (kind, stage), m in results.items():
        print(f"{stage:8} {kind:5}: {m.wall:7.1f} s   largest process {m.peak_per_process:6.0f} MB   "
              f"all processes {m.peak:6.0f} MB")
    for stage in () if args.skip_dask else ("features", "score"):
        ratio = results["dask", stage].wall / results["local", stage].wall
        per_bucket = results["dask", stage].wall * args.workers / buckets
        print(f"{stage}: dask / local {ratio:.2f}; {per_bucket:.2f} core-seconds per bucket")
        target_buckets = TARGET // shard_size
        for n in (8, 32, 128):
            print(f"  estimate for {TARGET:,} borrowers on {n:3} workers: "
                  f"{target_buckets * per_bucket / n / 60:6.1f} min")
    for stage in args.stages:
        one, many = speedup[stage, 1], speedup[stage, args.workers]
        print(f"{stage:22}: 1 worker {one:6.1f} s, {args.workers} workers {many:6.1f} s, "
              f"speed-up {one / many:.2f}x (goal >= 1.7x)")
    if args.json:
        write_json(args.json, figures(args, results, speedup))


def figures(args, results: dict, speedup: dict) -> dict:
    engines = {f"{stage}, {kind}": {"seconds": m.wall, "largest_process_mb": m.peak_per_process,
                                    "all_processes_mb": m.peak} for (kind, stage), m in results.items()}
    speedups = {stage: {"one_worker_seconds": speedup[stage, 1],
                        "workers_seconds": speedup[stage, args.workers],
                        "speedup": speedup[stage, 1] / speedup[stage, args.workers]} for stage in args.stages}
    return {"borrowers": args.borrowers, "workers": args.workers, "engines": engines, "speedup": speedups}


if __name__ == "__main__":
    main()
