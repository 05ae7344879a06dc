"""The gap between the model and the truth across seeds (goal: spread of the gap at most 0.01).

Usage: python bench/oracle.py [--seeds 20261129 1 2] [--n 150000] [--workers 2] [--json FILE]
For every seed: simulate, build features, split out of time with the embargo, fit the calibrated
LightGBM of params.yaml, and report on the test split the miss rate, the truth's AUC, the model's
AUC and their gap with its bootstrap standard error (the test rows resampled, the same rows for
both AUCs), the model's and the truth's expected calibration error, the technical misses' share
and the gap without them (where the truth's hidden state weighs most: who forgets a manual
payment, whose card silently changed), the outage misses' share
and the gap without them (where the world's own draw weighs most: its outage days strike many
borrowers at once), the share of the misses on maintenance announced before scoring (which the
truth sees coming) with the truth's and the model's median probability for them, how many such
misses the model had to learn from (training and validation) and the gap without them, plus whether
every realism check passes; then the spread (max - min) of each, beside the spread the test rows'
sampling alone would give as many seeds (the expected range of that many normal draws with the
seeds' standard error: 1.69 of them for three).
The stages' own functions run in-process (no MLflow, no files), shards on ``--workers`` processes.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from measure import ROOT, write_json
from sklearn.metrics import roc_auc_score

from pipeline import metrics, train
from pipeline.config import Params, parse_params, truth_replicates
from pipeline.features import build_features
from pipeline.simulate import World, build_world, shard_bounds, simulate_shard
from pipeline.simulate.realism import (
    FAIL,
    announced_outage_misses,
    outage_misses,
    realism_report,
    struck_by_unforeseen_outages,
)
from pipeline.split import maintenance_miss_rate, out_of_time

TRUTH = ["borrower_id", "label", "p_true"]
BOOTSTRAP = 200


def expected_range(draws: int) -> float:
    """E[max - min] of ``draws`` standard normal draws (Monte Carlo, 200,000 samples)."""
    return float(np.ptp(np.random.default_rng(0).standard_normal((200_000, draws)), axis=1).mean())


def gap_standard_error(y: np.ndarray, p_true: np.ndarray, p_model: np.ndarray,
                       replicates: int = BOOTSTRAP, seed: int = 0) -> float:
    """Standard deviation of AUC(p_true) - AUC(p_model) over bootstrap resamples of the rows."""
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(replicates):
        rows = rng.integers(0, len(y), len(y))
        gaps.append(roc_auc_score(y[rows], p_true[rows]) - roc_auc_score(y[rows], p_model[rows]))
    return float(np.std(gaps, ddof=1))


def gap_without(y: np.ndarray, p_true: np.ndarray, p_model: np.ndarray, left_out: np.ndarray) -> float:
    """AUC(p_true) - AUC(p_model) on the rows not ``left_out`` (misses of one kind, say)."""
    kept = ~left_out
    return float(roc_auc_score(y[kept], p_true[kept]) - roc_auc_score(y[kept], p_model[kept]))


def _shard(index: int, params: Params, world: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of one shard with its label, and the shard's ground truth."""
    tables = simulate_shard(index, params.simulate, world)
    tables["maintenance_windows"] = world.outages.windows
    frame = build_features(tables, params.label.observation_days, params.features)
    truth = tables["ground_truth"]
    events = tables["platform_events"]
    failed = events[events["detail"] == "system_unavailable"]  # all the maintenance floor reads
    struck = struck_by_unforeseen_outages(truth, tables["installments"], world.outages.windows, params.label)
    return (frame.merge(truth[["borrower_id", "label"]], on="borrower_id"), truth, failed,
            tables["repayments"][["borrower_id", "due_date", "payment_date"]], pd.Series(struck))


def one_seed(params: Params, workers: int) -> dict:
    world = build_world(params.simulate, params.label)
    shards = range(len(shard_bounds(params.simulate)))
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_shard, shards, [params] * len(shards), [world] * len(shards)))
    frame, truth, failed, paid, struck = (pd.concat(tables, ignore_index=True)
                                          for tables in zip(*parts, strict=True))
    frame["split"] = out_of_time(frame, params.split.fractions, params.label,
                                 params.simulate.calendar.due_day_offset)
    splits = {name: frame[frame["split"] == name].drop(columns="split").reset_index(drop=True)
              for name in ("train", "valid", "test")}
    columns = train.feature_columns(splits["train"])
    categorical = train.categorical_columns(splits["train"], columns)
    s = params.train.lightgbm
    model = train.fit_calibrated_lightgbm(splits["train"], splits["valid"], columns, categorical, {}, s)
    test = splits["test"]
    # as `limitjump split` and `train` do: the history of stopped debits, known when test begins,
    # and what the training rows say of forgetting and of lapsed agreements
    maintenance = maintenance_miss_rate(failed, paid, world.outages.windows, test["scoring_date"].min(),
                                        params.label.dpd_threshold)
    model.calibration.update(train.floor_histories(splits["train"], params.label, maintenance))
    of_test = truth.set_index("borrower_id").loc[test["borrower_id"]]
    p_true, cause = of_test["p_true"].to_numpy(), of_test["first_miss_cause"].to_numpy()
    outage = outage_misses(of_test)
    windows = world.outages.windows
    announced = announced_outage_misses(of_test, windows)
    fitted_on = pd.concat([splits["train"], splits["valid"]])["borrower_id"]
    seen = announced_outage_misses(truth.set_index("borrower_id").loc[fitted_on], windows)
    realism = realism_report(truth, truth_replicates(params.simulate, params.label), params.label,
                             struck.to_numpy())
    y, p_model = test["label"].to_numpy(), model.predict(test)
    model_auc, truth_auc = roc_auc_score(y, p_model), roc_auc_score(y, p_true)
    # the technical misses are where the truth's hidden state weighs most, and the outage misses
    # where the world's own draw does (its outage days strike many borrowers at once)
    technical = (y == 1) & (cause == "technical")
    return {"seed": params.simulate.seed, "miss_rate": float(y.mean()),
            "truth_auc": float(truth_auc), "model_auc": float(model_auc), "gap": float(truth_auc - model_auc),
            "model_ece": metrics.probability_quality(y, p_model)["ece"],
            "truth_ece": metrics.probability_quality(y, p_true)["ece"],
            "gap_standard_error": gap_standard_error(y, p_true, p_model),
            "technical_share_of_misses": float(technical[y == 1].mean()),
            "gap_without_technical_misses": gap_without(y, p_true, p_model, technical),
            "outage_share_of_misses": float(outage[y == 1].mean()),
            "gap_without_outage_misses": gap_without(y, p_true, p_model, outage),
            "announced_outage_share_of_misses": float(announced[y == 1].mean()),
            "announced_outage_misses_in_training": int(seen.sum()),
            "gap_without_announced_outage_misses": gap_without(y, p_true, p_model, announced),
            "announced_outage_median_p_true": _median(p_true[announced]),
            "announced_outage_median_p_model": _median(p_model[announced]),
            "realism_failed": [k for k, v in realism["checks"].items() if v == FAIL]}


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[20261129, 1, 2])
    parser.add_argument("--n", type=int, default=None, help="borrowers (default: params.yaml)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures the docs quote here")
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    rows = []
    for seed in args.seeds:
        raw["simulate"]["seed"] = seed
        if args.n:
            raw["simulate"]["n_borrowers"] = args.n
        rows.append(one_seed(parse_params(raw), args.workers))
        r = rows[-1]
        print(f"seed {seed}: test miss rate {r['miss_rate']:.4f}  truth AUC {r['truth_auc']:.4f}  "
              f"model AUC {r['model_auc']:.4f}  gap {r['gap']:.4f} (se {r['gap_standard_error']:.4f}; "
              f"ECE model {r['model_ece']:.4f}, truth {r['truth_ece']:.4f}; "
              f"{r['gap_without_technical_misses']:.4f} without the technical misses, "
              f"{r['technical_share_of_misses']:.1%} of them; {r['gap_without_outage_misses']:.4f} "
              f"without the outage misses, {r['outage_share_of_misses']:.1%}; "
              f"{r['announced_outage_share_of_misses']:.1%} on announced maintenance, "
              f"{r['announced_outage_misses_in_training']} such misses in training)  "
              "realism failed: "
              f"{r['realism_failed'] or 'none'}", flush=True)
    table = pd.DataFrame(rows)
    spread = table[["miss_rate", "truth_auc", "model_auc", "gap", "technical_share_of_misses",
                    "gap_without_technical_misses", "outage_share_of_misses",
                    "gap_without_outage_misses", "gap_without_announced_outage_misses"]].agg(
        lambda c: c.max() - c.min())
    noise = expected_range(len(rows)) * float(np.sqrt((table["gap_standard_error"] ** 2).mean()))
    print("spread (max - min): " + ", ".join(f"{k} {v:.4f}" for k, v in spread.items())
          + f"; the gap's sampling alone would give {noise:.4f}")
    if args.json:
        write_json(args.json, {"borrowers": int(raw["simulate"]["n_borrowers"]), "seeds": rows,
                               "spread": {k: float(v) for k, v in spread.items()},
                               "gap_spread_from_sampling": noise,
                               "seeds_failing_a_realism_check": sum(bool(r["realism_failed"]) for r in rows)})


if __name__ == "__main__":
    main()
