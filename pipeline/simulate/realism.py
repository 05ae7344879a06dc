"""The simulator's realism report: the figures that tie the simulation to published anchors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import CAUSES, LabelSettings
from pipeline.metrics import auc_standard_error, logistic_calibration, logistic_calibration_slope_se, ranking

SCORE_BANDS = [300, 600, 660, 740, 951]  # anchors quote FICO <=660 and >740
DRAWN_BANDS = [0.0, 0.05, 0.15, 0.3, 0.6, np.inf]
DTI_BANDS = [0.0, 0.1, 0.2, 0.35, 0.5, np.inf]
NEAR_LIMIT = 0.7  # utilisation of the old limit at the jump
TECHNICAL_CURE_DAYS = 7


def _rate_by(truth: pd.DataFrame, key: pd.Series) -> dict[str, dict[str, float]]:
    grouped = truth.groupby(key, observed=True)["label"]
    return {str(k): {"borrowers": int(n), "miss_rate": float(r)}
            for k, n, r in zip(grouped.size().index, grouped.size(), grouped.mean(), strict=True)}


MIN_BAND = 30  # borrowers a band needs for its miss rate to count
# misses (and repayments) the truth's AUC and calibration need to be judged: 10 borrowers with one
# miss had failed both checks (AUC 1.000, slope 22.2), where they measure nothing
MIN_CLASS = 30
# Plausible share of borrowers with a miss of at least this many days in 3 billing cycles: a
# plausibility band per label family, not a published anchor (dpd threshold -> (low, high)).
MISS_RATE_BANDS = {3: (0.05, 0.15), 14: (0.03, 0.12), 90: (0.01, 0.08)}
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not applicable"
# A check's estimate may miss its target by this many standard errors: a small world draws far
# from the truth by chance (4,000 borrowers put the first quarter's drawdown anywhere in
# 14.1-15.7% over six seeds, where 150,000 give 14.5% on the defaults). At three, a check whose
# target holds fails on the sampling of borrowers alone at most 0.27% of the time. The errors
# treat borrowers as independent: a world's shared draws (its outage days) move a figure beyond
# them, which is what a check should see (bench/oracle.py runs three worlds).
ALLOWANCE_SE = 3.0
# The truth's AUC rises as the label nears what the state at scoring settles. A miss of a day or
# so over months hangs on shocks to come (measured 2026-12-06 on 50,000 borrowers: 0.85-0.87 at
# dpd 1 over 3-6 cycles); one of a week or more (0.92-0.95 at dpd 7-30 over 3-6 cycles, 0.97 at
# dpd 90 over 3) or over one cycle (0.96-0.98 at dpd 3-30) mostly on the cash and income the
# truth sees. Above the band: a truth that sees the label itself.
TRUE_AUC_LOW, TRUE_AUC_HIGH, TRUE_AUC_HIGH_SETTLED = 0.75, 0.95, 0.99


def miss_rate_target(label: LabelSettings) -> tuple[float, float]:
    """The miss-rate band for this label: the 3-cycle band of its dpd family, carried to the
    label's window at a constant hazard per cycle."""
    low, high = next(band for limit, band in MISS_RATE_BANDS.items() if label.dpd_threshold <= limit)
    scale = label.performance_cycles / 3
    return 1 - (1 - low) ** scale, 1 - (1 - high) ** scale


def true_auc_target(label: LabelSettings) -> tuple[float, float]:
    """The band of the truth's AUC for this label: up to 0.95 for a miss of at most 3 days over
    2 cycles or more, up to 0.99 for one the state at scoring all but settles."""
    unsettled = label.dpd_threshold <= 3 and label.performance_cycles >= 2
    return TRUE_AUC_LOW, TRUE_AUC_HIGH if unsettled else TRUE_AUC_HIGH_SETTLED


def _rise(table: dict[str, dict[str, float]]) -> tuple[float, float] | None:
    """The miss rate of the last band minus the first's, with its standard error; None without
    two bands of ``MIN_BAND`` borrowers."""
    bands = [v for v in table.values() if v["borrowers"] >= MIN_BAND]
    return _difference(bands[-1], bands[0]) if len(bands) >= 2 else None


def _difference(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    """Miss rate of band ``a`` minus band ``b``'s, with its binomial standard error."""
    def variance(band: dict[str, float]) -> float:
        return band["miss_rate"] * (1 - band["miss_rate"]) / band["borrowers"]
    return a["miss_rate"] - b["miss_rate"], float(np.sqrt(variance(a) + variance(b)))


def _mean_se(values: pd.Series) -> tuple[float, float] | None:
    """Mean and standard error of the values present; None with fewer than two."""
    values = values.dropna()
    if len(values) < 2:
        return None
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def _within(estimate: tuple[float, float] | None, low: float = -np.inf, high: float = np.inf) -> bool | None:
    """Whether an (estimate, standard error) is within [low, high] give or take ``ALLOWANCE_SE``
    standard errors: a check fails only where the data contradict its target beyond their own
    sampling noise. None (not applicable) without an estimate, or one that is no number (the
    calibration of a constant p_true)."""
    if estimate is None or not np.isfinite(estimate[0]):
        return None
    value, se = estimate
    return value + ALLOWANCE_SE * se >= low and value - ALLOWANCE_SE * se <= high


def _result(ok: bool | None) -> str:
    return NOT_APPLICABLE if ok is None else (PASS if ok else FAIL)


def realism_report(truth: pd.DataFrame, replicates: int, label: LabelSettings,
                   struck: np.ndarray) -> dict:
    """Figures and checks from the ground-truth table. Each check is "pass", "fail" or "not
    applicable" (no data for it under this label), with its target under ``targets``. ``struck``
    marks the rows an unforeseen outage met (``struck_by_unforeseen_outages``)."""
    label_col = truth["label"]
    missed = truth[label_col == 1]
    by_trigger = _rate_by(truth, truth["trigger"])
    drawn = _rate_by(truth, pd.cut(truth["drawn_share_first_quarter"], DRAWN_BANDS, right=False))
    dti = _rate_by(truth, pd.cut(truth["dti_at_scoring"], DTI_BANDS, right=False))
    inquiries = _rate_by(truth, truth["inquiries_since_jump"].clip(upper=3).astype(str).replace("3", "3+"))
    technical = missed[missed["first_miss_cause"] == "technical"]
    cured = technical["first_miss_days_past_due"] <= TECHNICAL_CURE_DAYS
    cured_fast = float(cured.mean()) if len(technical) else None

    band = pd.cut(truth["score_at_jump"], SCORE_BANDS, right=False)
    drawdown = truth.groupby(band, observed=True).agg(
        borrowers=("label", "size"),
        first_quarter_mean=("drawn_share_first_quarter", "mean"),
        first_quarter_median=("drawn_share_first_quarter", "median"),
        twelve_months_mean=("drawn_share_12m", "mean"))
    low_near, high = truth[_low_score_near_limit(truth)], truth[_high_score(truth)]
    report = {
        "borrowers": len(truth),
        "label": label.model_dump(),
        "miss_rate": float(label_col.mean()),
        "miss_rate_by_trigger": by_trigger,
        "cause_share_of_misses": {c: float((missed["first_miss_cause"] == c).mean()) for c in CAUSES},
        "miss_rate_by_drawn_share_first_quarter": drawn,
        "miss_rate_by_dti_at_scoring": dti,
        "miss_rate_by_inquiries_since_jump": inquiries,
        "technical_misses": {
            "by_kind": {str(k): int(v) for k, v in technical["technical_kind"].value_counts().items()},
            "count": len(technical), "cured_within_7_days": cured_fast,
        },
        "drawdown_by_score_band": {str(k): {c: float(v) for c, v in row.items()}
                                   for k, row in drawdown.iterrows()},
        "drawdown_first_quarter_mean": float(truth["drawn_share_first_quarter"].mean()),
        "drawdown_12m_mean_low_score_near_limit": _mean(low_near["drawn_share_12m"]),
        "drawdown_12m_mean_high_score": _mean(high["drawn_share_12m"]),
        "p_true": _truth_quality(truth, replicates, struck),
    }
    report["targets"], report["estimates"], report["checks"] = _checks(report, truth, label, by_trigger,
                                                                       drawn, dti, inquiries)
    return report


def _low_score_near_limit(truth: pd.DataFrame) -> pd.Series:
    return (truth["score_at_jump"] < 660) & (truth["utilisation_at_jump"] >= NEAR_LIMIT)


def _high_score(truth: pd.DataFrame) -> pd.Series:
    return truth["score_at_jump"] >= 740


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if values.notna().any() else None


def outage_misses(truth: pd.DataFrame) -> np.ndarray:
    """True for the rows of the ground truth whose first miss an outage caused."""
    return truth["technical_kind"].eq("outage").fillna(False).to_numpy(dtype=bool)


def announced_outage_misses(truth: pd.DataFrame, windows: pd.DataFrame) -> np.ndarray:
    """True for the outage misses of the ground truth whose due date a window announced before the
    borrower's scoring date falls on: the outages both the truth and a model could see coming."""
    known = _window_days(windows)
    rows = truth[["scoring_date", "first_miss_due_date"]].reset_index(drop=True)
    paired = rows.reset_index().merge(known, left_on="first_miss_due_date", right_on="day")
    announced = paired.loc[paired["announced_date"] < paired["scoring_date"], "index"].unique()
    return outage_misses(truth) & np.isin(np.arange(len(truth)), announced)


def _window_days(windows: pd.DataFrame) -> pd.DataFrame:
    """Each maintenance window's day and the date it was announced."""
    return windows.assign(day=windows["start_time"].dt.normalize())[["day", "announced_date"]]


def struck_by_unforeseen_outages(truth: pd.DataFrame, due_dates: pd.DataFrame, windows: pd.DataFrame,
                                 label: LabelSettings) -> np.ndarray:
    """True for the rows of the ground truth one of whose label's due dates fell on a maintenance
    window not announced before the borrower's scoring date (an unplanned one, or a planned one
    announced later), whether or not they missed: the realised outages no information at scoring
    could foresee. Selected by exposure, never by outcome: the rows left drew their label from
    ``p_true_spared`` (no unforeseen outage), by which the report judges them. ``due_dates``: each
    borrower's due dates (``borrower_id``, ``due_date``, the installments table); the label's are
    those from the scoring date to the end of its last cycle, ``performance_cycles`` months on
    (cycle 0 starts on the scoring date)."""
    met = (due_dates[["borrower_id", "due_date"]]
           .merge(_window_days(windows), left_on="due_date", right_on="day")
           .merge(truth[["borrower_id", "scoring_date"]], on="borrower_id"))
    scoring = met["scoring_date"]
    in_window = (met["due_date"] >= scoring) & (
        met["due_date"] < scoring + pd.DateOffset(months=label.performance_cycles))
    unforeseen = met["announced_date"] >= scoring
    return truth["borrower_id"].isin(met.loc[in_window & unforeseen, "borrower_id"]).to_numpy()


def _calibration(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """Logistic calibration (intercept, slope, the slope's standard error), None without
    ``MIN_CLASS`` of each class."""
    if min(int(y.sum()), int((1 - y).sum())) < MIN_CLASS:
        return None, None, None
    intercept, slope = logistic_calibration(y, p)
    return intercept, slope, logistic_calibration_slope_se(y, p, intercept, slope)


def _truth_quality(truth: pd.DataFrame, replicates: int, struck: np.ndarray) -> dict:
    """AUC and logistic calibration of p_true against the label (None with fewer than
    ``MIN_CLASS`` misses or repayments), over every row and over the rows no unforeseen outage
    struck. A realised outage day is one draw per world that strikes many borrowers at once: the
    truth, which cannot know it, rightly gives them all a small chance, and one world's luck then
    flattens the slope over every row however many replicates p_true has. The rows it spared are
    judged against ``p_true_spared``, the truth's probability were no outage unknown at scoring to
    come: that is what their outcome was drawn from, where p_true would over-predict them by the
    outage chance they escaped. Their slope measures the estimator (its Monte-Carlo noise), which
    is what the check judges."""
    y, p = truth["label"].to_numpy(dtype=float), truth["p_true"].to_numpy()
    intercept, slope, _ = _calibration(y, p)
    spared_p = truth["p_true_spared"].to_numpy()[~struck]
    _, spared_slope, spared_se = _calibration(y[~struck], spared_p)
    auc = ranking(y, p)["auc"] if slope is not None else None
    return {"auc": auc,
            "auc_standard_error": None if auc is None
            else auc_standard_error(auc, int(y.sum()), int((1 - y).sum())),
            "calibration_intercept": intercept, "calibration_slope": slope,
            "calibration_slope_spared_by_unforeseen_outages": spared_slope,
            "calibration_slope_spared_standard_error": spared_se,
            "spared_by_unforeseen_outages": {"miss_rate": _mean(pd.Series(y[~struck])),
                                             "mean_p_true_spared": _mean(pd.Series(spared_p))},
            "struck_by_unforeseen_outages": {
                "borrowers": int(struck.sum()), "miss_rate": _mean(pd.Series(y[struck])),
                "mean_p_true": _mean(pd.Series(p[struck]))},
            "outage_misses": int(outage_misses(truth).sum()), "mean": float(p.mean()),
            "mean_standard_error": float(truth["p_true_se"].mean()), "replicates": replicates,
            # the estimator's floor: no replicate of these borrowers ever missed (a lasting label's
            # rare paths not reached; at dpd 1-3 shortfalls are integrated and none is 0)
            "share_exactly_zero": float((p == 0).mean())}


def _checks(report: dict, truth: pd.DataFrame, label: LabelSettings, by_trigger, drawn, dti,
            inquiries) -> tuple[dict, dict, dict]:
    """Targets, estimates (value and standard error) and results of the checks."""
    low, high = miss_rate_target(label)
    auc_low, auc_high = true_auc_target(label)
    triggers = {k: v for k, v in by_trigger.items() if v["borrowers"] >= MIN_BAND}
    compared = [t for t in ("user_request", "marketing_campaign") if t in triggers]
    above = ({t: _difference(triggers[t], triggers["score_improvement"]) for t in compared}
             if compared and "score_improvement" in triggers else {})
    technical = report["technical_misses"]
    cured = technical["cured_within_7_days"]
    # a technical miss is paid within days: under a label of a week or more none can count
    cure_applies = label.dpd_threshold < TECHNICAL_CURE_DAYS and cured is not None
    quality = report["p_true"]
    miss_rate = report["miss_rate"]
    checks = {  # name: (target, estimate (value, standard error) or None, (low, high))
        "miss_rate": (f"{low:.1%} to {high:.1%}",
                      (miss_rate, float(np.sqrt(miss_rate * (1 - miss_rate) / len(truth)))), (low, high)),
        "miss_rate_rises_with_drawn_share": ("rising", _rise(drawn), (0.0, np.inf)),
        "miss_rate_rises_with_dti": ("rising", _rise(dti), (0.0, np.inf)),
        "miss_rate_rises_with_inquiries": ("rising", _rise(inquiries), (0.0, np.inf)),
        "technical_misses_mostly_cured_within_7_days": (
            "at least 80%", (cured, float(np.sqrt(cured * (1 - cured) / technical["count"])))
            if cure_applies else None,
            (0.8, np.inf)),
        "first_quarter_drawdown_10_to_15pct": ("10% to 15%", _mean_se(truth["drawn_share_first_quarter"]),
                                               (0.10, 0.15)),
        "low_score_near_limit_draw_about_60pct_in_12m": (
            "40% to 80%", _mean_se(truth.loc[_low_score_near_limit(truth), "drawn_share_12m"]), (0.4, 0.8)),
        "high_score_draw_near_zero": (
            "at most 10%", _mean_se(truth.loc[_high_score(truth), "drawn_share_12m"]), (-np.inf, 0.1)),
        "true_probability_auc": (f"{auc_low} to {auc_high}", None if quality["auc"] is None
                                 else (quality["auc"], quality["auc_standard_error"]), (auc_low, auc_high)),
        "true_probability_calibration_slope_0_9_to_1_1": (
            "0.9 to 1.1 (borrowers no unforeseen outage struck)",
            None if quality["calibration_slope_spared_by_unforeseen_outages"] is None
            else (quality["calibration_slope_spared_by_unforeseen_outages"],
                  quality["calibration_slope_spared_standard_error"]), (0.9, 1.1)),
    }
    results = {name: _result(_within(estimate, *bounds)) for name, (_, estimate, bounds) in checks.items()}
    targets = {name: target for name, (target, _, _) in checks.items()}
    estimates = {name: _estimate(estimate) for name, (_, estimate, _) in checks.items()}
    ordered = "request_and_marketing_above_score_improvement"
    targets[ordered] = "request, marketing > score improvement"
    estimates[ordered] = {t: _estimate(d) for t, d in above.items()} or None
    results[ordered] = _result(all(_within(d, 0.0) for d in above.values()) if above else None)
    return targets, estimates, results


def _estimate(estimate: tuple[float, float] | None) -> dict | None:
    return None if estimate is None else {"value": estimate[0], "standard_error": estimate[1]}
