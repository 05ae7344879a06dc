"""A real portfolio through the training functions (bench/uci_credit.py): the UCI default of
credit card clients sample, repeated 5x5 cross-validation (issue 15's goal)."""

from __future__ import annotations

import pytest

from tests.conftest import bench_module

uci = bench_module("uci_credit")


def test_the_sample_reads_as_a_team_would_hand_it_over():
    frame = uci.load()
    assert len(frame) == 6000 and frame[uci.ID].is_unique
    assert frame["label"].isin([0, 1]).all() and 0.2 < frame["label"].mean() < 0.25
    columns, categorical = uci.columns_of(frame)
    assert columns == ["education", "marriage", "limit_bal", "bill_amt1"]
    assert categorical == ["education", "marriage"]
    assert {"university", "graduate school", "unknown"} <= set(frame["education"])


@pytest.mark.slow
def test_calibrated_lightgbm_keeps_up_with_a_logistic_regression():
    results = uci.cross_validate(uci.load(), uci.models(all_models=False))
    table = uci.table(results)
    assert results["fold"].nunique() == 25
    calibrated, raw = table.loc["lightgbm calibrated"], table.loc["lightgbm uncalibrated"]
    assert calibrated["AUC minus LR, mean"] >= -0.005, table.to_string()
    assert calibrated["Brier mean"] <= raw["Brier mean"], table.to_string()
