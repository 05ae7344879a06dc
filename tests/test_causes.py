"""The cause model: labels, temperature scaling, the report against the simulator's causes, and
hand-built borrowers whose cause is known getting the right leading cause and action."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import causes, score
from pipeline.catalog import BY_NAME
from pipeline.config import CAUSES
from pipeline.features import build_features
from pipeline.model import CalibratedLightGBM
from tests.conftest import build_model_dir

BANDS = {"low": 0.05, "medium": 0.15, "high": 0.35, "very_high": 1.0}


def test_cause_codes_follow_the_causes_and_no_miss_is_minus_one():
    cause = pd.Series(["credit", None, "technical", "liquidity", "unheard-of"], dtype="str")
    assert causes.cause_codes(cause).tolist() == [0, -1, 2, 1, -1]
    assert CAUSES == ("credit", "liquidity", "technical")


def test_temperature_recovers_an_overconfident_model():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, size=(20_000, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    codes = np.array([rng.choice(3, p=row) for row in probs])
    # a model twice as confident as the truth needs T = 2 to be calibrated again
    assert causes.fit_temperature(2 * logits, codes) == pytest.approx(2.0, rel=0.05)
    assert causes.fit_temperature(logits, codes) == pytest.approx(1.0, rel=0.05)


def test_cause_report_counts_a_hand_built_confusion_and_the_baselines():
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    true = pd.Series(["credit", "credit", "liquidity", "technical", "technical", None, None, None],
                     dtype="str")
    share = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .8, .1], [.1, .1, .8], [.5, .2, .3],
                      [.3, .3, .4], [.3, .3, .4], [.3, .3, .4]])
    p_total = np.array([.6, .5, .4, .7, .3, .1, .05, .02])
    truth = pd.DataFrame({f"p_true_{c}": p_total * share[:, i] for i, c in enumerate(CAUSES)})
    baselines = {"always_liquidity": np.full(8, 1), "perfect": np.array([0, 0, 1, 2, 2, -1, -1, -1])}
    report = causes.cause_report(y, true, p_total, share, truth, baselines)
    assert report["misses"] == 5 and report["accuracy"] == pytest.approx(3 / 5)
    assert report["confusion"]["counts"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert report["by_cause"]["credit"]["recall"] == 0.5 and report["by_cause"]["credit"]["precision"] == 0.5
    technical = report["by_cause"]["technical"]
    assert technical["recall"] == 0.5 and technical["precision"] == 1
    assert report["baselines"] == {"always_liquidity": pytest.approx(1 / 5), "perfect": 1.0,
                                   "truth_argmax": pytest.approx(3 / 5)}  # the truth here is the model
    assert report["by_cause"]["liquidity"]["auc_gap"] == pytest.approx(0.0)  # the truth here is the model
    assert report["truth_confusion"] == report["confusion"]
    assert report["by_cause"]["credit"]["recall_truth"] == 0.5
    # a truth that names every miss's cause: its confusion is diagonal, the model's stays as it was
    right = pd.DataFrame({f"p_true_{c}": np.where(true == c, .5, .1) for c in CAUSES})
    report = causes.cause_report(y, true, p_total, share, right, {})
    assert report["truth_confusion"]["counts"] == [[2, 0, 0], [0, 1, 0], [0, 0, 2]]
    assert report["confusion"]["counts"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert [v["recall_truth"] for v in report["by_cause"].values()] == [1.0, 1.0, 1.0]
    assert report["baselines"] == {"truth_argmax": 1.0}
    assert "truth_confusion" not in causes.cause_report(y, true, p_total, share, None, {})
    assert "as_scored" not in report
    # scored with the quiet bands, a miss in one names no cause: the right answer for the credit
    # miss of row 0 goes, the wrong one of row 1 changes nothing
    quiet_of_two = np.array([False, False, True, True, True, True, True, True])
    scored = causes.cause_report(y, true, p_total, share, None, {}, explained=~quiet_of_two)
    assert scored["as_scored"] == {"misses_explained": 2, "accuracy": pytest.approx(1 / 5)}
    assert scored["accuracy"] == pytest.approx(3 / 5)  # the most probable cause of every miss


def test_technical_aucs_per_kind_leave_the_other_kinds_misses_out():
    technical = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    kind = pd.Series(["forgotten", "forgotten", "outage", "outage", None, None, None, None], dtype="str")
    # the model ranks outages above every other row, forgotten payments below them; the truth
    # ranks both kinds first
    p_model = np.array([.01, .02, .9, .8, .3, .4, .5, .6])
    p_true = np.array([.9, .8, .7, .95, .1, .2, .3, .4])
    report = causes.technical_by_kind(technical, kind, p_model, p_true)
    assert list(report) == ["forgotten", "outage"]
    assert report["outage"] == {"misses": 2, "auc": 1.0, "auc_truth": 1.0, "auc_gap": 0.0}
    assert report["forgotten"]["auc"] == 0.0 and report["forgotten"]["auc_gap"] == 1.0
    # a technical miss whose kind was not recorded is its own kind, not a crash
    kind[0] = None
    kinds = causes.technical_by_kind(technical, kind, p_model, p_true)
    assert list(kinds) == ["forgotten", "outage", "unknown"] and kinds["unknown"]["misses"] == 1


def test_the_cause_report_breaks_the_technical_auc_down_by_kind_only_beside_the_truth():
    y = np.array([1, 1, 0, 0])
    true = pd.Series(["technical", "credit", None, None], dtype="str")
    share = np.full((4, 3), 1 / 3)
    p_total = np.array([.9, .8, .1, .2])
    truth = pd.DataFrame({f"p_true_{c}": p_total / 3 for c in CAUSES})
    kind = pd.Series(["outage", None, None, None], dtype="str")
    report = causes.cause_report(y, true, p_total, share, truth, {}, kind)
    # the credit miss is a row without a technical miss: it counts against the outage
    assert report["technical_by_kind"] == {"outage": {"misses": 1, "auc": 1.0, "auc_truth": 1.0,
                                                       "auc_gap": 0.0}}
    assert "technical_by_kind" not in causes.cause_report(y, true, p_total, share, None, {}, kind)


def test_a_technical_action_answers_what_broke_beside_one_action_for_every_channel():
    true = pd.Series(["technical"] * 6 + ["liquidity", "technical"], dtype="str")
    kind = pd.Series(["forgotten", "forgotten", "mandate_known", "mandate_silent", "outage", None,
                      None, "forgotten"], dtype="str")
    leading = np.array(["technical"] * 7 + ["credit"], dtype=object)
    action = np.array(["manual", "technical", "technical", "manual", "maintenance", "technical",
                       "liquidity", "credit"], dtype=object)
    report = causes.technical_actions(true, kind, leading, action)
    # the liquidity miss and the technical miss named credit are left out; a kind unknown is never answered
    assert report["misses"] == 6
    assert report["answered"] == pytest.approx(3 / 6)  # rows 0, 2 and 4
    # one action: the manual payers get "repair" (row 0 no longer answered, row 3 now is)
    assert report["answered_by_one_action"] == pytest.approx(3 / 6)
    assert report["by_kind"]["forgotten"] == {"misses": 2, "answered": 0.5, "answered_by_one_action": 0.0}
    silent = report["by_kind"]["mandate_silent"]
    assert silent == {"misses": 1, "answered": 0.0, "answered_by_one_action": 1.0}
    assert report["by_kind"]["unknown"]["answered"] == 0.0
    # as scored: a miss in a quiet band gets no action (rows 2 and 3 are quiet)
    explained = np.array([True, True, False, False, True, True, True, True])
    scored = causes.technical_actions(true, kind, leading, action, explained)
    assert scored["answered"] == pytest.approx(3 / 6) and scored["answered_as_scored"] == pytest.approx(2 / 6)
    assert scored["by_kind"]["mandate_known"]["answered_as_scored"] == 0.0
    assert "answered_as_scored" not in report
    empty = causes.technical_actions(true[6:7], kind[6:7], leading[6:7], action[6:7])
    assert empty == {"misses": 0, "answered": None, "answered_by_one_action": None, "by_kind": {}}


@pytest.fixture(scope="module")
def fitted(small_sim, small_params, tmp_path_factory) -> tuple[CalibratedLightGBM, pd.DataFrame, np.ndarray]:
    """A model with its cause model, trained on the 6,000 simulated borrowers."""
    features = build_features(small_sim, small_params.label.observation_days, small_params.features)
    folder = build_model_dir(small_sim, features, tmp_path_factory.mktemp("model"))["path"]
    label = small_sim["ground_truth"].set_index("borrower_id").loc[features["borrower_id"], "label"]
    return CalibratedLightGBM.from_dir(folder), features, label.to_numpy()


def test_the_cause_model_is_trained_and_its_shares_add_up(fitted):
    model, features, _ = fitted
    assert model.causes is not None
    share = model.cause_shares(model.matrix(features))
    assert share.shape == (len(features), 3)
    np.testing.assert_allclose(share.sum(axis=1), 1.0)
    assert 0.2 < model.causes[1]["temperature"] < 5.0


def _struggling(features: pd.DataFrame, label: np.ndarray) -> pd.Series:
    """A borrower who misses, with no cause singled out: the median of every feature over the
    borrowers who missed."""
    return features[label == 1].median(numeric_only=True)


def _borrower(base: pd.Series, borrower_id: int, **changes: float) -> dict:
    row = base.to_dict()
    row.update(borrower_id=borrower_id, scoring_date=pd.Timestamp("2026-02-01"), **changes)
    return row


def test_hand_built_borrowers_get_the_cause_and_action_the_article_names(fitted):
    model, features, label = fitted
    base, high, low = (_struggling(features, label), features.quantile(0.95, numeric_only=True),
                       features.quantile(0.05, numeric_only=True))
    none_elsewhere = {name: 0.0 for name in (
        "new_outside_loans_3m", "new_outside_loans_6m", "new_outside_loans_since_jump", "inquiries_1m",
        "inquiries_3m", "inquiries_since_jump", "new_outside_borrowing_6m")}
    rows = pd.DataFrame([
        # a lapsed auto-debit agreement with cash on hand
        _borrower(base, 1, **none_elsewhere, autodebit_lapsed=1.0, autodebit_active=0.0,
                  reauth_pending=1.0, debit_failures_mandate_6m=2.0, wallet_balance=high["wallet_balance"],
                  cash_buffer_over_installments=high["cash_buffer_over_installments"]),
        # drew the whole increase in week two with no buffer
        _borrower(base, 2, **none_elsewhere, post_increase_draw_share=1.0, days_to_first_large_draw=10.0,
                  post_increase_drawn=high["post_increase_drawn"], large_drawdowns_since_jump=1.0,
                  post_increase_spend_ratio=high["post_increase_spend_ratio"],
                  wallet_balance=low["wallet_balance"], cash_buffer_over_installments=0.0),
        # three new outside loans and a falling score
        _borrower(base, 3, new_outside_loans_3m=3.0, new_outside_loans_6m=3.0,
                  new_outside_loans_since_jump=3.0,
                  inquiries_1m=high["inquiries_1m"], inquiries_3m=high["inquiries_3m"],
                  inquiries_6m=high["inquiries_6m"], inquiries_since_jump=high["inquiries_since_jump"],
                  new_outside_borrowing_6m=high["new_outside_borrowing_6m"],
                  outside_installments=high["outside_installments"],
                  outside_installments_next_3_cycles=high["outside_installments_next_3_cycles"],
                  credit_score_change_3m=-80.0, credit_score_change_6m=-100.0,
                  credit_score=low["credit_score"]),
        # pays by hand, with cash on hand and nothing owed elsewhere: a due date forgotten
        _borrower(base, 4, **none_elsewhere, autodebit_active=0.0, autodebit_lapsed=0.0, reauth_pending=0.0,
                  autodebit_changed_30d=0.0, debit_failures_mandate_6m=0.0, due_dates_in_announced_outage=0.0,
                  wallet_balance=high["wallet_balance"],
                  cash_buffer_over_installments=high["cash_buffer_over_installments"]),
    ])
    rows["scoring_date"] = rows["scoring_date"].astype("datetime64[s]")
    rows["next_due_date"] = (rows["scoring_date"] + pd.Timedelta(days=9)).astype("datetime64[s]")
    out = score.score_batch(model, rows, BANDS, (), "test").set_index("borrower_id")
    assert out["leading_cause"].tolist() == ["technical", "liquidity", "credit", "technical"], out
    assert out.loc[1, "action"] in (score.ACTIONS["technical"], score.ACTIONS["maintenance"])
    assert out.loc[4, "action"] == score.ACTIONS["manual"]
    assert out.loc[2, "action"] == score.ACTIONS["liquidity"]
    assert out.loc[3, "action"] == score.ACTIONS["credit"]
    # the leading cause's own reasons come first, whenever the risk model says one raised the risk
    contrib = model.contributions(model.matrix(rows))
    cause_of = {f.reason: f.cause for f in BY_NAME.values() if f.reason}
    for b, cause in ((1, "technical"), (2, "liquidity"), (3, "credit"), (4, "technical")):
        every = [col[b - 1] for col in score.reasons(contrib, model.features, np.array([cause] * len(rows)),
                                                     99)]
        if any(cause_of.get(t) == cause for t in every):
            assert cause_of[out.loc[b, "reason_1"]] == cause, (b, out.loc[b, "reason_1"], every)


def test_in_a_quiet_band_a_borrower_has_no_cause_and_no_action(fitted):
    model, features, _ = fitted
    rows = features.head(200)
    out = score.score_batch(model, rows, {"low": 1.0}, ("low",), "test")
    assert out["leading_cause"].eq("none").all() and out["action"].eq("none").all()
    parts = out[["p_credit", "p_liquidity", "p_technical"]]  # the risk by cause is still known
    np.testing.assert_allclose(parts.sum(axis=1), out["probability"], rtol=1e-12)
    assert out[[f"reason_{i}" for i in range(1, 5)]].isna().all().all()


def test_the_cause_model_learns_from_the_validation_misses_too():
    """Rounds and temperature come from the validation misses, and then the model is boosted on
    both splits' misses: a signal only the validation cohorts carry (``x1``, all zero in training)
    reaches the shares. Rows without a miss (code -1) are left out."""
    rng = np.random.default_rng(8)

    def split(n: int, x1_varies: bool) -> tuple[np.ndarray, np.ndarray]:
        x0 = rng.integers(0, 2, n).astype(float)
        x1 = rng.integers(0, 2, n).astype(float) if x1_varies else np.zeros(n)
        code = np.where(x1 == 1, 2, x0.astype(int))  # technical wherever x1 is set
        code = np.where(rng.random(n) < 0.1, rng.integers(0, 3, n), code)  # some noise
        code = np.where(rng.random(n) < 0.5, -1, code)  # half the rows did not miss
        return np.column_stack([x0, x1]), code

    (x_train, c_train), (x_valid, c_valid) = split(4000, False), split(4000, True)
    params = {"objective": "multiclass", "num_class": 3, "metric": "multi_logloss", "verbosity": -1,
              "learning_rate": 0.1, "num_leaves": 4, "min_data_in_leaf": 20, "seed": 1,
              "deterministic": True, "num_threads": 1}
    booster, calibration = causes.fit_cause_model(x_train, c_train, x_valid, c_valid, params, ["x0", "x1"],
                                                  [], 200, 10)
    assert booster.num_trees() % 3 == 0 and booster.num_trees() <= 600
    assert calibration["classes"] == list(CAUSES) and 0.2 <= calibration["temperature"] <= 5.0
    share = causes.shares(booster, calibration, np.array([[0.0, 1.0], [0.0, 0.0]]))
    assert share[0, 2] > share[1, 2] + 0.05  # trained on the training misses alone: equal


def test_the_cause_models_tree_size_is_the_one_validation_prefers():
    """A cause only a small group shows (x1 set: 3% of the misses, always technical) needs leaves
    smaller than that group. Of the leaf sizes offered, validation picks one that small, reports
    every size's log loss, and the fitted model finds the group; offered only the large size, the
    model does not."""
    rng = np.random.default_rng(3)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        x0, x1 = rng.integers(0, 2, n).astype(float), (rng.random(n) < 0.03).astype(float)
        code = np.where(x1 == 1, 2, np.where(rng.random(n) < 0.8, x0.astype(int), rng.integers(0, 3, n)))
        return np.column_stack([x0, x1]), code

    (x_train, c_train), (x_valid, c_valid) = split(3000), split(3000)
    params = {"objective": "multiclass", "num_class": 3, "metric": "multi_logloss", "verbosity": -1,
              "learning_rate": 0.1, "num_leaves": 4, "min_data_in_leaf": 500, "seed": 1,
              "deterministic": True, "num_threads": 1}
    group = np.array([[0.0, 1.0], [1.0, 1.0]])

    def fit(sizes, leaves=()):
        booster, calibration = causes.fit_cause_model(x_train, c_train, x_valid, c_valid, params,
                                                      ["x0", "x1"], [], 200, 10, sizes, leaves)
        return causes.shares(booster, calibration, group)[:, 2], calibration

    small, chosen = fit([500, 20])
    assert (chosen["num_leaves"], chosen["min_data_in_leaf"]) == (4, 20)  # params' own num_leaves
    losses = chosen["validation_log_loss"]["4"]
    assert set(losses) == {"500", "20"} and losses["20"] < losses["500"]
    large, alone = fit([])  # none offered: params' own
    assert alone["min_data_in_leaf"] == 500
    assert {n: set(by_leaf) for n, by_leaf in alone["validation_log_loss"].items()} == {"4": {"500"}}
    assert (small > 0.8).all() and (large < 0.5).all()
    # every pair of the two lists is tried: a stump (2 leaves) cannot split on both x0 and x1
    # within one tree, but the losses say which pair won
    _, grid = fit([500, 20], [2, 4])
    assert set(grid["validation_log_loss"]) == {"2", "4"}
    assert all(set(by_leaf) == {"500", "20"} for by_leaf in grid["validation_log_loss"].values())
    best = min((loss, int(n), int(leaf)) for n, by_leaf in grid["validation_log_loss"].items()
               for leaf, loss in by_leaf.items())
    assert (grid["num_leaves"], grid["min_data_in_leaf"]) == best[1:]
