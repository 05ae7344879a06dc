"""The simulator's realism report: the figures that tie the simulation to published anchors."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipeline.config import CAUSES

SCORE_BANDS = [300, 600, 660, 740, 951]  # anchors quote FICO <=660 and >740
DRAWN_BANDS = [0.0, 0.05, 0.15, 0.3, 0.6, np.inf]
DTI_BANDS = [0.0, 0.1, 0.2, 0.35, 0.5, np.inf]
NEAR_LIMIT = 0.7  # utilisation of the old limit at the jump
TECHNICAL_CURE_DAYS = 7


def _rate_by(truth: pd.DataFrame, key: pd.Series) -> dict[str, dict[str, float]]:
    grouped = truth.groupby(key, observed=True)["label"]
    return {str(k): {"borrowers": int(n), "miss_rate": float(r)}
            for k, n, r in zip(grouped.size().index, grouped.size(), grouped.mean(), strict=True)}


def _rising(table: dict[str, dict[str, float]]) -> bool:
    rates = [v["miss_rate"] for v in table.values() if v["borrowers"] >= 30]
    return len(rates) >= 2 and rates[-1] > rates[0]


def realism_report(truth: pd.DataFrame, replicates: int) -> dict:
    """Figures and pass/fail checks from the ground-truth table."""
    label = truth["label"]
    missed = truth[label == 1]
    by_trigger = _rate_by(truth, truth["trigger"])
    drawn = _rate_by(truth, pd.cut(truth["drawn_share_first_quarter"], DRAWN_BANDS, right=False))
    dti = _rate_by(truth, pd.cut(truth["dti_at_scoring"], DTI_BANDS, right=False))
    inquiries = _rate_by(truth, truth["inquiries_since_jump"].clip(upper=3).astype(str).replace("3", "3+"))
    technical = missed[missed["first_miss_cause"] == "technical"]
    cured = technical["first_miss_days_past_due"] <= TECHNICAL_CURE_DAYS
    cured_fast = float(cured.mean()) if len(technical) else float("nan")

    band = pd.cut(truth["score_at_jump"], SCORE_BANDS, right=False)
    drawdown = truth.groupby(band, observed=True).agg(
        borrowers=("label", "size"),
        first_quarter_mean=("drawn_share_first_quarter", "mean"),
        first_quarter_median=("drawn_share_first_quarter", "median"),
        twelve_months_mean=("drawn_share_12m", "mean"))
    low_near = truth[(truth["score_at_jump"] < 660) & (truth["utilisation_at_jump"] >= NEAR_LIMIT)]
    high = truth[truth["score_at_jump"] >= 740]
    auc = float(roc_auc_score(label, truth["p_true"])) if label.nunique() == 2 else float("nan")
    report = {
        "borrowers": len(truth),
        "miss_rate": float(label.mean()),
        "miss_rate_by_trigger": by_trigger,
        "cause_share_of_misses": {c: float((missed["first_miss_cause"] == c).mean()) for c in CAUSES},
        "miss_rate_by_drawn_share_first_quarter": drawn,
        "miss_rate_by_dti_at_scoring": dti,
        "miss_rate_by_inquiries_since_jump": inquiries,
        "technical_misses": {
            "by_kind": {str(k): int(v) for k, v in technical["technical_kind"].value_counts().items()},
            "cured_within_7_days": cured_fast,
        },
        "drawdown_by_score_band": {str(k): {c: float(v) for c, v in row.items()}
                                   for k, row in drawdown.iterrows()},
        "drawdown_first_quarter_mean": float(truth["drawn_share_first_quarter"].mean()),
        "drawdown_12m_mean_low_score_near_limit": float(low_near["drawn_share_12m"].mean()),
        "drawdown_12m_mean_high_score": float(high["drawn_share_12m"].mean()),
        "p_true": {"auc": auc, "mean": float(truth["p_true"].mean()),
                   "mean_standard_error": float(truth["p_true_se"].mean()),
                   "replicates": replicates},
    }
    report["checks"] = {
        "miss_rate_5_to_15pct": 0.05 <= report["miss_rate"] <= 0.15,
        "request_and_marketing_above_score_improvement": all(
            by_trigger[t]["miss_rate"] > by_trigger["score_improvement"]["miss_rate"]
            for t in ("user_request", "marketing_campaign") if t in by_trigger),
        "miss_rate_rises_with_drawn_share": _rising(drawn),
        "miss_rate_rises_with_dti": _rising(dti),
        "miss_rate_rises_with_inquiries": _rising(inquiries),
        "technical_misses_mostly_cured_within_7_days": cured_fast >= 0.8,
        "first_quarter_drawdown_10_to_15pct": 0.10 <= report["drawdown_first_quarter_mean"] <= 0.15,
        "low_score_near_limit_draw_about_60pct_in_12m":
            0.4 <= report["drawdown_12m_mean_low_score_near_limit"] <= 0.8,
        "high_score_draw_near_zero": report["drawdown_12m_mean_high_score"] <= 0.1,
        "true_probability_auc_0_75_to_0_95": 0.75 <= auc <= 0.95,
    }
    return report
