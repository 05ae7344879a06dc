"""Batch runs' accounting: every borrower in is done or rejected, the counts per output, and the
report of the commonest rejects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import metrics
from pipeline.batches import RecommendTally, ScoreTally, Tally, Work, report_problems, work_range
from pipeline.contract import ContractError
from pipeline.score import Drift
from pipeline.sources import Batch


def batch(borrowers_in: int, rejected: int) -> Batch:
    return Batch(pd.DataFrame(), pd.DataFrame({"borrower_id": range(rejected), "reason": "x"}), borrowers_in)


def test_a_lost_borrower_fails_the_summary():
    tally = Tally()
    tally.add(batch(5, 2), pd.DataFrame({"a": range(3)}), {})
    assert tally.summary() == {"borrowers_in": 5, "done": 3, "rejected": 2}
    tally.add(batch(4, 1), pd.DataFrame({"a": range(2)}), {})  # one of the four is neither
    with pytest.raises(RuntimeError, match="a borrower was lost"):
        tally.summary()


def test_scoring_counts_bands_and_drift_over_batches():
    rng = np.random.default_rng(0)
    reference = {"score": metrics.psi_reference(rng.random(1000))}
    tally = ScoreTally({"low": 0.1, "high": 1.0}, Drift(reference))
    for bands in (["low", "high", "low"], ["low"]):
        rows = pd.DataFrame({"risk_band": bands})
        tally.add(batch(len(bands) + 1, 1), rows, {"score": rng.random(len(bands))})
    summary = tally.summary()
    assert summary["scored"] == 4 and summary["rejected"] == 2 and summary["borrowers_in"] == 6
    assert summary["bands"] == {"low": 3, "high": 1}
    assert set(summary["drift"]) == {"score"}


def test_recommended_amounts_are_listed_in_numeric_order():
    tally = RecommendTally()
    tally.add(batch(3, 0), pd.DataFrame({"recommended_amount": [10000.0, 5000.0, 10000.0]}), {})
    tally.add(batch(1, 0), pd.DataFrame({"recommended_amount": [0.0]}), {})
    assert tally.summary()["amounts"] == [{"amount": 0.0, "borrowers": 1}, {"amount": 5000.0, "borrowers": 1},
                                          {"amount": 10000.0, "borrowers": 2}]


def test_the_report_says_the_three_commonest_rejects_and_stops_beyond_the_share():
    summary = {"borrowers_in": 10, "rejected": 4, "input": "in.csv", "rejects": "out.rejects.csv",
               "reject_reasons": {"a": 2, "b": 1, "c": 1, "d": 0}}
    said: list[str] = []
    report_problems(summary, 0.5, said.append)
    assert said == ["  rejected for a: 2", "  rejected for b: 1", "  rejected for c: 1"]
    with pytest.raises(ContractError, match=r"in.csv: 4 of 10 borrowers rejected \(40.0%"):
        report_problems(summary, 0.3, said.append)


def test_the_report_names_rows_of_no_borrower_for_score_and_recommend_alike():
    """recommend had left out the line score printed; both now say it through the one report."""
    summary = {"borrowers_in": 10, "rejected": 0, "input": "raw", "rejects": "out.rejects.csv",
               "reject_reasons": {}, "unattributed_rows": {"drawdowns": {"not a borrower of the batch": 3}}}
    said: list[str] = []
    report_problems(summary, 0.5, said.append)
    assert said == ["rows that belong to no borrower (not used): "
                    "{'drawdowns': {'not a borrower of the batch': 3}}"]
    said.clear()
    report_problems({**summary, "unattributed_rows": {}}, 0.5, said.append)
    assert said == []


def test_categories_the_model_never_learned_are_summed_over_batches_and_said():
    from pipeline.batches import ScoreTally
    from pipeline.score import UNSEEN, Drift

    tally = ScoreTally({"low": 0.1, "high": 1.0}, Drift({}))
    rows = pd.DataFrame({"risk_band": ["low", "high"]})
    tally.add(batch(2, 0), rows, {UNSEEN: {"education": {"UNIVERSITE": 2}}})
    tally.add(batch(2, 0), rows, {UNSEEN: {"education": {"UNIVERSITE": 1, "phd": 1}}})
    tally.add(batch(2, 0), rows, {UNSEEN: {}})
    summary = {**tally.summary(), "reject_reasons": {}, "input": "in.csv", "rejects": "r.csv"}
    assert summary[UNSEEN] == {"education": {"rows": 4, "values": {"UNIVERSITE": 3, "phd": 1}}}
    said: list[str] = []
    report_problems(summary, 0.5, said.append)
    assert said == ["warning: 4 scored rows of 'education' hold categories the model never learned, "
                    "scored as missing: 'UNIVERSITE' 3, 'phd' 1"]
    warned: list[str] = []
    said.clear()
    report_problems(summary, 0.5, said.append, warned.append)  # the CLI warns on standard error
    assert said == [] and len(warned) == 1 and warned[0].startswith("warning: 4 scored rows")


def test_a_range_is_read_worked_and_shipped_back_without_its_features(tmp_path):
    """``work_range`` reads a range of a features file, hands its features to the work and
    returns the work's rows and values; the features stay behind; an empty range skips the work."""
    from tests.conftest import make_params

    path = tmp_path / "features.parquet"
    pd.DataFrame({"borrower_id": [1, 2, 3], "scoring_date": pd.to_datetime(["2026-01-05"] * 3),
                  "x": [0.5, 1.5, 2.5]}).to_parquet(path)
    seen = []
    today = pd.Timestamp("2026-12-01")

    def work(frame):  # in this process: a local function does
        seen.append(frame["borrower_id"].tolist())
        return frame[["borrower_id"]], {"n": len(frame)}

    batch, rows, values = work_range((1, 2), path, make_params(), Work(["x"], (), None, work), today)
    assert seen == [[1, 2]] and rows["borrower_id"].tolist() == [1, 2] and values == {"n": 2}
    assert batch.borrowers_in == 2 and batch.features.empty
    batch, rows, values = work_range((7, 9), path, make_params(), Work(["x"], (), None, work), today)
    assert len(seen) == 1 and rows.empty and values == {}
