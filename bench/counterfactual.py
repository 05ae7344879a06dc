"""The counterfactual truth's cost against the ordinary truth's, and what common random numbers buy.

Goal (issue 16): the counterfactual for 20,000 borrowers at the grid's amounts costs no more than
six of the ordinary truths for the same borrowers. One shard of ``--borrowers`` is simulated three
times in this process: without either truth's work (1 replicate, no counterfactual), with the
ordinary truth (``simulate.truth_replicates``), and with the counterfactual for every borrower.
The differences are each truth's cost. Prints both, their ratio, the replicates used, and the
standard errors of a probability and of its change from no increase (common random numbers) with
the error the change would have with independent random numbers (the two levels' in quadrature).

Usage: python bench/counterfactual.py [--borrowers 20000] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
from measure import ROOT, write_json

from pipeline.config import load_params, truth_replicates
from pipeline.simulate import build_world, simulate_shard

EVERYONE = dt.date(2000, 1, 1)  # every cohort gets the counterfactual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--borrowers", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="write the figures the docs quote here")
    args = parser.parse_args()
    p = load_params(ROOT / "params.yaml")
    base = p.simulate.model_copy(update={"n_borrowers": args.borrowers, "shard_size": args.borrowers})
    cf, replicates = base.counterfactual, truth_replicates(base, p.label)
    variants = {
        "neither": base.model_copy(update={"truth_replicates": 1, "counterfactual":
                                           cf.model_copy(update={"share": 0.0})}),
        "ordinary truth": base.model_copy(update={"counterfactual": cf.model_copy(update={"share": 0.0})}),
        "counterfactual": base.model_copy(update={"truth_replicates": 1, "counterfactual":
                                                  cf.model_copy(update={"share": 1.0, "since": EVERYONE})}),
    }
    seconds, tables = {}, {}
    for name, settings in variants.items():
        world = build_world(settings, p.label)
        started = time.perf_counter()
        tables[name] = simulate_shard(0, settings, world)
        seconds[name] = time.perf_counter() - started
        print(f"{name:>15}: {seconds[name]:6.1f} s")
    truth = seconds["ordinary truth"] - seconds["neither"]
    what_if = seconds["counterfactual"] - seconds["neither"]
    amounts = len(p.simulate.jump.line_test_amounts)
    print(f"ordinary truth ({replicates} replicates): {truth:.1f} s; counterfactual "
          f"({cf.replicates} replicates x {amounts} amounts + the granted one): {what_if:.1f} s")
    print(f"counterfactual / six ordinary truths: {what_if / (6 * truth):.2f} (goal <= 1)")
    what = tables["counterfactual"]["counterfactual"].query("granted == 0")
    none = what[what["amount"] == 0].set_index("borrower_id")["p_miss_se"]
    grid = what[what["amount"] > 0]
    independent = np.sqrt(grid["p_miss_se"] ** 2 + grid["borrower_id"].map(none) ** 2).mean()
    level, change = grid["p_miss_se"].mean(), grid["p_miss_change_se"].mean()
    print(f"standard error, mean over borrowers and amounts: P(miss) {level:.4f}; its change from no "
          f"increase {change:.4f}, against {independent:.4f} with independent random numbers "
          f"({independent / change:.1f}x; {(independent / change) ** 2:.0f}x the replicates for the "
          "same precision)")
    if args.json:
        write_json(args.json, {
            "borrowers": args.borrowers, "truth_replicates": replicates,
            "counterfactual_replicates": cf.replicates, "amounts": amounts, "seconds": seconds,
            "truth_seconds": truth, "counterfactual_seconds": what_if,
            "ratio_to_six_truths": what_if / (6 * truth),
            "se": {"p_miss": float(level), "change_common": float(change),
                   "change_independent": float(independent), "ratio": float(independent / change),
                   "replicates_saved": float((independent / change) ** 2)}})

if __name__ == "__main__":
    main()
