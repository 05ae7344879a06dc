from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from optbinning import BinningProcess

from pipeline import train
from pipeline.catalog import BY_NAME
from pipeline.features import build_features
from pipeline.model import CalibratedLightGBM, calibrate, encode
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
    params = train.lightgbm_params(settings, columns, categorical, 1000)
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
                                                "shard_size": 10_000, "truth_replicates": 2}})
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
    iso = train.fit_calibration(raw, y, "isotonic", 1)
    p = calibrate(raw, iso)
    assert 0 < p.min() and p.max() < 1 and np.all(np.diff(p[np.argsort(raw)]) >= -1e-12)
    assert abs(p.mean() - y.mean()) < 0.01
    platt = train.fit_calibration(raw, y, "platt", 1)
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
    params = train.lightgbm_params(settings, columns, categorical, len(own["train"]))
    assert params["monotone_constraints"][columns.index("team_score")] == 0
    booster = train.fit_lightgbm(own["train"], own["valid"], columns, categorical, categories, settings)
    p = CalibratedLightGBM(booster, {"method": "platt", "intercept": 0, "slope": 1}, categories).predict(
        own["valid"])
    assert np.isfinite(p).all() and "team_segment" in booster.feature_name()


def test_spellings_of_one_category_are_learned_as_one():
    """Known answer from outside: 'university' and 'UNIVERSITY' (or 'university ') were learned as
    two categories, and a file's 'University' then matched neither. One category now, spelt as most
    rows spell it, which every spelling of the training rows and of a scored file encodes to."""
    frame = pd.DataFrame({"education": ["university", "UNIVERSITY", "university ", "university",
                                        "High School", "high-school", None],
                          "amount": [1.0] * 7})
    categories = train.learn_categories(frame, ["education", "amount"])
    assert categories == {"education": ["High School", "university"]}
    codes = encode(frame.assign(education=frame["education"].str.title()), ["education"], categories)
    assert codes[:, 0].tolist()[:6] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0] and np.isnan(codes[6, 0])


def test_the_model_records_the_last_scoring_date_it_was_fitted_on_and_its_reason_edges(labelled):
    """What ``limitjump promote`` leaves out of a comparison (``registry.unseen_rows``) and where a
    reason's words hold (``score.reason_edges``), from the training and validation rows."""
    columns = train.feature_columns(labelled["train"])
    categorical = train.categorical_columns(labelled["train"], columns)
    fitted, _ = train.fit_scoring_model(labelled, columns, categorical, make_params(FAST).train.lightgbm)
    last = max(labelled[name]["scoring_date"].max() for name in ("train", "valid"))
    assert fitted.fitted_until == last.normalize()
    low, high = fitted.reference["thirds"]["credit_score"]
    score_at = labelled["train"]["credit_score"]
    assert low < high and 0.25 < (score_at <= low).mean() < 0.42


def test_scorecard_matches_optbinning_and_signs(labelled):
    s = make_params().train.scorecard
    columns = train.feature_columns(labelled["train"])
    categorical = train.categorical_columns(labelled["train"], columns)
    card = train.fit_scorecard(labelled["train"], columns, categorical, s)
    assert card["variables"] and all(v["coefficient"] < 0 for v in card["variables"])
    names = [v["name"] for v in card["variables"]]
    kept_categorical = [c for c in categorical if c in names]
    process = BinningProcess(names, categorical_variables=kept_categorical,
                             max_n_bins=s.max_n_bins, min_bin_size=s.min_bin_size,
                             binning_fit_params=train.binning_params(names, kept_categorical, s.min_bin_size))
    process.fit(labelled["train"][names], labelled["train"]["label"])
    woe = process.transform(labelled["valid"][names], metric="woe", metric_missing="empirical",
                            metric_special="empirical")
    for v in card["variables"]:
        np.testing.assert_allclose(train.scorecard_woe(v, labelled["valid"][v["name"]]), woe[v["name"]],
                                   atol=1e-9, err_msg=v["name"])
    p = train.scorecard_predict(card, labelled["valid"])
    assert ((0 < p) & (p < 1)).all()


def test_numeric_bins_follow_the_catalogue_direction_or_one_trend(labelled):
    """Every numeric characteristic's WoE is monotone over its bins (missing and special bins
    aside): WoE falls as the miss rate rises, so a + feature's WoE decreases, a - one's increases."""
    s = make_params().train.scorecard
    frame = labelled["train"].assign(team_amount=labelled["train"]["credit_score"] * -3.0 + 7)
    columns = train.feature_columns(frame)
    categorical = train.categorical_columns(frame, columns)
    card = train.fit_scorecard(frame, columns, categorical, s)
    numeric = [v for v in card["variables"] if v["kind"] != "categorical"]
    assert numeric
    for v in numeric:
        steps = np.diff(v["woe"][:len(v["bins"]) + 1])
        direction = BY_NAME[v["name"]].direction if v["name"] in BY_NAME else 0
        if direction:
            assert (-direction * steps >= -1e-9).all(), (v["name"], v["woe"])
        else:
            assert (steps >= -1e-9).all() or (steps <= 1e-9).all(), (v["name"], v["woe"])
    trends = train.binning_params(["credit_score", "inquiries_3m", "age", "team_amount", "trigger"],
                                  ["trigger"], 0.05)
    assert trends == {"credit_score": {"monotonic_trend": "descending"},
                      "inquiries_3m": {"monotonic_trend": "ascending"},
                      "age": {"monotonic_trend": "auto_asc_desc"},
                      "team_amount": {"monotonic_trend": "auto_asc_desc"}, "trigger": {"cat_cutoff": 0.05}}


def test_a_characteristic_with_no_value_in_training_is_left_out_of_the_card(labelled):
    """Borrowers all too new for a 6-month change: the column is empty, the card is still made."""
    frame = labelled["train"].assign(credit_score_change_6m=np.nan,
                                     segment=pd.Series(pd.NA, index=labelled["train"].index, dtype="str"))
    columns = train.feature_columns(frame)
    assert {"credit_score_change_6m", "segment"} <= set(columns)
    card = train.fit_scorecard(frame, columns, train.categorical_columns(frame, columns),
                               make_params().train.scorecard)
    names = {v["name"] for v in card["variables"]}
    assert names and not names & {"credit_score_change_6m", "segment"}
    assert np.isfinite(train.scorecard_predict(card, frame.head(50))).all()


def test_leaf_size_and_l2_scale_with_training_rows():
    settings = make_params().train.lightgbm
    assert settings.min_data_in_leaf == "auto" and settings.lambda_l2 == "auto"
    # the simulated defaults' 66,447 training rows keep the values they were tuned with
    assert (train.leaf_size(settings, 66_447), train.leaf_l2(settings, 66_447)) == (200, 5.0)
    assert (train.leaf_size(settings, 600), train.leaf_l2(settings, 600)) == (30, 0.75)
    assert (train.leaf_size(settings, 200), train.leaf_l2(settings, 200)) == (20, 0.5)
    assert train.leaf_size(settings, 3_000) == 150
    fixed = settings.model_copy(update={"min_data_in_leaf": 50, "lambda_l2": 1.0, "cat_smooth": 7.5})
    params = train.lightgbm_params(fixed, ["age"], [], 600)
    assert (params["min_data_in_leaf"], params["lambda_l2"], params["cat_smooth"]) == (50, 1.0, 7.5)
    assert train.lightgbm_params(settings, ["age"], [], 600)["cat_smooth"] == 7.5  # a quarter of the leaf


def _noise_city(frame: pd.DataFrame) -> pd.DataFrame:
    """150 cities of a few rows each, drawn apart from everything: pure noise (an outside check)."""
    cities = np.random.default_rng(5).integers(0, 150, len(frame))
    return frame.assign(city=pd.array([f"city_{c:03d}" for c in cities], dtype="str"))


def test_a_category_of_many_rare_values_does_not_lead_either_model(labelled):
    """An outside check: 150 cities of a dozen training rows each, noise, led both models of a
    team's portfolio (LightGBM 0.604 out-of-time AUC, 0.655 without them; the scorecard 0.612 and
    0.660). The scorecard bins categories rarer than a bin together (here: all, so it has nothing
    to bin), and LightGBM smooths each category by a leaf's worth of rows."""
    s = make_params().train
    frames = {name: _noise_city(labelled[name]) for name in ("train", "valid")}
    columns = train.feature_columns(frames["train"])
    categorical = train.categorical_columns(frames["train"], columns)
    assert "city" in categorical
    card = train.fit_scorecard(frames["train"], columns, categorical, s.scorecard)
    assert "city" not in [v["name"] for v in card["variables"]]
    # beside common categories that carry the signal, the rare ones share one bin, not one each
    rng = np.random.default_rng(6)
    y = frames["train"]["label"].to_numpy()
    segment = np.where(rng.random(len(y)) < np.where(y == 1, 0.6, 0.1), "a", "b").astype(object)
    rare = rng.random(len(y)) < 0.08
    segment[rare] = [f"r{i:02d}" for i in rng.integers(0, 80, rare.sum())]
    mixed = frames["train"].assign(segment=pd.array(segment, dtype="str"))
    card = train.fit_scorecard(mixed, [*columns, "segment"], [*categorical, "segment"], s.scorecard)
    bins = next(v["bins"] for v in card["variables"] if v["name"] == "segment")
    assert any(set(segment[rare]) <= set(group) for group in bins), bins
    fitted, _ = train.calibrated_on_validation(frames["train"], frames["valid"], columns, categorical,
                                               train.learn_categories(frames["train"], columns), s.lightgbm)
    gain = dict(zip(columns, fitted.booster.feature_importance("gain"), strict=True))
    assert gain["city"] < 0.02 * sum(gain.values()), gain["city"] / sum(gain.values())


def test_auto_calibration_is_platt_on_few_misses_and_keeps_the_ranking():
    rng = np.random.default_rng(3)
    raw = rng.uniform(0.01, 0.6, 800)
    y = (rng.random(800) < raw).astype(int)
    assert train.calibration_method("auto", y, 500) == "platt"
    assert train.calibration_method("auto", y, int(y.sum())) == "isotonic"
    assert train.calibration_method("isotonic", y, 10**6) == "isotonic"
    platt = calibrate(raw, train.fit_calibration(raw, y, "auto", 500))
    assert len(np.unique(platt)) == len(np.unique(raw))  # Platt is strictly monotone: no ties
    isotonic = calibrate(raw, train.fit_calibration(raw, y, "isotonic", 500))
    assert len(np.unique(isotonic)) < len(np.unique(raw)) / 4


def test_categorical_bins_print_as_their_categories(labelled):
    rng = np.random.default_rng(4)
    frame = labelled["train"][["borrower_id", "credit_score", "label"]].copy()
    housing = np.where(frame["label"].to_numpy() == 1, rng.choice(["rent", "rent", "own"], len(frame)),
                       rng.choice(["own", "own", "mortgage", "rent"], len(frame)))
    frame["housing"] = pd.array(housing, dtype="str")
    columns = train.feature_columns(frame)
    card = train.fit_scorecard(frame, columns, train.categorical_columns(frame, columns),
                               make_params().train.scorecard)
    housing = next(v for v in card["variables"] if v["name"] == "housing")
    bins = housing["labels"][:len(housing["bins"])]
    assert sorted(", ".join(bins).split(", ")) == ["mortgage", "own", "rent"], housing["labels"]
    assert not any("Array" in label or "dtype" in label for label in housing["labels"])


def test_the_forgetting_prior_recovers_the_beta_of_simulated_records():
    """Borrowers with 1-24 due dates paid by hand, each forgetting at a chance drawn from
    Beta(0.2, 6): the beta-binomial's maximum likelihood finds the prior back."""
    from pipeline.config import LabelSettings

    rng = np.random.default_rng(11)
    n = rng.integers(1, 25, 40_000)
    k = rng.binomial(n, rng.beta(0.2, 6.0, n.size))
    frame = pd.DataFrame({"forgotten_due_dates": k.astype(float), "manual_due_dates": n.astype(float)})
    label = LabelSettings(observation_days=30, performance_cycles=4, dpd_threshold=1)
    prior = train.forgetting_prior(pd.concat([frame, pd.DataFrame({"forgotten_due_dates": [0.0],
                                                                    "manual_due_dates": [0.0]})]), label)
    assert prior["a"] == pytest.approx(0.2, rel=0.1) and prior["b"] == pytest.approx(6.0, rel=0.1)
    assert prior["due_dates"] == 4 and prior["rows"] == n.size  # the row without a chance left out
    assert prior["forgotten"] == k.sum() and prior["chances"] == n.sum()
    later = label.model_copy(update={"dpd_threshold": 7})  # a forgotten due date is paid within days
    assert train.forgetting_prior(frame, later) is None
    assert train.forgetting_prior(frame.assign(forgotten_due_dates=0.0), label) is None
    assert train.forgetting_prior(frame[["manual_due_dates"]], label) is None


def test_the_lapse_history_is_the_lapsed_rows_miss_rate_with_half_a_miss_and_half_a_payment_added():
    frame = pd.DataFrame({"autodebit_lapsed": [1.0, 1.0, 1.0, 0.0, np.nan, 0.0, 1.0] * 5,
                          "label": [1, 1, 0, 1, 1, 0, 1] * 5})
    assert train.lapse_history(frame) == {"rows": 20, "missed": 15, "rate": 15.5 / 21}
    assert train.lapse_history(frame.iloc[:-1]) is None  # 19 lapsed rows: too few to floor anyone
    assert train.lapse_history(frame.assign(autodebit_lapsed=0.0)) is None  # no such row
    assert train.lapse_history(frame[["label"]]) is None  # a team's columns without it


def test_the_floor_histories_are_those_the_training_rows_and_the_split_give():
    from pipeline.config import LabelSettings

    label = LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=1)
    frame = pd.DataFrame({"autodebit_lapsed": [1.0, 1.0, 0.0, 0.0] * 10, "label": [1, 1, 0, 1] * 10,
                          "forgotten_due_dates": [0.0, 2.0, 0.0, 1.0] * 10,
                          "manual_due_dates": [5.0, 9.0, 3.0, 4.0] * 10})
    maintenance = {"due_dates": 9, "missed": 8, "rate": 8.5 / 10}
    found = train.floor_histories(frame, label, maintenance)
    assert found == {"maintenance": maintenance, "forgetting": train.forgetting_prior(frame, label),
                     "lapse": train.lapse_history(frame)}
    assert found["forgetting"]["forgotten"] == 30 and found["lapse"]["rows"] == 20
    assert list(train.floor_histories(frame, None, None)) == ["lapse"]  # no label, no prior
    assert train.floor_histories(frame[["label"]], label, None) == {}  # a team's columns


def test_platt_calibration_of_a_booster_that_split_nothing_gives_the_miss_rate():
    """A few hundred rows can leave a booster with no split: every raw score alike, and a line
    through one point has no slope. It gave NaN probabilities and stopped training."""
    y = np.array([0, 0, 0, 1, 0, 1, 0, 0])
    fitted = train.fit_calibration(np.full(8, 0.2), y, "platt", 1000)
    assert fitted["slope"] == 0.0
    np.testing.assert_allclose(calibrate(np.array([0.1, 0.2, 0.9]), fitted), y.mean())


def test_tuning_off_trains_with_train_lightgbm_as_it_is(tmp_path):
    import json

    from pipeline.errors import InputError, UsageError

    best = tmp_path / "best.json"
    # a search left over from earlier: off means off, whatever the file says
    best.write_text(json.dumps({"enabled": True, "params": {"num_leaves": 7}}))
    s = make_params().train.lightgbm
    assert train.tuned_settings(s, False, best) == (s, [])
    settings, names = train.tuned_settings(s, True, best)
    assert names == ["num_leaves"] and settings.num_leaves == 7
    assert settings.model_dump(exclude={"num_leaves"}) == s.model_dump(exclude={"num_leaves"})
    best.write_text(json.dumps({"enabled": False}))
    with pytest.raises(UsageError, match="run limitjump tune first"):
        train.tuned_settings(s, True, best)
    with pytest.raises(UsageError, match="holds no search"):
        train.tuned_settings(s, True, tmp_path / "none.json")
    best.write_text(json.dumps({"enabled": True, "params": {"num_leaves": -3}}))
    with pytest.raises(InputError, match="not the tune stage's values"):
        train.tuned_settings(s, True, best)


def test_the_points_table_has_a_row_per_characteristic_and_bin():
    card = {"variables": [{"name": "age", "labels": ["[18, 30)", "[30, inf)"], "woe": [0.2, -0.1],
                           "points": [10.0, 25.0]},
                          {"name": "dti", "labels": ["Missing"], "woe": [0.0], "points": [0.0]}]}
    assert train.scorecard_points(card).to_dict("records") == [
        {"characteristic": "age", "bin": "[18, 30)", "woe": 0.2, "points": 10.0},
        {"characteristic": "age", "bin": "[30, inf)", "woe": -0.1, "points": 25.0},
        {"characteristic": "dti", "bin": "Missing", "woe": 0.0, "points": 0.0}]


def test_columns_of_one_value_are_named():
    """Known answers: a column of one value, or of missing values only, teaches nothing."""
    frame = pd.DataFrame({"inquiries_1m": [0.0, 0.0, 0.0], "gone": [np.nan] * 3, "age": [30.0, 41.0, 30.0],
                          "mixed": [0.0, np.nan, 0.0]})
    assert train.constant_columns(frame, list(frame.columns)) == ["inquiries_1m", "gone"]
