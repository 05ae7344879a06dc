"""The scoring model (pipeline/model.py): text categories encoded without pandas' deprecated
unseen-category behaviour, and a model of a team's own text and numeric columns served through
MLflow's pyfunc and ``mlflow models predict``."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import warnings
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import io, model, train
from pipeline.errors import UsageError
from pipeline.lgbm import lgb
from tests.conftest import make_params, model_never_told_of_maintenance


def test_unseen_and_missing_categories_encode_as_missing_without_a_warning():
    frame = pd.DataFrame({"segment": pd.array(["retail", "pensioner", None, "student"], dtype="str"),
                          "channel": pd.Series(["app", None, "web", "app"], dtype=object),
                          "amount": pd.array([1, None, 3, 4], dtype="Int64")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matrix = model.encode(frame, ["segment", "channel", "amount"],
                              {"segment": ["retail", "student"], "channel": ["app", "web"]})
    expected = [[0, 0, 1], [np.nan, np.nan, np.nan], [np.nan, 1, 3], [1, 0, 4]]
    np.testing.assert_array_equal(matrix, np.array(expected, dtype=float))


def test_numbers_written_as_text_and_blanks_are_read_and_other_text_is_named():
    """MLflow hands a CSV or JSON column over as text when any of its cells is: numbers and
    blanks in it are values, anything else stops with the column, the count and the rows."""
    mixed = pd.Series(["1", " 2 ", None, "", "NaN", 3, 4.5], dtype=object)
    np.testing.assert_array_equal(model.numbers(mixed, "amount"), [1, 2, np.nan, np.nan, np.nan, 3, 4.5])
    # as a file's cells are read by score: '33,000.00' had been scored there and refused here
    exported = pd.Series(["33,000.00", "¥12,500", "-¥3", "#N/A"], dtype="str")
    np.testing.assert_array_equal(model.numbers(exported, "amount"), [33000.0, 12500.0, -3.0, np.nan])
    text = pd.Series(["1", "score_improvement", None, "user request"], dtype="str")
    with pytest.raises(ValueError, match=r"column 'trigger' must hold numbers: 2 of 4 rows .*"
                                         r"row 1 'score_improvement', row 3 'user request'.*"
                                         r"codes: What triggered the increase: 0 new user"):
        model.encode(pd.DataFrame({"trigger": text}), ["trigger"], {})
    only_text = r"'amount' must hold numbers: 1 of 2 .*row 0 'abc'; rows counted from 0\)$"
    with pytest.raises(ValueError, match=only_text):
        model.encode(pd.DataFrame({"amount": ["abc", "5"]}), ["amount"], {})


def test_codes_written_as_numbers_are_the_text_codes_a_model_learned():
    """Known answers: a team's codes learned as the text '1', '2', '3' and handed over as numbers
    (MLflow reads a CSV's 1, 2, 3 as integers) are those codes, as `limitjump score` reads them;
    they had been taken as positions among the learned codes, so 1 was scored as '2'."""
    learned = {"marriage": ["1", "2", "3"]}
    for given in (pd.array([1, 2, 3, None], dtype="Int64"), [1.0, 2.0, 3.0, np.nan], ["1", "2", "3", None]):
        matrix = model.encode(pd.DataFrame({"marriage": given}), ["marriage"], learned)
        np.testing.assert_array_equal(matrix[:, 0], [0, 1, 2, np.nan])
    unseen = model.encode(pd.DataFrame({"marriage": [0, 4]}), ["marriage"], learned)
    assert np.isnan(unseen).all()
    with pytest.raises(ValueError, match="'marriage' holds true/false, but the model learned it as text"):
        model.encode(pd.DataFrame({"marriage": [True, False]}), ["marriage"], learned)


def test_rows_reach_the_model_as_a_frame_whatever_json_mlflow_passed_on():
    """Known answers: MLflow's `inputs` JSON arrives as records or columns (a list, a dict); a
    repeated column or a bare array is refused by name, not with a traceback from pandas."""
    expected = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    for given in ([{"a": 1, "b": "x"}, {"a": 2}], {"a": [1, 2], "b": ["x", None]},
                  {"a": {"0": 1, "1": 2}, "b": {"0": "x", "1": None}},
                  {"a": np.array([1, 2]), "b": ["x", None]},  # and as MLflow passes them, 0-d arrays:
                  [{"a": np.array(1), "b": np.array("x")}, {"a": np.array(2), "b": np.array(None)}],
                  {"a": np.array({"0": 1, "1": 2}), "b": np.array({"0": "x", "1": None})}):
        got = model.as_frame(given).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    pd.testing.assert_frame_equal(model.as_frame({"a": 1, "b": "x"}), expected.head(1))
    with pytest.raises(ValueError, match=r"1 column name more than once: \['a'\]"):
        model.as_frame(pd.concat([expected, expected[["a"]]], axis=1))
    with pytest.raises(ValueError, match="a table of named columns .* not ndarray"):
        model.as_frame(np.ones((2, 2)))
    with pytest.raises(ValueError, match="each hold a list of values"):
        model.as_frame({"a": 1, "b": [1]})


def test_a_request_lacking_columns_is_told_why_where_it_can_be_seen():
    """Known answers from outside: a ';' CSV sent to the server, or one with capitals, was told
    only that it lacked 71 columns; a CSV's repeated column read as 'name.1' is refused."""
    columns = ["age", "credit_score"]
    model.require_columns(pd.DataFrame({"age": [1], "credit_score": [2], "other": [3]}), columns)
    with pytest.raises(ValueError, match=r"lacks 2 .*one column, 'age;credit_score': a CSV separated"):
        model.require_columns(pd.read_csv(StringIO("age;credit_score\n30;600\n")), columns)
    with pytest.raises(ValueError, match=r"lacks 1 .*'AGE' for 'age': column names are matched exactly"):
        model.require_columns(pd.DataFrame({"AGE": [1], "credit_score": [2]}), columns)
    read = pd.read_csv(StringIO("credit_score,age,credit_score\n400,30,600\n"))
    with pytest.raises(ValueError, match=r"more than once: 'credit_score' \(its copy read as "
                                         r"'credit_score.1'\)"):
        model.refuse_copies(read, columns)
    model.refuse_copies(pd.DataFrame({"age.1": [1], "credit_score": [2]}), columns)  # no 'age': no copy


def test_values_the_features_contract_refuses_are_named_before_a_pyfunc_scores():
    """Known answers: as ``limitjump score`` rejects them, a pyfunc refuses a negative amount, an
    unknown code and a blank where a value is always known, naming the rule, the count and the
    rows; a blank where one may be missing, a team's own column and a text category pass."""
    columns = ["trigger", "age", "days_to_first_large_draw", "own_amount", "segment"]
    clean = pd.DataFrame({"trigger": [0, 3, 1, 2], "age": ["30", 41.0, 55, 18],
                          "days_to_first_large_draw": [None, 3, 7, 0], "own_amount": [-1e9, None, 2, 3],
                          "segment": ["x", None, "unseen", "y"]})
    model.refuse_outside_contract(clean, columns, {"segment": ["x", "y"]})
    # a column the frame lacks is left to the model's own message
    model.refuse_outside_contract(clean.drop(columns="age"), columns, {"segment": ["x", "y"]})
    bad = clean.assign(trigger=[0, 7, 9, 2], age=[30, None, -5, 18])
    with pytest.raises(ValueError, match=r"^2 of 4 rows hold values the features contract refuses: "
                                         r"'trigger' fails isin\(\[0.0, 1.0, 2.0, 3.0\]\) in 2 rows "
                                         r"\(row 1 7.0, row 2 9.0\); 'age' fails not_nullable in 1 row "
                                         r"\(row 1 missing\); 'age' fails in_range\(18.0, 80.0\) in 1 row "
                                         r"\(row 2 -5.0\) \(rows counted from 0; `limitjump score` rejects"):
        model.refuse_outside_contract(bad, columns, {"segment": ["x", "y"]})


def test_a_pyfunc_refuses_a_blank_its_model_never_saw_in_training(team_model_dir):
    """LightGBM reads a missing value it never saw in training as 0 (``amount`` here: a blank
    scored as an amount of 0); a model that records the numbers no training row lacked refuses a
    blank in one, naming the column and the row, as `limitjump score` rejects it."""
    from mlflow.exceptions import MlflowException

    fitted = model.CalibratedLightGBM.from_dir(team_model_dir)
    blank, zero = (fitted.predict(ROWS.iloc[[1]].assign(amount=v)) for v in (np.nan, 0.0))
    np.testing.assert_array_equal(blank, zero)
    assert model.Served(fitted).predict(ROWS).shape == (4,)  # a model that recorded none: as before
    fitted.reference = {"never_missing": ["amount"]}
    with pytest.raises(MlflowException, match=r"'amount' fails known_in_every_training_row in 1 row "
                                              r"\(row 3 missing\)"):
        model.Served(fitted).predict(ROWS)
    assert model.Served(fitted).predict(ROWS.iloc[:3]).shape == (3,)


@pytest.fixture(scope="module")
def team_model_dir(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    n = 2000
    segment = rng.choice(["retail", "student"], n)
    amount = rng.gamma(2.0, 1000.0, n)
    risk = 1 / (1 + np.exp(-(-2 + 0.0004 * amount + (segment == "student"))))
    frame = pd.DataFrame({"customer_id": np.arange(n), "segment": pd.array(segment, dtype="str"),
                          "amount": amount, "label": (rng.random(n) < risk).astype(int)})
    columns = train.feature_columns(frame, id_columns=("customer_id",))
    categorical = train.categorical_columns(frame, columns)
    categories = train.learn_categories(frame, columns)
    settings = make_params({"train": {"lightgbm": {"num_boost_round": 60, "early_stopping_rounds": 10}}})
    fitted = train.fit_calibrated_lightgbm(frame.iloc[:1500], frame.iloc[1500:], columns, categorical,
                                           categories, settings.train.lightgbm)
    folder = tmp_path_factory.mktemp("team_model")
    fitted.booster.save_model(str(folder / model.BOOSTER_FILE))
    io.write_json(fitted.calibration, folder / model.CALIBRATION_FILE)
    io.write_json(fitted.categories, folder / model.CATEGORIES_FILE)
    return folder


ROWS = pd.DataFrame({"segment": ["student", "retail", "pensioner", None], "amount": [5000, 200, 1000, None]})


def test_a_model_sent_with_every_batch_is_written_once_and_read_once_per_process(team_model_dir, monkeypatch):
    sent = model.CalibratedLightGBM.from_dir(team_model_dir)
    sent.causes = (lgb.Booster(model_file=str(team_model_dir / model.BOOSTER_FILE)), {"method": "isotonic"})
    sent.threads = 1
    written, write = [], lgb.Booster.model_to_string
    monkeypatch.setattr(lgb.Booster, "model_to_string",
                        lambda self, *args, **kwargs: written.append(self) or write(self, *args, **kwargs))
    batches = [pickle.dumps(sent) for _ in range(3)]
    assert len(written) == 2 and batches[0] == batches[1] == batches[2]  # each booster once
    first, second = pickle.loads(batches[0]), pickle.loads(batches[1])
    assert first is not second and first.booster is second.booster and first.causes[0] is second.causes[0]
    assert first.booster is not sent.booster and first.threads == 1 and first.causes[1] == sent.causes[1]
    matrix = sent.matrix(ROWS)
    np.testing.assert_array_equal(first.probability(matrix), sent.probability(matrix))
    without = pickle.loads(pickle.dumps(model.CalibratedLightGBM.from_dir(team_model_dir)))
    assert without.causes is None
    np.testing.assert_array_equal(without.probability(matrix), sent.probability(matrix))


@pytest.mark.slow
def test_pyfunc_and_mlflow_models_predict_score_text_categories(team_model_dir, tmp_path):
    import mlflow

    saved = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(str(saved), loader_module="pipeline.model", data_path=str(team_model_dir))
    loaded = mlflow.pyfunc.load_model(str(saved))
    p = loaded.predict(ROWS)
    assert p.shape == (4,) and np.isfinite(p).all() and ((0 < p) & (p < 1)).all()
    assert p[0] > p[1]  # a student with a large amount is riskier than a retail client with a small one
    direct = model.CalibratedLightGBM.from_dir(team_model_dir).predict(ROWS)
    np.testing.assert_allclose(p, direct)
    rows = tmp_path / "rows.csv"
    ROWS.to_csv(rows, index=False)
    out = tmp_path / "predictions.json"
    done = subprocess.run([str(Path(sys.executable).parent / "mlflow"), "models", "predict", "-m", str(saved),
                           "-i", str(rows), "-t", "csv", "-o", str(out), "--env-manager", "local"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    served = pd.read_json(out)["predictions"].to_numpy()
    np.testing.assert_allclose(served, direct)


FORGETTING_COLUMNS = ["autodebit_active", "autodebit_lapsed", "reauth_pending", "forgotten_due_dates",
                      "manual_due_dates"]


def test_the_forgetting_floor_is_the_beta_binomial_chance_to_forget_one_of_the_next_due_dates():
    """Known answers against SciPy's beta function: 1 - B(a + k, b + n - k + m) / B(a + k,
    b + n - k) for a borrower with no agreement in force (one lapsed or awaiting re-authorisation
    too: such a borrower pays by hand meanwhile); 0 with an agreement in force or an unknown
    state; 0 for a model without the prior or the features."""
    from scipy.special import betaln

    known = {"a": 0.2, "b": 5.8, "due_dates": 3}
    rows = np.array([  # active, lapsed, pending, forgotten, manual
        [0, 0, 0, 0, 0], [0, 0, 0, 0, 20], [0, 0, 0, 4, 12], [1, 0, 0, 4, 12], [0, 1, 0, 4, 12],
        [0, 0, 1, 4, 12], [np.nan, 0, 0, 4, 12], [0, 0, 0, np.nan, np.nan]], dtype=float)
    got = model.forgetting_floor(rows, FORGETTING_COLUMNS, {"forgetting": known})
    k, n = np.nan_to_num(rows[:, 3]), np.nan_to_num(rows[:, 4])
    a, b = 0.2 + k, 5.8 + n - k
    expected = 1 - np.exp(betaln(a, b + 3) - betaln(a, b))
    np.testing.assert_allclose(got[[0, 1, 2, 4, 5, 7]], expected[[0, 1, 2, 4, 5, 7]], rtol=1e-12)
    assert got[[3, 6]].tolist() == [0.0] * 2
    assert got[2] > got[0] > got[1] > 0  # forgetting raises it, a long clean record lowers it
    assert not model.forgetting_floor(rows, FORGETTING_COLUMNS, {}).any()
    assert not model.forgetting_floor(rows[:, :4], FORGETTING_COLUMNS[:4], {"forgetting": known}).any()
    both = model.floor(rows, FORGETTING_COLUMNS, {"forgetting": known,
                                                  "maintenance": {"due_dates": 9, "missed": 9, "rate": 0.9}})
    np.testing.assert_allclose(both, got)  # the maintenance floor needs its column: none here


def test_raising_an_agreement_fault_never_lowers_the_floor():
    """autodebit_lapsed and reauth_pending raise the risk (their + direction): a borrower with
    no agreement in force had lost the forgetting floor when either was set, and scored below
    the same borrower paying by hand (an outside check: 0.042 against 0.069)."""
    rng = np.random.default_rng(2)
    columns = [*FORGETTING_COLUMNS, "due_dates_in_announced_outage"]
    rows = np.column_stack([rng.integers(0, 2, 400), np.zeros(400), np.zeros(400),
                            rng.integers(0, 4, 400), rng.integers(0, 30, 400), rng.integers(0, 3, 400)])
    rows[:, 3] = np.minimum(rows[:, 3], rows[:, 4])
    history = {"forgetting": {"a": 0.2, "b": 5.8, "due_dates": 3},
               "maintenance": {"due_dates": 90, "missed": 30, "rate": 0.33}}
    for lapse in ({}, {"lapse": {"rows": 40, "missed": 39, "rate": 0.96}}):
        before = model.floor(rows, columns, {**history, **lapse})
        for flag in (1, 2):  # lapsed, then awaiting re-authorisation
            raised = rows.copy()
            raised[:, flag] = 1.0
            raised[:, 0] = np.where(flag == 1, 0.0, raised[:, 0])  # a lapsed agreement is not in force
            lost = rows[:, 0] == 0  # an agreement in force that lapses leaves the maintenance floor
            assert (model.floor(raised, columns, {**history, **lapse})[lost] >= before[lost]).all()


def assert_served_alike(fitted: model.CalibratedLightGBM, folder: Path, rows: pd.DataFrame,
                        expected: np.ndarray, served: np.ndarray | None = None) -> None:
    """Saved to ``folder``, the model scores ``rows`` as ``expected`` read from the folder, and
    through the pyfunc loader the ``served`` rows (all by default)."""
    fitted.booster.save_model(str(folder / model.BOOSTER_FILE))
    io.write_json(fitted.calibration, folder / model.CALIBRATION_FILE)
    io.write_json({}, folder / model.CATEGORIES_FILE)
    np.testing.assert_allclose(model.CalibratedLightGBM.from_dir(folder).predict(rows), expected)
    served = np.ones(len(rows), dtype=bool) if served is None else np.asarray(served)
    np.testing.assert_allclose(np.asarray(model._load_pyfunc(str(folder)).predict(rows[served])).ravel(),
                               expected[served])


def test_the_forgetting_floor_lifts_a_booster_that_never_saw_forgetting(tmp_path):
    """A booster trained where nobody forgot scores every borrower alike; with the prior in its
    calibration, the borrower who forgot 4 of 12 due dates paid by hand scores the floor, from
    its folder and through the pyfunc loader alike, and the lift is what the floor added."""
    rng = np.random.default_rng(4)
    n = 3000
    frame = pd.DataFrame({"borrower_id": np.arange(n), "credit_score": rng.normal(650, 60, n).round(),
                          **{c: np.zeros(n) for c in FORGETTING_COLUMNS}})
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp((frame["credit_score"] - 560) / 30))).astype(int)
    settings = make_params({"train": {"lightgbm": {"num_boost_round": 40, "early_stopping_rounds": 10}}})
    fitted = train.fit_calibrated_lightgbm(frame.iloc[:2000], frame.iloc[2000:], train.feature_columns(frame),
                                           [], {}, settings.train.lightgbm)
    rows = frame.iloc[:3].drop(columns="label").assign(credit_score=700.0)
    rows.loc[1, ["forgotten_due_dates", "manual_due_dates"]] = [4.0, 12.0]
    rows.loc[2, ["autodebit_active", "forgotten_due_dates", "manual_due_dates"]] = [1.0, 4.0, 12.0]
    before = fitted.predict(rows)
    fitted.calibration["forgetting"] = {"a": 0.2, "b": 5.8, "due_dates": 3}
    after = fitted.predict(rows)
    least = model.forgetting_floor(fitted.matrix(rows), fitted.features, fitted.calibration)
    assert least[1] > before[1] and least[2] == 0
    np.testing.assert_allclose(after, np.maximum(before, least))
    assert_served_alike(fitted, tmp_path, rows, after)
    np.testing.assert_allclose(fitted.floor_lift(fitted.matrix(rows), after), after - before, atol=1e-15)


def test_the_maintenance_floor_lifts_only_stopped_debits_the_booster_never_saw(tmp_path):
    """A booster whose training rows never had a due date in announced maintenance learns nothing
    of it; the floor from the platform's history lifts exactly the borrowers whose debit it stops
    (agreement in force), by 1 - (1 - rate)^k for k such due dates, and served from its folder
    and through the pyfunc loader it scores the same."""
    fitted = model_never_told_of_maintenance()
    rows = pd.DataFrame({"borrower_id": range(6), "credit_score": [700.0] * 6,
                         "autodebit_active": [1.0, 1.0, 1.0, 0.0, 1.0, 1.0],
                         "due_dates_in_announced_outage": [0.0, 1.0, 2.0, 1.0, np.nan, 1.0]})
    rows.loc[5, "credit_score"] = 420.0  # risky on its own: gets the larger of the two
    before = fitted.predict(rows)
    assert np.allclose(before[:5], before[0])  # the booster never split on the two features
    fitted.calibration["maintenance"] = {"due_dates": 40, "missed": 36, "rate": 0.9}
    after = fitted.predict(rows)
    np.testing.assert_allclose(after, [before[0], 0.9, 0.99, before[3], before[4], max(before[5], 0.9)])
    assert before[0] < 0.5 < before[5]
    # a blank count, which the pyfunc refuses as the scorer rejects it
    assert_served_alike(fitted, tmp_path, rows, after, served=rows.index != 4)
    np.testing.assert_allclose(fitted.floor_lift(fitted.matrix(rows), after), after - before)
    without = model.maintenance_floor(model.encode(rows, ["credit_score"], {}), ["credit_score"],
                                      fitted.calibration)
    assert not without.any()  # a model without the two features has no floor


def test_the_lapse_floor_lifts_only_lapsed_agreements_to_the_rate_they_missed_at(tmp_path):
    """A booster whose training rows never had a lapsed agreement scores one like any other; with
    the training rows' history in its calibration, exactly the lapsed borrowers score at least its
    rate (a risky one keeps its own, higher, probability), from the folder and through the pyfunc
    loader alike, and what it added is the floor's lift. A model without the feature has no floor."""
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({"borrower_id": np.arange(n), "credit_score": rng.normal(650, 60, n).round(),
                          "autodebit_lapsed": np.zeros(n)})
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp((frame["credit_score"] - 560) / 30))).astype(int)
    settings = make_params({"train": {"lightgbm": {"num_boost_round": 40, "early_stopping_rounds": 10}}})
    fitted = train.fit_calibrated_lightgbm(frame.iloc[:2000], frame.iloc[2000:], train.feature_columns(frame),
                                           [], {}, settings.train.lightgbm)
    rows = pd.DataFrame({"borrower_id": range(4), "credit_score": [700.0, 700.0, 420.0, 700.0],
                         "autodebit_lapsed": [0.0, 1.0, 1.0, np.nan]})
    before = fitted.predict(rows)
    assert before[1] == before[0] < 0.2 and before[2] > 0.65  # the booster never split on the flag
    fitted.calibration["lapse"] = {"rows": 40, "missed": 24, "rate": 24.5 / 41}
    after = fitted.predict(rows)
    np.testing.assert_allclose(after, [before[0], 24.5 / 41, before[2], before[3]])
    # a blank flag, which the pyfunc refuses as the scorer rejects it
    assert_served_alike(fitted, tmp_path, rows, after, served=rows.index != 3)
    np.testing.assert_allclose(fitted.floor_lift(fitted.matrix(rows), after), after - before, atol=1e-15)
    only_score = model.encode(rows, ["credit_score"], {})
    assert not model.lapse_floor(only_score, ["credit_score"], fitted.calibration).any()


def test_a_folder_that_is_no_scoring_model_is_named_with_what_it_lacks(team_model_dir, tmp_path):
    """A command given the wrong folder (the decision model's, the reports) says which files are
    missing or unreadable, as a usage error (exit 2), never LightGBM's traceback."""
    with pytest.raises(UsageError, match=r"not a scoring model \(no model.txt, calibration.json, categories"):
        model.CalibratedLightGBM.from_dir(tmp_path)
    bad = Path(shutil.copytree(team_model_dir, tmp_path / "bad"))
    (bad / model.BOOSTER_FILE).write_text("not a booster\n")
    with pytest.raises(UsageError, match=f"{bad / model.BOOSTER_FILE}: not a LightGBM model file"):
        model.CalibratedLightGBM.from_dir(bad)
    shutil.copy(team_model_dir / model.BOOSTER_FILE, bad / model.BOOSTER_FILE)
    (bad / model.CALIBRATION_FILE).write_text("{")
    with pytest.raises(UsageError, match=f"{bad / model.CALIBRATION_FILE}: a model file that cannot be read"):
        model.CalibratedLightGBM.from_dir(bad)
    shutil.copy(team_model_dir / model.CALIBRATION_FILE, bad / model.CALIBRATION_FILE)
    assert model.CalibratedLightGBM.from_dir(bad).predict(ROWS).shape == (len(ROWS),)


def test_a_model_folders_label_is_read_checked_or_absent(tmp_path):
    path = tmp_path / model.LABEL_FILE
    assert model.read_label(path) is None  # a model from before models recorded their label
    path.write_text('{"observation_days": 45, "performance_cycles": 2, "dpd_threshold": 7}')
    assert (model.read_label(path).observation_days, model.read_label(path).dpd_threshold) == (45, 7)
    for bad in ('{"observation_days": 0, "performance_cycles": 2, "dpd_threshold": 7}', "[30, 3, 1]", "{"):
        path.write_text(bad)
        with pytest.raises(UsageError, match=str(path)):
            model.read_label(path)


TODAY = pd.Timestamp("2026-12-07 15:30")


def test_rows_taken_on_another_day_after_the_jump_are_named_before_a_pyfunc_scores():
    """Known answers: calendar days, as ``limitjump score`` counts them (an increase timed 13:45
    on the 1st is 30 days before the 31st), in dates or in text; without both dates, no window."""
    rows = pd.DataFrame({"jump_date": ["2025-03-01 13:45", "2025-03-01", "2025-02-14", None],
                         "scoring_date": pd.to_datetime(["2025-03-31"] * 4)})
    model.refuse_dates(rows.drop(index=2), 30, TODAY)
    model.refuse_dates(rows.drop(columns="jump_date"), 45, TODAY)
    model.refuse_dates(rows, None, TODAY)  # a team's own model reads no window
    with pytest.raises(ValueError, match=r"^1 of 4 rows were taken on another day than the model reads: "
                                         r"scoring_date not 30 days after jump_date.*\(row 2 45 days;"):
        model.refuse_dates(rows, 30, TODAY)
    with pytest.raises(ValueError, match=r"^3 of 4 rows .* not 0 days .*row 0 30 days, row 1 30 days, "
                                         r"row 2 45 days;"):
        model.refuse_dates(rows.assign(jump_date=pd.to_datetime(rows["jump_date"], format="ISO8601")), 0,
                           TODAY)
    # a date that cannot be read is named, as ``limitjump score`` rejects its row
    with pytest.raises(ValueError, match=r"^1 of 4 rows have a jump_date that is not a date .*"
                                         r"\(row 1 'soon';"):
        model.refuse_dates(rows.assign(jump_date=["2025-03-01", "soon", "2025-03-01", None]), 30, TODAY)


def test_dates_score_would_reject_refuse_a_pyfunc_request_and_blank_text_is_no_date():
    """Known answers from outside: the served model scored a scoring date after today and one in
    1999, which `limitjump score` rejects, and refused '', 'NULL' and spaces in a jump date as "not
    a date" while a null was missing."""
    rows = pd.DataFrame({"jump_date": ["", "NULL", "  ", None],
                         "scoring_date": ["2025-03-31", "2025-03-31", "2025-03-31", "2026-12-07"]})
    model.refuse_dates(rows, 30, TODAY)  # today's scoring date is over at the end of today
    with pytest.raises(ValueError, match=r"^1 of 4 rows have a scoring_date after today, 2026-12-07: "
                                         r".*\(row 2 2030-01-01;"):
        model.refuse_dates(rows.assign(scoring_date=["2025-03-31", "2025-03-31", "2030-01-01", None]), 30,
                           TODAY)
    with pytest.raises(ValueError, match=r"^1 of 4 rows have a jump_date outside 2000 to 2100 "
                                         r"\(row 1 1999-01-01;"):
        model.refuse_dates(rows.assign(jump_date=["", "1999-01-01", None, None]), None, TODAY)
    with pytest.raises(ValueError, match=r"^1 of 4 rows have no scoring_date \(row 0;"):
        model.refuse_dates(rows.assign(scoring_date=["NULL", "2025-03-31", "2025-03-31", "2025-03-31"]), 30,
                           TODAY)


def test_a_category_in_other_capitals_or_spacing_is_the_one_learned():
    """A team's 'UNIVERSITY' for the learned 'university' had been scored as missing (314 of 500
    probabilities moved) with no word but a drift flag."""
    from pipeline.model import category_codes

    learned = ["high_school", "university", "Other", "other"]
    values = pd.Series(["UNIVERSITY", " High-School ", "university", "OTHER", "phd", None, "NULL", ""],
                       dtype=object)
    # 'OTHER' reads as both 'Other' and 'other': no guess
    assert category_codes(values, learned, "education").tolist() == [1, 0, 1, -1, -1, -1, -1, -1]
