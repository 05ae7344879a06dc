"""Every reasonable label runs through every stage: simulate, features, split, train, evaluate, and
the monitor's stream starts after the months the model was fitted on."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import train
from pipeline.evaluate import model_report
from pipeline.features import build_features
from pipeline.split import out_of_time, stream_start, training_overlap
from tests.conftest import make_params, realism_of, simulate_tables

REPLICATES = 8
# (dpd, cycles): every threshold and every window length at least once; the defaults (1, 3) run in
# every other test
LABELS = [(1, 1), (1, 2), (7, 3), (1, 4), (1, 5), (30, 6)]
# Every check passes or does not apply on 4,000 borrowers, give or take its sampling noise
# (``realism.ALLOWANCE_SE``), but the truth's calibration slope: 8 replicates flatten it, which is
# Monte-Carlo noise, no sampling allowance (the defaults' 64 are checked in docs/simulator.md)
ELSEWHERE = {"true_probability_calibration_slope_0_9_to_1_1"}


def _stages(dpd: int, cycles: int) -> dict:
    params = make_params({
        "engine": {"workers": 1}, "label": {"dpd_threshold": dpd, "performance_cycles": cycles},
        "simulate": {"n_borrowers": 4000, "shard_size": 4000, "truth_replicates": REPLICATES},
        "train": {"lightgbm": {"num_boost_round": 80, "early_stopping_rounds": 15}},
        "evaluate": {"bootstrap_replicates": 20}})
    tables = simulate_tables(params)
    truth = tables["ground_truth"].set_index("borrower_id")
    frame = build_features(tables, params.label.observation_days, params.features)
    frame["label"] = truth.loc[frame["borrower_id"], "label"].to_numpy()
    frame["split"] = out_of_time(frame, params.split.fractions, params.label,
                                 params.simulate.calendar.due_day_offset)
    splits = {name: frame[frame["split"] == name].drop(columns="split").reset_index(drop=True)
              for name in ("train", "valid", "test")}
    return {"params": params, "truth": truth, "splits": splits,
            "realism": realism_of(tables, REPLICATES, params.label)}


@pytest.mark.slow
@pytest.mark.parametrize(("dpd", "cycles"), LABELS)
def test_the_pipeline_runs_on_every_reasonable_label(dpd, cycles):
    run = _stages(dpd, cycles)
    params, splits = run["params"], run["splits"]
    checks = run["realism"]["checks"]
    assert not [name for name, result in checks.items() if result == "fail" and name not in ELSEWHERE], checks
    assert checks["miss_rate"] == "pass" and checks["true_probability_auc"] == "pass"
    if dpd >= 7:  # technical misses are paid within days: none can count
        assert checks["technical_misses_mostly_cured_within_7_days"] == "not applicable"
    for part in splits.values():
        assert len(part) > 200 and 0 < part["label"].mean() < 0.5
    # the monitor's stream starts after the months the model is fitted on, whatever the label (a
    # fixed 2025-06 overlapped a one-cycle label's validation, which ran to 2025-07, and stopped
    # the run at the monitor, after the model was registered)
    fitted = splits["valid"]["scoring_date"].max()
    assert training_overlap(stream_start(params.monitor, fitted), fitted) is None

    columns = train.feature_columns(splits["train"])
    categorical = train.categorical_columns(splits["train"], columns)
    s = params.train.lightgbm
    model = train.fit_calibrated_lightgbm(splits["train"], splits["valid"], columns, categorical, {}, s)
    card = train.fit_scorecard(splits["train"], columns, categorical, params.train.scorecard)
    test, truth = splits["test"], run["truth"].loc[splits["test"]["borrower_id"]].reset_index(drop=True)
    for predict in (model.predict, lambda frame: train.scorecard_predict(card, frame)):
        report = model_report(test, predict(test), truth, splits["train"], predict(splits["train"]),
                              columns, params.evaluate)
        assert 0.6 < report["ranking"]["auc"] <= 1 and np.isfinite(report["probabilities"]["brier"])
