"""`limitjump features` against the best peers: independent polars and DuckDB implementations of
every catalogued feature, each run shard by shard and checked against ours in the same run
(goal: ours no slower than the fastest reference, at no more peak memory).

Usage: python bench/features.py [--sizes 300000 1000000] [--data DIR ...] [--repeats 3] [--json FILE]
For each size, simulates that many borrowers in a scratch project (the repository's params.yaml
with simulate.n_borrowers and engine.workers: 2), or uses the raw directories of --data. Then runs,
each as its own process tree so that times and memories do not mix, the same work: read every
raw shard, compute the features, write them to Parquet:
  ours    the command itself, `limitjump features` (2 threads of one process, as users run it);
  polars  bench/features_polars.py on each shard in turn (lazy, polars' threads);
  duckdb  bench/features_duckdb.py on each shard in turn (DuckDB's threads).
Each round runs the three in turn, --repeats rounds, so that the machine's drift (runs of one
command vary by +-25% from hour to hour here) falls on all three alike. Prints, per
implementation, the medians over the rounds of the wall time of the whole process (imports
included), its CPU time (user + system, all processes) and its peak memory (all processes); the
ratios of ours to the fastest reference (by median time) and the range of the rounds' ratios;
and the largest difference from ours per feature on a sample of borrowers (goal: within 1e-9).
--json writes the figures the docs quote.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from statistics import median

import numpy as np
import pandas as pd
from measure import ROOT, clean, run, scratch_project, write_json

from pipeline.catalog import NAMES

SAMPLE = 2_000
ATOL = 1e-9
REFERENCES = ("polars", "duckdb")
WORKERS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[300_000, 1_000_000])
    parser.add_argument("--data", type=Path, nargs="+", help="raw directories (data/raw of projects)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three runs")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--child", choices=REFERENCES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data[0], args.out)
        return
    sources = [(None, d.resolve()) for d in args.data] if args.data else [(n, None) for n in args.sizes]
    results = [bench(n, raw, args.repeats) for n, raw in sources]
    if args.json:
        write_json(args.json, {"workers": WORKERS, "atol": ATOL, "repeats": args.repeats, "sizes": results})


def bench(borrowers: int | None, raw: Path | None, repeats: int) -> dict:
    """One size: simulate if needed, run the three implementations ``repeats`` rounds, compare them."""
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        overrides = {"engine.workers": WORKERS} | ({"simulate.n_borrowers": borrowers} if borrowers else {})
        project = scratch_project(work / "project", overrides)
        if raw is None:
            simulated = run(["limitjump", "simulate"], project)
            print(f"simulated {borrowers:,} borrowers in {simulated.wall:.1f} s")
        else:
            (project / "data").mkdir()
            (project / "data" / "raw").symlink_to(raw)
        raw = project / "data" / "raw"
        n, shards = count_borrowers(raw), len(list((raw / "borrowers").glob("part-*.parquet")))
        print(f"data: {raw.resolve()}  ({n:,} borrowers in {shards} shards)", flush=True)
        outputs = {"ours": project / "data" / "features", **{which: work / which for which in REFERENCES}}
        runs = {which: [] for which in outputs}
        for _ in range(repeats):
            runs["ours"].append(run(["limitjump", "features"], project))
            for which in REFERENCES:
                clean(outputs[which])
                runs[which].append(run([sys.executable, str(Path(__file__).resolve()), "--child", which,
                                        "--data", str(raw), "--out", str(outputs[which])], ROOT))
        figures = {k: medians(measured) for k, measured in runs.items()}
        result = {"borrowers": n, "shards": shards, "implementations": figures,
                  "agreement": agreement(outputs)}
        fastest = min(REFERENCES, key=lambda k: figures[k]["seconds"])
        rounds = [o.wall / f.wall for o, f in zip(runs["ours"], runs[fastest], strict=True)]
        result.update(fastest_reference=fastest,
                      ratio_to_fastest=figures["ours"]["seconds"] / figures[fastest]["seconds"],
                      ratio_range=[min(rounds), max(rounds)],
                      memory_ratio_to_fastest=figures["ours"]["peak_mb"] / figures[fastest]["peak_mb"])
        report(result)
        return result
    finally:
        clean(work)


def medians(measured: list) -> dict:
    """Median wall time, CPU time and peak memory over the rounds (each on its own), and every round's."""
    rounds = [{"seconds": m.wall, "cpu_seconds": m.cpu, "peak_mb": m.peak} for m in measured]
    return {key: median(r[key] for r in rounds) for key in rounds[0]} | {"rounds": rounds}


def count_borrowers(raw: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in (raw / "borrowers").glob("part-*.parquet"))


def report(result: dict) -> None:
    labels = {"ours": f"ours   (limitjump features, {WORKERS} threads)",
              "polars": "polars (shard by shard, its threads)",
              "duckdb": "duckdb (shard by shard, its threads)"}
    width = max(map(len, labels.values()))
    for which, f in result["implementations"].items():
        print(f"{labels[which]:<{width}}  {f['seconds']:7.1f} s   CPU {f['cpu_seconds']:7.1f} s   "
              f"peak memory {f['peak_mb']:7.0f} MB")
    ratio, fastest = result["ratio_to_fastest"], result["fastest_reference"]
    low, high = result["ratio_range"]
    print(f"ours / fastest reference ({fastest}), medians: time {ratio:.2f} (rounds {low:.2f}-{high:.2f}; "
          f"goal <= 1: {'met' if ratio <= 1 else 'NOT met'}), "
          f"peak memory {result['memory_ratio_to_fastest']:.2f}")
    for which, worst in result["agreement"].items():
        bad = [name for name, value in worst["per_feature"].items() if not value <= ATOL]
        verdict = f"OK, all {len(NAMES)} features within {ATOL:g}" if worst["same_rows"] and not bad \
            else f"MISMATCH: rows {'same' if worst['same_rows'] else 'DIFFER'}, beyond {ATOL:g}: {bad}"
        print(f"{which} vs ours on {worst['sample']:,} borrowers: largest difference "
              f"{worst['largest']:.2e}; {verdict}")


def agreement(outputs: dict[str, Path]) -> dict:
    """Per reference, the largest absolute difference from ours per feature over a fixed sample
    of borrowers (a NaN on one side only counts as infinite), and whether ids and dates agree."""
    ours = pd.read_parquet(outputs["ours"])
    ids = np.sort(np.random.default_rng(0).choice(ours["borrower_id"].to_numpy(),
                                                  size=min(SAMPLE, len(ours)), replace=False))
    ours = _sample(ours, ids)
    out = {}
    for which in REFERENCES:
        theirs = _sample(pd.read_parquet(outputs[which]), ids)
        same = len(theirs) == len(ours) and all(ours[c].equals(theirs[c])
                                                 for c in ("borrower_id", "scoring_date", "jump_date"))
        worst = {}
        for name in NAMES:
            a, b = ours[name].to_numpy(dtype=float), theirs[name].to_numpy(dtype=float)
            diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
            worst[name] = float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))
        out[which] = {"sample": len(ids), "same_rows": bool(same), "largest": max(worst.values()),
                      "per_feature": worst}
    return out


def _sample(frame: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    return frame[frame["borrower_id"].isin(ids)].sort_values("borrower_id", ignore_index=True)


# --- the children: one reference each, shard by shard -----------------------------------------

def child(which: str, raw: Path, out: Path) -> None:
    """Every shard's features, written as ``out/<shard>.parquet`` the way the command writes them."""
    from pipeline.config import load_params

    params = load_params(ROOT / "params.yaml")
    if which == "polars":
        from features_polars import polars_features as features
    else:
        from features_duckdb import duckdb_features as features
    out.mkdir(parents=True)
    for shard in sorted(f.stem for f in (raw / "borrowers").glob("part-*.parquet")):
        frame = features(raw, params.label.observation_days, params.features, part=shard)
        frame.to_parquet(out / f"{shard}.parquet", index=False)


if __name__ == "__main__":
    main()
