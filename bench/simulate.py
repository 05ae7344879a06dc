"""Simulator throughput and memory at 100k and 1M borrowers (goal: 1M in at most 60 s on 2 cores).

Usage: python bench/simulate.py [--sizes 100000 1000000] [--workers 2]
Prints borrowers per second and peak memory of each size, and the ratio of the two peaks, which
stays near 1 when shards stream (memory bounded by the shard size, not by n_borrowers).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from measure import clean, run, scratch_project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    peaks = {}
    for n in args.sizes:
        where = Path(tempfile.mkdtemp(prefix=f"bench-sim-{n}-"))
        scratch_project(where, {"simulate.n_borrowers": n, "engine.workers": args.workers})
        measured = run(["limitjump", "simulate"], where)
        wall, peak = measured.wall, measured.peak
        peaks[n] = peak
        print(f"{n:>9,} borrowers: {wall:7.1f} s  {n / wall:9,.0f} borrowers/s  peak memory {peak:7.0f} MB")
        clean(where)
    if len(peaks) == 2:
        small, large = sorted(peaks)
        print(f"peak memory ratio {large:,} / {small:,} borrowers: {peaks[large] / peaks[small]:.2f}")


if __name__ == "__main__":
    main()
