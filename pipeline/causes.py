"""The cause of a miss: credit deterioration, liquidity or a technical fault, which need three
different actions (stop increases and contact early; a repayment plan; remind and repair).

Competing risks as a decomposition of the total. The main calibrated model gives P(miss); a
three-class LightGBM gives P(cause | miss): its rounds and temperature are chosen on the
validation split's misses, then it is boosted on the training and validation misses together;
P(miss by cause c) = P(miss) x P(c | miss). So the three add up to the total by construction,
the total stays the one number that is gated, monitored and banded, and the cause model only has
to rank causes among misses, where it has clean labels (the cause of the first miss in the
performance window: a lender reads it from debit-failure codes and collection notes).

The cause model names the leading cause; the reasons are the risk model's TreeSHAP contributions
(``pipeline.score``), one per reason group (``pipeline.catalog.REASON_GROUPS``), the leading
cause's first: a feature can raise a cause's share while lowering the risk, and the catalogue's
words ("credit score is low") hold only in the risk model's direction (docs/causes.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import pandas as pd
from scipy.special import log_softmax, softmax

from pipeline import metrics
from pipeline.config import CAUSES
from pipeline.lgbm import lgb

MISS_CAUSE = "miss_cause"  # the labels' column: the cause of the first miss, empty without one
NO_CAUSE = "none"


def cause_codes(cause: pd.Series) -> np.ndarray:
    """0, 1, 2 for CAUSES in order; -1 for no miss (missing or unknown)."""
    return cause.map({c: i for i, c in enumerate(CAUSES)}).fillna(-1).to_numpy(dtype=np.int64)


def cause_params(base: dict) -> dict:
    """The main model's LightGBM parameters for three classes. Monotone constraints are dropped:
    they state how a feature moves the total risk, not how it shares the risk between causes."""
    params = {k: v for k, v in base.items() if not k.startswith("monotone")}
    return {**params, "objective": "multiclass", "num_class": len(CAUSES), "metric": "multi_logloss"}


def fit_cause_model(x_train: np.ndarray, cause_train: np.ndarray, x_valid: np.ndarray,
                    cause_valid: np.ndarray, params: dict, columns: list[str], categorical: list[str],
                    num_boost_round: int, early_stopping_rounds: int,
                    leaf_sizes: Sequence[int] = (), num_leaves: Sequence[int] = (),
                    smooth_per_leaf_row: float | None = None) -> tuple[lgb.Booster, dict]:
    """Boost on the training misses (rows with a cause code >= 0) with every pair of
    ``num_leaves`` and ``leaf_sizes`` (as min_data_in_leaf; ``params``' own where none are
    given), stopping early on the validation misses; keep the pair and rounds of the lowest
    validation log loss, and fit the temperature there. Then boost as many rounds on the training
    and validation misses together, with that temperature. With ``smooth_per_leaf_row`` (``cat_smooth``
    auto) a category is smoothed by that share of the leaf size tried, as the risk model's is. Returns
    the booster and
    {"temperature": T, "classes": CAUSES, "num_leaves": chosen, "min_data_in_leaf": chosen,
    "validation_log_loss": {num_leaves: {leaf size: loss}}}.

    The refit is worth it because the misses are few (a tenth of the rows) and the validation
    cohorts are the latest whose labels have matured: on the defaults it raised the out-of-time
    leading-cause accuracy from 0.744 to 0.760. Few misses are also why the main model's tree
    size (31 leaves of at least 200 rows on the defaults) need not suit the cause model: with 31
    leaves validation chose 50 rows and the accuracy rose to 0.769; offered 15 leaves too, it
    chose 15 of at least 100 rows, and the accuracy rose to 0.776 (2026-12-04)."""
    train, valid = cause_train >= 0, cause_valid >= 0
    # binned once for every tree size: without the pre-filter, which drops features by the first
    # leaf size a Dataset was used with
    dtrain = lgb.Dataset(x_train[train], cause_train[train], feature_name=columns,
                         categorical_feature=categorical, free_raw_data=False,
                         params={"feature_pre_filter": False})
    dvalid = lgb.Dataset(x_valid[valid], cause_valid[valid], reference=dtrain, feature_name=columns,
                         categorical_feature=categorical, params={"feature_pre_filter": False})
    fits = {}
    for size in product(num_leaves or [params["num_leaves"]], leaf_sizes or [params["min_data_in_leaf"]]):
        booster = lgb.train({**params, **_tree_size(size, smooth_per_leaf_row)}, dtrain,
                            num_boost_round=num_boost_round,
                            valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)])
        fits[size] = (booster.best_score["valid_0"]["multi_logloss"], booster)
    chosen = min(fits, key=lambda size: fits[size][0])  # the first of equal losses: the order given
    booster = fits[chosen][1]
    rounds = booster.best_iteration or booster.current_iteration()
    raw = booster.predict(x_valid[valid], raw_score=True, num_iteration=rounds)
    losses: dict[str, dict[str, float]] = {}
    for (leaves, leaf), (loss, _) in fits.items():
        losses.setdefault(str(leaves), {})[str(leaf)] = loss
    calibration = {"temperature": fit_temperature(raw, cause_valid[valid]), "classes": list(CAUSES),
                   **{k: int(v) for k, v in _tree_size(chosen).items()}, "validation_log_loss": losses}
    both = lgb.Dataset(np.vstack([x_train[train], x_valid[valid]]),
                       np.concatenate([cause_train[train], cause_valid[valid]]), feature_name=columns,
                       categorical_feature=categorical)
    booster = lgb.train({**params, **_tree_size(chosen, smooth_per_leaf_row)}, both, num_boost_round=rounds)
    return booster, calibration


def _tree_size(size: tuple[int, int], smooth_per_leaf_row: float | None = None) -> dict[str, float]:
    tree = {"num_leaves": size[0], "min_data_in_leaf": size[1]}
    return tree if smooth_per_leaf_row is None else {**tree, "cat_smooth": smooth_per_leaf_row * size[1]}


def fit_temperature(raw: np.ndarray, codes: np.ndarray) -> float:
    """The T minimising the log loss of softmax(raw / T): one number that fixes over- or
    under-confidence without changing the order of the classes (Guo et al. 2017)."""
    # imported here: scoring imports this module, and SciPy's optimisers cost its start-up
    from scipy.optimize import minimize_scalar

    def loss(t: float) -> float:
        return -float(log_softmax(raw / t, axis=1)[np.arange(len(codes)), codes].mean())
    return float(minimize_scalar(loss, bounds=(0.2, 5.0), method="bounded").x)


def shares(booster: lgb.Booster, calibration: dict, matrix: np.ndarray, threads: int = 0) -> np.ndarray:
    """P(cause | miss), shape (n, 3), rows summing to 1; ``threads`` as LightGBM's num_threads."""
    raw = booster.predict(matrix, raw_score=True, num_threads=threads).reshape(len(matrix), len(CAUSES))
    return softmax(raw / calibration["temperature"], axis=1)


# ---- evaluation against the simulator's cause ----------------------------------------------

def cause_report(y: np.ndarray, true_cause: pd.Series, p_total: np.ndarray, share: np.ndarray,
                 p_true_by_cause: pd.DataFrame | None, baselines: dict[str, np.ndarray],
                 technical_kind: pd.Series | None = None, explained: np.ndarray | None = None) -> dict:
    """Leading cause against the realised cause of each miss: the 3x3 confusion matrix (rows
    true, columns predicted), accuracy, recall and precision per cause, each cause's AUC over all
    rows (P(miss by c) against "missed, by c") beside the truth's, and the accuracy of each
    baseline (an array of predicted cause codes on the same rows) measured in the same run.
    With the truth, its own split's confusion matrix on the same misses and each cause's recall
    under it (``recall_truth``): which true cause the model's extra errors are of.
    With the truth and ``technical_kind`` (what broke, for a technical first miss), the technical
    AUCs are also given per kind (``technical_by_kind``). With ``explained`` (the rows scoring
    explains: outside the quiet bands), ``as_scored``: the share of the misses whose scored
    output names their true cause, where a miss in a quiet band names none."""
    missed = (y == 1) & (cause_codes(true_cause) >= 0)
    truth = cause_codes(true_cause)[missed]
    leading = share[missed].argmax(axis=1)
    confusion = _confusion(truth, leading)
    accuracy = float((leading == truth).mean()) if missed.any() else None
    out = {"misses": int(missed.sum()), "accuracy": accuracy,
           "confusion": {"rows_true_columns_predicted": list(CAUSES), "counts": confusion.tolist()},
           "by_cause": {}, "baselines": {}}
    if explained is not None:
        named = explained[missed]
        out["as_scored"] = {"misses_explained": int(named.sum()),
                            "accuracy": float((named & (leading == truth)).mean()) if missed.any() else None}
    if p_true_by_cause is not None:
        # where the model loses to the truth, by true cause: the truth's own split, same misses
        truth_confusion = _confusion(truth, p_true_by_cause.to_numpy()[missed].argmax(axis=1))
        out["truth_confusion"] = {"rows_true_columns_predicted": list(CAUSES),
                                  "counts": truth_confusion.tolist()}
    for i, c in enumerate(CAUSES):
        of_c = (y == 1) & (cause_codes(true_cause) == i)
        entry = {"misses": int(of_c.sum()), "recall": _share(confusion[i, i], confusion[i].sum()),
                 "precision": _share(confusion[i, i], confusion[:, i].sum()),
                 "auc": _auc(of_c, p_total * share[:, i])}
        if p_true_by_cause is not None:
            entry["recall_truth"] = _share(truth_confusion[i, i], truth_confusion[i].sum())
            entry["auc_truth"] = _auc(of_c, p_true_by_cause[f"p_true_{c}"].to_numpy())
            entry["auc_gap"] = (entry["auc_truth"] - entry["auc"]
                                if None not in (entry["auc"], entry["auc_truth"]) else None)
        out["by_cause"][c] = entry
    if p_true_by_cause is not None:  # the best any model could do: the truth's own split
        baselines = {**baselines, "truth_argmax": p_true_by_cause.to_numpy().argmax(axis=1)}
    for name, predicted in baselines.items():
        out["baselines"][name] = float((predicted[missed] == truth).mean()) if missed.any() else None
    if p_true_by_cause is not None and technical_kind is not None:
        out["technical_by_kind"] = technical_by_kind(
            (y == 1) & (cause_codes(true_cause) == CAUSES.index("technical")), technical_kind,
            p_total * share[:, CAUSES.index("technical")], p_true_by_cause["p_true_technical"].to_numpy())
    return out


def _confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts of (true cause, predicted cause) codes, shape (3, 3), rows true."""
    confusion = np.zeros((len(CAUSES), len(CAUSES)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    return confusion


def _share(part: int, whole: int) -> float | None:
    return float(part / whole) if whole else None


def technical_by_kind(technical: np.ndarray, kind: pd.Series, p_model: np.ndarray,
                      p_true: np.ndarray) -> dict[str, dict]:
    """The technical AUC of the model and of the truth per kind of technical miss: the misses of
    one kind against every row without a technical miss (the other kinds' misses left out).
    Where the truth's lead is one kind's, it comes from what the truth knows of that kind and the
    features cannot see (a manual payer's own chance to forget, a silent card failure). A
    technical miss without a kind counts as "unknown"."""
    kinds = kind.astype("str").fillna("unknown").to_numpy()
    out = {}
    for k in sorted(set(kinds[technical])):
        rows = ~technical | (kinds == k)
        outcome = technical[rows]
        auc, auc_truth = _auc(outcome, p_model[rows]), _auc(outcome, p_true[rows])
        out[k] = {"misses": int(outcome.sum()), "auc": auc, "auc_truth": auc_truth,
                  "auc_gap": auc_truth - auc if None not in (auc, auc_truth) else None}
    return out


# the actions (keys of score.ACTIONS) that answer each kind of technical miss: a check of the
# agreement answers its failure as a repair does, since one that fails later (silently, or at a
# campaign's deadline after the scoring date) shows no fault when the borrower is scored
ANSWERS = {"forgotten": ("manual",), "mandate_known": ("check", "technical"),
           "mandate_silent": ("check", "technical"), "outage": ("maintenance",)}


def technical_actions(true_cause: pd.Series, kind: pd.Series, leading: np.ndarray,
                      action: np.ndarray, explained: np.ndarray | None = None) -> dict:
    """Of the misses whose true cause is technical and whose leading cause is too, the share whose
    action (``action``: keys of score.ACTIONS, one per row, every row explained) answers what
    broke (``ANSWERS``): a reminder and an agreement for a forgotten due date, repair for a broken
    agreement, paying ahead for maintenance. Beside it, on the same rows, one technical action for
    every channel (repair, or pay ahead of announced maintenance), as scoring gave before it read
    the payment channel; with ``explained`` (the rows outside the quiet bands), the share answered
    as scored, where a quiet band gets no action (an outside check found 6 of 25 such misses
    counted answered that the scored output had left without one); and each per kind."""
    rows = (true_cause.to_numpy(dtype=object) == "technical") & (leading == "technical")
    kinds = kind.astype("str").fillna("unknown").to_numpy(dtype=object)[rows]
    got = action[rows]
    one_action = np.where(np.isin(got, ("manual", "check")), "technical", got)
    pairs = [(kind, key) for kind, keys in ANSWERS.items() for key in keys]
    answered = pd.MultiIndex.from_arrays([kinds, got]).isin(pairs)
    by_one = pd.MultiIndex.from_arrays([kinds, one_action]).isin(pairs)
    as_scored = None if explained is None else answered & explained[rows]

    def shares(where: np.ndarray) -> dict:
        n = int(where.sum())
        out = {"misses": n, "answered": float(answered[where].mean()) if n else None,
               "answered_by_one_action": float(by_one[where].mean()) if n else None}
        if as_scored is not None:
            out["answered_as_scored"] = float(as_scored[where].mean()) if n else None
        return out
    return {**shares(np.ones(len(kinds), dtype=bool)),
            "by_kind": {k: shares(kinds == k) for k in sorted(set(kinds))}}


def _auc(outcome: np.ndarray, score: np.ndarray) -> float | None:
    if outcome.all() or not outcome.any():
        return None
    return metrics.ranking(outcome.astype(int), score)["auc"]
