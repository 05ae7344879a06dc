"""Metrics against sklearn/scipy, hand-computed examples and constructed failure cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from scipy.stats import ks_2samp
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from pipeline import metrics


def scored(n: int, seed: int, signal: float = 1.5, base: float = -1.2) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn as Bernoulli(p) from a logistic model: p is the true probability."""
    rng = np.random.default_rng(seed)
    p = expit(base + signal * rng.normal(size=n))
    y = (rng.random(n) < p).astype(int)
    return y, p


# --- ranking ----------------------------------------------------------------------------------


def test_ranking_matches_sklearn_and_scipy():
    y, p = scored(3000, seed=1)
    result = metrics.ranking(y, p)
    assert result["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert result["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert result["gini"] == pytest.approx(2 * result["auc"] - 1, abs=1e-12)
    assert result["ks"] == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)
    assert result["n"] == 3000 and result["positives"] == int(y.sum())
    assert result["base_rate"] == pytest.approx(y.mean())
    json.dumps(result)


def test_ranking_ks_with_tied_scores_matches_scipy():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    p = np.round(0.3 * y + rng.random(500), 1)  # few distinct values, many ties
    assert metrics.ranking(y, p)["ks"] == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)


def test_ranking_hand_example():
    result = metrics.ranking([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert result["auc"] == pytest.approx(0.75)
    assert result["gini"] == pytest.approx(0.5)
    assert result["ks"] == pytest.approx(0.5)


@pytest.mark.parametrize("y, p, message", [
    ([0, 1, 1], [0.1, 0.2], "same length"),
    ([], [], "empty"),
    ([0, 2], [0.1, 0.2], "only 0 and 1"),
    ([1, 1], [0.1, 0.2], "both classes"),
])
def test_ranking_rejects_bad_input(y, p, message):
    with pytest.raises(ValueError, match=message):
        metrics.ranking(y, p)


def test_ks_curve_shape_and_gap():
    y, p = scored(2000, seed=3)
    curve = metrics.ks_curve(y, p, points=101)
    assert list(curve.columns) == ["threshold", "tpr", "fpr", "gap"]
    assert len(curve) == 101 and curve["threshold"].is_monotonic_increasing
    assert curve[["tpr", "fpr"]].iloc[0].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(curve["gap"], curve["tpr"] - curve["fpr"])
    ks = metrics.ranking(y, p)["ks"]
    assert ks - 0.05 < curve["gap"].max() <= ks + 1e-12


def test_ks_curve_by_hand():
    # thresholds are the quantiles 0, .25, .5, .75, 1 of 5 scores: exactly the sorted scores
    y = [0, 0, 1, 1, 0]
    p = [0.1, 0.4, 0.35, 0.8, 0.6]
    curve = metrics.ks_curve(y, p, points=5)
    np.testing.assert_allclose(curve["threshold"], [0.1, 0.35, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(curve["tpr"], [1, 1, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(curve["fpr"], [1, 2 / 3, 2 / 3, 1 / 3, 0])
    assert curve["gap"].max() == pytest.approx(metrics.ranking(y, p)["ks"])


def test_roc_and_pr_points_are_downsampled_with_end_points():
    y, p = scored(2000, seed=4)
    roc = metrics.roc_points(y, p, points=50)
    assert list(roc.columns) == ["fpr", "tpr"] and len(roc) <= 50
    assert roc.iloc[0].tolist() == [0.0, 0.0] and roc.iloc[-1].tolist() == [1.0, 1.0]
    pr = metrics.pr_points(y, p, points=50)
    assert list(pr.columns) == ["recall", "precision"] and len(pr) <= 50
    assert pr["recall"].iloc[0] == 0.0 and pr["recall"].iloc[-1] == 1.0
    assert pr["precision"].iloc[-1] == pytest.approx(y.mean())
    assert pr["recall"].is_monotonic_increasing


# --- probability quality ---------------------------------------------------------------------


def test_brier_and_log_loss_match_sklearn():
    y, p = scored(2000, seed=5)
    result = metrics.probability_quality(y, p)
    assert result["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert result["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    json.dumps(result)


def test_log_loss_is_finite_for_certain_wrong_predictions():
    result = metrics.probability_quality([0, 1], [1.0, 0.0])
    clipped_high = 1 - 1e-15  # not exactly 1 - 1e-15 in floating point, hence no closed form
    assert result["log_loss"] == pytest.approx(-(math.log(1e-15) + math.log(1 - clipped_high)) / 2)


def test_true_probabilities_are_calibrated():
    y, p = scored(20_000, seed=6)
    result = metrics.probability_quality(y, p)
    assert result["calibration_slope"] == pytest.approx(1.0, abs=0.1)
    assert result["calibration_intercept"] == pytest.approx(0.0, abs=0.1)
    assert result["ece"] < 0.02
    assert abs(result["calibration_in_the_large"]) < 0.01


def test_calibration_detects_over_prediction_and_wrong_spread():
    y, p = scored(20_000, seed=7)
    # sqrt(p) over-predicts; it also squeezes the log-odds together (towards half their spread
    # for small p), so the fitted slope is above 1, not below.
    too_high = metrics.probability_quality(y, p ** 0.5)
    assert too_high["calibration_in_the_large"] > 0.1
    assert too_high["calibration_slope"] > 1.1
    too_extreme = metrics.probability_quality(y, expit(2 * logit(p)))
    assert too_extreme["calibration_slope"] == pytest.approx(0.5, abs=0.05)
    too_timid = metrics.probability_quality(y, expit(0.5 * logit(p)))
    assert too_timid["calibration_slope"] == pytest.approx(2.0, abs=0.2)


def test_calibration_fit_is_nan_when_undefined():
    constant = metrics.probability_quality([0, 1, 0, 1], [0.3] * 4)
    one_class = metrics.probability_quality([0, 0, 0], [0.1, 0.2, 0.3])
    for result in (constant, one_class):
        assert math.isnan(result["calibration_slope"]) and math.isnan(result["calibration_intercept"])
    assert constant["calibration_in_the_large"] == pytest.approx(-0.2)


def test_ece_and_calibration_table_by_hand():
    y = [0, 1, 0, 1]
    p = [0.1, 0.2, 0.7, 0.9]
    # bin 1: mean p 0.15, rate 0.5 -> 0.35; bin 2: mean p 0.8, rate 0.5 -> 0.30; each half the rows
    assert metrics.probability_quality(y, p, bins=2)["ece"] == pytest.approx(0.5 * 0.35 + 0.5 * 0.30)
    table = metrics.calibration_table(y, p, bins=2)
    assert list(table.columns) == ["bin", "n", "mean_predicted", "observed_rate"]
    assert table["bin"].tolist() == [1, 2] and table["n"].tolist() == [2, 2]
    np.testing.assert_allclose(table["mean_predicted"], [0.15, 0.8])
    np.testing.assert_allclose(table["observed_rate"], [0.5, 0.5])


def test_calibration_bins_use_sorted_p_not_row_order():
    y = [1, 0, 1, 0]
    p = [0.9, 0.1, 0.7, 0.2]
    table = metrics.calibration_table(y, p, bins=2)
    np.testing.assert_allclose(table["mean_predicted"], [0.15, 0.8])
    np.testing.assert_allclose(table["observed_rate"], [0.0, 1.0])


def test_tied_probabilities_share_a_calibration_bin_whatever_the_row_order():
    """Known answers (an outside check): a constant p equal to the observed rate is calibrated,
    ECE 0, however the rows are ordered; split by row order it read 0.22 on 8 rows and 0.31 on
    rows sorted by label. Ties keep one bin, distinct values still part."""
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0])
    for order in (y, np.sort(y), np.sort(y)[::-1]):
        assert metrics.probability_quality(order, np.full(8, 0.125))["ece"] == pytest.approx(0.0)
    y = np.array([1] * 419 + [0] * 1581)
    sorted_ece = metrics.probability_quality(y, np.full(2000, 0.2))["ece"]
    shuffled = np.random.default_rng(3).permutation(y)
    assert sorted_ece == pytest.approx(metrics.probability_quality(shuffled, np.full(2000, 0.2))["ece"])
    assert sorted_ece == pytest.approx(0.2095 - 0.2)
    table = metrics.calibration_table([0, 1, 0, 1, 1, 0], [0.1, 0.1, 0.3, 0.3, 0.3, 0.9], bins=3)
    assert table["bin"].tolist() == [1, 2, 3] and table["n"].tolist() == [2, 3, 1]
    np.testing.assert_allclose(table["observed_rate"], [0.5, 2 / 3, 0.0])


# --- lift ---------------------------------------------------------------------------------------

# Outcomes of 20 rows listed from riskiest to safest: misses per decile 2,1,1,1,0,1,0,0,0,0.
RANKED_Y = np.array([1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])


def toy_lift(ranked_y: np.ndarray, seed: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Distinct scores 0.95, 0.90, ..., 0.00 in risk order, rows shuffled."""
    scores = np.linspace(0.95, 0.0, 20)
    order = np.random.default_rng(seed).permutation(20)
    return ranked_y[order], scores[order]


def test_lift_table_on_toy_set():
    y, p = toy_lift(RANKED_Y)
    table = metrics.lift_table(y, p)
    assert list(table.columns) == ["decile", "n", "misses", "miss_rate", "min_score", "max_score",
                                   "capture", "cumulative_capture", "lift"]
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["n"].tolist() == [2] * 10
    assert table["misses"].tolist() == [2, 1, 1, 1, 0, 1, 0, 0, 0, 0]
    assert table["max_score"].iloc[0] == pytest.approx(0.95)
    assert table["min_score"].iloc[0] == pytest.approx(0.90)
    assert table["capture"].sum() == pytest.approx(1.0)
    assert table["cumulative_capture"].iloc[-1] == pytest.approx(1.0)
    assert table["lift"].iloc[0] == pytest.approx(1.0 / 0.3)
    json.dumps(table.to_dict())


def test_lift_table_keeps_a_scores_ties_whole():
    """Rows of one score are not ordered by the model: a decile must not split them (by file order
    it had: a constant score's first decile caught 20 of 30 misses)."""
    y = np.zeros(200, dtype=int)
    y[:30] = 1
    table = metrics.lift_table(y, np.full(200, 0.5))
    assert table["n"].tolist() == [200] and table["misses"].tolist() == [30]
    p = np.repeat([0.9, 0.1], 100)
    y = np.r_[np.ones(30), np.zeros(70), np.ones(50), np.zeros(50)].astype(int)
    table = metrics.lift_table(y, p)
    assert table["n"].tolist() == [100, 100] and table["misses"].tolist() == [30, 50]
    # interleaved ties: each score one decile, whatever the rows' order
    p = np.random.default_rng(21).integers(0, 3, 200) / 2
    y = (p == 1.0).astype(int)
    table = metrics.lift_table(y, p)
    assert table["max_score"].tolist() == [1.0, 0.5, 0.0] and table["misses"].iloc[0] == (p == 1.0).sum()


def test_lift_table_with_fewer_rows_than_deciles():
    table = metrics.lift_table([0, 1, 1], [0.2, 0.5, 0.9])
    assert table["decile"].tolist() == [1, 2, 3] and table["misses"].tolist() == [1, 1, 0]


def test_lift_summary_rank_ordered():
    ranked = np.array([1] * 6 + [0] * 14)
    y, p = toy_lift(ranked)
    summary = metrics.lift_summary(y, p, top_share=0.1)
    assert summary["rank_ordered"] is True and summary["rank_order_breaks"] == 0
    assert summary["top_miss_rate"] == 1.0
    assert summary["top_capture"] == pytest.approx(2 / 6)
    assert summary["top_decile_capture"] == pytest.approx(2 / 6)
    json.dumps(summary)


def test_lift_summary_counts_rank_order_breaks():
    # misses per decile 1,2,0,1,0,...: rises from decile 1 to 2 and from 3 to 4
    ranked = np.array([1, 0, 1, 1, 0, 0, 1, 0] + [0] * 12)
    y, p = toy_lift(ranked)
    summary = metrics.lift_summary(y, p, top_share=0.05)
    assert summary["rank_ordered"] is False and summary["rank_order_breaks"] == 2
    assert summary["top_miss_rate"] == 1.0  # round(0.05 * 20) = 1 row: the riskiest
    assert summary["top_capture"] == pytest.approx(1 / 4)
    assert summary["top_decile_capture"] == pytest.approx(1 / 4)


def test_a_rise_between_deciles_of_one_tied_score_is_no_break():
    """Known answer from outside: a model that scored all 8 rows 0.25 failed the rank-order check
    on the one miss its tie order put in a lower decile; deciles of distinct scores still break."""
    tied = metrics.lift_summary(np.array([0, 0, 0, 0, 0, 0, 1, 0]), np.full(8, 0.25))
    assert tied["rank_ordered"] is True and tied["rank_order_breaks"] == 0
    p = np.linspace(0.95, 0.0, 20)
    p[4:8] = 0.75  # deciles 3 and 4 share one score
    y = np.array([1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1] + [0] * 8)  # rises 3 -> 4 (tied) and 5 -> 6
    assert metrics.lift_summary(y, p)["rank_order_breaks"] == 1


def test_scores_shared_across_every_decile_boundary_still_break():
    """Known answer from outside: 8 scores for 800 rows put one score on every decile boundary,
    and a rule that skipped deciles sharing a score found no break in miss rates of 0, 0.03,
    0.06, 0.01, ... The scores themselves rank: 100 rows each, misses 0, 3, 6, 1, 0, 2, 1, 1."""
    p = np.repeat(np.linspace(0.4, 0.05, 8), 100)
    y = np.zeros(800, dtype=int)
    for level, misses in enumerate([0, 3, 6, 1, 0, 2, 1, 1]):
        y[level * 100:level * 100 + misses] = 1
    summary = metrics.lift_summary(y, p)
    assert summary["rank_order_breaks"] == 3 and summary["rank_ordered"] is False  # 0->3, 3->6, 0->2


def test_lift_summary_on_toy_set_with_one_break():
    y, p = toy_lift(RANKED_Y)
    summary = metrics.lift_summary(y, p)
    assert summary["rank_ordered"] is False and summary["rank_order_breaks"] == 1


# --- flagging --------------------------------------------------------------------------------


def test_flagged_marks_the_riskiest_rows():
    p = np.random.default_rng(9).random(38)
    mask = metrics.flagged(p, 0.2)
    assert mask.dtype == bool and mask.sum() == round(0.2 * 38) == 8  # rounded, not truncated
    assert p[mask].min() > p[~mask].max()


def test_flagged_ties_and_edge_rates():
    p = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    assert metrics.flagged(p, 0.4).tolist() == [True, True, False, False, False]
    assert not metrics.flagged(p, 0.0).any()
    assert metrics.flagged(p, 1.0).all()
    many = np.random.default_rng(20).integers(0, 5, 300) / 4  # many ties
    mask = metrics.flagged(many, 0.3)
    threshold = many[mask].min()
    assert mask.sum() == 90 and (mask[many > threshold]).all() and not mask[many < threshold].any()
    tied = np.flatnonzero(many == threshold)
    assert mask[tied].tolist() == sorted(mask[tied].tolist(), reverse=True)  # earliest ties first
    with pytest.raises(ValueError, match="flag_rate"):
        metrics.flagged(p, 1.5)


# --- stability --------------------------------------------------------------------------------


def test_psi_of_identical_samples_is_zero():
    x = np.random.default_rng(10).normal(size=2000)
    result = metrics.psi(x, x.copy())
    assert result["psi"] == 0.0 and result["flag"] == "stable"
    assert len(result["bins"]) == 10
    json.dumps(result)


def test_psi_of_identical_discrete_distributions_is_zero():
    rng = np.random.default_rng(11)
    expected = rng.choice([0, 1, 2], size=1000, p=[0.7, 0.25, 0.05])
    result = metrics.psi(expected, rng.permutation(expected))
    assert result["psi"] == pytest.approx(0.0, abs=1e-15)
    assert [b["expected_count"] for b in result["bins"]] == [int((expected == v).sum()) for v in (0, 1, 2)]


def test_psi_two_bins_by_hand():
    expected = np.array([0] * 50 + [1] * 50)
    actual = np.array([0] * 80 + [1] * 20)
    result = metrics.psi(expected, actual, bins=2)
    assert result["psi"] == pytest.approx(0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5))
    assert result["flag"] == "shifted"
    assert [b["actual_count"] for b in result["bins"]] == [80, 20]
    assert sum(b["contribution"] for b in result["bins"]) == pytest.approx(result["psi"])


def test_psi_floors_empty_bins():
    result = metrics.psi([0] * 50 + [1] * 50, [0] * 10, bins=2)
    assert result["bins"][1]["actual_share"] == 1e-4
    expected_psi = 0.5 * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert result["psi"] == pytest.approx(expected_psi)


def test_psi_of_shifted_normal_is_flagged_consistently():
    rng = np.random.default_rng(12)
    result = metrics.psi(rng.normal(0, 1, 50_000), rng.normal(0.5, 1, 50_000))
    assert 0.15 < result["psi"] < 0.35  # about the squared shift, 0.25, less a little for binning
    assert result["flag"] == ("watch" if result["psi"] < 0.25 else "shifted")


def test_psi_missing_values_get_their_own_bin():
    rng = np.random.default_rng(13)
    expected = rng.normal(size=1000)
    actual = rng.normal(size=1000)
    expected[:100] = np.nan
    actual[:300] = np.nan
    result = metrics.psi(expected, pd.Series(actual))
    last = result["bins"][-1]
    assert last["bin"] == "missing" and last["lower"] is None
    assert (last["expected_count"], last["actual_count"]) == (100, 300)
    assert last["contribution"] == pytest.approx(0.2 * math.log(3))
    assert sum(b["expected_count"] for b in result["bins"]) == 1000
    assert sum(b["actual_count"] for b in result["bins"]) == 1000


def test_psi_missing_bin_only_when_needed_and_pandas_na():
    assert all(b["bin"] != "missing" for b in metrics.psi([1.0, 2.0, 3.0], [1.0, 2.0])["bins"])
    result = metrics.psi(pd.Series([1, 2, 3], dtype="Int64"), pd.Series([1, None, 3], dtype="Int64"))
    assert result["bins"][-1]["bin"] == "missing" and result["bins"][-1]["actual_count"] == 1


def test_psi_counts_actual_values_outside_expected_range():
    rng = np.random.default_rng(14)
    expected = rng.random(1000)
    actual = np.concatenate([rng.uniform(5, 6, 500), rng.uniform(-6, -5, 300)])
    result = metrics.psi(expected, actual)
    assert result["bins"][0]["lower"] == -math.inf and result["bins"][-1]["upper"] == math.inf
    assert result["bins"][0]["bin"].startswith("(-inf, ") and result["bins"][-1]["bin"].endswith(", inf)")
    assert result["bins"][-1]["actual_count"] == 500 and result["bins"][0]["actual_count"] == 300
    assert sum(b["actual_count"] for b in result["bins"]) == 800
    assert result["flag"] == "shifted"


def test_csi_sorted_by_psi():
    rng = np.random.default_rng(15)
    expected = pd.DataFrame({"stable": rng.normal(size=2000), "moved": rng.normal(size=2000),
                             "binary": rng.integers(0, 2, 2000)})
    actual = pd.DataFrame({"stable": rng.normal(size=2000), "moved": rng.normal(1.0, 1, 2000),
                           "binary": rng.integers(0, 2, 2000)})
    table = metrics.csi(expected, actual, ["stable", "moved", "binary"])
    assert list(table.columns) == ["feature", "psi", "baseline", "flag", "bins_used"]
    assert (table["baseline"] == 0.0).all()  # no months given
    assert table["feature"].iloc[0] == "moved" and table["flag"].iloc[0] == "shifted"
    assert table["psi"].is_monotonic_decreasing
    assert table.set_index("feature")["bins_used"].to_dict() == {"moved": 10, "stable": 10, "binary": 2}
    json.dumps(table.to_dict())


# --- stability of ranking over time ----------------------------------------------------------


def test_gini_by_period_trend_and_skipping():
    rng = np.random.default_rng(16)
    frames = []
    # the score sees the latent risk through ever more noise: Gini falls period by period
    for month, noise in [("2024-03", 3.0), ("2024-01", 0.2), ("2024-04", 6.0), ("2024-02", 1.0)]:
        latent = rng.normal(size=600)
        y = (rng.random(600) < expit(-1 + 2 * latent)).astype(int)
        p = expit(latent + noise * rng.normal(size=600))
        frames.append(pd.DataFrame({"period": month, "y": y, "p": p}))
    frames.append(pd.DataFrame({"period": "2024-05", "y": rng.integers(0, 2, 50), "p": rng.random(50)}))
    frames.append(pd.DataFrame({"period": "2024-06", "y": 0, "p": rng.random(300)}))
    data = pd.concat(frames, ignore_index=True)
    result = metrics.gini_by_period(data["y"], data["p"], data["period"], min_rows=200)
    assert [row["period"] for row in result["periods"]] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    ginis = [row["gini"] for row in result["periods"]]
    assert ginis == sorted(ginis, reverse=True)
    assert result["slope"] < 0
    assert result["mean"] == pytest.approx(np.mean(ginis))
    assert result["std"] == pytest.approx(np.std(ginis, ddof=1))
    assert all(row["n"] == 600 for row in result["periods"])
    json.dumps(result)


def test_gini_by_period_with_one_kept_period_has_no_slope():
    y, p = scored(300, seed=17)
    result = metrics.gini_by_period(y, p, ["2024-01"] * 250 + ["2024-02"] * 50)
    assert len(result["periods"]) == 1 and math.isnan(result["slope"]) and math.isnan(result["std"])


# --- distance from the truth -----------------------------------------------------------------


def test_truth_gap_of_the_true_probability_is_zero():
    y, p = scored(2000, seed=18)
    result = metrics.truth_gap(y, p, p.copy())
    assert result["regression_slope"] == pytest.approx(1.0, abs=1e-9)
    assert result["regression_intercept"] == pytest.approx(0.0, abs=1e-9)
    assert result["regression_r2"] == pytest.approx(1.0, abs=1e-9)
    assert result["mean_abs_difference"] == 0.0
    assert result["auc_gap"] == 0.0
    assert result["brier_model"] == result["brier_true"]
    json.dumps(result)


def test_truth_gap_of_a_shrunk_model():
    y, p = scored(2000, seed=19)
    result = metrics.truth_gap(y, 0.1 + 0.5 * p, p)  # p = 2 * p_model - 0.2
    assert result["regression_slope"] == pytest.approx(2.0)
    assert result["regression_intercept"] == pytest.approx(-0.2)
    assert result["auc_gap"] == pytest.approx(0.0, abs=1e-12)  # same order, same AUC
    assert result["brier_model"] > result["brier_true"]
    assert result["mean_abs_difference"] == pytest.approx(np.mean(np.abs(0.1 - 0.5 * p)))


def test_csi_compares_text_columns_by_category_shares():
    train = pd.DataFrame({"segment": pd.array(["a"] * 50 + ["b"] * 50, dtype="str")})
    same = pd.DataFrame({"segment": pd.array(["b"] * 50 + ["a"] * 50, dtype="str")})
    moved = pd.DataFrame({"segment": pd.array(["a"] * 90 + ["c"] * 10, dtype="str")})
    assert metrics.csi(train, same, ["segment"])["psi"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert metrics.csi(train, moved, ["segment"])["psi"].iloc[0] > 0.25  # b vanished, c unseen


def test_calibration_gap_against_outcomes_is_the_ece_and_against_probabilities_a_known_answer():
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, 500)
    y = (rng.random(500) < p).astype(float)
    assert metrics.calibration_gap(y, p, 10) == metrics.probability_quality(y, p, 10)["ece"]
    # one bin: |mean p - mean rate|; two bins of 0.1 and 0.5 against 0.3 and 0.4
    assert metrics.calibration_gap(np.full(4, 0.3), np.full(4, 0.1), 1) == pytest.approx(0.2)
    assert metrics.calibration_gap(np.array([0.3, 0.3, 0.4, 0.4]), np.array([0.1, 0.1, 0.5, 0.5]), 2) \
        == pytest.approx(0.15)
    with pytest.raises(ValueError, match="same, non-zero length"):
        metrics.calibration_gap(np.ones(3), np.ones(2))


def test_rate_table_takes_true_probabilities_where_the_calibration_table_takes_outcomes():
    rate, p = np.array([0.3, 0.3, 0.4, 0.4]), np.array([0.5, 0.1, 0.6, 0.2])
    table = metrics.rate_table(rate, p, bins=2)
    assert table["n"].tolist() == [2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.15, 0.55])
    assert table["observed_rate"].tolist() == pytest.approx([0.35, 0.35])
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.calibration_table(rate, p, bins=2)


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_rows():
    rng = np.random.default_rng(5)

    def sample(n):
        y = (rng.random(n) < 0.2).astype(int)
        return y, rng.normal(y * 1.0, 1.0)
    small, large = sample(400), sample(20_000)
    for y, p in (small, large):
        ci = metrics.bootstrap_auc_ks(y, p, replicates=200)
        r = metrics.ranking(y, p)
        assert ci["auc"]["low"] < r["auc"] < ci["auc"]["high"]
        assert ci["ks"]["low"] < r["ks"] < ci["ks"]["high"]
    width = [metrics.bootstrap_auc_ks(y, p)["auc"] for y, p in (small, large)]
    assert width[1]["high"] - width[1]["low"] < (width[0]["high"] - width[0]["low"]) / 4
    assert metrics.bootstrap_auc_ks(*small, seed=3) == metrics.bootstrap_auc_ks(*small, seed=3)


def test_bootstrap_intervals_exist_for_a_single_miss_and_are_exact_when_separated():
    """Known answer from outside: a 40-row test set with 1 miss had an interval of nulls (a
    replicate without a miss has no AUC). Stratified, every replicate keeps the miss."""
    y = np.r_[1, np.zeros(39, dtype=int)]
    p = np.r_[0.5, np.linspace(0.0, 1.0, 39)]
    ci = metrics.bootstrap_auc_ks(y, p, replicates=200)
    assert all(np.isfinite([ci["auc"]["low"], ci["auc"]["high"], ci["ks"]["low"], ci["ks"]["high"]]))
    assert 0.0 <= ci["auc"]["low"] <= metrics.ranking(y, p)["auc"] <= ci["auc"]["high"] <= 1.0
    apart = metrics.bootstrap_auc_ks([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9], replicates=50)
    assert apart["auc"] == {"low": 1.0, "high": 1.0} and apart["ks"] == {"low": 1.0, "high": 1.0}


def test_watched_features_are_the_most_important_ties_by_name_and_zero_means_all():
    importance = {"b": 2.0, "a": 2.0, "c": 5.0, "d": 0.0}
    assert metrics.watched_features(importance, 2) == ["c", "a"]
    assert metrics.watched_features(importance, 0) == ["c", "a", "b", "d"]
    assert metrics.watched_features(importance, 9) == ["c", "a", "b", "d"]


def test_the_calibration_slopes_standard_error_is_the_spread_of_slopes_over_samples():
    rng = np.random.default_rng(5)
    slopes, errors = [], []
    for _ in range(200):
        p = rng.uniform(0.02, 0.6, 2000)
        y = (rng.random(2000) < expit(0.2 + 1.3 * logit(p))).astype(float)
        intercept, slope = metrics.logistic_calibration(y, p)
        slopes.append(slope)
        errors.append(metrics.logistic_calibration_slope_se(y, p, intercept, slope))
    assert np.mean(slopes) == pytest.approx(1.3, abs=0.03)
    assert np.mean(errors) == pytest.approx(np.std(slopes, ddof=1), rel=0.15)


def test_the_aucs_standard_error_is_hanley_and_mcneils_and_the_spread_of_aucs_over_samples():
    # their equation 1 by hand for AUC 0.8 on 50 and 50: q1 = 2/3, q2 = 32/45
    by_hand = math.sqrt((0.16 + 49 * (2 / 3 - 0.64) + 49 * (32 / 45 - 0.64)) / 2500)
    assert metrics.auc_standard_error(0.8, 50, 50) == pytest.approx(by_hand)
    rng = np.random.default_rng(6)
    aucs = []
    for _ in range(300):  # exponential scores, the law the formula assumes: AUC = 1 / (1 + 0.5)
        scores = np.concatenate([rng.exponential(1.0, 200), rng.exponential(0.5, 800)])
        aucs.append(roc_auc_score(np.r_[np.ones(200), np.zeros(800)], scores))
    assert np.mean(aucs) == pytest.approx(2 / 3, abs=0.005)
    assert metrics.auc_standard_error(2 / 3, 200, 800) == pytest.approx(np.std(aucs, ddof=1), rel=0.15)


def test_the_largest_group_psi_is_one_months_and_ignores_months_too_small_to_tell():
    reference = metrics.psi_reference(np.repeat([1.0, 2.0], 500))
    values = np.r_[np.repeat([1.0, 2.0], 150), np.full(300, 1.0), np.full(50, 2.0)]
    months = np.r_[np.full(300, "2025-01"), np.full(300, "2025-02"), np.full(50, "2025-03")]
    february = metrics.psi(np.repeat([1.0, 2.0], 500), np.full(300, 1.0))["psi"]
    assert metrics.largest_group_psi(reference, values, months) == pytest.approx(february)
    assert metrics.largest_group_psi(reference, values[:300], months[:300]) == pytest.approx(0.0)
    assert metrics.largest_group_psi(reference, values[600:], months[600:]) == 0.0  # March: 50 rows
    assert metrics.largest_group_psi(reference, values[600:], months[600:], min_rows=0) > 4


def test_csi_flags_a_feature_beyond_its_largest_training_months_movement():
    """A feature that moves this much between training months (months_of_history's calendar
    fractions) is not flagged for moving as much in the test rows; one that moves beyond is."""
    rng = np.random.default_rng(16)
    months = np.repeat(["2025-01", "2025-02"], 1000)
    calendar = np.where(months == "2025-01", rng.normal(0, 1, 2000), rng.normal(0.8, 1, 2000))
    expected = pd.DataFrame({"calendar": calendar, "steady": rng.normal(size=2000)})
    actual = pd.DataFrame({"calendar": rng.normal(0.8, 1, 2000), "steady": rng.normal(0.8, 1, 2000)})
    table = metrics.csi(expected, actual, ["calendar", "steady"], groups=months).set_index("feature")
    assert table.loc["calendar", "baseline"] > 0.1 and table.loc["calendar", "flag"] == "stable"
    assert table.loc["steady", "baseline"] < 0.05 and table.loc["steady", "flag"] == "shifted"
    # months too small for a PSI (50 rows each) are pooled, as scoring's reference pools them: the
    # model card's baselines had all read 0 on a small portfolio, and flagged the calendar
    small = np.repeat([f"2025-{m:02d}" for m in range(1, 41)], 50)
    table = metrics.csi(expected, actual, ["calendar"], groups=small).set_index("feature")
    assert table.loc["calendar", "baseline"] > 0.1 and table.loc["calendar", "flag"] == "stable"


def test_months_too_small_for_a_psi_are_pooled_with_the_next_in_time_order():
    """Known answers: months of 120, 90, 300, 50 and 40 rows pool to 200 as (120 + 90), 300, and
    (50 + 40) joined to the pool before it; months that all together hold fewer are one pool."""
    months = np.repeat(["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"], [120, 90, 300, 50, 40])
    pooled = metrics.pooled_groups(np.random.default_rng(0).permutation(months), 200)
    got = pd.Series(pooled).groupby(pooled).size().tolist()
    assert got == [210, 390]
    assert set(metrics.pooled_groups(months[:100], 200)) == {0}
    assert metrics.pooled_groups(months, 1).max() == 4  # large enough: each month its own


def test_a_small_portfolio_still_measures_how_far_a_feature_moves_between_months():
    """Months of 60 rows each had given no month a PSI, so every baseline read 0 and a calendar
    feature flagged every batch; pooled, the baseline sees the movement."""
    rng = np.random.default_rng(3)
    months = np.repeat([f"2025-{m:02d}" for m in range(1, 13)], 60)
    values = rng.normal(size=len(months)) + np.repeat(np.arange(12) / 4, 60)  # drifts month by month
    reference = metrics.psi_reference(values)
    assert metrics.largest_group_psi(reference, values, months) == 0.0
    assert metrics.largest_group_psi(reference, values, metrics.pooled_groups(months)) > 0.1
