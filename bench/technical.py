"""Where the technical AUC gap lies (issue 14's goal: the cause model's technical AUC within 0.03
of the truth's), measured in one run on the project's out-of-time rows.

Usage: python bench/technical.py [--project DIR] [--json FILE]
The project (default: this repository) must hold data/raw, data/split, data/truth and the trained
model (`./run repro`). Scores of a technical miss, each against the truth's ``p_true_technical``:
  product   the shipped model's P(miss) x P(technical | miss) (models/lightgbm);
  binary    one LightGBM of "missed for a technical reason" on every row, same features and
            parameters (no monotone constraints: they are the total risk's);
  history   each manual payer's chance to forget given the payment history alone: the posterior
            mean (a + k) / (a + b + n) of the simulator's own Beta(a, b), with n the manual due
            dates before scoring and k of them paid 1-5 days late without a failed debit (0 for
            an auto-debit payer). The most any scorer could read from that history, knowing the
            prior; it scores forgetting only;
  manual    1 for a manual payer at scoring.
Each is scored by AUC on every technical miss and per kind (that kind's misses against every row
without a technical miss); the forgotten payments also among manual payers alone, where the
history is all a score can go on and the truth's lead is the hidden chance itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from measure import on_built_project, split_matrices
from sklearn.metrics import roc_auc_score

from pipeline import causes, train
from pipeline.config import CAUSES, load_params
from pipeline.lgbm import lgb
from pipeline.model import CalibratedLightGBM
from pipeline.simulate.population import forgetfulness_prior

FORGOTTEN = "forgotten"
LATE_DAYS = (1, 5)  # a forgotten payment is paid within days (simulate/repayment.py)
KEYS = ["borrower_id", "scoring_date"]


def manual_history(repayments: pd.DataFrame, events: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Per row of ``keys`` (borrower_id, scoring_date), in its order: ``n``, the due dates before
    scoring that were paid before scoring and manually only, and ``k``, those of them paid
    LATE_DAYS late without a failed debit that day (a lapsed agreement's debit fails first)."""
    auto = (repayments["channel"] != "manual").rename("auto")
    dues = (pd.concat([repayments[["borrower_id", "due_date", "payment_date"]], auto], axis=1)
            .groupby(["borrower_id", "due_date"], as_index=False)
            .agg(first_payment=("payment_date", "min"), auto=("auto", "max")))
    failed = events.loc[events["event_type"] == "debit_failed", ["borrower_id", "event_date"]]
    failed = failed.drop_duplicates().rename(columns={"event_date": "due_date"}).assign(failed=True)
    dues = dues.merge(failed, on=["borrower_id", "due_date"], how="left")
    rows = keys[KEYS].reset_index(drop=True).assign(row=lambda f: np.arange(len(f)))
    seen = rows.merge(dues, on="borrower_id")
    seen = seen[(seen["due_date"] < seen["scoring_date"]) & (seen["first_payment"] < seen["scoring_date"])
                & ~seen["auto"]]
    late = (seen["first_payment"] - seen["due_date"]).dt.days
    forgot = late.between(*LATE_DAYS) & seen["failed"].isna()
    n = np.bincount(seen["row"], minlength=len(rows))
    k = np.bincount(seen["row"], weights=forgot.to_numpy(dtype=float), minlength=len(rows))
    return pd.DataFrame({"n": n.astype("int64"), "k": k.astype("int64")})


def posterior_forgetting(k: np.ndarray, n: np.ndarray, a: float, b: float) -> np.ndarray:
    """E[p | k forgotten of n manual due dates] under a Beta(a, b) prior on p."""
    return (a + np.asarray(k, dtype=float)) / (a + b + np.asarray(n, dtype=float))


def kind_aucs(technical: np.ndarray, kind: pd.Series, score: np.ndarray,
              rows: np.ndarray | None = None) -> dict[str, float | None]:
    """AUC on every technical miss ("all") and per kind, over ``rows`` (default: all)."""
    rows = np.ones(technical.size, dtype=bool) if rows is None else rows
    # the pipeline's own per-kind AUCs, with the score in the truth's place too
    by_kind = causes.technical_by_kind(technical[rows], kind[rows], score[rows], score[rows])
    return {"all": float(roc_auc_score(technical[rows], score[rows])),
            **{k: v["auc"] for k, v in by_kind.items()}}


def measure(project: Path) -> dict:
    params = load_params(project / "params.yaml")
    settings = params.train.lightgbm
    frames, x, codes, columns, categorical = split_matrices(project)
    test = frames["test"]
    truth = pd.read_parquet(project / "data" / "truth", columns=[*KEYS, "technical_kind", "p_true_technical"])
    truth = test[KEYS].merge(truth, on=KEYS, how="left")
    technical = codes["test"] == CAUSES.index("technical")
    kind = truth["technical_kind"]

    shipped = CalibratedLightGBM.from_dir(project / "models" / "lightgbm")
    matrix = shipped.matrix(test)
    p = shipped.probability(matrix)
    share = shipped.cause_shares(matrix, p)[:, CAUSES.index("technical")]  # as scoring gives it
    scores = {"product": p * share,
              "binary": _binary(x, codes, settings, columns, categorical, len(frames["train"]))}
    raw = project / "data" / "raw"
    history = manual_history(pd.read_parquet(raw / "repayments", columns=["borrower_id", "due_date",
                                                                         "payment_date", "channel"]),
                             pd.read_parquet(raw / "platform_events", columns=["borrower_id", "event_type",
                                                                              "event_date"]), test)
    technical_settings = params.simulate.technical
    a, b = forgetfulness_prior(technical_settings.forget_prob_mean, technical_settings.forget_repeat_prob)
    manual = test["autodebit_active"].to_numpy() == 0
    scores["history"] = manual * posterior_forgetting(history["k"], history["n"], a, b)
    scores["manual"] = manual.astype(float)
    scores["truth"] = truth["p_true_technical"].to_numpy()

    out = {"borrowers": params.simulate.n_borrowers, "technical_misses": int(technical.sum()),
           "misses_by_kind": kind[technical].value_counts().to_dict(), "prior": {"a": a, "b": b},
           "auc": {name: kind_aucs(technical, kind, scores[name]) for name in ("product", "binary", "truth")},
           "forgotten": {"all_rows": {name: kind_aucs(technical, kind, s)[FORGOTTEN]
                                      for name, s in scores.items()},
                         "manual_payers": {name: kind_aucs(technical, kind, s, manual)[FORGOTTEN]
                                           for name, s in scores.items() if name != "manual"}}}
    for name, aucs in out["auc"].items():
        print(f"{name:<8} " + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items() if v is not None))
    for where, aucs in out["forgotten"].items():
        print(f"forgotten, {where:<13}: " + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items()))
    return out


def _binary(x: dict, codes: dict, settings, columns: list[str], categorical: list[str],
            train_rows: int) -> np.ndarray:
    """P(technical miss) of one LightGBM on every training row, stopped on validation."""
    params = {k: v for k, v in train.lightgbm_params(settings, columns, categorical, train_rows).items()
              if not k.startswith("monotone")}
    tech = CAUSES.index("technical")
    dtrain = lgb.Dataset(x["train"], (codes["train"] == tech).astype(int), feature_name=columns,
                         categorical_feature=categorical)
    dvalid = lgb.Dataset(x["valid"], (codes["valid"] == tech).astype(int), reference=dtrain)
    booster = lgb.train(params, dtrain, settings.num_boost_round, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)])
    return booster.predict(x["test"], num_iteration=booster.best_iteration)


def main() -> None:
    on_built_project(__doc__, measure, ("data/raw", "data/split", "data/truth", "models/lightgbm"))


if __name__ == "__main__":
    main()
