"""What would lift the cause model's leading-cause accuracy (issue 14's goal: 0.80): more data,
another model structure, or the test's own cause mix? Measured in one run on the same
out-of-time misses, against the pipeline's cause model fitted as `limitjump train` fits it.

Usage: python bench/causes.py [--project DIR] [--json FILE]
The project (default: this repository) must hold data/split and data/truth (`./run repro`); a
project of more borrowers than the defaults tests the curve's extrapolation.
  reference    ``causes.fit_cause_model`` on every training and validation miss;
  curve        the same on a random quarter and half of those misses (two draws each); the gain
               per doubling of the misses (least squares on log2 of the share) and that of the
               last doubling (half to all), with the doublings the goal would need at each rate
               (an extrapolation, no more);
  per cause    three binary LightGBMs (missed by c or not) on every row, leading cause their argmax;
  four class   one LightGBM over every row, classes none / credit / liquidity / technical;
  true mix     the reference's shares re-weighted to the test misses' true cause mix (Saerens et
               al. 2002; a correction no scorer could make, as the mix is unknown when scoring);
  truth        the simulator's own split (``p_true_<cause>``, argmax): what the hidden state buys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from measure import on_built_project, split_matrices

from pipeline import causes, train
from pipeline.config import CAUSES, load_params
from pipeline.lgbm import lgb

GOAL = 0.80
SHARES, DRAWS = (0.25, 0.5), 2


def doubling_gain(shares: list[float], accuracy: list[float]) -> float:
    """Least-squares slope of accuracy on log2(share): the gain per doubling of the misses."""
    return float(np.polyfit(np.log2(shares), accuracy, 1)[0])


def to_goal(accuracy: float, gain: float) -> float | None:
    """Doublings of the misses that would reach GOAL at ``gain`` per doubling (None if no gain)."""
    return max(GOAL - accuracy, 0.0) / gain if gain > 0 else None


def reweighted(share: np.ndarray, fitted_mix: np.ndarray, new_mix: np.ndarray) -> np.ndarray:
    """P(cause | miss) moved from the cause mix the model learned to another (Bayes' rule on the
    prior alone): rows times new / fitted, normalised to sum to 1."""
    moved = share * (np.asarray(new_mix) / np.asarray(fitted_mix))
    return moved / moved.sum(axis=1, keepdims=True)


def measure(project: Path) -> dict:
    params_file = load_params(project / "params.yaml")
    settings = params_file.train.lightgbm
    frames, x, codes, columns, categorical = split_matrices(project)
    risk_params = train.lightgbm_params(settings, columns, categorical, len(frames["train"]))
    params = causes.cause_params(risk_params)
    missed = codes["test"] >= 0
    truth_codes = codes["test"][missed]

    def accuracy(share: np.ndarray) -> float:
        return float((share[missed].argmax(axis=1) == truth_codes).mean())

    def fit(train_codes: np.ndarray, valid_codes: np.ndarray):
        return causes.fit_cause_model(x["train"], train_codes, x["valid"], valid_codes, params, columns,
                                      categorical, settings.num_boost_round,
                                      settings.early_stopping_rounds, settings.cause_leaf_sizes,
                                      settings.cause_num_leaves)

    booster, calibration = fit(codes["train"], codes["valid"])
    reference = causes.shares(booster, calibration, x["test"])
    out = {"borrowers": params_file.simulate.n_borrowers, "misses": int(missed.sum()), "goal": GOAL,
           "reference": accuracy(reference), "curve": {}}
    print(f"reference (every miss)   : {out['reference']:.3f}", flush=True)

    rng = np.random.default_rng(20261204)
    for share in SHARES:
        runs = []
        for _ in range(DRAWS):
            kept = {n: np.where(rng.random(codes[n].size) < share, codes[n], -1) for n in ("train", "valid")}
            runs.append(accuracy(causes.shares(*fit(kept["train"], kept["valid"]), x["test"])))
        out["curve"][str(share)] = runs
        print(f"{share:.0%} of the misses       : {', '.join(f'{a:.3f}' for a in runs)}", flush=True)
    shares = [s for s in SHARES for _ in range(DRAWS)] + [1.0]
    points = [a for s in SHARES for a in out["curve"][str(s)]] + [out["reference"]]
    # the curve may flatten: the last doubling (half to all) beside the average one
    out["gain_per_doubling"] = doubling_gain(shares, points)
    out["last_doubling_gain"] = out["reference"] - float(np.mean(out["curve"][str(SHARES[-1])]))
    out["doublings_to_goal"] = {name: to_goal(out["reference"], out[name])
                                for name in ("gain_per_doubling", "last_doubling_gain")}

    out["per_cause_binary"] = accuracy(_per_cause(x, codes, risk_params, columns, categorical, settings))
    out["four_class"] = accuracy(_four_class(x, codes, params, columns, categorical, settings))
    fitted = np.concatenate([codes["train"], codes["valid"]])
    fitted_mix = np.bincount(fitted[fitted >= 0], minlength=len(CAUSES)) / (fitted >= 0).sum()
    true_mix = np.bincount(truth_codes, minlength=len(CAUSES)) / truth_codes.size
    out["true_mix"] = accuracy(reweighted(reference, fitted_mix, true_mix))
    out["mix"] = {"fitted": fitted_mix.tolist(), "test": true_mix.tolist()}
    truth = pd.read_parquet(project / "data" / "truth").set_index("borrower_id")
    p_true = truth.loc[frames["test"]["borrower_id"], [f"p_true_{c}" for c in CAUSES]].to_numpy()
    out["truth"] = accuracy(p_true)
    for name in ("per_cause_binary", "four_class", "true_mix", "truth"):
        print(f"{name:<25}: {out[name]:.3f} ({out[name] - out['reference']:+.3f})")
    for name, doublings in out["doublings_to_goal"].items():
        print(f"{name.replace('_', ' ')}: {out[name]:+.4f}; the goal {GOAL} would take "
              f"{doublings or float('nan'):.1f} doublings of the misses at that rate")
    return out


def _per_cause(x, codes, risk_params, columns, categorical, settings) -> np.ndarray:
    """P(missed by c) from one binary model per cause, stopped on validation, columns in CAUSES order."""
    binary = {k: v for k, v in risk_params.items() if not k.startswith("monotone")}
    scores = []
    for i in range(len(CAUSES)):
        dtrain = lgb.Dataset(x["train"], (codes["train"] == i).astype(int), feature_name=columns,
                             categorical_feature=categorical)
        dvalid = lgb.Dataset(x["valid"], (codes["valid"] == i).astype(int), reference=dtrain)
        booster = lgb.train(binary, dtrain, settings.num_boost_round, valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)])
        scores.append(booster.predict(x["test"]))
    return np.column_stack(scores)


def _four_class(x, codes, params, columns, categorical, settings) -> np.ndarray:
    """The three cause columns of a none / credit / liquidity / technical model over every row."""
    four = {**params, "num_class": len(CAUSES) + 1}  # the risk model's leaf size: every row
    dtrain = lgb.Dataset(x["train"], codes["train"] + 1, feature_name=columns,
                         categorical_feature=categorical)
    dvalid = lgb.Dataset(x["valid"], codes["valid"] + 1, reference=dtrain)
    booster = lgb.train(four, dtrain, settings.num_boost_round, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)])
    return booster.predict(x["test"]).reshape(len(x["test"]), -1)[:, 1:]


def main() -> None:
    on_built_project(__doc__, measure, ("data/split",))


if __name__ == "__main__":
    main()
