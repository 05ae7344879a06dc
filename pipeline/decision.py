"""How much to raise: the limit-increase decision, as pure functions.

The lender decides at the jump date, before anything after it is known. The decision features are
the feature catalogue's computed at the jump (``build_features`` with no observation window)
less those about the jump itself and the weeks after it, plus the candidate ``amount``. Two
LightGBM models learn, as functions of the amount (monotone non-decreasing in it): the
probability of a miss (the pipeline's label) and the balance summed over the cycles from the jump
to the last label due date (CNY x months, read from the statements). Expected profit at an amount
is the margin on that balance minus the loss on a miss:

    profit = (yield - funding) / 12 x balance_months - loss_given_miss x P(miss) x exposure

with the exposure at a miss taken as the average balance over the same cycles. The policy takes,
per borrower, the candidate with the highest expected profit whose miss probability is within the
risk appetite, or no increase.

The experimental model learns only from randomised line tests, whose amounts are independent of
the borrower; the naive one from every increase, whose amounts the platform sized on the
borrower's score, income and trigger, so that amount and risk are confounded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.catalog import FEATURES
from pipeline.config import DecisionSettings
from pipeline.lgbm import lgb

AMOUNT = "amount"
# features about the increase that was granted and the weeks after it: unknown at the decision
NOT_AT_DECISION = ("increase_amount", "new_over_old_limit")
DECISION_FEATURES = tuple(f.name for f in FEATURES
                          if not f.window.startswith("jump to") and f.name not in NOT_AT_DECISION)
REASONS = ("appetite", "profit", "limit cap", "no profit")


def realised_balance_months(statements: pd.DataFrame, jump: pd.Series, end: pd.Series) -> pd.Series:
    """Per borrower (the index of ``jump`` and ``end``), the statement balances summed over the
    statements dated from the jump to ``end``: the observed counterpart of the counterfactual's
    ``balance_months``."""
    rows = statements[["borrower_id", "statement_date", "balance"]]
    rows = rows[rows["borrower_id"].isin(jump.index)]
    in_window = ((rows["statement_date"] >= rows["borrower_id"].map(jump))
                 & (rows["statement_date"] <= rows["borrower_id"].map(end)))
    summed = rows[in_window].groupby("borrower_id")["balance"].sum()
    return summed.reindex(jump.index, fill_value=0.0)


def with_amounts(features: pd.DataFrame, amounts: np.ndarray) -> pd.DataFrame:
    """Every borrower once per candidate amount: rows ordered borrower-major, then by amount."""
    frame = features.loc[features.index.repeat(len(amounts)), list(DECISION_FEATURES)]
    frame[AMOUNT] = np.tile(np.asarray(amounts, dtype=float), len(features))
    return frame.reset_index(drop=True)


def fit(frame: pd.DataFrame, miss: np.ndarray, balance_months: np.ndarray,
        s: DecisionSettings) -> dict[str, lgb.Booster]:
    """The miss and balance models on decision features with the granted ``amount`` column."""
    columns = [*DECISION_FEATURES, AMOUNT]
    common = dict(learning_rate=s.learning_rate, num_leaves=s.num_leaves,
                  min_data_in_leaf=s.min_data_in_leaf, lambda_l2=s.lambda_l2, seed=s.seed,
                  deterministic=True, num_threads=s.num_threads, verbose=-1,
                  monotone_constraints=[int(c == AMOUNT) for c in columns],
                  monotone_constraints_method="intermediate")
    data = frame[columns].to_numpy(dtype=float)
    trigger = [columns.index("trigger")]
    return {
        "miss": lgb.train({**common, "objective": "binary"},
                          lgb.Dataset(data, miss, feature_name=columns, categorical_feature=trigger),
                          num_boost_round=s.num_boost_round),
        "balance": lgb.train({**common, "objective": "regression"},
                             lgb.Dataset(data, balance_months, feature_name=columns,
                                         categorical_feature=trigger),
                             num_boost_round=s.num_boost_round),
    }


def predict_curves(models: dict[str, lgb.Booster], features: pd.DataFrame,
                   amounts: np.ndarray) -> dict[str, np.ndarray]:
    """P(miss) and balance-months at every amount: arrays of shape (borrowers, amounts)."""
    frame = with_amounts(features, amounts)
    data = frame[[*DECISION_FEATURES, AMOUNT]].to_numpy(dtype=float)
    shape = (len(features), len(amounts))
    return {"p_miss": models["miss"].predict(data).reshape(shape),
            "balance_months": np.maximum(models["balance"].predict(data), 0.0).reshape(shape)}


def expected_profit(p_miss: np.ndarray, balance_months: np.ndarray, exposure_at_miss: np.ndarray,
                    s: DecisionSettings) -> np.ndarray:
    """CNY over the window: margin on the balance minus the expected loss on a miss.
    ``exposure_at_miss`` is E[balance at the miss x 1(miss)], CNY."""
    margin = (s.yield_per_year - s.funding_cost_per_year) / 12.0
    return margin * balance_months - s.loss_given_miss * exposure_at_miss


def modelled_profit(curves: dict[str, np.ndarray], cycles: int, s: DecisionSettings) -> np.ndarray:
    """Expected profit from a model's curves: the exposure at a miss is the average balance."""
    exposure = curves["p_miss"] * curves["balance_months"] / cycles
    return expected_profit(curves["p_miss"], curves["balance_months"], exposure, s)


def choose(amounts: np.ndarray, p_miss: np.ndarray, profit: np.ndarray,
           appetite: float) -> tuple[np.ndarray, np.ndarray]:
    """Per borrower the column of the chosen amount and why (``REASONS``). An amount is allowed
    when its miss probability is within the appetite; no increase (amount 0) is always allowed.
    Among allowed amounts the most profitable wins. Why: "appetite" when a more profitable
    amount is not allowed, "no profit" when no increase beats none, "limit cap" when the largest
    amount wins, else "profit" (the best amount lies inside the grid)."""
    zero = np.asarray(amounts) == 0
    allowed = (p_miss <= appetite) | zero[None, :]
    best_allowed = np.argmax(np.where(allowed, profit, -np.inf), axis=1)
    best_any = np.argmax(profit, axis=1)
    reason = np.select(
        [best_allowed != best_any, zero[best_allowed], best_allowed == len(amounts) - 1],
        ["appetite", "no profit", "limit cap"], "profit")
    return best_allowed, reason


def policy_outcome(chosen: np.ndarray, true_p: np.ndarray, true_profit: np.ndarray) -> dict[str, float]:
    """True expected profit per borrower (CNY) and miss rate of a policy's chosen columns."""
    rows = np.arange(len(chosen))
    return {"profit_per_borrower": float(true_profit[rows, chosen].mean()),
            "miss_rate": float(true_p[rows, chosen].mean())}


def run(frame: pd.DataFrame, what_if: pd.DataFrame, s: DecisionSettings, grid: np.ndarray,
        cycles: int) -> tuple[dict, dict[str, lgb.Booster], dict]:
    """Fit the experimental (line tests) and naive (every increase) models on the train and
    valid splits; on the test split's borrowers with a counterfactual, compare the policies.

    ``frame``: one row per borrower with the decision features, ``granted``, ``line_test``,
    ``label``, ``balance_months`` and ``split``; ``what_if``: the counterfactual table;
    ``cycles``: the cycles ``balance_months`` sums over. Returns the report, the experimental
    models (the ones the policy uses) and the figures.
    """
    learn = frame[frame["split"].isin(["train", "valid"])]
    tested = learn[learn["line_test"]]
    fitted = {name: fit(rows.assign(**{AMOUNT: rows["granted"]}), rows["label"].to_numpy(),
                        rows["balance_months"].to_numpy(), s)
              for name, rows in (("experimental", tested), ("naive", learn))}
    in_test = frame.loc[frame["split"] == "test", "borrower_id"]
    truth = true_curves(what_if[what_if["borrower_id"].isin(in_test)], grid, s)
    test = frame.set_index("borrower_id").loc[truth["borrower_id"]]
    curves = {name: predict_curves(models, test, grid) for name, models in fitted.items()}
    report = {
        "borrowers": {"line_tests_learnt_from": len(tested), "increases_learnt_from": len(learn),
                      "evaluated": len(test), "misses_in_line_tests": int(tested["label"].sum())},
        "amounts": grid.tolist(),
        "policies": compare_policies(grid, truth, curves, cycles, s),
        "dose_response": dose_response(grid, truth["p_miss"], curves),
    }
    return report, fitted["experimental"], {"dose_response": dose_response_figure(grid, truth, curves)}


def true_curves(what_if: pd.DataFrame, grid: np.ndarray, s: DecisionSettings) -> dict:
    """The counterfactual truth as (borrowers, amounts) arrays, and the granted amount's row."""
    on_grid = what_if[what_if["granted"] == 0].sort_values(["borrower_id", "amount"])
    ids = on_grid["borrower_id"].unique()
    shape = (ids.size, grid.size)
    arrays = {c: on_grid[c].to_numpy().reshape(shape) for c in ("p_miss", "balance_months",
                                                               "exposure_at_miss")}
    granted = what_if[what_if["granted"] == 1].set_index("borrower_id").loc[ids]
    return {"borrower_id": ids, **arrays,
            "profit": expected_profit(arrays["p_miss"], arrays["balance_months"],
                                      arrays["exposure_at_miss"], s),
            "granted_p_miss": granted["p_miss"].to_numpy(),
            "granted_profit": expected_profit(granted["p_miss"].to_numpy(),
                                              granted["balance_months"].to_numpy(),
                                              granted["exposure_at_miss"].to_numpy(), s)}


def compare_policies(grid: np.ndarray, truth: dict, curves: dict, cycles: int,
                     s: DecisionSettings) -> dict[str, dict]:
    """True profit per borrower and miss rate of: the oracle (the rule on the true curves), ours
    (the rule on the experimental model), the naive model's, the platform's (what it granted),
    no increases, and the largest amount for everyone."""
    n = len(truth["borrower_id"])
    oracle, _ = choose(grid, truth["p_miss"], truth["profit"], s.appetite)
    out = {"oracle": policy_outcome(oracle, truth["p_miss"], truth["profit"])}
    for name, label in (("experimental", "ours"), ("naive", "naive")):
        chosen, reason = choose(grid, curves[name]["p_miss"],
                                modelled_profit(curves[name], cycles, s), s.appetite)
        out[label] = {**policy_outcome(chosen, truth["p_miss"], truth["profit"]),
                      "same_amount_as_oracle": float((chosen == oracle).mean()),
                      "binding_reason": {r: float((reason == r).mean()) for r in REASONS},
                      "amount_shares": _shares(chosen, grid)}
    out["oracle"]["amount_shares"] = _shares(oracle, grid)
    out["platform"] = {"profit_per_borrower": float(truth["granted_profit"].mean()),
                       "miss_rate": float(truth["granted_p_miss"].mean())}
    for label, column in (("no_increase", int(np.argmin(grid))), ("largest_for_all", grid.size - 1)):
        out[label] = policy_outcome(np.full(n, column), truth["p_miss"], truth["profit"])
    # what each policy gains over no increases, as a share of the oracle's gain
    base = out["no_increase"]["profit_per_borrower"]
    best = out["oracle"]["profit_per_borrower"] - base
    for result in out.values():
        gain = result["profit_per_borrower"] - base
        result["share_of_oracle_gain"] = gain / best if best > 0 else float("nan")
    return out


def _shares(chosen: np.ndarray, grid: np.ndarray) -> dict[str, float]:
    return {f"{a:.0f}": float((chosen == i).mean()) for i, a in enumerate(grid)}


def dose_response(grid: np.ndarray, true_p: np.ndarray, curves: dict) -> dict:
    """Mean absolute error between predicted and true miss probability over borrowers and
    amounts, per model, and the mean curves by amount."""
    return {
        "mae": float(np.abs(curves["experimental"]["p_miss"] - true_p).mean()),
        "mae_naive": float(np.abs(curves["naive"]["p_miss"] - true_p).mean()),
        # the mean curves' distance: how well the models get the effect of the amount on average
        "mean_curve_mae": float(np.abs(curves["experimental"]["p_miss"].mean(axis=0)
                                       - true_p.mean(axis=0)).mean()),
        "mean_curve_mae_naive": float(np.abs(curves["naive"]["p_miss"].mean(axis=0)
                                             - true_p.mean(axis=0)).mean()),
        "by_amount": {f"{a:.0f}": {"true": float(true_p[:, i].mean()),
                                   **{name: float(c["p_miss"][:, i].mean()) for name, c in curves.items()}}
                      for i, a in enumerate(grid)},
    }


def dose_response_figure(grid: np.ndarray, truth: dict, curves: dict):
    """Mean miss probability by amount: the truth, the experimental and the naive model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(grid, truth["p_miss"].mean(axis=0), "k-o", label="counterfactual truth")
    for name, style in (("experimental", "C0-s"), ("naive", "C3--^")):
        ax.plot(grid, curves[name]["p_miss"].mean(axis=0), style, label=f"{name} model")
    ax.set_xlabel("limit increase (CNY)")
    ax.set_ylabel("mean probability of a miss")
    ax.set_title("Dose-response on the out-of-time cohort")
    ax.legend()
    figure.tight_layout()
    return figure
