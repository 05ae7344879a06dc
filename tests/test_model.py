"""The scoring model (pipeline/model.py): text categories encoded without pandas' deprecated
unseen-category behaviour, and a model of a team's own text and numeric columns served through
MLflow's pyfunc and ``mlflow models predict``."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import io, model, train
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
    text = pd.Series(["1", "score_improvement", None, "user request"], dtype="str")
    with pytest.raises(ValueError, match=r"column 'trigger' must hold numbers: 2 of 4 rows .*"
                                         r"row 1 'score_improvement', row 3 'user request'.*"
                                         r"codes: What triggered the increase: 0 new user"):
        model.encode(pd.DataFrame({"trigger": text}), ["trigger"], {})
    only_text = r"'amount' must hold numbers: 1 of 2 .*row 0 'abc'; rows counted from 0\)$"
    with pytest.raises(ValueError, match=only_text):
        model.encode(pd.DataFrame({"amount": ["abc", "5"]}), ["amount"], {})


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
    fitted.booster.save_model(str(tmp_path / model.BOOSTER_FILE))
    io.write_json(fitted.calibration, tmp_path / model.CALIBRATION_FILE)
    io.write_json({}, tmp_path / model.CATEGORIES_FILE)
    np.testing.assert_allclose(model.CalibratedLightGBM.from_dir(tmp_path).predict(rows), after)
    np.testing.assert_allclose(np.asarray(model._load_pyfunc(str(tmp_path)).predict(rows)).ravel(), after)
    np.testing.assert_allclose(fitted.floor_lift(fitted.matrix(rows), after), after - before)
    without = model.maintenance_floor(model.encode(rows, ["credit_score"], {}), ["credit_score"],
                                      fitted.calibration)
    assert not without.any()  # a model without the two features has no floor
