"""The monitor's figures, alerts, recalibration and backtest on small hand-built streams."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from pipeline import metrics, model, monitor, split, train
from pipeline.config import CAUSES
from pipeline.contract import LABEL_MATURES, ContractError, features_table
from pipeline.errors import UsageError
from tests.conftest import make_params

PARAMS = make_params({"train": {"lightgbm": {"num_boost_round": 60, "early_stopping_rounds": 10}}})
ISOTONIC = PARAMS.train.lightgbm.model_copy(update={"calibration": "isotonic"})
RULES = PARAMS.monitor.alerts


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities spread like a credit score's and outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(-2.2, 0.9, n))
    return p, (rng.random(n) < p).astype(float)


def _month(p: np.ndarray, y: np.ndarray, reference: dict, feature: np.ndarray) -> dict:
    drifted = monitor.drift(reference, p, feature[:, None], ["x"], ["x"])
    return {**monitor.before_labels(p, drifted, 10), **monitor.realised(y, p, 10)}


def _reference(p: np.ndarray, feature: np.ndarray) -> dict:
    return {"bins": {"score": metrics.psi_reference(p), "x": metrics.psi_reference(feature)},
            "importance": {"x": 1.0}}


def test_a_batch_from_the_training_distribution_raises_no_alert():
    p_train, y_train = _calibrated(40_000, 1)
    reference = _reference(p_train, logit(p_train))
    auc = metrics.ranking(y_train, p_train)["auc"]
    p, y = _calibrated(8_000, 2)
    row = _month(p, y, reference, logit(p))
    assert monitor.alerts(row, RULES, auc) == []
    assert row["score_psi"] < 0.02
    # calibrated probabilities: the estimate is close to the realised AUC, the ECE near its floor
    assert abs(row["estimated_auc"] - row["realised_auc"]) < 0.02
    assert row["realised_ece"] < 2.5 * row["estimated_ece"]


def test_a_shifted_score_distribution_raises_an_alert():
    p_train, y_train = _calibrated(40_000, 1)
    reference = _reference(p_train, logit(p_train))
    auc = metrics.ranking(y_train, p_train)["auc"]
    p, y = _calibrated(8_000, 3)
    shifted = expit(logit(p) + 0.6)  # the population got riskier in the model's eyes
    y_shifted = (np.random.default_rng(4).random(len(p)) < shifted).astype(float)
    alerts = monitor.alerts(_month(shifted, y_shifted, reference, logit(shifted)), RULES, auc)
    assert {"score_psi", "feature_csi"} <= {a["rule"] for a in alerts}
    # drift alerts need no labels: they are raised with the batch
    assert not any(a["needs_labels"] for a in alerts if a["rule"] in ("score_psi", "feature_csi"))


def test_a_miscalibrated_model_raises_a_realised_alert_the_estimate_cannot_see():
    p_train, y_train = _calibrated(40_000, 1)
    reference = _reference(p_train, logit(p_train))
    auc = metrics.ranking(y_train, p_train)["auc"]
    p, _ = _calibrated(8_000, 5)
    worse = expit(logit(p) + 0.5)  # the outcome got riskier, the scores did not move
    y = (np.random.default_rng(6).random(len(p)) < worse).astype(float)
    alerts = monitor.alerts(_month(p, y, reference, logit(p)), RULES, auc)
    assert {a["rule"] for a in alerts} >= {"realised_ece", "calibration_in_the_large"}
    assert all(a["needs_labels"] for a in alerts)


def test_recalibration_on_matured_labels_reduces_ece():
    rng = np.random.default_rng(7)
    truth = expit(rng.normal(-2.0, 1.0, 30_000))
    y = (rng.random(len(truth)) < truth).astype(float)
    raw = expit(0.6 * logit(truth) - 0.8)  # too timid and too low: a hand-built miscalibration
    fit, new = slice(0, 15_000), slice(15_000, None)
    calibration = monitor.recalibrate(raw[fit], y[fit], ISOTONIC)
    before = metrics.calibration_gap(y[new], raw[new], 10)
    after = metrics.calibration_gap(y[new], model.calibrate(raw[new], calibration), 10)
    assert before > 0.03
    assert after < before / 3


def test_estimated_auc_is_the_auc_expected_from_calibrated_probabilities():
    p, _ = _calibrated(20_000, 8)
    draws = [metrics.ranking((np.random.default_rng(s).random(len(p)) < p).astype(float), p)["auc"]
             for s in range(20)]
    assert monitor.estimated_auc(p) == pytest.approx(np.mean(draws), abs=0.005)
    # ties (isotonic steps) count half, as in the realised AUC
    stepped = np.round(p, 2)
    assert abs(monitor.estimated_auc(stepped) - monitor.estimated_auc(p)) < 0.01


def test_estimated_ece_is_the_ece_of_outcomes_drawn_from_the_probabilities():
    p, _ = _calibrated(6_000, 9)
    draws = [metrics.calibration_gap((np.random.default_rng(s).random(len(p)) < p).astype(float), p, 10)
             for s in range(40)]
    assert monitor.estimated_ece(p, 10) == pytest.approx(np.mean(draws), rel=0.1)
    # tied probabilities share a bin there as in the realised ECE: a constant p is one bin, whose
    # floor is a single rate's sampling error (split in ten it was 4-5 times the realised figure)
    flat = np.full(1000, 0.2)
    drawn = [metrics.probability_quality(np.random.default_rng(s).random(1000) < flat, flat)["ece"]
             for s in range(200)]
    assert monitor.estimated_ece(flat, 10) == pytest.approx(np.mean(drawn), rel=0.15)
    assert monitor.estimated_ece(flat, 10) < 0.015


def _stream(months: int = 8, per_month: int = 1500, shift_from: int = 5) -> pd.DataFrame:
    """Two features; from month ``shift_from`` on, the same features miss more (a rule change)."""
    rng = np.random.default_rng(11)
    n = months * per_month
    starts = pd.date_range("2025-01-01", periods=months, freq="MS")
    month = pd.DatetimeIndex(np.repeat(starts.to_numpy(), per_month))
    scoring = month + pd.to_timedelta(rng.integers(0, 28, n), unit="D")
    x = rng.normal(size=(n, 2))
    shift = np.where(np.arange(n) // per_month >= shift_from, 0.8, 0.0)
    p_true = expit(-2.0 + 0.9 * x[:, 0] + 0.5 * x[:, 1] + shift)
    return pd.DataFrame({"borrower_id": np.arange(n), "x1": x[:, 0], "x2": x[:, 1],
                         "label": (rng.random(n) < p_true).astype("int64"), "p_true": p_true,
                         "scoring_date": scoring, monitor.MONTH: month,
                         monitor.LABEL_MATURES: scoring + pd.Timedelta(days=70)})


def _champion(frame: pd.DataFrame) -> model.CalibratedLightGBM:
    first = frame[monitor.MONTH] == frame[monitor.MONTH].min()
    second = frame[monitor.MONTH] == sorted(frame[monitor.MONTH].unique())[1]
    return train.fit_calibrated_lightgbm(frame[first], frame[second], ["x1", "x2"], [], {}, ISOTONIC)


def _scored(frame: pd.DataFrame) -> tuple:
    """The champion of ``frame``, its matrix, probabilities, features and a drift reference of them."""
    champion = _champion(frame)
    matrix = champion.matrix(frame)
    p = champion.probability(matrix)
    columns = champion.features
    reference = {"bins": {"score": metrics.psi_reference(p),
                          **{c: metrics.psi_reference(matrix[:, j]) for j, c in enumerate(columns)}},
                 "importance": {"x1": 2.0, "x2": 1.0}}
    return champion, matrix, p, columns, reference


def test_the_backtest_is_deterministic_and_acts_only_on_matured_labels():
    frame = _stream()
    champion = _champion(frame)
    raw = champion.raw(frame)
    scorecard = expit(-2.0 + 0.5 * frame["x1"].to_numpy())
    settings = PARAMS.monitor.model_copy(update={"retrain_months": 3, "retrain_cooldown_months": 2})
    months = sorted(frame[monitor.MONTH].unique())
    alert_log = pd.DataFrame({"raised": [months[5], months[6]], "batch": [months[5], months[6]],
                              "rule": ["feature_csi"] * 2, "value": [0.3] * 2, "limit": [0.25] * 2,
                              "needs_labels": [False] * 2})
    runs = [monitor.backtest(frame, champion, raw, scorecard, alert_log, settings, PARAMS.train.lightgbm,
                             PARAMS.gate, []) for _ in range(2)]
    (scores, candidates), (again, candidates_again) = runs
    for name in monitor.POLICIES:
        np.testing.assert_array_equal(scores[name], again[name])
    assert [(c.policy, c.month, c.applied, c.fitted_on) for c in candidates] == \
           [(c.policy, c.month, c.applied, c.fitted_on) for c in candidates_again]
    # acting at the start of months 6 and 7 (after the alerts of months 5 and 6): labels mature
    # 70 days after scoring, so only batches at least three months old are used
    assert {c.month for c in candidates} == {months[6], months[7]}
    for c in candidates:
        assert max(c.fitted_on) < monitor.month_label(c.month - pd.DateOffset(months=2))
    # the frozen policy never changes; a policy changes only batches after its action
    np.testing.assert_array_equal(scores["frozen"], model.calibrate(raw, champion.calibration))
    before = (frame[monitor.MONTH] < months[6]).to_numpy()
    for name in monitor.POLICIES:
        np.testing.assert_array_equal(scores[name][before], scores["frozen"][before])


def test_a_feature_that_moves_every_training_month_alerts_only_beyond_that():
    rng = np.random.default_rng(12)
    months = pd.Series(pd.DatetimeIndex(np.repeat(pd.date_range("2024-01-01", periods=6, freq="MS"), 2000)))
    # a calendar artefact: even months take one value, odd months another
    calendar = np.where(months.dt.month % 2 == 0, 25.0, 25.03) + rng.integers(0, 3, len(months))
    flag = (rng.random(len(months)) < 0.01).astype(float)  # rare, and steady in training
    matrix = np.column_stack([calendar, flag])
    reference = {"bins": {"calendar": metrics.psi_reference(calendar), "flag": metrics.psi_reference(flag),
                          "score": metrics.psi_reference(rng.random(100))},
                 "importance": {"calendar": 2.0, "flag": 1.0}}
    watched = metrics.watched_features(reference["importance"], 0)
    assert watched == ["calendar", "flag"]
    baseline = monitor.csi_baseline(reference, matrix, watched, watched, months)
    assert baseline["calendar"] > PARAMS.monitor.alerts.feature_csi > baseline["flag"]
    p = rng.random(2000) * 0.3
    steady = monitor.drift(reference, p, matrix[:2000], watched, watched)
    same = monitor.before_labels(p, steady, 10, baseline)
    assert same["max_csi"] <= PARAMS.monitor.alerts.feature_csi
    # a month that moved less than training months do is no drift at all, not a negative one
    quiet = monitor.before_labels(p, {**steady, "csi": {c: 0.0 for c in watched}}, 10, baseline)
    assert quiet["max_csi"] == 0.0 and quiet["max_csi_raw"] == 0.0
    campaign = matrix[:2000].copy()
    campaign[:300, 1] = 1.0  # the platform asks 15% of borrowers to re-authorise
    moved = monitor.before_labels(p, monitor.drift(reference, p, campaign, watched, watched), 10, baseline)
    assert moved["max_csi_feature"] == "flag"
    assert moved["max_csi"] > PARAMS.monitor.alerts.feature_csi


def test_a_batch_is_affected_once_most_of_its_label_windows_reach_the_change():
    frame = _stream(months=4, per_month=500)
    touched = monitor.touched_share(frame, [pd.Timestamp("2025-05-15")], PARAMS.label)
    # labels mature 70 days after scoring: a March batch reaches mid-May from its 7th day on
    assert touched.iloc[0] == 0.0 and touched.iloc[1] < 0.5 < touched.iloc[2] and touched.iloc[3] == 1.0
    assert monitor.first_affected_month(touched) == pd.Timestamp("2025-03-01")


def test_the_month_by_month_report_goals_and_chart_on_a_small_stream():
    frame = _stream()
    champion = _champion(frame)
    matrix = champion.matrix(frame)
    p = champion.probability(matrix)
    first = (frame[monitor.MONTH] == frame[monitor.MONTH].min()).to_numpy()
    bins = {c: metrics.psi_reference(matrix[first, j]) for j, c in enumerate(champion.features)}
    reference = {"bins": {"score": metrics.psi_reference(p[first]), **bins},
                 "importance": {"x1": 2.0, "x2": 1.0}}
    # the reference AUC is the validation month's, as the pipeline's (the training month's own is
    # in sample: a model that sees every row of it ranks it better than any later month)
    valid = (frame[monitor.MONTH] == sorted(frame[monitor.MONTH].unique())[1]).to_numpy()
    auc = metrics.ranking(frame["label"][valid], p[valid])["auc"]
    table, alert_log = monitor.monitor(frame, p, matrix, champion.features, reference, auc, {},
                                       PARAMS.monitor)
    assert len(table) == 8 and table["rows"].sum() == len(frame)
    # labels of a batch arrive once the last of them matured (70 days): the fourth month after it
    assert (table["labels_arrive"] == table[monitor.MONTH] + pd.DateOffset(months=4)).all()
    # the shift from month 5 on makes the same features miss more: only the labels can show it
    late = alert_log[alert_log["batch"] >= table[monitor.MONTH][5]]
    assert {"calibration_in_the_large"} <= set(late["rule"])
    assert late.loc[late["needs_labels"], "raised"].min() == table[monitor.MONTH][5] + pd.DateOffset(months=4)
    policies = monitor.by_policy(frame, {"frozen": p}, 10)
    truth = monitor.truth_view(frame, p, PARAMS.monitor.alerts, auc, 10)
    # the truth sees the shift in every month from the sixth, and the model sound before it
    shifted = truth[monitor.MONTH] >= table[monitor.MONTH][5]
    assert truth.loc[shifted, "truth_breaks"].map(lambda b: "calibration_in_the_large" in b).all()
    assert (truth.loc[~shifted, "truth_calibration_in_the_large"].abs() < 0.02).all()
    goals = monitor.goals(table, alert_log, unchanged(policies), truth, table[monitor.MONTH][5])
    assert goals["first_affected_month"] == "2025-06"
    assert goals["months_from_change_to_alert"] == 4  # realised alerts only: no input moved
    limits = goals["fair_truth_limits"]
    truth_auc = truth.set_index(monitor.MONTH)["truth_realised_auc"].reindex(table[monitor.MONTH]).to_numpy()
    before = (table[monitor.MONTH] < table[monitor.MONTH][5]).to_numpy()
    assert limits["max_auc_estimate_gap_before_change_from_true_probabilities"] == pytest.approx(
        np.nanmax(np.abs(truth_auc - table["realised_auc"].to_numpy())[before]))
    # the stream ends before the alert (month 9): nothing from it on
    assert limits["ece_floor_from_the_alert"] == limits["truth_ece_from_the_alert"] == {}
    assert (policies["truth_ece"] >= policies["truth_citl"].abs() - 1e-12).all()  # ECE >= |CITL|
    monthly = monitor.monthly_table(table, policies, truth)
    assert monthly["month_number"].tolist() == list(range(1, 9)) and list(monthly.columns[:2]) == \
        [monitor.MONTH, "month_number"] and "truth_breaks" not in monthly
    early = alert_log[alert_log["batch"] < table[monitor.MONTH][5]]
    assert len(goals["false_alarms_before_change"]) + len(goals["alerts_before_change_confirmed_by_truth"]) \
        == len(early)
    pngs = []
    for _ in range(2):
        buffer = io.BytesIO()
        monitor.monthly_figure(table, unchanged(policies), alert_log, [], table[monitor.MONTH][5]).savefig(
            buffer, format="png", metadata={"Software": None})
        pngs.append(buffer.getvalue())
    assert pngs[0] == pngs[1] and len(pngs[0]) > 10_000


def test_a_month_in_which_no_one_missed_has_no_auc_and_raises_no_ranking_alert():
    """A small month (monitor.borrowers_per_month of 5) can hold no miss: `monitor` stopped with a
    traceback ("y must contain both classes"); its AUC is now NaN, and the rest of the report stands."""
    frame = _stream()
    quiet = frame[monitor.MONTH] == sorted(frame[monitor.MONTH].unique())[3]
    frame.loc[quiet, "label"] = 0
    _, matrix, p, columns, reference = _scored(frame)
    table, alert_log = monitor.monitor(frame, p, matrix, columns, reference, 0.99, {}, PARAMS.monitor)
    assert table["realised_auc"].isna().tolist() == quiet.groupby(frame[monitor.MONTH]).all().tolist()
    assert table["realised_auc"].notna().sum() == len(table) - 1 and table["rows"].sum() == len(frame)
    nothing_ranked = alert_log[(alert_log["batch"] == frame.loc[quiet, monitor.MONTH].iloc[0])
                               & alert_log["rule"].eq("realised_auc_drop")]
    assert nothing_ranked.empty  # while the AUC of 0.99 is beyond every other month
    assert alert_log["rule"].eq("realised_auc_drop").sum() == len(table) - 1
    policies = monitor.by_policy(frame, {"frozen": p}, 10)
    assert policies["truth_auc"].isna().sum() == policies["frozen_auc"].isna().sum() == 1
    truth = monitor.truth_view(frame, p, PARAMS.monitor.alerts, 0.99, 10)
    goals = monitor.goals(table, alert_log, unchanged(policies), truth, table[monitor.MONTH][5])
    # the month without a miss is left out of the gap before the change, not turned into NaN
    before = (table[monitor.MONTH] < table[monitor.MONTH][5]).to_numpy()
    gap = np.abs(table["estimated_auc"] - table["realised_auc"]).to_numpy()[before]
    assert np.isnan(gap).sum() == 1
    assert goals["max_auc_estimate_gap_before_change"] == pytest.approx(np.nanmax(gap))
    assert goals["auc_estimate_within_0_02_before_change"] is bool(np.nanmax(gap) <= 0.02)
    # every batch reaches the change: the gap before it is not measured, so neither met nor missed
    unmeasured = monitor.goals(table, alert_log, unchanged(policies), truth, table[monitor.MONTH][0])
    assert unmeasured["max_auc_estimate_gap_before_change"] is None
    assert unmeasured["auc_estimate_within_0_02_before_change"] is None
    # no batch touched by a change: flagging it is neither met nor missed
    untouched = monitor.goals(table, alert_log, unchanged(policies), truth, None)
    assert untouched["flagged_in_time"] is None and untouched["first_affected_month"] is None
    monitor.monthly_figure(table, unchanged(policies), alert_log, [], table[monitor.MONTH][5])


def test_the_stream_is_read_one_row_per_borrower_with_its_label_truth_and_month(tmp_path):
    day = pd.Timestamp
    dates = [day("2025-02-03"), day("2025-02-20"), day("2025-01-09")]  # of borrowers 2, 1, 3
    tables = {"features": pd.DataFrame({"borrower_id": [2, 1, 3], "x1": [0.2, 0.1, 0.3],
                                        "scoring_date": dates}),
              "labels": pd.DataFrame({"borrower_id": [2, 1, 3], "label": [1, 0, 0], "scoring_date": dates,
                                      "first_miss_cause": ["credit", None, None],
                                      LABEL_MATURES: [d + pd.Timedelta(days=70) for d in dates]}),
              "truth": pd.DataFrame({"borrower_id": [3, 2, 1], "p_true": [0.3, 0.2, 0.1],
                                     **{f"p_true_{c}": [0.1, 0.05, 0.0] for c in CAUSES}})}
    for name, frame in tables.items():
        (tmp_path / name).mkdir()
        frame.to_parquet(tmp_path / name / "part-00000.parquet")
    stream = monitor.read_stream(tmp_path)
    assert stream["borrower_id"].tolist() == [3, 1, 2]  # by month, then id
    assert stream["label"].tolist() == [0, 0, 1] and stream["p_true"].tolist() == [0.3, 0.1, 0.2]
    assert stream[monitor.MONTH].tolist() == [day("2025-01-01"), day("2025-02-01"), day("2025-02-01")]
    assert "p_true_credit" not in stream
    # a part copied twice, or rewritten by hand: named, not a traceback (pandas' MergeError, a
    # comparison of zoned and naive dates, a label 'Y' that is no number)
    labels = tables["labels"]
    spoilt = {"borrowers are given more than once": ("features", pd.concat([tables["features"]] * 2)),
              "'stream_labels' breaks the data contract": ("labels", pd.concat([labels] * 2)),
              "column 'label'": ("labels", labels.assign(label=["Y", "N", "N"])),
              "column 'scoring_date'": ("labels", labels.assign(
                  scoring_date=labels["scoring_date"].dt.tz_localize("Asia/Shanghai")))}
    for said, (name, frame) in spoilt.items():
        frame.to_parquet(tmp_path / name / "part-00000.parquet")
        with pytest.raises(ContractError, match=said):
            monitor.read_stream(tmp_path)
        tables[name].to_parquet(tmp_path / name / "part-00000.parquet")



def test_a_stream_that_breaks_the_models_features_or_lacks_labels_is_named_not_monitored(tmp_path):
    """A code the model never learned, a missing column, a blank where training had none: each
    would be monitored as drift; labels deleted by hand had been reported as a stream simulated
    with other settings (the join dropped their borrowers)."""
    dates = pd.to_datetime(["2025-02-03", "2025-02-20", "2025-01-09"]).astype("datetime64[s]")
    features = pd.DataFrame({"borrower_id": np.array([1, 2, 3], dtype="int64"), "scoring_date": dates,
                             "employment_type": [0.0, 1.0, 2.0], "credit_score": [600.0, 650.0, 700.0]})
    tables = {"features": features,
              "labels": pd.DataFrame({"borrower_id": [1, 2, 3], "label": [1, 0, 0], "scoring_date": dates,
                                      "first_miss_cause": ["credit", None, None],
                                      LABEL_MATURES: dates + pd.Timedelta(days=70)}),
              "truth": pd.DataFrame({"borrower_id": [1, 2, 3], "p_true": [0.3, 0.2, 0.1],
                                     **{f"p_true_{c}": [0.1, 0.05, 0.0] for c in CAUSES}})}
    for name, frame in tables.items():
        (tmp_path / name).mkdir()
        frame.to_parquet(tmp_path / name / "part-00000.parquet")
    table = features_table(["employment_type", "credit_score"], never_missing=("credit_score",))
    assert len(monitor.read_stream(tmp_path, table)) == 3
    spoilt = {r"column 'employment_type'.*\b9\b": features.assign(employment_type=[0.0, 9.0, 2.0]),
              r"credit_score.*known_in_every_training_row": features.assign(credit_score=[6e2, None, 7e2]),
              r"credit_score": features.drop(columns="credit_score"),
              r"borrowers are given more than once": pd.concat([features] * 2)}
    for said, frame in spoilt.items():
        frame.to_parquet(tmp_path / "features" / "part-00000.parquet")
        with pytest.raises(ContractError, match=rf"(?s){tmp_path / 'features'}.*{said}"):
            monitor.read_stream(tmp_path, table)
    features.to_parquet(tmp_path / "features" / "part-00000.parquet")
    tables["labels"].iloc[1:].to_parquet(tmp_path / "labels" / "part-00000.parquet")
    with pytest.raises(ContractError, match=r"labels: 1 of the 3 borrowers of .*features have no row here "
                                            r"\(first \[1\]\) and 0 of its rows"):
        monitor.read_stream(tmp_path, table)


def test_a_stream_simulated_with_other_monitor_settings_is_named_not_monitored():
    """Known answers: `limitjump monitor` on a 3-month stream with params asking for 12 had
    reported 3 months and logged months=12."""
    settings = PARAMS.monitor.model_copy(update={"first_month": pd.Timestamp("2025-06-01").date(),
                                                 "months": 3, "borrowers_per_month": 2})
    months = pd.Series(pd.to_datetime(["2025-06-01"] * 3 + ["2025-07-01", "2025-08-01", "2025-08-01"]))
    assert monitor.stream_mismatch(months, settings) is None
    longer = monitor.stream_mismatch(months, settings.model_copy(update={"months": 12}))
    assert longer == ("it holds 6 borrowers scored from 2025-06 to 2025-08, while monitor asks for 24 "
                      "(12 months of 2 from 2025-06)")
    later = settings.model_copy(update={"first_month": pd.Timestamp("2025-07-01").date()})
    assert "from 2025-06 to 2025-08" in monitor.stream_mismatch(months, later)
    # as many borrowers, over twice the months at half as many a month: the months differ
    spread = settings.model_copy(update={"months": 6, "borrowers_per_month": 1})
    assert monitor.stream_mismatch(months, spread).endswith("(6 months of 1 from 2025-06)")
    gap = pd.Series(pd.to_datetime(["2025-06-01"] * 4 + ["2025-08-01"] * 2))  # nobody in July
    assert "no borrower was scored in 2025-07" in monitor.stream_mismatch(gap, settings)


def test_a_stream_of_another_seed_or_other_replicates_is_named_not_monitored():
    """An outside check ran the monitor with monitor.seed 99 and truth_replicates 4 on a stream
    simulated with 1717 and 16: as many months and borrowers, so it reported on it as its own.
    The stream keeps the settings that shaped it; the monitor names each that differs. The
    monitor's other settings (its alerts, bins) shape no stream and are not compared."""
    settings = PARAMS.monitor.model_copy(update={"first_month": pd.Timestamp("2025-06-01").date()})
    written = json.loads(json.dumps(split.stream_record(settings)))  # as the file holds it
    assert set(written) == set(split.STREAM_SHAPING) and written["first_month"] == "2025-06-01"
    assert monitor.record_mismatch(written, split.stream_record(settings)) is None
    other = settings.model_copy(update={"seed": 99, "truth_replicates": 4, "bins": 5,
                                        "watched_features": 3})
    assert monitor.record_mismatch(written, split.stream_record(other)) == (
        f"monitor.seed {settings.seed} (asked: 99); monitor.truth_replicates {settings.truth_replicates} "
        "(asked: 4)")
    assert "simulated_with.json is missing" in monitor.record_mismatch(None, split.stream_record(settings))


def test_a_stream_that_starts_within_the_fitted_months_is_refused():
    """Monitoring months the model was trained or validated on would measure it in-sample. The
    stream's command asks before it simulates (an outside check: a bad month had simulated a
    whole stream, then stopped at the monitor and removed its outputs)."""
    settings = PARAMS.monitor.model_copy(update={"first_month": pd.Timestamp("2025-05-01").date()})
    assert split.training_overlap(settings, pd.Timestamp("2025-04-30")) is None
    assert split.stream_start(settings, pd.Timestamp("2025-04-30")) == settings
    inside = split.training_overlap(settings, pd.Timestamp("2025-05-01"))
    assert inside == ("monitor.first_month 2025-05-01 is not after the model's training and validation "
                      "period, whose last scoring date is 2025-05-01: start the stream in 2025-06 or later")
    assert "in 2025-06 or later" in split.training_overlap(settings, pd.Timestamp("2025-05-31"))
    with pytest.raises(UsageError, match=r"^monitor.first_month 2025-05-01 is not after"):
        split.stream_start(settings, pd.Timestamp("2025-05-01"))


def unchanged(policies: pd.DataFrame) -> pd.DataFrame:
    """The frozen model's figures under every policy's name (no policy acted)."""
    return policies.assign(**{f"{name}_{k}": policies[f"frozen_{k}"] for name in monitor.POLICIES
                              for k in ("auc", "ece")})


def test_an_alert_is_false_only_when_the_truth_finds_its_batch_sound():
    months = pd.to_datetime(["2025-01-01", "2025-02-01"])
    rng = np.random.default_rng(3)
    p_true = rng.uniform(0.02, 0.4, 4000)
    # January: the model's probabilities are the truth's; February: twice them
    p = np.concatenate([p_true[:2000], np.minimum(2 * p_true[2000:], 1.0)])
    frame = pd.DataFrame({monitor.MONTH: np.repeat(months, 2000), "p_true": p_true})
    auc = monitor.estimated_auc(p_true)
    truth = monitor.truth_view(frame, p, PARAMS.monitor.alerts, auc, 10)
    assert truth["truth_breaks"].tolist()[0] == []
    assert {"realised_ece", "calibration_in_the_large"} <= set(truth["truth_breaks"].tolist()[1])
    assert truth["truth_realised_ece"][0] == pytest.approx(0.0, abs=1e-12)
    alert_log = pd.DataFrame({"raised": months, "batch": months, "rule": ["realised_ece", "score_psi"],
                              "value": [0.03, 0.2], "limit": [0.02, 0.1], "needs_labels": [True, False]})
    assert monitor.confirmed_by_truth(alert_log, truth).tolist() == [False, True]
    # a rule on realised figures is confirmed only by the same rule
    other = alert_log.assign(batch=months[1], rule=["realised_auc_drop", "feature_csi"])
    assert monitor.confirmed_by_truth(other, truth).tolist() == [False, True]


def test_the_true_probability_shows_a_batch_s_shared_luck():
    """Outcomes drawn from the true probabilities leave the truth calibrated; a month where every
    borrower's chance of a miss was halved by luck (fewer outages than expected) shows as the
    truth's calibration-in-the-large, which no model can know before the labels."""
    rng = np.random.default_rng(11)
    months = pd.to_datetime(["2025-01-01", "2025-02-01"])
    p_true = rng.uniform(0.05, 0.4, 20_000)
    luck = np.repeat([1.0, 0.5], 10_000)
    frame = pd.DataFrame({monitor.MONTH: np.repeat(months, 10_000), "p_true": p_true,
                          "label": (rng.random(20_000) < luck * p_true).astype(int)})
    table = monitor.by_policy(frame, {"frozen": p_true}, 10)
    assert abs(table["truth_citl"][0]) < 0.01 and table["truth_ece"][0] < 0.015
    assert table["truth_citl"][1] == pytest.approx(0.5 * p_true[10_000:].mean(), abs=0.01)
    assert table["truth_ece"][1] >= table["truth_citl"][1]


def test_the_summary_line_says_when_no_batch_comes_before_the_change():
    """A six-cycle label makes every batch of the stream reach the change: no gap to print."""
    from pipeline.cli.monitor import _summary

    goals = {"first_affected_month": "2025-06", "first_alert_after_change": "2025-07",
             "first_alert_rules": ["feature_csi"], "false_alarm_months_before_change": 0,
             "max_auc_estimate_gap_before_change": None, "months_not_judged": []}
    assert "before the change none (no batch before the change);" in _summary(goals, [])
    small = {**goals, "months_not_judged": ["2025-04", "2025-05", "2025-06"]}
    assert "before the change not measured (no batch before the change large enough to judge)" in _summary(
        small, [])
    judged = {**small, "months_not_judged": ["2025-04"], "months_judged_before_change": 2}
    assert "not measured (no batch before the change held both misses and repayments)" in _summary(judged, [])
    measured = {**goals, "max_auc_estimate_gap_before_change": 0.01234}
    assert "before the change 0.0123;" in _summary(measured, [])
    assert "first batch touched by a change 2025-06, first alert after it 2025-07 (feature_csi)," in _summary(
        goals, [])


def test_the_summary_line_says_when_no_batch_is_touched_or_no_alert_follows():
    """Three monitored months that end before the regime change; or an alert that never comes."""
    from pipeline.cli.monitor import _summary

    quiet = {"first_affected_month": None, "first_alert_after_change": None, "first_alert_rules": [],
             "false_alarm_months_before_change": 0, "max_auc_estimate_gap_before_change": 0.018,
             "months_not_judged": []}
    line = _summary(quiet, [])
    assert line.startswith("monitor: no monitored batch is touched by a change, 0 false-alarm")
    assert "None" not in line and "()" not in line
    missed = {**quiet, "first_affected_month": "2025-09"}
    assert "first batch touched by a change 2025-09, no alert after it," in _summary(missed, [])


def test_months_too_small_to_judge_are_shown_but_raise_no_alert_and_fit_nothing():
    """Known answer from outside: 25 borrowers a month raised alerts in every month on sampling
    alone, and a recalibration was fitted and passed on 22 rows with 2 misses. Below
    min_batch_rows a month is shown, not judged; nothing is fitted on it; the goals say so."""
    from pipeline.cli.monitor import _summary

    frame = _stream(months=8, per_month=300)
    champion, matrix, p, columns, reference = _scored(frame)
    judged = {}
    for least in (300, 301):
        settings = PARAMS.monitor.model_copy(update={"min_batch_rows": least})
        table, alert_log = monitor.monitor(frame, p, matrix, columns, reference, 0.99, {}, settings)
        _, candidates = monitor.backtest(frame, champion, champion.raw(frame), p, alert_log, settings,
                                         ISOTONIC, PARAMS.gate, [])
        truth = monitor.truth_view(frame, p, settings.alerts, 0.99, settings.bins)
        policies = monitor.by_policy(frame, {name: p for name in monitor.POLICIES}, settings.bins)
        goals = monitor.goals(table, alert_log, policies, truth, table[monitor.MONTH][5])
        judged[least] = (table, alert_log, candidates, goals)
    table, alert_log, candidates, goals = judged[300]  # a month of 300 rows reaches 300: judged
    assert table["judged"].all() and len(alert_log) and len(candidates)
    assert goals["months_not_judged"] == [] and goals["flagged_in_time"] is not None
    table, alert_log, candidates, goals = judged[301]
    assert not table["judged"].any() and table["rows"].sum() == len(frame)  # shown, every row
    assert alert_log.empty and candidates == []
    assert goals["months_not_judged"] == [monitor.month_label(m) for m in table[monitor.MONTH]]
    assert goals["flagged_in_time"] is None and goals["false_alarm_months_before_change"] == 0
    # nor do its sampling gaps count as goals missed
    assert goals["max_auc_estimate_gap_before_change"] is None
    assert goals["auc_estimate_within_0_02_before_change"] is None
    assert all(g["ece_back_within_two_months"] is None and g["mean_ece_after_alert"] is None
               for g in goals["policies"].values())
    said = "(8 months of fewer than monitor.min_batch_rows borrowers shown but not judged)"
    assert said in _summary(goals, [])


def test_every_policy_and_challenger_keeps_the_champions_maintenance_floor():
    """The history of stopped debits does not change with a recalibration or a retrain: every
    policy scores a borrower whose debit announced maintenance stops at least the floor, a
    recalibration is judged on the probabilities it would give (floors included: judged without
    them, an outside check found all five of the defaults' refused that would have passed), and a
    retrained challenger carries the champion's history, and its forgetting prior."""
    frame = _stream()
    frame["autodebit_active"] = 1.0
    frame["due_dates_in_announced_outage"] = (np.arange(len(frame)) % 97 == 0).astype(float)
    first = frame[monitor.MONTH] == frame[monitor.MONTH].min()
    second = frame[monitor.MONTH] == sorted(frame[monitor.MONTH].unique())[1]
    columns = ["x1", "x2", "autodebit_active", "due_dates_in_announced_outage"]
    champion = train.fit_calibrated_lightgbm(frame[first], frame[second], columns, [], {}, ISOTONIC)
    champion.calibration["maintenance"] = {"due_dates": 50, "missed": 45, "rate": 0.9}
    champion.calibration["forgetting"] = {"a": 0.2, "b": 5.8, "due_dates": 3}
    settings = PARAMS.monitor.model_copy(update={"retrain_months": 3, "retrain_cooldown_months": 2})
    months = sorted(frame[monitor.MONTH].unique())
    alert_log = pd.DataFrame({"raised": [months[5]], "batch": [months[5]], "rule": ["feature_csi"],
                              "value": [0.3], "limit": [0.25], "needs_labels": [False]})
    scores, candidates = monitor.backtest(frame, champion, champion.raw(frame), np.zeros(len(frame)),
                                          alert_log, settings, PARAMS.train.lightgbm, PARAMS.gate, [])
    stopped = frame["due_dates_in_announced_outage"].to_numpy() == 1
    for name in monitor.POLICIES:
        assert (scores[name][stopped] >= 0.9).all() and (scores[name][~stopped] < 0.9).mean() > 0.95
    np.testing.assert_allclose(scores["frozen"], champion.predict(frame))  # as production scores
    retrained = [c for c in candidates if c.policy == "retrain"]
    assert retrained and all(c.calibration["maintenance"]["rate"] == 0.9 for c in retrained)
    recalibrated = [c for c in candidates if c.policy == "recalibrate"]
    assert recalibrated
    y, month = frame["label"].to_numpy(), frame[monitor.MONTH].astype(str).str[:7].to_numpy()
    for c in recalibrated:
        used = np.isin(month, c.fitted_on)
        judged = np.maximum(model.calibrate(champion.raw(frame)[used], c.calibration), 0.9 * stopped[used])
        bins = PARAMS.monitor.bins
        assert c.figures["ece_after"] == pytest.approx(metrics.calibration_gap(y[used], judged, bins))
        assert c.figures["ece_before"] == pytest.approx(
            metrics.calibration_gap(y[used], champion.predict(frame[used]), bins))
        # applied only where it lowers the ECE on its rows (one had raised it and been applied)
        assert c.gates["gates"]["lowers_ece"]["passed"] == (c.figures["ece_after"] < c.figures["ece_before"])
        assert c.applied == (c.gates["passed"] and c.figures["ece_after"] < c.figures["ece_before"])
    assert all(c.calibration["forgetting"] == champion.calibration["forgetting"] for c in retrained)


def test_the_rule_changes_within_the_stream_are_each_campaign_deadline_and_the_rule_date_once():
    simulate = PARAMS.simulate
    deadlines = sorted(pd.Timestamp(c.deadline) for c in simulate.technical.reauthorisation_campaigns)
    rule = pd.Timestamp(simulate.risk_rules.rule_change_date)
    everything = monitor.change_dates(min([*deadlines, rule]).date().replace(day=1), simulate)
    assert everything == sorted({*deadlines, rule})
    assert monitor.change_dates((max([*deadlines, rule]) + pd.Timedelta(days=1)).date(), simulate) == []


def test_written_figures_are_rounded_and_months_labelled_through_dicts_and_lists():
    value = {"a": [0.1234567891, np.float32(2.5)], "m": pd.Timestamp("2025-06-01"), "n": 3, "s": "x"}
    assert monitor.rounded(value) == {"a": [0.123457, 2.5], "m": "2025-06", "n": 3, "s": "x"}
    frame = pd.DataFrame({"month": pd.to_datetime(["2025-01-01"]), "auc": [0.81234567]})
    assert monitor.rounded_records(frame) == [{"month": "2025-01", "auc": 0.812346}]


def test_alerts_raised_after_the_last_batch_are_listed_in_the_decisions():
    """Labels of the last batches arrive months after them: decisions.json ended at the last batch
    month and left out the alerts the chart shaded after it."""
    table = pd.DataFrame({monitor.MONTH: pd.to_datetime(["2026-04-01", "2026-05-01"]), "rows": [10, 12],
                          "score_psi": 0.01, "max_csi": 0.0, "max_csi_feature": "x", "max_csi_raw": 0.0,
                          "estimated_auc": 0.8, "estimated_ece": 0.01,
                          "labels_arrive": pd.to_datetime(["2026-08-01", "2026-09-01"])})
    alerts = pd.DataFrame({"rule": ["realised_auc_drop", "realised_ece"], "value": [0.05, 0.02],
                           "limit": [0.03, 0.015], "batch": pd.to_datetime(["2026-04-01", "2026-05-01"]),
                           "raised": pd.to_datetime(["2026-08-01", "2026-09-01"])})
    listed = monitor.decisions(table, alerts, [])
    assert [d["month"] for d in listed] == ["2026-04", "2026-05", "2026-08", "2026-09"]
    assert listed[2]["before_labels"] is None and listed[2]["labels_arrive"] is None
    assert listed[3]["alerts_raised"] == [{"rule": "realised_ece", "batch": "2026-05", "value": 0.02,
                                           "limit": 0.015}]
    assert listed[0]["before_labels"]["rows"] == 10 and listed[0]["alerts_raised"] == []


def test_an_alert_is_described_with_the_rules_the_truth_breaks_on_its_batch():
    """An outside check read a "false alarm" of calibration beside the truth's ECE of 0.059, above
    the limit: what decides is whether the truth breaks the rule (its calibration in the large)."""
    june = pd.Timestamp("2025-06-01")
    alerts = pd.DataFrame({"batch": [june], "raised": [pd.Timestamp("2025-10-01")],
                           "rule": ["calibration_in_the_large"], "value": [0.023]})
    truth = pd.DataFrame({monitor.MONTH: [june], "truth_realised_ece": [0.0594], "truth_realised_auc": [0.81],
                          "truth_calibration_in_the_large": [-0.004], "truth_breaks": [[]]})
    assert monitor._described(alerts, truth) == [
        "2025-06 calibration_in_the_large 0.0230 (raised 2025-10; the truth's ECE 0.0594, AUC 0.8100, "
        "calibration in the large -0.0040; rules the truth breaks: none)"]
    truth.at[0, "truth_breaks"] = ["calibration_in_the_large"]
    assert monitor._described(alerts, truth)[0].endswith("rules the truth breaks: calibration_in_the_large)")
