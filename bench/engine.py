"""Features and scoring on the local engine and on Dask, and what 100M borrowers would take.

Usage: python bench/engine.py [--borrowers 1000000] [--project DIR] [--workers 2] [--json FILE]
                              [--stages STAGE ...] [--skip-dask] [--repeats 3] [--simulate-repeats 1]
                              [--batch-borrowers N]
In one run, on this machine: ``limitjump features`` and ``limitjump score`` (raw tables) with
``engine.kind: local`` and with ``engine.kind: dask`` (a LocalCluster of the same number of
workers), their wall time and the peak memory of the largest single process (a worker); scoring
runs with ``score.explain: false`` (bench/score.py measures the cost of reasons). From the
measured cost per bucket (core-seconds per shard of ``simulate.shard_size`` borrowers) it
estimates the wall time of 100M borrowers on N workers. Then the speed-up of ``--workers`` over
one worker on the local engine for ``simulate``, ``features`` (on threads, the default, and on
processes: ``engine.features_workers``) and ``score`` (a features file: worker threads; raw tables:
worker processes) (goal: at least 1.7x with 2 workers). Two runs of
one command on this machine differ by up to a third (the hypervisor takes time from busy cores),
so each speed-up is the ratio of medians over --repeats pairs of runs, one worker then several,
alternated so that a slow spell weighs on both (the simulator, 11 minutes a pair at 1M:
--simulate-repeats). --stages limits the speed-ups to some of them, --skip-dask leaves the Dask
comparison out. Two references show what the machine itself allows: the same numpy work
(sorting and arithmetic, no shared state) done by one process several times over, then by
several processes at once, once each, in the same alternated pairs; "in cache" on arrays of 20,000
floats, "through memory" on arrays of 4M, which share the memory bus. A third does the same work
on threads of one process, on arrays of 5,000 floats (a features batch's per-borrower arrays):
what handing Python's lock between threads costs at that size.
--batch-borrowers sets the features' batch (``engine.batch_borrowers``), which trades memory for
the threads' speed-up. --json writes the figures the docs quote, keeping from the file it
replaces the figures of what this run left out (same borrowers and workers only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import yaml
from measure import prepared, project_parser, run, write_json

TARGET = 100_000_000
# one unit of each reference's work: about 2 s of sorting and arithmetic on this machine
UNIT = ("import numpy as np\nx = np.random.default_rng(0).random({size})\n"
        "for _ in range({{units}} * {rounds}):\n    np.sort(x * 1.0001 + np.exp(-x))")
# the same work on threads of one process: numpy lets go of Python's lock during each operation
# on more than a few hundred elements, and the threads hand it back and forth between operations;
# 5,000 floats is the length of a features batch's per-borrower arrays (engine.batch_borrowers)
THREADED = ("import threading\nimport numpy as np\nx = np.random.default_rng(0).random({size})\n"
            "def work(units):\n    for _ in range(units * {rounds}):\n"
            "        np.sort(x * 1.0001 + np.exp(-x))\n"
            "threads = [threading.Thread(target=work, args=({{units}},)) for _ in range({{threads}})]\n"
            "[t.start() for t in threads]\n[t.join() for t in threads]")
REFERENCES = {"independent processes, in cache": UNIT.format(size=20_000, rounds=5_000),
              "independent processes, through memory": UNIT.format(size=4_000_000, rounds=10),
              "threads of one process, arrays of 5,000": THREADED.format(size=5_000, rounds=16_000)}
SPEEDUP = {"simulate": ["limitjump", "simulate"], "features": ["limitjump", "features"],
           "features, processes": ["limitjump", "features"],
           "score, features file": ["limitjump", "score", "--input", "data/features", "--output",
                                    "out/speedup.parquet", "--model", "models/lightgbm"],
           "score, raw tables": ["limitjump", "score", "--input", "data/raw", "--output",
                                 "out/speedup.parquet", "--model", "models/lightgbm"]}


def set_engine(project: Path, kind: str, workers: int, batch_borrowers: int | None = None,
               features_workers: str = "threads") -> int:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["engine"].update(kind=kind, workers=workers, features_workers=features_workers)
    if batch_borrowers:
        params["engine"]["batch_borrowers"] = batch_borrowers
    params["score"]["explain"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params["simulate"]["shard_size"]


def main() -> None:
    parser = project_parser(__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", nargs="+", choices=list(SPEEDUP), default=list(SPEEDUP), metavar="STAGE")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--simulate-repeats", type=int, default=1)
    parser.add_argument("--batch-borrowers", type=int, help="engine.batch_borrowers (default: the project's)")
    args = parser.parse_args()
    results = {}
    with prepared(args, upto="train") as project:
        shard_size = set_engine(project, "local", args.workers, args.batch_borrowers)
        args.batch_borrowers = yaml.safe_load((project / "params.yaml").read_text())["engine"][
            "batch_borrowers"]
        for kind in () if args.skip_dask else ("local", "dask"):
            shard_size = set_engine(project, kind, args.workers)
            results[kind, "features"] = run(["limitjump", "features"], project)
            results[kind, "score"] = run(["limitjump", "score", "--input", "data/raw", "--output",
                                          f"out/{kind}.parquet", "--model", "models/lightgbm"], project)
        speedup, peaks = {}, {}
        for stage in [*REFERENCES, *args.stages]:
            for _ in range(args.simulate_repeats if stage == "simulate" else args.repeats):
                for n in (1, args.workers):
                    wall, peak = timed(stage, project, n, args.workers)
                    speedup.setdefault((stage, n), []).append(wall)
                    peaks.setdefault((stage, n), []).append(peak)
        set_engine(project, "local", args.workers)
    buckets = -(-args.borrowers // shard_size)
    print(f"{args.borrowers:,} borrowers in {buckets} buckets of {shard_size:,}, {args.workers} workers")
    for (kind, stage), m in results.items():
        print(f"{stage:8} {kind:5}: {m.wall:7.1f} s   largest process {m.peak_per_process:6.0f} MB   "
              f"all processes {m.peak:6.0f} MB")
    scale = {} if args.skip_dask else {stage: scale_out(results, stage, args.workers, buckets, shard_size)
                                       for stage in ("features", "score")}
    for stage, estimate in scale.items():
        print(f"{stage}: dask / local {estimate['dask_over_local']:.2f}; "
              f"{estimate['core_seconds_per_bucket']:.2f} core-seconds per bucket")
        for n, minutes in estimate["minutes_for_100m"].items():
            print(f"  estimate for {TARGET:,} borrowers on {n:>3} workers: {minutes:6.1f} min")
    for stage in [*REFERENCES, *args.stages]:
        one, many = median(speedup[stage, 1]), median(speedup[stage, args.workers])
        pairs = zip(speedup[stage, 1], speedup[stage, args.workers], strict=True)
        runs = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in pairs)
        goal = "" if stage in REFERENCES else (
            f" (goal >= 1.7x); peak memory {median(peaks[stage, 1]):,.0f} / "
            f"{median(peaks[stage, args.workers]):,.0f} MB")
        print(f"{stage:22}: 1 worker {one:6.1f} s, {args.workers} workers {many:6.1f} s (medians; "
              f"runs {runs}), speed-up {one / many:.2f}x{goal}")
    if args.json:
        earlier = json.loads(args.json.read_text()) if args.json.exists() else {}
        write_json(args.json, merged(earlier, figures(args, results, speedup, peaks, scale)))


def timed(stage: str, project: Path, workers: int, most: int) -> tuple[float, float | None]:
    """Wall seconds of ``stage`` on ``workers`` local workers (of at most ``most``), and the peak
    memory of its process tree (MB; none for a reference)."""
    if stage in REFERENCES:
        return reference(REFERENCES[stage], workers, most), None
    set_engine(project, "local", workers, features_workers="processes" if stage == "features, processes"
               else "threads")
    measured = run(SPEEDUP[stage], project)
    return measured.wall, measured.peak


def reference(unit: str, processes: int, workers: int) -> float:
    """Wall seconds for ``workers`` units of ``unit`` (Python code doing ``{units}`` units of
    work, on ``{threads}`` threads where it has them): one process doing them all (``processes``
    1), or ``workers`` processes (or threads of one process) at once doing one each."""
    units = workers if processes == 1 else 1
    threaded = "{threads}" in unit
    code = unit.format(units=units, threads=processes) if threaded else unit.format(units=units)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(1 if threaded else processes)]
    if any(p.wait() for p in procs):
        raise RuntimeError("the reference work failed")
    return time.perf_counter() - start


def merged(earlier: dict, figures: dict) -> dict:
    """This run's figures, with those of an earlier run of the same size that this one left out
    (a stage not in --stages, the engines under --skip-dask) kept; a run of another size or
    number of workers replaces everything."""
    if (earlier.get("borrowers"), earlier.get("workers")) != (figures["borrowers"], figures["workers"]):
        return figures
    return {**figures, **{key: {**earlier.get(key, {}), **figures[key]}
                          for key in ("engines", "speedup", "scale_out")}}


def scale_out(results: dict, stage: str, workers: int, buckets: int, shard_size: int) -> dict:
    """Core-seconds per bucket on Dask, start-up included, and the minutes ``TARGET`` borrowers
    would take on 8, 32 and 128 workers at that cost (an upper estimate)."""
    per_bucket = results["dask", stage].wall * workers / buckets
    return {"dask_over_local": results["dask", stage].wall / results["local", stage].wall,
            "core_seconds_per_bucket": per_bucket,
            "minutes_for_100m": {str(n): TARGET // shard_size * per_bucket / n / 60 for n in (8, 32, 128)}}


def figures(args, results: dict, speedup: dict, peaks: dict, scale: dict) -> dict:
    engines = {f"{stage}, {kind}": {"seconds": m.wall, "largest_process_mb": m.peak_per_process,
                                    "all_processes_mb": m.peak} for (kind, stage), m in results.items()}
    speedups = {}
    for stage in [*REFERENCES, *args.stages]:
        one, many = speedup[stage, 1], speedup[stage, args.workers]
        speedups[stage] = {"one_worker_seconds": median(one), "workers_seconds": median(many),
                           "speedup": median(one) / median(many), "one_worker_runs": one,
                           "workers_runs": many,
                           "speedup_range": [min(one) / max(many), max(one) / min(many)]}
        if stage not in REFERENCES:
            speedups[stage] |= {"one_worker_peak_mb": median(peaks[stage, 1]),
                                "workers_peak_mb": median(peaks[stage, args.workers])}
    return {"borrowers": args.borrowers, "workers": args.workers, "batch_borrowers": args.batch_borrowers,
            "engines": engines, "speedup": speedups, "scale_out": scale}


if __name__ == "__main__":
    main()
