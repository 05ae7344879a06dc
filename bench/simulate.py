"""Simulator throughput and memory at 100k and 1M borrowers (goal: 1M in at most 60 s on 2 cores).

Usage: python bench/simulate.py [--sizes 100000 1000000] [--workers 2] [--json FILE]
Prints borrowers per second and peak memory of each size, and the ratio of the two peaks, which
stays near 1 when shards stream (memory bounded by the shard size, not by n_borrowers).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from measure import clean, run, scratch_project, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures the docs quote here")
    args = parser.parse_args()
    sizes = []
    for n in args.sizes:
        where = Path(tempfile.mkdtemp(prefix=f"bench-sim-{n}-"))
        scratch_project(where, {"simulate.n_borrowers": n, "engine.workers": args.workers})
        measured = run(["limitjump", "simulate"], where)
        sizes.append({"borrowers": n, "seconds": measured.wall, "borrowers_per_second": n / measured.wall,
                      "peak_mb": measured.peak})
        print(f"{n:>9,} borrowers: {measured.wall:7.1f} s  {n / measured.wall:9,.0f} borrowers/s  "
              f"peak memory {measured.peak:7.0f} MB", flush=True)
        clean(where)
    figures = {"workers": args.workers, "sizes": sizes}
    if len(sizes) == 2:
        small, large = sorted(sizes, key=lambda size: size["borrowers"])
        figures["peak_ratio"] = large["peak_mb"] / small["peak_mb"]
        print(f"peak memory ratio {large['borrowers']:,} / {small['borrowers']:,} borrowers: "
              f"{figures['peak_ratio']:.2f}")
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
