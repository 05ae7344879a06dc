"""Training: a calibrated monotone LightGBM and a WoE logistic scorecard, as pure functions.

Both accept any features frame: an id, a 0/1 label and numeric or categorical columns. Columns
the feature catalogue knows get its monotone direction; others (a team's own) get none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import ValidationError

from pipeline import metrics
from pipeline.catalog import BY_NAME, monotone_constraints
from pipeline.causes import MISS_CAUSE, cause_codes, cause_params, fit_cause_model
from pipeline.cells import code_keys
from pipeline.config import FeatureSettings, LabelSettings, LightGBMSettings, ScorecardSettings
from pipeline.errors import InputError, UsageError
from pipeline.lgbm import lgb
from pipeline.model import (
    AUTODEBIT_LAPSED,
    FORGOTTEN_DUE_DATES,
    MANUAL_DUE_DATES,
    CalibratedLightGBM,
    calibrate,
    encode,
    never_missing,
)

if TYPE_CHECKING:
    from optbinning import BinningProcess
    from sklearn.linear_model import LogisticRegression

LABEL = "label"
# training rows the drift reference is measured on, evenly spread: sampling it adds about
# (bins - 1) / rows to a PSI, 0.0002 here against a watch level of 0.10
REFERENCE_ROWS = 50_000


def feature_columns(frame: pd.DataFrame, id_columns: tuple[str, ...] = ("borrower_id",)) -> list[str]:
    """Every column that is not an id, a label (the miss and its cause) or a date."""
    return [c for c in frame.columns if c not in id_columns and c not in (LABEL, MISS_CAUSE)
            and not pd.api.types.is_datetime64_any_dtype(frame[c])]


def constant_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """The ``columns`` that hold one value (or none) on every row of ``frame``: no model can learn
    from them, and a setting may have emptied them (a bureau lag of 30 days leaves no inquiry in
    a one-month window: three features were zeros for every borrower, unsaid)."""
    return [c for c in columns if frame[c].nunique(dropna=False) <= 1]


def categorical_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Catalogue categoricals, and any column that is not numeric."""
    return [c for c in columns if (c in BY_NAME and BY_NAME[c].categorical)
            or not pd.api.types.is_numeric_dtype(frame[c])]


def learn_categories(frame: pd.DataFrame, columns: list[str]) -> dict[str, list]:
    """The text categories of each text column, one per way of writing it: spellings that differ
    only in capitals, spaces, hyphens or underscores (``cells.code_keys``, the rule a scorer reads
    them by) are one category, written as its commonest spelling (the first in order of a tie).
    An outside check trained 'university' and 'UNIVERSITY' as two, and a scorer then matched
    'University' to neither and scored all 500 rows of a file as missing that column."""
    out = {}
    for c in columns:
        if pd.api.types.is_numeric_dtype(frame[c]):
            continue
        counts = frame[c].dropna().astype(str).value_counts()
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        commonest = counts.groupby(code_keys(counts.index.to_series()).to_numpy(), sort=False).head(1)
        out[c] = sorted(commonest.index.tolist())
    return out


# min_data_in_leaf "auto": one training row in LEAF_ROWS_PER_ROW, within [MIN_LEAF, MAX_LEAF].
# MAX_LEAF is what the simulated defaults were tuned with (66,447 training rows, capped at 200);
# a leaf is at most a twentieth of the rows, so a tree can still split the data about twenty
# ways: with 600 training rows a 200-row leaf allows only stumps, and a real 1,000-row portfolio
# then lags a logistic regression by 0.06 AUC (issue 15). MIN_LEAF is LightGBM's own default.
LEAF_ROWS_PER_ROW = 20
MIN_LEAF, MAX_LEAF = 20, 200
# lambda_l2 "auto": L2_PER_LEAF_ROW x the leaf size. A leaf's value is -G / (H + lambda_l2) and H
# grows with the rows in the leaf, so this keeps the shrinkage of the smallest leaf the same at
# every size (5.0 at 200 rows, the defaults' value).
L2_PER_LEAF_ROW = 5.0 / 200
# cat_smooth "auto": CAT_SMOOTH_PER_LEAF_ROW x the leaf size. A text category of more than four
# values is pulled towards the mean by that many rows, and one with fewer in a node is not split
# on there. LightGBM's 10 let 150 noise cities of a dozen training rows each lead a team's model
# (out-of-time AUC 0.604; 0.663 with a quarter of its leaf of 89); the whole leaf did as well
# there, but on the UCI benchmark it left calibration no Brier gain (0.168219 against 0.1682187)
# where a quarter keeps one (0.168223 against 0.168226) at the best AUC of the three (0.6223)
CAT_SMOOTH_PER_LEAF_ROW = 0.25


def leaf_size(s: LightGBMSettings, train_rows: int) -> int:
    if s.min_data_in_leaf != "auto":
        return s.min_data_in_leaf
    return int(np.clip(train_rows // LEAF_ROWS_PER_ROW, MIN_LEAF, MAX_LEAF))


def leaf_l2(s: LightGBMSettings, train_rows: int) -> float:
    if s.lambda_l2 != "auto":
        return float(s.lambda_l2)
    return L2_PER_LEAF_ROW * leaf_size(s, train_rows)


def leaf_cat_smooth(s: LightGBMSettings, train_rows: int) -> float:
    if s.cat_smooth != "auto":
        return float(s.cat_smooth)
    return CAT_SMOOTH_PER_LEAF_ROW * leaf_size(s, train_rows)


def lightgbm_params(s: LightGBMSettings, columns: list[str], categorical: list[str],
                    train_rows: int) -> dict:
    """LightGBM parameters: deterministic, no class reweighting (it spoils probabilities); leaf
    size, L2 and categories' smoothing resolved for ``train_rows`` when they are "auto"."""
    params = {
        "objective": "binary", "metric": "binary_logloss", "verbosity": -1,
        "learning_rate": s.learning_rate, "num_leaves": s.num_leaves,
        "min_data_in_leaf": leaf_size(s, train_rows), "lambda_l2": leaf_l2(s, train_rows),
        "cat_smooth": leaf_cat_smooth(s, train_rows),
        "feature_fraction": s.feature_fraction, "bagging_fraction": s.bagging_fraction,
        "bagging_freq": s.bagging_freq, "max_bin": s.max_bin, "num_threads": s.num_threads,
        "seed": s.seed, "deterministic": True, "force_col_wise": True,
    }
    if s.monotone:
        constraints = monotone_constraints(columns)
        constraints = [0 if c in categorical else d for c, d in zip(columns, constraints, strict=True)]
        params.update(monotone_constraints=constraints,
                      monotone_constraints_method=s.monotone_constraints_method)
    return params


def with_params(settings: LightGBMSettings, values: dict) -> LightGBMSettings:
    """``settings`` with some values replaced (tuning's), checked as params.yaml's are."""
    return LightGBMSettings.model_validate({**settings.model_dump(), **values})


def tuned_settings(settings: LightGBMSettings, tuning: bool,
                   best: Path) -> tuple[LightGBMSettings, list[str]]:
    """``settings`` (train.lightgbm), with the tune stage's best values (its file ``best``) over
    them when ``tuning`` is on, and the names of the values replaced. Off, the file is not read:
    training is as without it."""
    if not tuning:
        return settings, []
    found = json.loads(best.read_text()) if best.is_file() else {}
    if not found.get("enabled"):
        raise UsageError(f"tune.enabled is true but {best} holds no search: run limitjump tune first")
    try:
        return with_params(settings, found["params"]), sorted(found["params"])
    except ValidationError as err:
        raise InputError(f"{best}: not the tune stage's values: {err}") from err


def fit_lightgbm(train: pd.DataFrame, valid: pd.DataFrame, columns: list[str], categorical: list[str],
                 categories: dict[str, list], settings: LightGBMSettings,
                 callbacks: Sequence[Callable] = (), also_evaluate: Sequence[str] = ()) -> lgb.Booster:
    """Boost on train, stop early on validation log loss; keeps only the best iterations.

    ``callbacks`` see each iteration's validation figures: log loss and the LightGBM metrics in
    ``also_evaluate``, which do not move the stopping point (tuning's pruner reads them)."""
    params = lightgbm_params(settings, columns, categorical, len(train))
    params["metric"] = [params["metric"], *also_evaluate]
    dtrain = lgb.Dataset(encode(train, columns, categories), train[LABEL], feature_name=columns,
                         categorical_feature=categorical, free_raw_data=False)
    dvalid = lgb.Dataset(encode(valid, columns, categories), valid[LABEL], reference=dtrain,
                         feature_name=columns, categorical_feature=categorical)
    booster = lgb.train(params, dtrain, num_boost_round=settings.num_boost_round, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, first_metric_only=True,
                                                      verbose=False), *callbacks])
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def fit_calibrated_lightgbm(train: pd.DataFrame, valid: pd.DataFrame, columns: list[str],
                            categorical: list[str], categories: dict[str, list],
                            settings: LightGBMSettings) -> CalibratedLightGBM:
    """The booster (stopped on validation) and its calibration (fitted on validation)."""
    return calibrated_on_validation(train, valid, columns, categorical, categories, settings)[0]


def calibrated_on_validation(train: pd.DataFrame, valid: pd.DataFrame, columns: list[str],
                             categorical: list[str], categories: dict[str, list],
                             settings: LightGBMSettings) -> tuple[CalibratedLightGBM, np.ndarray]:
    """``fit_calibrated_lightgbm``, and its calibrated probabilities on the validation rows (the
    prediction the calibration needed, not made twice)."""
    booster = fit_lightgbm(train, valid, columns, categorical, categories, settings)
    raw = CalibratedLightGBM(booster, None, categories).raw(valid)
    calibration = fit_calibration(raw, valid[LABEL].to_numpy(), settings.calibration,
                                  settings.isotonic_min_misses)
    return CalibratedLightGBM(booster, calibration, categories), calibrate(raw, calibration)


def direction_check(frame: pd.DataFrame, columns: list[str], bins: int = 10,
                    min_z: float = 3.0) -> pd.DataFrame:
    """For every monotone-constrained column, its trend with the label in ``frame``.

    ``binned_trend``: Spearman correlation of the miss rate with the bin order, over quantile bins
    of the value (fewer when values repeat; missing values aside). ``z``: the rank correlation of
    value and label over the rows, times sqrt(rows - 1), signed so that positive agrees with the
    catalogue. A contradiction is a trend against the constraint on both counts, the rank one
    beyond ``min_z`` standard errors: chance alone does not flag a flat feature.
    """
    constraints = dict(zip(columns, monotone_constraints(columns), strict=True))
    rows = []
    for name in (c for c in columns if constraints[c] != 0 and c not in categorical_columns(frame, [c])):
        known = frame[[name, LABEL]].dropna()
        direction = constraints[name]
        binned = _binned_trend(known[name], known[LABEL], bins)
        varies = known[name].min() < known[name].max()  # a constant has no rank correlation
        rank = known[name].rank().corr(known[LABEL].astype(float)) if varies else 0.0
        z = direction * float(np.nan_to_num(rank)) * math.sqrt(max(len(known) - 1, 0))
        rows.append({"feature": name, "direction": direction, "rows": len(known),
                     "binned_trend": binned, "rank_correlation": float(np.nan_to_num(rank)), "z": z,
                     "contradicts": bool(direction * binned < 0 and z < -min_z)})
    return pd.DataFrame(rows, columns=["feature", "direction", "rows", "binned_trend",
                                       "rank_correlation", "z", "contradicts"])


def _binned_trend(values: pd.Series, label: pd.Series, bins: int) -> float:
    """Spearman correlation of the miss rate with the order of quantile bins of ``values``."""
    binned = pd.qcut(values, bins, labels=False, duplicates="drop")
    rates = label.groupby(binned).mean()
    if len(rates) < 2 or rates.nunique() < 2:
        return 0.0
    return float(pd.Series(np.arange(len(rates)), dtype=float).corr(
        pd.Series(rates.to_numpy()), method="spearman"))


def calibration_method(method: str, y: np.ndarray, isotonic_min_misses: int) -> str:
    """"auto" is isotonic from ``isotonic_min_misses`` misses, else Platt. Isotonic regression
    pools adjacent scores until the miss rate rises: with few misses the pools are wide, distinct
    scores become ties and ranking is lost (about 195 distinct probabilities merged into 20 on a
    200-row validation set, 0.009 AUC lost on average, issue 15). Platt's two parameters keep the
    order; isotonic's freedom pays only with enough misses to fill its steps (Niculescu-Mizil &
    Caruana 2005: isotonic overtakes Platt from about a thousand calibration rows)."""
    if method != "auto":
        return method
    return "isotonic" if int(np.sum(y)) >= isotonic_min_misses else "platt"


def fit_calibration(raw: np.ndarray, y: np.ndarray, method: str, isotonic_min_misses: int) -> dict:
    """Map raw probabilities to calibrated ones, fitted on held-out (validation) rows."""
    method = calibration_method(method, y, isotonic_min_misses)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression  # 1-2 s to import: only when it is used

        # bounded away from 0 and 1: a validation bin without misses must not promise certainty
        iso = IsotonicRegression(y_min=1e-4, y_max=1 - 1e-4, out_of_bounds="clip").fit(raw, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    intercept, slope = metrics.logistic_calibration(np.asarray(y, float), np.asarray(raw, float))
    if not (np.isfinite(intercept) and np.isfinite(slope)):
        # a booster that found no split (a few hundred rows) scores every row alike, and a line
        # through one point has no slope: every row gets the calibration rows' miss rate
        rate = float(np.clip(np.mean(y), 1e-4, 1 - 1e-4))
        intercept, slope = float(np.log(rate / (1 - rate))), 0.0
    return {"method": "platt", "intercept": intercept, "slope": slope}


def forgetting_prior(frame: pd.DataFrame, label: LabelSettings) -> dict | None:
    """The Beta(a, b) prior of a borrower's chance to forget a due date paid by hand, for
    ``model.forgetting_floor``: the beta-binomial's maximum likelihood over the rows of ``frame``
    with any such due date (k forgotten of n: ``forgotten_due_dates`` of ``manual_due_dates``),
    and m, the label's due dates. Returns {"a", "b", "due_dates", "rows", "forgotten",
    "chances"}, or None where the floor would not be calibrated: a label of more than 1 day past
    due (a forgotten due date is paid days later once reminded; whether it lasts the label's days
    the counts do not tell), frames without the two columns, or no forgotten due date at all
    (the likelihood then has no maximum)."""
    if label.dpd_threshold > 1 or not {FORGOTTEN_DUE_DATES, MANUAL_DUE_DATES} <= set(frame.columns):
        return None
    from scipy.optimize import minimize  # only training pays for SciPy's optimisers
    from scipy.special import betaln

    k = frame[FORGOTTEN_DUE_DATES].to_numpy(dtype=float, na_value=np.nan)
    n = frame[MANUAL_DUE_DATES].to_numpy(dtype=float, na_value=np.nan)
    seen = (n > 0) & ~np.isnan(k)
    k, n = k[seen], np.maximum(n[seen], k[seen])
    if not k.any():
        return None

    def loss(log_ab: np.ndarray) -> float:
        a, b = np.exp(log_ab)
        return -float(np.sum(betaln(a + k, b + n - k) - betaln(a, b)))
    mean = k.sum() / n.sum()  # a start with the data's own rate, as if from ten due dates
    fit = minimize(loss, np.log([10 * mean, 10 * (1 - mean)]), method="Nelder-Mead",
                   options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
    a, b = (round(float(v), 6) for v in np.exp(fit.x))  # a DVC output: stable bytes
    return {"a": a, "b": b, "due_dates": label.performance_cycles, "rows": int(seen.sum()),
            "forgotten": int(k.sum()), "chances": int(n.sum())}


MIN_FLOOR_ROWS = 20  # lapsed agreements among the training rows a lapse floor is learnt from


def lapse_history(frame: pd.DataFrame) -> dict | None:
    """How often a borrower whose auto-debit agreement had lapsed at scoring missed, among the
    rows of ``frame`` (features with the label), for ``model.lapse_floor``: {"rows", "missed",
    "rate"}, the rate with half a miss and half a payment added, or None without the feature or
    with fewer than ``MIN_FLOOR_ROWS`` such rows (a floor of 0.25 set by one row that did not
    miss had lifted seven borrowers, none of whom missed). The label's own rows say how long such
    a miss lasts: a label of many days past due counts only the lapses not mended in time."""
    if AUTODEBIT_LAPSED not in frame.columns:
        return None
    lapsed = frame[AUTODEBIT_LAPSED].to_numpy(dtype=float, na_value=np.nan) == 1.0
    if lapsed.sum() < MIN_FLOOR_ROWS:
        return None
    missed = int(frame[LABEL].to_numpy()[lapsed].sum())
    rows = int(lapsed.sum())
    return {"rows": rows, "missed": missed, "rate": metrics.rate_with_half_added(missed, rows)}


def floor_histories(training: pd.DataFrame, label: LabelSettings | None,
                    maintenance: dict | None) -> dict[str, dict]:
    """What ``model.FLOORS`` read, for a model's calibration, keyed as they read it: the
    ``maintenance`` history (the split's), the forgetting prior of the ``training`` rows (given
    the ``label``) and how often their lapsed agreements missed; only those there are."""
    found = {"maintenance": maintenance,
             "forgetting": forgetting_prior(training, label) if label else None,
             "lapse": lapse_history(training)}
    return {name: history for name, history in found.items() if history}


def evaluate_split(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The metrics every training run logs, per split."""
    rank, quality = metrics.ranking(y, p), metrics.probability_quality(y, p)
    return {"auc": rank["auc"], "ks": rank["ks"], "brier": quality["brier"],
            "log_loss": quality["log_loss"], "ece": quality["ece"]}


# ---- the WoE scorecard ----------------------------------------------------------------------

def fit_scorecard(train: pd.DataFrame, columns: list[str], categorical: list[str],
                  settings: ScorecardSettings) -> dict:
    """The credit industry's scorecard as a JSON-able dict: optimal monotone bins with WoE,
    characteristics kept by information value, a correlation filter, a logistic regression on
    WoE whose coefficients must all carry the expected sign, and points scaled by PDO."""
    # imported here: optbinning takes 2-4 s to import, and only this fit needs it (a fitted card
    # is a dict), so the LightGBM stages, scoring and the workers never pay for it
    from optbinning import BinningProcess
    from sklearn.linear_model import LogisticRegression

    # a characteristic without a single value among the training rows (all of them too new for a
    # 6-month change, say) has nothing to bin, nor one whose every category is rarer than a bin
    columns = [c for c in columns if train[c].notna().any() and (
        c not in categorical or train[c].value_counts(normalize=True).max() >= settings.min_bin_size)]
    categorical = [c for c in categorical if c in columns]
    X, y = train[columns], train[LABEL].to_numpy()
    process = BinningProcess(columns, categorical_variables=categorical,
                             selection_criteria={"iv": {"min": settings.min_iv}},
                             max_n_bins=settings.max_n_bins, min_bin_size=settings.min_bin_size,
                             binning_fit_params=binning_params(columns, categorical, settings.min_bin_size))
    process.fit(X, y)
    iv = {name: float(process.get_binned_variable(name).binning_table.iv)
          for name in process.get_support(names=True)}
    # missing values take their own bin's WoE, not optbinning's default of 0: missing is a signal
    woe = process.transform(X[list(iv)], metric="woe", metric_missing="empirical",
                            metric_special="empirical")
    kept = _decorrelate(woe, sorted(iv, key=iv.get, reverse=True), settings.max_correlation)
    model = None
    while kept:
        model = LogisticRegression(C=settings.regularisation, max_iter=2000).fit(woe[kept], y)
        # WoE = ln(share of goods / share of bads): every coefficient must be negative
        wrong = [c for c, b in zip(kept, model.coef_[0], strict=True) if b >= 0]
        if not wrong:
            break
        kept = [c for c in kept if c not in wrong]
    if not kept or model is None:
        raise ValueError("no characteristic passed the scorecard's selection")
    return _card(process, kept, model, iv, settings)


# optbinning's trend of the miss rate over a numeric characteristic's bins, by catalogue direction.
# Without one, "auto_asc_desc" lets the solver pick ascending or descending: its default ("auto")
# may choose a peak or a valley, and a small bin at the peak then carries most of the points.
TRENDS = {1: "ascending", -1: "descending", 0: "auto_asc_desc"}


def binning_params(columns: list[str], categorical: list[str], min_bin_size: float) -> dict[str, dict]:
    """Monotone bins for every numeric characteristic: the catalogue's direction where it has one
    (the same as LightGBM's constraint), else whichever of ascending or descending fits best.
    Categorical characteristics have no order to be monotone in; their categories rarer than
    ``min_bin_size`` (a share of the rows) share one bin: 150 cities of a dozen rows each, pure
    noise, had each taken its own WoE and led the card (out-of-time AUC 0.612, 0.660 without)."""
    constraints = dict(zip(columns, monotone_constraints(columns), strict=True))
    return {c: {"cat_cutoff": min_bin_size} if c in categorical
            else {"monotonic_trend": TRENDS[constraints[c]]} for c in columns}


def _decorrelate(woe: pd.DataFrame, ranked: list[str], max_correlation: float) -> list[str]:
    """Keep characteristics in order of IV, skipping any too correlated with one kept."""
    corr = woe[ranked].corr().abs().fillna(0.0)
    kept: list[str] = []
    for name in ranked:
        if all(corr.loc[name, k] <= max_correlation for k in kept):
            kept.append(name)
    return kept


def _card(process: BinningProcess, kept: list[str], model: LogisticRegression, iv: dict,
          settings: ScorecardSettings) -> dict:
    factor = settings.pdo / math.log(2.0)
    offset = settings.base_points - factor * math.log(settings.base_odds)
    intercept = float(model.intercept_[0])
    variables = []
    for name, coef in zip(kept, model.coef_[0], strict=True):
        binned = process.get_binned_variable(name)
        table = binned.binning_table.build()
        table = table[table.index != "Totals"]
        woe = table["WoE"].astype(float).tolist()  # bins, then the special and missing bins
        bins = ([[v.item() if hasattr(v, "item") else v for v in group] for group in binned.splits]
                if binned.dtype == "categorical" else [float(s) for s in binned.splits])
        points = [round(-factor * (coef * w + intercept / len(kept)) + offset / len(kept), 2) for w in woe]
        variables.append({"name": name, "kind": binned.dtype, "bins": bins, "woe": woe,
                          "labels": [_bin_label(b) for b in table["Bin"]], "points": points,
                          "coefficient": float(coef), "iv": iv[name]})
    return {"intercept": intercept, "variables": variables,
            "scaling": {"pdo": settings.pdo, "base_points": settings.base_points,
                        "base_odds": settings.base_odds}}


def _bin_label(interval) -> str:
    """A bin as a risk officer reads it: "[1.00, 3.00)", or a categorical bin's categories
    ("no checking account, < 0 DM") rather than the repr of the array optbinning holds them in."""
    if pd.api.types.is_list_like(interval):
        return ", ".join(str(v) for v in interval)
    return str(interval)


def scorecard_woe(variable: dict, values: pd.Series) -> np.ndarray:
    """The WoE of each value: numeric bins are [split_i, split_i+1); missing and unseen values
    take the missing bin."""
    woe = np.asarray(variable["woe"])
    missing_bin = len(woe) - 1
    if variable["kind"] == "categorical":
        index = np.full(len(values), missing_bin)
        for i, group in enumerate(variable["bins"]):
            index[values.isin(group).to_numpy()] = i
    else:
        x = values.to_numpy(dtype="float64")
        index = np.searchsorted(np.asarray(variable["bins"]), x, side="right")
        index[np.isnan(x)] = missing_bin
    return woe[index]


def scorecard_points(card: dict) -> pd.DataFrame:
    """The scorecard's points table: one row per characteristic and bin, with its WoE and points."""
    return pd.DataFrame([{"characteristic": v["name"], "bin": label, "woe": w, "points": pts}
                         for v in card["variables"]
                         for label, w, pts in zip(v["labels"], v["woe"], v["points"], strict=True)])


def scorecard_predict(card: dict, frame: pd.DataFrame) -> np.ndarray:
    """Probability of a missed repayment from the scorecard."""
    logit = card["intercept"] + sum(v["coefficient"] * scorecard_woe(v, frame[v["name"]])
                                    for v in card["variables"])
    return 1.0 / (1.0 + np.exp(-logit))


def fit_scoring_model(splits: dict[str, pd.DataFrame], columns: list[str], categorical: list[str],
                      s: LightGBMSettings, maintenance: dict | None = None,
                      label: LabelSettings | None = None, own_data: bool = False,
                      feature_settings: FeatureSettings | None = None
                      ) -> tuple[CalibratedLightGBM, np.ndarray]:
    """The calibrated LightGBM of ``limitjump train lightgbm`` and its probabilities on the
    validation split: boosted on train, stopped and calibrated on valid, with what its floors
    read (the ``maintenance`` history, if any, ``model.maintenance_floor``; given the ``label``,
    the forgetting prior of the training rows, ``model.forgetting_floor``; how often their lapsed
    agreements missed, ``model.lapse_floor``), the cause model when the rows carry the cause of
    their miss, and the reference drift is measured against (``drift_reference``; ``own_data``,
    a team's own features, taken when the team takes them, so that a pyfunc checks no window after
    the jump, as `limitjump score` checks none). ``label`` and ``feature_settings`` travel with
    the model: a scorer computes its features as they were for its training."""
    categories = learn_categories(splits["train"], columns)
    fitted, valid_scores = calibrated_on_validation(splits["train"], splits["valid"], columns, categorical,
                                                    categories, s)
    floors = floor_histories(splits["train"], label, maintenance)
    if floors:
        fitted.calibration.update(floors)
        valid_scores = fitted.predict(splits["valid"])
    fitted.label = label
    fitted.feature_settings = feature_settings
    if MISS_CAUSE in splits["train"]:
        fitted.causes = fit_causes(splits, columns, categorical, categories, s)
    last = pd.concat([splits[name]["scoring_date"] for name in ("train", "valid")]).max()
    fitted.reference = {**drift_reference(fitted, splits["train"], columns, own_data),
                        **({"fitted_until": last.date().isoformat()} if pd.notna(last) else {})}
    return fitted, valid_scores


def fit_causes(splits: dict[str, pd.DataFrame], columns: list[str], categorical: list[str], categories: dict,
               s: LightGBMSettings) -> tuple[lgb.Booster, dict]:
    """P(cause | miss), boosted on the training misses, stopped and temperature-scaled on the
    validation misses."""
    x = {name: encode(splits[name], columns, categories) for name in ("train", "valid")}
    codes = {name: cause_codes(splits[name][MISS_CAUSE]) for name in x}
    params = cause_params(lightgbm_params(s, columns, categorical, len(splits["train"])))
    return fit_cause_model(x["train"], codes["train"], x["valid"], codes["valid"], params, columns,
                           categorical, s.num_boost_round, s.early_stopping_rounds,
                           s.cause_leaf_sizes, s.cause_num_leaves,
                           CAT_SMOOTH_PER_LEAF_ROW if s.cat_smooth == "auto" else None)


def drift_reference(fitted: CalibratedLightGBM, train: pd.DataFrame, columns: list[str],
                    own_data: bool = False) -> dict:
    """What drift is measured against: each feature's gain importance, the decile bins of the
    score and of each feature, each one's largest PSI of one training month against them (its
    baseline: a scored batch's drift is judged beyond it; months of fewer rows than a PSI needs
    pooled with the next, ``metrics.pooled_groups``), and the edges of the lower and upper
    thirds beyond which a reason's words hold (``score.reason_edges``), on at most ``REFERENCE_ROWS`` evenly
    spread training rows (decile edges need no more); and, from every training row, the features
    no row lacked that a booster splits on (``never_missing``): a scorer may not be given such a
    number blank, and counts such a category's blank as unseen; one no tree reads cannot be
    misread, so a blank there rejects no one."""
    importance = dict(zip(columns, fitted.booster.feature_importance("gain").round(4).tolist(), strict=True))
    sample = train.iloc[np.linspace(0, len(train) - 1, min(len(train), REFERENCE_ROWS)).astype(int)]
    matrix = encode(sample, columns, fitted.categories)
    values = {"score": fitted.probability(matrix), **{c: matrix[:, j] for j, c in enumerate(columns)}}
    bins = {name: metrics.psi_reference(v) for name, v in values.items()}
    thirds = {c: np.nanquantile(matrix[:, j], [1 / 3, 2 / 3]).tolist() for j, c in enumerate(columns)
              if not np.isnan(matrix[:, j]).all()}
    months = metrics.pooled_groups(sample["scoring_date"].dt.to_period("M").astype(str).to_numpy())
    baseline = {name: round(metrics.largest_group_psi(bins[name], values[name], months), 6) for name in bins}
    boosters = [fitted.booster, *([fitted.causes[0]] if fitted.causes else [])]
    return {"importance": importance, "bins": bins, "thirds": thirds, "baseline": baseline,
            "never_missing": never_missing(train, columns, boosters),
            **({"own_data": True} if own_data else {})}
