from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from optbinning import BinningProcess

from pipeline import train
from pipeline.catalog import BY_NAME
from pipeline.features import build_features
from pipeline.model import CalibratedLightGBM, calibrate
from tests.conftest import SMALL, make_params, simulate_tables

FAST = {"train": {"lightgbm": {"num_boost_round": 80, "early_stopping_rounds": 15}}}


@pytest.fixture(scope="module")
def labelled(small_sim):
    frame = build_features(small_sim, 30, make_params().features)
    labels = small_sim["ground_truth"].set_index("borrower_id")["label"]
    frame["label"] = labels.loc[frame["borrower_id"]].to_numpy()
    order = frame["jump_date"].rank(method="first").to_numpy() / len(frame)
    return {"train": frame[order <= 0.7].reset_index(drop=True),
            "valid": frame[order > 0.7].reset_index(drop=True)}


@pytest.fixture(scope="module")
def fitted(labelled):
    settings = make_params(FAST).train.lightgbm
    columns = train.feature_columns(labelled["train"])
    categorical = train.categorical_columns(labelled["train"], columns)
    booster = train.fit_lightgbm(labelled["train"], labelled["valid"], columns, categorical, {}, settings)
    return booster, columns, categorical, settings


def test_same_data_same_model(labelled, fitted):
    booster, columns, categorical, settings = fitted
    again = train.fit_lightgbm(labelled["train"], labelled["valid"], columns, categorical, {}, settings)
    assert booster.model_to_string() == again.model_to_string()


def test_no_class_reweighting_and_deterministic_params(fitted):
    _, columns, categorical, settings = fitted
    params = train.lightgbm_params(settings, columns, categorical)
    assert "is_unbalance" not in params and "scale_pos_weight" not in params
    assert params["deterministic"] and params["force_col_wise"]
    assert params["num_threads"] == settings.num_threads


def test_monotone_constraints_hold(labelled, fitted):
    booster, columns, _, _ = fitted
    model = CalibratedLightGBM(booster, {"method": "platt", "intercept": 0.0, "slope": 1.0})
    base = labelled["valid"].head(300)
    for name, direction in (("inquiries_3m", 1), ("credit_score", -1), ("days_past_due_now", 1)):
        assert BY_NAME[name].direction == direction
        low, high = base.copy(), base.copy()
        high[name] = base[name].fillna(0) + (5 if name != "credit_score" else 80)
        low[name] = base[name].fillna(0)
        change = (model.raw(high) - model.raw(low)) * direction
        assert (change >= -1e-12).all(), name


@pytest.fixture(scope="module")
def population():
    """20,000 borrowers on the defaults (one truth replicate: only labels are needed): a weak
    trend such as months_of_history's needs that many rows to show against its constraint."""
    params = make_params({**SMALL, "simulate": {**SMALL["simulate"], "n_borrowers": 20_000,
                                                "shard_size": 10_000, "truth_replicates": 1}})
    tables = simulate_tables(params)
    frame = build_features(tables, params.label.observation_days, params.features)
    labels = tables["ground_truth"].set_index("borrower_id")["label"]
    return frame.assign(label=labels.loc[frame["borrower_id"]].to_numpy())


def test_every_monotone_constraint_agrees_with_the_simulated_data(population):
    check = train.direction_check(population, train.feature_columns(population))
    assert len(check) > 30 and set(check["direction"]) == {-1, 1}
    assert not check["contradicts"].any(), check[check["contradicts"]].to_string()
    agrees = check.set_index("feature").loc[["autodebit_active", "days_past_due_now", "credit_score"]]
    assert (agrees["z"] > 3).all(), agrees  # auto-debit borrowers miss less: manual payers forget


def test_the_direction_check_flags_a_feature_against_its_constraint(labelled):
    reversed_score = labelled["train"].assign(credit_score=-labelled["train"]["credit_score"])
    check = train.direction_check(reversed_score, ["credit_score", "inquiries_3m"]).set_index("feature")
    assert check.loc["credit_score", "contradicts"] and not check.loc["inquiries_3m", "contradicts"]


def test_calibration_maps_into_the_unit_interval_and_platt_is_logistic():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.6, 5000)
    y = (rng.random(5000) < raw**1.5).astype(int)
    iso = train.fit_calibration(raw, y, "isotonic")
    p = calibrate(raw, iso)
    assert 0 < p.min() and p.max() < 1 and np.all(np.diff(p[np.argsort(raw)]) >= -1e-12)
    assert abs(p.mean() - y.mean()) < 0.01
    platt = train.fit_calibration(raw, y, "platt")
    logit = np.log(raw / (1 - raw))
    expected = 1 / (1 + np.exp(-(platt["intercept"] + platt["slope"] * logit)))
    np.testing.assert_allclose(calibrate(raw, platt), expected)


def test_a_teams_own_columns_train_without_constraints(labelled):
    own = {k: v.copy() for k, v in labelled.items()}
    rng = np.random.default_rng(1)
    for frame in own.values():
        frame["team_score"] = rng.normal(size=len(frame))
        frame["team_segment"] = pd.array(rng.choice(["a", "b", "c"], len(frame)), dtype="str")
    columns = train.feature_columns(own["train"])
    categorical = train.categorical_columns(own["train"], columns)
    assert "team_segment" in categorical and "team_score" not in categorical
    categories = train.learn_categories(own["train"], columns)
    settings = make_params(FAST).train.lightgbm
    params = train.lightgbm_params(settings, columns, categorical)
    assert params["monotone_constraints"][columns.index("team_score")] == 0
    booster = train.fit_lightgbm(own["train"], own["valid"], columns, categorical, categories, settings)
    p = CalibratedLightGBM(booster, {"method": "platt", "intercept": 0, "slope": 1}, categories).predict(
        own["valid"])
    assert np.isfinite(p).all() and "team_segment" in booster.feature_name()


def test_scorecard_matches_optbinning_and_signs(labelled):
    s = make_params().train.scorecard
    columns = train.feature_columns(labelled["train"])
    categorical = train.categorical_columns(labelled["train"], columns)
    card = train.fit_scorecard(labelled["train"], columns, categorical, s)
    assert card["variables"] and all(v["coefficient"] < 0 for v in card["variables"])
    names = [v["name"] for v in card["variables"]]
    process = BinningProcess(names, categorical_variables=[c for c in categorical if c in names],
                             max_n_bins=s.max_n_bins, min_bin_size=s.min_bin_size)
    process.fit(labelled["train"][names], labelled["train"]["label"])
    woe = process.transform(labelled["valid"][names], metric="woe", metric_missing="empirical",
                            metric_special="empirical")
    for v in card["variables"]:
        np.testing.assert_allclose(train.scorecard_woe(v, labelled["valid"][v["name"]]), woe[v["name"]],
                                   atol=1e-9, err_msg=v["name"])
    p = train.scorecard_predict(card, labelled["valid"])
    points = train.scorecard_points(card, labelled["valid"])
    assert ((0 < p) & (p < 1)).all()
    assert np.all(np.diff(points[np.argsort(p)]) <= 1e-9)  # more points, less risk
