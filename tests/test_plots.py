"""The evaluation figures: eight valid PNGs, in a fixed order, byte-identical when drawn twice."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from pipeline import evaluate, metrics, plots
from pipeline.config import CAUSES
from tests.conftest import make_params

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ["roc.png", "precision_recall.png", "calibration.png", "lift.png", "ks.png",
           "score_distribution.png", "gini_by_month.png", "csi.png"]
FEATURES = ["debt_to_income", "inquiries_30d", "utilisation"]


def _frame(rng: np.random.Generator, n: int, start: str, months: int, drift: float) -> pd.DataFrame:
    """Synthetic scoring rows: three features, a true probability, a label and the segment keys."""
    first = pd.Timestamp(start)
    jump = first + pd.to_timedelta(rng.integers(0, 30 * months, n), unit="D")
    x = rng.normal(drift, 1.0, size=(n, len(FEATURES)))
    p_true = expit(-2.3 + x @ np.array([1.0, 0.7, 0.4]))
    label = (rng.random(n) < p_true).astype(np.int64)
    return pd.DataFrame({
        **dict(zip(FEATURES, x.T, strict=True)), "p_true": p_true, "label": label,
        "first_miss_cause": np.where(label == 1, rng.choice(CAUSES, n), None),
        "jump_date": jump, "scoring_date": jump + pd.Timedelta(days=30),
        "trigger": rng.integers(0, 4, n).astype(float), "months_of_history": rng.uniform(1, 36, n),
        "city_tier": rng.integers(1, 5, n).astype(float)})


def _scores(rng: np.random.Generator, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The truth, a good model (noise around the truth) and a weaker one (one feature only)."""
    noise = rng.normal(0.0, 0.6, len(frame))
    return {"scorecard": expit(-2.3 + frame[FEATURES[0]].to_numpy() + 0.3 * noise),
            "lightgbm": expit(logit(frame["p_true"].to_numpy()) + noise),
            "truth": frame["p_true"].to_numpy()}


@lru_cache(maxsize=1)
def synthetic_inputs(n: int = 3000, seed: int = 11) -> tuple[dict, dict]:
    """Reports and plot data of three models on a few thousand synthetic rows, built with the
    same functions as ``limitjump evaluate``. Callers must not modify them (copy first)."""
    rng = np.random.default_rng(seed)
    settings = make_params().evaluate
    train = _frame(rng, n, "2024-09-01", 9, 0.0)
    test = _frame(rng, n, "2025-07-01", 6, 0.15)  # straddles the regime change (2025-10-01)
    train_scores, test_scores = _scores(rng, train), _scores(rng, test)
    truth = test[["p_true", "first_miss_cause"]]
    reports, plot_data = {}, {}
    for name in ("scorecard", "lightgbm", "truth"):
        reports[name] = evaluate.model_report(test, test_scores[name], truth, train, train_scores[name],
                                              FEATURES, settings)
        plot_data[name] = evaluate.curves(test["label"].to_numpy(), test_scores[name], train_scores[name],
                                          settings.bins)
    return reports, plot_data


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[list, list]:
    reports, plot_data = synthetic_inputs()
    first = plots.render_all(plot_data, reports, tmp_path_factory.mktemp("first"))
    second = plots.render_all(plot_data, reports, tmp_path_factory.mktemp("second"))
    return first, second


def test_render_all_writes_eight_pngs_in_a_fixed_order(rendered):
    paths, _ = rendered
    assert [p.name for p in paths] == FIGURES
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), path.name
        assert len(data) > 5000, f"{path.name} looks empty"


def test_same_inputs_give_the_same_bytes(rendered):
    first, second = rendered
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_no_version_or_timestamp_in_the_files(rendered):
    for path in rendered[0]:
        data = path.read_bytes()
        assert b"Software" not in data and b"matplotlib" not in data.lower(), path.name


def test_a_gini_trend_with_no_month_to_measure_says_so_instead_of_no_trend():
    """Known answer from outside: a team's few hundred rows drew a blank chart whose legend said
    "no trend" where the card said "Not measured"."""
    import copy

    reports, plot_data = synthetic_inputs()
    reports = copy.deepcopy(reports)
    for report in reports.values():
        report["stability"]["gini_by_month"] = {"periods": [], "slope": None}
    figure = plots.gini_by_month(plot_data, reports)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    legend = [t.get_text() for t in figure.legends[0].get_texts()] if figure.legends else \
        [t.get_text() for ax in figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "not measured: no jump month has 200 rows" in texts
    assert legend and all("not measured" in label and "no trend" not in label for label in legend)


def test_the_lift_chart_draws_models_of_fewer_deciles_than_others(tmp_path):
    """A score's ties are one decile, so a scorecard of 4 scores has 4 (an outside team's run
    stopped at the chart: ticks for one model's deciles, bars for another's)."""
    reports, plot_data = synthetic_inputs()
    y = np.tile([0, 1, 0, 0], 250)
    few = metrics.lift_table(y, np.repeat([0.4, 0.3, 0.2, 0.1], 250))
    assert len(few) == 4
    data = {**plot_data, "scorecard": {**plot_data["scorecard"], "lift": few}}
    figure = plots.lift(data, reports)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == [str(d) for d in range(1, 11)]
