"""The benchmarks' own arithmetic (bench/ scripts): known answers on hand-made inputs. The
benchmarks themselves run at 1M borrowers, outside the test suite."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import bench_module

startup = bench_module("startup")

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       500 |        500 |   _io
import time:      1000 |       1500 | encodings
import time:    200000 |     200000 |       scipy._lib
import time:     50000 |     250000 |     scipy
import time:        13 |         13 |         sklearn
import time:       100 |        100 |       lightgbm.basic
import time:      2000 |       2113 |     lightgbm
scored 20,000 borrowers
"""


def test_imports_add_every_modules_own_time_and_name_the_packages_that_loaded():
    seconds, packages = startup.imports(IMPORTTIME)
    assert seconds == pytest.approx((500 + 1000 + 200000 + 50000 + 13 + 100 + 2000) / 1e6)
    # scikit-learn's line is a failed import (pipeline/lgbm.py hides it from LightGBM): no parts
    assert packages == {"scipy", "lightgbm"}


def test_a_run_without_import_lines_imported_nothing():
    assert startup.imports("scored 20,000 borrowers\n") == (0.0, set())


def test_the_scoring_ratio_is_of_the_medians_and_its_range_of_the_pairs():
    score = bench_module("score")
    result = score.ratio_of_medians([10.0, 20.0, 12.0], [8.0, 9.0, 10.0], n=1200)
    assert result["rate"] == pytest.approx(100.0)  # 1,200 borrowers over the median 12 s
    assert result["bare_rate"] == pytest.approx(1200 / 9.0)
    assert result["ratio"] == pytest.approx(9.0 / 12.0)
    assert result["ratio_range"] == pytest.approx([9.0 / 20.0, 10.0 / 12.0])
    with pytest.raises(ValueError):
        score.ratio_of_medians([1.0], [1.0, 2.0], n=1)


def test_a_reused_project_runs_only_the_stages_whose_output_is_missing(tmp_path, monkeypatch):
    measure = bench_module("measure")
    ran = []

    def fake_run(args, where):
        ran.append(" ".join(args[1:]))
        return measure.Measured(1.0, 1.0, 1.0, 1.0, "")

    monkeypatch.setattr(measure, "run", fake_run)
    (tmp_path / "params.yaml").write_text("simulate: {}\n")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    assert measure.prepare(tmp_path, 1000, upto="train") == tmp_path
    assert ran == ["features", "split", "train lightgbm"]
    assert (tmp_path / "params.yaml").read_text() == "simulate: {}\n"  # reused as configured
    ran.clear()
    for output in ("data/features", "data/split"):
        (tmp_path / output).mkdir(parents=True)
    measure.prepare(tmp_path, 1000, upto="split")
    assert ran == []


def test_an_engine_run_of_some_stages_keeps_the_earlier_figures_of_the_others():
    engine = bench_module("engine")
    earlier = {"borrowers": 1000, "workers": 2, "engines": {"features, local": 1, "score, local": 2},
               "speedup": {"simulate": 1.8, "features": 1.6}, "scale_out": {"score": 5}}
    run = {"borrowers": 1000, "workers": 2, "engines": {}, "speedup": {"features": 1.9}, "scale_out": {}}
    assert engine.merged(earlier, run) == {
        "borrowers": 1000, "workers": 2, "engines": {"features, local": 1, "score, local": 2},
        "speedup": {"simulate": 1.8, "features": 1.9}, "scale_out": {"score": 5}}
    # another size: nothing of the earlier run survives
    assert engine.merged({**earlier, "borrowers": 10}, run) == run


def test_the_cause_curve_gains_its_slope_per_doubling_and_a_mix_moves_by_bayes_rule():
    import numpy as np
    bench = bench_module("causes")
    # accuracy 0.70 at a quarter, 0.72 at half, 0.74 at all: +0.02 per doubling
    assert bench.doubling_gain([0.25, 0.5, 1.0], [0.70, 0.72, 0.74]) == pytest.approx(0.02)
    share = np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    moved = bench.reweighted(share, [0.5, 0.25, 0.25], [0.25, 0.25, 0.5])
    # the first row was the learned mix itself: it becomes the new mix
    assert moved[0] == pytest.approx([0.25, 0.25, 0.5])
    assert moved[1] == pytest.approx(np.array([0.1, 0.2, 1.2]) / 1.5)
    assert moved.sum(axis=1) == pytest.approx([1.0, 1.0])
    # the same mix changes nothing
    assert bench.reweighted(share, [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(share)
    assert bench.to_goal(0.77, 0.01) == pytest.approx(3.0)  # 0.80 is 0.03 away
    assert bench.to_goal(0.81, 0.01) == 0.0 and bench.to_goal(0.77, 0.0) is None


def test_the_machine_reference_does_the_same_work_on_one_process_as_on_several(tmp_path):
    engine = bench_module("engine")
    # each unit of work leaves a file behind, named by its process and its turn
    unit = ("import os\nfor i in range({units}):\n    open(os.path.join("
            + repr(str(tmp_path)) + ", '%d-%d' % (os.getpid(), i)), 'w').close()")
    for processes in (1, 3):
        assert engine.reference(unit, processes, 3) > 0
        done = list(tmp_path.iterdir())
        assert len(done) == 3 and len({name.name.split("-")[0] for name in done}) == processes
        for name in done:
            name.unlink()


def test_the_threaded_reference_does_the_same_work_on_threads_of_one_process(tmp_path):
    engine = bench_module("engine")
    # each unit leaves a file named by its process, its thread and its turn; the threads meet at a
    # barrier first, so both are alive at once and have their own ids
    unit = ("import os, threading\nmeet = threading.Barrier({threads})\ndef work(units):\n"
            "    meet.wait()\n    for i in range(units):\n        open(os.path.join(" + repr(str(tmp_path))
            + ", '%d-%d-%d' % (os.getpid(), threading.get_ident(), i)), 'w').close()\n"
            "threads = [threading.Thread(target=work, args=({units},)) for _ in range({threads})]\n"
            "[t.start() for t in threads]\n[t.join() for t in threads]")
    for threads in (1, 2):
        assert engine.reference(unit, threads, 2) > 0
        done = [name.name.split("-") for name in tmp_path.iterdir()]
        assert len(done) == 2 and len({p for p, _, _ in done}) == 1
        assert len({t for _, t, _ in done}) == threads
        for name in tmp_path.iterdir():
            name.unlink()
    code = engine.REFERENCES["threads of one process, arrays of 5,000"]
    assert "random(5000)" in code and code.format(units=1, threads=2)


def test_an_engine_speed_up_reports_the_median_peak_memory_of_each_side():
    from types import SimpleNamespace
    engine = bench_module("engine")
    args = SimpleNamespace(borrowers=1000, workers=2, batch_borrowers=500, stages=["features"])
    walls = {(stage, n): [10.0 / n, 12.0 / n, 11.0 / n] for stage in [*engine.REFERENCES, "features"]
             for n in (1, 2)}
    peaks = {(stage, n): [None] * 3 if stage in engine.REFERENCES else [300.0 * n, 320.0 * n, 900.0]
             for stage in [*engine.REFERENCES, "features"] for n in (1, 2)}
    out = engine.figures(args, {}, walls, peaks, {})
    assert out["batch_borrowers"] == 500
    assert out["speedup"]["features"]["speedup"] == pytest.approx(2.0)
    features = out["speedup"]["features"]
    assert (features["one_worker_peak_mb"], features["workers_peak_mb"]) == (320.0, 640.0)
    assert "workers_peak_mb" not in out["speedup"]["independent processes, in cache"]


def test_the_oracle_spread_from_sampling_alone_has_known_answers():
    oracle = bench_module("oracle")
    assert oracle.expected_range(2) == pytest.approx(2 / np.sqrt(np.pi), rel=0.01)
    assert oracle.expected_range(3) == pytest.approx(1.693, rel=0.01)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2_000)
    p = rng.random(2_000) + 0.5 * y
    assert oracle.gap_standard_error(y, p, p, replicates=20) == 0.0  # the same scores: no gap to vary
    # the gap of two independent scores of equal AUC varies about sqrt(2) times one AUC's error
    se = oracle.gap_standard_error(y, p, rng.random(2_000) + 0.5 * y, replicates=100)
    assert 0.005 < se < 0.03


def test_the_forgetting_history_counts_manual_due_dates_seen_by_scoring_and_those_paid_days_late():
    import pandas as pd
    bench = bench_module("technical")
    d = pd.Timestamp
    repayments = pd.DataFrame({
        "borrower_id": [1, 1, 1, 1, 1, 1, 2, 2],
        "due_date": [d("2025-01-10"), d("2025-02-10"), d("2025-03-10"), d("2025-03-10"), d("2025-04-10"),
                     d("2025-06-10"), d("2025-01-10"), d("2025-02-10")],
        "payment_date": [d("2025-01-10"), d("2025-02-13"), d("2025-03-10"), d("2025-03-12"), d("2025-04-20"),
                         d("2025-06-12"), d("2025-01-12"), d("2025-02-12")],
        "channel": ["manual", "manual", "autodebit", "manual", "manual", "manual", "manual", "manual"]})
    # borrower 2's second late payment followed a failed debit: a lapse, not forgetting
    events = pd.DataFrame({"borrower_id": [2, 2], "event_type": ["debit_failed", "reauth_required"],
                           "event_date": [d("2025-02-10"), d("2025-01-12")]})
    keys = pd.DataFrame({"borrower_id": [2, 1, 3], "scoring_date": [d("2025-05-01")] * 3})
    counts = bench.manual_history(repayments, events, keys)
    # borrower 1 before 2025-05-01: Jan on time, Feb 3 days late, Mar partly by auto-debit (not
    # manual), Apr 10 days late (not forgetting); Jun is after scoring. Borrower 3 has no history.
    assert counts["n"].tolist() == [2, 3, 0]
    assert counts["k"].tolist() == [1, 1, 0]
    # a scoring date before a payment hides it: borrower 1's Feb payment came on 02-13
    early = bench.manual_history(repayments, events, keys.assign(scoring_date=d("2025-02-12")))
    assert early["n"].tolist() == [1, 1, 0] and early["k"].tolist() == [1, 0, 0]


def test_the_posterior_chance_to_forget_starts_at_the_prior_mean_and_follows_the_history():
    import numpy as np
    bench = bench_module("technical")
    a, b = 0.15, 4.85  # mean 0.03
    post = bench.posterior_forgetting(np.array([0, 0, 1, 5]), np.array([0, 20, 20, 20]), a, b)
    assert post[0] == pytest.approx(0.03)
    assert post[1] == pytest.approx(0.15 / 25) and post[2] == pytest.approx(1.15 / 25)
    assert post[3] == pytest.approx(5.15 / 25)


def test_the_gap_without_some_misses_leaves_exactly_those_rows_out():
    import numpy as np
    from sklearn.metrics import roc_auc_score
    oracle = bench_module("oracle")
    y = np.array([0, 0, 0, 1, 1, 1])
    p_true = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.05])
    p_model = np.array([0.3, 0.2, 0.1, 0.4, 0.6, 0.5])
    out = np.array([False, False, False, False, False, True])  # a miss nobody saw coming
    # without it, both rank every miss above every non-miss
    assert oracle.gap_without(y, p_true, p_model, out) == pytest.approx(0.0)
    everything = roc_auc_score(y, p_true) - roc_auc_score(y, p_model)
    assert oracle.gap_without(y, p_true, p_model, np.zeros(6, dtype=bool)) == pytest.approx(everything)
