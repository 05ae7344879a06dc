"""The limit-increase decision: features known at the jump, the policy rule, profit, evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import decision
from pipeline.catalog import BY_NAME
from pipeline.contract import RAW_TABLES, TABLES, features_table
from pipeline.features import build_features
from tests.conftest import make_params

SETTINGS = make_params({}).decision


def test_decision_features_exclude_the_jump_and_what_follows():
    assert "increase_amount" not in decision.DECISION_FEATURES
    assert "post_increase_drawn" not in decision.DECISION_FEATURES
    assert all(not BY_NAME[f].window.startswith("jump to") for f in decision.DECISION_FEATURES)
    assert {"trigger", "limit_before_jump", "dti_before_jump"} <= set(decision.DECISION_FEATURES)


def test_no_decision_feature_reads_a_row_dated_on_or_after_the_jump(small_sim, small_params):
    jump = small_sim["ground_truth"].set_index("borrower_id")["jump_date"]
    before = build_features(small_sim, 0, small_params.features)
    changed = dict(small_sim)
    for name in RAW_TABLES:  # scramble every number of the rows from the jump on...
        frame = small_sim[name].copy()
        later = frame[TABLES[name].date_column] >= frame["borrower_id"].map(jump)
        if name == "limit_events":  # ...but the limit the decision starts from
            later &= frame["event_type"] != "increase"
            increase = frame["event_type"] == "increase"
            frame.loc[increase, "new_limit"] = frame.loc[increase, "new_limit"] * 3.0 + 1000.0
        for col in TABLES[name].columns:
            if col.dtype == "float64":
                frame.loc[later, col.name] = frame.loc[later, col.name] * 7.0 + 13.0
        changed[name] = frame
    after = build_features(changed, 0, small_params.features)
    columns = list(decision.DECISION_FEATURES)
    pd.testing.assert_frame_equal(after[columns], before[columns])


def test_the_candidate_matrix_keeps_every_borrower_once_per_amount():
    features = pd.DataFrame({f: np.arange(3.0) for f in decision.DECISION_FEATURES})
    matrix = decision.candidate_matrix(features, np.array([0.0, 5000.0]), decision.DECISION_FEATURES)
    columns = [*decision.DECISION_FEATURES, decision.AMOUNT]
    assert matrix.shape == (6, len(columns))
    assert matrix[:, columns.index(decision.AMOUNT)].tolist() == [0.0, 5000.0] * 3
    assert matrix[:, columns.index("trigger")].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]


def test_expected_profit_is_margin_on_balance_less_the_loss_on_a_miss():
    s = SETTINGS.model_copy(update={"yield_per_year": 0.18, "funding_cost_per_year": 0.06,
                                    "loss_given_miss": 0.5})
    profit = decision.expected_profit(np.array([12_000.0]), np.array([400.0]), s)
    assert profit[0] == pytest.approx(0.01 * 12_000 - 0.5 * 400)


def test_the_policy_takes_the_most_profitable_amount_within_the_appetite():
    amounts = np.array([0.0, 5000.0, 10000.0])
    p = np.array([[0.05, 0.10, 0.30],    # 10,000 pays most but is too risky
                  [0.05, 0.06, 0.07],    # 5,000 pays most
                  [0.05, 0.06, 0.07],    # 10,000 pays most: the top of the grid
                  [0.25, 0.30, 0.40]])   # nothing is allowed: no increase
    profit = np.array([[10.0, 20.0, 30.0], [10.0, 25.0, 20.0], [10.0, 20.0, 30.0], [10.0, 20.0, 30.0]])
    chosen, reason = decision.choose(amounts, p, profit, appetite=0.2)
    assert chosen.tolist() == [1, 1, 2, 0]
    assert reason.tolist() == ["appetite", "profit", "limit cap", "appetite"]
    chosen, reason = decision.choose(amounts, p[:1], np.array([[10.0, 5.0, 0.0]]), appetite=0.2)
    assert chosen.tolist() == [0] and reason.tolist() == ["no profit"]
    # a borrower knocked out (past due at the decision) gets no increase, whatever pays
    chosen, reason = decision.choose(amounts, p, profit, appetite=0.2,
                                     knocked_out=np.array([False, True, False, True]))
    assert chosen.tolist() == [1, 0, 2, 0]
    assert reason.tolist() == ["appetite", "past due", "limit cap", "past due"]


def test_a_borrower_past_due_at_the_decision_gets_no_increase_unless_the_rule_is_off():
    """An outside check found borrowers 20 days past due recommended 50,000 at a P(miss) of
    0.03-0.12: the models had seen 2 such borrowers raised among 4,000."""
    settings = make_params().decision
    features = pd.DataFrame({decision.PAST_DUE: [0.0, 20.0, np.nan, 3.0]})
    ruled = decision.DecisionModel([], [], np.array([0.0, 1.0]), 3, settings)
    assert ruled.knocked_out(features).tolist() == [False, True, False, True]
    free = decision.DecisionModel([], [], np.array([0.0, 1.0]), 3,
                                  settings.model_copy(update={"no_increase_when_past_due": False}))
    assert not free.knocked_out(features).any()
    assert not ruled.knocked_out(features.drop(columns=decision.PAST_DUE)).any()


def test_realised_balance_months_sums_the_statements_from_the_jump_to_the_end():
    day = pd.Timestamp
    statements = pd.DataFrame({
        "borrower_id": [1, 1, 1, 1, 2],
        "statement_date": [day("2025-01-31"), day("2025-02-28"), day("2025-03-31"), day("2025-04-30"),
                           day("2025-02-28")],
        "balance": [100.0, 200.0, 300.0, 400.0, 50.0]})
    jump = pd.Series([day("2025-02-10"), day("2025-03-01")], index=[1, 3])
    end = pd.Series([day("2025-03-31"), day("2025-06-30")], index=[1, 3])
    summed = decision.realised_balance_months(statements, jump, end)
    assert summed.to_dict() == {1: 500.0, 3: 0.0}


def test_training_rows_add_the_granted_amount_its_test_cell_the_label_and_the_balance_months():
    day = pd.Timestamp
    features = pd.DataFrame({"borrower_id": [1, 2], "jump_date": [day("2025-02-10"), day("2025-03-01")],
                             "utilisation": [0.5, 0.2]})
    events = pd.DataFrame({"borrower_id": [1, 1, 2], "event_type": ["increase", "decrease", "increase"],
                           "old_limit": [1000.0, 3000.0, 2000.0], "new_limit": [3000.0, 500.0, 2500.0],
                           "test_cell": ["line_test", None, "platform"]})
    statements = pd.DataFrame({"borrower_id": [1, 1, 2], "balance": [100.0, 200.0, 50.0],
                               "statement_date": [day("2025-03-31"), day("2025-05-31"), day("2025-03-31")]})
    truth = pd.DataFrame({"borrower_id": [2, 1], "label": [1, 0]})
    rows = decision.training_rows(features, events, statements, truth, observation_days=30, cycles=2)
    assert rows["borrower_id"].tolist() == [1, 2] and rows["utilisation"].tolist() == [0.5, 0.2]
    assert rows["granted"].tolist() == [2000.0, 500.0] and rows["line_test"].tolist() == [True, False]
    assert rows["label"].tolist() == [0, 1]
    # from the jump to two cycles after the scoring date (30 days after the jump), less a day
    assert rows["balance_months"].tolist() == [100.0, 50.0]


def test_borrowers_in_no_split_are_in_the_embargo():
    frame = pd.DataFrame({"borrower_id": [3, 1, 2, 4]})
    splits = {"train": pd.DataFrame({"borrower_id": [1]}), "test": pd.DataFrame({"borrower_id": [4, 3]})}
    assert decision.with_splits(frame, splits)["split"].tolist() == ["test", "train", "embargo", "test"]


@pytest.mark.parametrize(("days", "cycles"), [(0, 0), (30, 1), (31, 2), (61, 3)])
def test_jump_cycles_count_the_cycles_begun_by_the_scoring_date(days, cycles):
    assert decision.jump_cycles(days) == cycles


def test_the_evaluation_compares_policies_on_the_truth():
    grid = np.array([0.0, 10000.0])
    truth = {"borrower_id": np.array([1, 2]), "p_miss": np.array([[0.1, 0.2], [0.1, 0.5]]),
             "profit": np.array([[10.0, 30.0], [10.0, -50.0]]),
             "granted_p_miss": np.array([0.2, 0.5]), "granted_profit": np.array([30.0, -50.0])}
    wrong = {"p_miss": truth["p_miss"], "chosen": np.array([1, 1]), "reason": np.array(["profit"] * 2)}
    result = decision.compare_policies(grid, truth, {"ours": wrong}, appetite=0.3)
    assert result["oracle"]["profit_per_borrower"] == pytest.approx(20.0)
    assert result["oracle"]["miss_rate"] == pytest.approx(0.15)
    assert result["ours"]["profit_per_borrower"] == pytest.approx(-10.0)
    assert result["ours"]["same_amount_as_oracle"] == pytest.approx(0.5)
    assert result["platform"]["profit_per_borrower"] == pytest.approx(-10.0)
    assert result["no_increase"]["profit_per_borrower"] == pytest.approx(10.0)
    assert result["largest_for_all"]["share_of_oracle_gain"] == pytest.approx(-2.0)
    assert result["ours"]["share_of_oracle_profit"] == pytest.approx(-0.5)


@pytest.mark.parametrize(("share", "miss", "platform_miss", "over", "met"), [
    (0.90, 0.13, 0.13, 1.0, (True, True)),  # both goals at their edges
    (0.899, 0.12, 0.13, 5.0, (False, True)),  # just short of the oracle's 90%
    (0.95, 0.25, 0.30, 5.0, (False, True)),  # a miss rate above the appetite of 0.2
    (0.95, 0.131, 0.13, 5.0, (True, False)),  # more profit than the platform, at more risk
    (0.95, 0.12, 0.13, -1.0, (True, False)),  # less profit than the platform
])
def test_goals_judge_our_policy_on_its_own_figures(share, miss, platform_miss, over, met):
    policies = {"ours": {"share_of_oracle_profit": share, "miss_rate": miss, "profit_over_platform": over},
                "platform": {"miss_rate": platform_miss}}
    dose = {"calibration_gap": {"ours": 0.02}, "mean_curve_mae": {"ours": 0.0}, "mae": {"ours": 0.021}}
    verdicts = decision.goals(policies, dose, appetite=0.2)
    assert (verdicts["oracle_profit_share"], verdicts["beats_platform"]) == met
    assert verdicts["dose_response_calibration_gap"] and verdicts["dose_response_mean_curve_mae"]
    assert not verdicts["dose_response_mae"]


@pytest.fixture(scope="module")
def decision_frame(small_sim, small_params):
    """The small simulation's borrowers as the decide stage sees them (all in training)."""
    frame = build_features(small_sim, 0, small_params.features)
    jumps = small_sim["limit_events"].query("event_type == 'increase'").set_index("borrower_id")
    truth = small_sim["ground_truth"].set_index("borrower_id")
    ids = frame["borrower_id"]
    frame["granted"] = (jumps["new_limit"] - jumps["old_limit"]).loc[ids].to_numpy()
    frame[decision.AMOUNT] = frame["granted"]
    frame["line_test"] = (jumps["test_cell"] == "line_test").loc[ids].to_numpy()
    frame["label"] = truth["label"].loc[ids].to_numpy()
    end = frame["jump_date"] + pd.DateOffset(months=4)
    frame["balance_months"] = decision.realised_balance_months(
        small_sim["statements"], frame.set_index("borrower_id")["jump_date"],
        end.set_axis(ids)).to_numpy()
    return frame


@pytest.fixture(scope="module")
def fitted(decision_frame, small_params):
    grid = np.asarray(small_params.simulate.jump.line_test_amounts, dtype=float)
    return decision.fit(decision_frame, grid, 4, small_params.decision,
                        decision_frame[decision_frame["line_test"]])


def test_without_line_tests_or_counterfactual_the_models_are_fitted_all_the_same(
        decision_frame, small_sim, small_params):
    """A lender that runs no line tests still gets a decision model: the one learnt from every
    increase, named for what it is; there is no experimental model to compare."""
    what_if = small_sim["counterfactual"]
    assert len(what_if), "the small simulation should sample borrowers for the counterfactual"
    tested = what_if["borrower_id"].unique()
    frame = decision_frame.assign(line_test=False,
                                  split=np.where(decision_frame["borrower_id"].isin(tested), "test", "train"))
    grid = np.asarray(small_params.simulate.jump.line_test_amounts, dtype=float)
    report, ours, figures = decision.run(frame, what_if, small_params.decision, grid, 4)
    assert report["borrowers"]["line_tests_learnt_from"] == 0
    assert report["borrowers"]["evaluated"] == len(tested)
    assert len(ours.miss) == len(ours.balance) == 1
    assert "experimental" not in report["policies"] and "experimental" not in report["dose_response"]["mae"]
    assert report["policies"]["ours"] == report["policies"]["naive"]
    assert set(figures) == {"dose_response"}
    # no counterfactual for the test cohorts: the models are fitted all the same, and the report
    # says why the policies are not judged
    report, ours, figures = decision.run(frame, what_if.iloc[:0], small_params.decision, grid, 4)
    assert report["applicable"] is False and "counterfactual" in report["why"] and figures == {}
    assert report["borrowers"]["evaluated"] == 0 and "policies" not in report
    assert len(ours.recommend(frame.head(3))) == 3


def test_risk_and_balance_never_fall_as_the_amount_grows(fitted, decision_frame):
    curves = fitted.curves(decision_frame.head(500))
    assert (np.diff(curves["p_miss"], axis=1) >= -1e-12).all()
    assert (np.diff(curves["balance_months"], axis=1) >= -1e-9).all()
    assert curves["p_miss"][:, -1].mean() > curves["p_miss"][:, 0].mean()


def test_the_line_tests_correction_is_stacked_on_the_observational_model(fitted, decision_frame):
    assert len(fitted.miss) == len(fitted.balance) == 2
    alone = decision.DecisionModel(fitted.miss[:1], fitted.balance[:1], fitted.amounts, fitted.cycles,
                                   fitted.settings)
    rows = decision_frame.head(200)
    assert not np.allclose(alone.curves(rows)["p_miss"], fitted.curves(rows)["p_miss"])


def test_recommendations_keep_every_borrower_and_survive_a_save(fitted, decision_frame, tmp_path):
    rows = decision_frame.head(300)
    first = fitted.recommend(rows)
    assert len(first) == 300 and first["borrower_id"].tolist() == rows["borrower_id"].tolist()
    # the types an output without a row is written with (``outputs.Writer.ensure``)
    assert first.dtypes.astype(str).to_dict() == fitted.output_dtypes()
    assert set(first["recommended_amount"]) <= set(fitted.amounts)
    assert set(first["binding_reason"]) <= set(decision.REASONS)
    risky = first["recommended_amount"] > 0
    assert (first.loc[risky, "p_miss"] <= fitted.settings.appetite).all()
    fitted.save(tmp_path)
    pd.testing.assert_frame_equal(decision.DecisionModel.from_dir(tmp_path).recommend(rows), first)


def test_a_model_trained_before_the_catalogue_grew_reads_the_features_it_knows(decision_frame, small_params,
                                                                                tmp_path):
    """A version registered before a feature was added (forgotten_due_dates, 2026-12-05) keeps
    recommending: from a frame with every current feature, or from an older decision-features
    file without the new one, the same as from the features it was trained on."""
    older = tuple(f for f in decision.DECISION_FEATURES if f != "forgotten_due_dates")
    grid = np.asarray(small_params.simulate.jump.line_test_amounts, dtype=float)
    decision.fit(decision_frame, grid, 4, small_params.decision, features=older).save(tmp_path)
    model = decision.DecisionModel.from_dir(tmp_path)
    assert model.features == older and model.miss[0].num_feature() == len(older) + 1
    rows = decision_frame.head(200)
    expected = model.recommend(rows)
    pd.testing.assert_frame_equal(model.recommend(rows.drop(columns="forgotten_due_dates")), expected)
    served = rows[["borrower_id", *older]].reset_index(drop=True)
    pd.testing.assert_frame_equal(model.predict(served).drop(columns="decision_date"),
                                  expected.drop(columns="decision_date"))


def test_the_served_model_reads_numbers_as_text_and_names_what_is_not_a_number(fitted, decision_frame):
    """What ``mlflow models predict`` hands the decision model from a CSV or JSON: every column
    as text when a cell is, ids included; the same recommendations, or an error naming the rows."""
    rows = decision_frame.head(5)[list(decision.SERVED_COLUMNS)].reset_index(drop=True)
    expected = fitted.predict(rows)
    as_text = rows.astype(str).replace({"nan": ""})
    pd.testing.assert_frame_equal(fitted.predict(as_text), expected)
    broken = as_text.copy()
    broken.loc[3, "credit_score"] = "excellent"
    with pytest.raises(ValueError, match=r"'credit_score' must hold numbers: 1 of 5 .*row 3 'excellent'"):
        fitted.predict(broken)
    no_id = as_text.copy()
    no_id.loc[2, "borrower_id"] = ""
    with pytest.raises(ValueError, match=r"'borrower_id' has no id: 1 of 5 rows \(rows \[2\]"):
        fitted.predict(no_id)
    for text in ("C" + as_text["borrower_id"], "000" + as_text["borrower_id"]):  # a lender's own ids
        got = fitted.predict(as_text.assign(borrower_id=text))
        assert got["borrower_id"].tolist() == text.tolist()
        pd.testing.assert_frame_equal(got.drop(columns="borrower_id"), expected.drop(columns="borrower_id"))
    no_text_id = as_text.assign(borrower_id="C" + as_text["borrower_id"])
    no_text_id.loc[1, "borrower_id"] = " "
    with pytest.raises(ValueError, match=r"'borrower_id' has no id: 1 of 5 rows \(rows \[1\]"):
        fitted.predict(no_text_id)


def test_the_matched_appetite_is_the_loosest_that_keeps_the_mean_risk_at_the_target():
    amounts = np.array([0.0, 10000.0])
    p = np.array([[0.05, 0.10], [0.05, 0.20], [0.10, 0.40]])
    profit = np.array([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]])
    # everyone raised: mean 0.233; the first two: 0.133; the first only: 0.083; nobody: 0.067
    assert decision.matched_appetite(amounts, p, profit, 0.14) == pytest.approx(0.20)
    assert decision.matched_appetite(amounts, p, profit, 0.10) == pytest.approx(0.10)
    assert decision.matched_appetite(amounts, p, profit, 0.01) == 0.0


def test_dose_response_errors_on_known_answers():
    """Perfect predictions score 0 on every error; a constant 0.05 too high scores 0.05 on each;
    predictions shuffled across borrowers keep the mean curve but not the per-borrower error."""
    rng = np.random.default_rng(3)
    grid = np.array([0.0, 10_000.0, 20_000.0])
    true_p = np.sort(rng.uniform(0.02, 0.3, (400, 3)), axis=1)
    truth = {"p_miss": true_p, "p_miss_se": np.full(true_p.shape, 0.01)}
    shuffled = true_p[rng.permutation(400)]
    report = decision.dose_response(grid, truth, {"perfect": {"p_miss": true_p},
                                                  "high": {"p_miss": true_p + 0.05},
                                                  "shuffled": {"p_miss": shuffled}})
    for kind in ("mae", "calibration_gap", "mean_curve_mae"):
        assert report[kind]["perfect"] == pytest.approx(0.0, abs=1e-12)
        assert report[kind]["high"] == pytest.approx(0.05)
    assert report["mean_curve_mae"]["shuffled"] == pytest.approx(0.0, abs=1e-12)
    assert report["mae"]["shuffled"] > 0.05 and report["calibration_gap"]["shuffled"] > 0.03
    assert report["truth_noise_mae"] == pytest.approx(0.01 * np.sqrt(2 / np.pi))
    assert report["by_amount"]["10000"]["true"] == pytest.approx(true_p[:, 1].mean())
    assert report["by_amount"]["20000"]["calibration_gap"]["high"] == pytest.approx(0.05)


def test_a_served_decision_refuses_features_not_taken_on_the_jump_day(fitted, decision_frame):
    """It decides at the jump, as ``limitjump recommend`` does: features of a month later read the
    increase's own weeks, and the pyfunc refuses them, named."""
    from mlflow.exceptions import MlflowException

    from pipeline.model import Served

    rows = decision_frame.head(20).reset_index(drop=True)
    assert fitted.observation_days == 0 and (rows["scoring_date"] == rows["jump_date"]).all()
    pd.testing.assert_frame_equal(Served(fitted).predict(rows).drop(columns="decision_date"),
                                  fitted.recommend(rows).drop(columns="decision_date"))
    later = rows.assign(scoring_date=rows["scoring_date"].where(rows.index != 7, rows["scoring_date"]
                                                                + pd.Timedelta(days=30)))
    with pytest.raises(MlflowException, match=r"1 of 20 rows .* not 0 days after jump_date.*row 7 30 days"):
        Served(fitted).predict(later)


def test_a_decision_model_that_split_on_nothing_is_named(fitted, decision_frame, small_params):
    """Leaves larger than the increases learnt from give one curve for everyone: the report names
    the model so the stage can warn, and a model that learnt names none."""
    assert decision.without_splits(fitted) == []
    boost = small_params.decision.observational.model_copy(update={"min_data_in_leaf": len(decision_frame)})
    settings = small_params.decision.model_copy(update={"observational": boost})
    grid = np.asarray(small_params.simulate.jump.line_test_amounts, dtype=float)
    flat = decision.fit(decision_frame, grid, 4, settings)
    assert decision.without_splits(flat) == ["miss", "balance"]
    curves = flat.curves(decision_frame.head(50))["p_miss"]
    assert np.allclose(curves, curves[0])
    # the line tests' correction, too large a leaf for them: named, not called a correction
    tested = decision_frame[decision_frame["line_test"]]
    big = small_params.decision.correction.model_copy(update={"min_data_in_leaf": len(tested)})
    uncorrected = decision.fit(decision_frame, grid, 4, small_params.decision.model_copy(
        update={"correction": big}), tested)
    assert decision.without_splits(uncorrected) == ["miss correction", "balance correction"]


def test_a_decision_model_flat_in_the_amount_is_named(fitted, decision_frame, small_params):
    """An outside check: the line tests alone (170 of them) gave a miss probability of 0.166 at all
    six amounts and were ranked beside the other policies unsaid. A model whose miss boosters never
    split on the amount is named; the fitted one, which does, is not."""
    grid = np.asarray(small_params.simulate.jump.line_test_amounts, dtype=float)
    same = decision_frame.assign(**{decision.AMOUNT: float(grid[2])})  # nothing to learn the amount from
    flat = decision.fit(same, grid, 4, small_params.decision)
    assert decision.flat_in_the_amount({"ours": fitted, "flat": flat}) == ["flat"]
    curves = flat.curves(decision_frame.head(50))["p_miss"]
    assert np.allclose(curves, curves[:, :1])


def test_the_model_records_the_features_no_training_row_lacked_that_a_tree_reads(fitted, decision_frame,
                                                                                  tmp_path):
    """Known answer from the fit's own rows and trees; kept through a save; the served model refuses
    a blank in one, naming the column and the row, and a model that recorded none refuses nothing."""
    from mlflow.exceptions import MlflowException

    from pipeline.model import Served

    columns = [*fitted.features, decision.AMOUNT]
    read = {c for booster in (*fitted.miss, *fitted.balance)
            for c, splits in zip(columns, booster.feature_importance("split"), strict=True) if splits}
    expected = tuple(c for c in fitted.features if c in read and not decision_frame[c].isna().any())
    assert fitted.never_missing == expected and expected
    assert set(fitted.features) - set(expected)  # some have blanks, or no tree reads them
    fitted.save(tmp_path)
    assert decision.DecisionModel.from_dir(tmp_path).never_missing == expected
    rows = decision_frame.head(4)[list(decision.SERVED_COLUMNS)].reset_index(drop=True)
    # one the contract allows blank that training never had blank
    column = next(c for c in expected if features_table([c]).column(c).nullable)
    rows.loc[2, column] = np.nan
    with pytest.raises(MlflowException, match=rf"'{column}' fails known_in_every_training_row in 1 row "
                                              r"\(row 2 missing\)"):
        Served(fitted).predict(rows)
    older = decision.DecisionModel(fitted.miss, fitted.balance, fitted.amounts, fitted.cycles,
                                   fitted.settings)
    assert len(Served(older).predict(rows)) == 4
