"""The HTML model card: every section, provenance, failed checks in words, intervals, importance,
the scorecard's points, embedded figures, gate results and escaped data strings."""

from __future__ import annotations

import base64
import copy
import re

import pytest

from pipeline import card, plots
from tests.conftest import make_params
from tests.test_plots import synthetic_inputs

SECTIONS = ["provenance", "checks", "purpose", "data", "simulator", "ranking", "probabilities", "lift",
            "stability", "segments", "causes", "cause_model", "truth_gap", "features", "scorecard", "plots",
            "monitoring", "gates", "limits"]
GATES = {"challenger_fingerprint": "abc123", "passed": False, "failed": ["min_oot_auc"],
         "gates": {"min_oot_auc": {"value": 0.71234567, "threshold": 0.75, "rule": "value >= threshold",
                                   "passed": False},
                   "max_calibration_error": {"value": 0.0123, "threshold": 0.02, "rule": "value <= threshold",
                                             "passed": True}}}


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> list:
    reports, plot_data = synthetic_inputs()
    return plots.render_all(plot_data, reports, tmp_path_factory.mktemp("figures"))


@pytest.fixture(scope="module")
def params():
    return make_params()


DETAILS = {"provenance": {"model_version": "7", "lightgbm_run": "run-lgb", "git_commit": "c0ffee",
                          "data_digests": "train 0123456789ab", "params_digest": "fedcba987654",
                          "generated": "2026-12-02T10:00:00+00:00"},
           "importance": [{"feature": "dti_at_scoring", "cause": "liquidity", "share": 0.25,
                           "description": "All monthly installments over declared income"}],
           "points": [{"characteristic": "dti_at_scoring", "bin": "[0.1, 0.3)", "woe": -0.21,
                       "points": 12.5}]}


def _render(figures, params, gates=GATES, edit=None, details=DETAILS) -> str:
    reports = copy.deepcopy(synthetic_inputs()[0])
    if edit:
        edit(reports)
    return card.model_card(reports, gates, params, figures, details)


def _section(html: str, name: str) -> str:
    start = html.index(f'<h2 id="{name}">')
    return html[start:html.index("<h2", start + 1)]


def test_provenance_names_version_run_commit_digests_and_time(figures, params):
    section = _section(_render(figures, params), "provenance")
    for value in ("7", "run-lgb", "c0ffee", "train 0123456789ab", "fedcba987654", "2026-12-02T10:00:00"):
        assert value in section
    # the copy DVC keeps has only what DVC tracks: the rows it lacks are left out, not invented
    dvc_copy = _section(_render(figures, params, details={"provenance": {"params_digest": "fedcba987654"}}),
                        "provenance")
    assert "fedcba987654" in dvc_copy and "model version" not in dvc_copy


def test_failed_checks_are_said_plainly(figures, params):
    def edit(reports):
        reports["lightgbm"]["lift"]["rank_ordered"] = False
        reports["lightgbm"]["lift"]["rank_order_breaks"] = 2
        reports["lightgbm"]["stability"]["gini_by_month"]["slope"] = -0.023

    section = _section(_render(figures, params, edit=edit), "checks")
    assert "Deciles are not rank-ordered: 2 adjacent deciles out of order." in section
    assert "The Gini falls by 0.023 per jump month" in section
    assert "Promotion gates failed: min_oot_auc." in section


def test_no_failed_check_says_so(figures, params):
    def edit(reports):
        reports["lightgbm"]["lift"]["rank_ordered"] = True
        reports["lightgbm"]["stability"]["gini_by_month"]["slope"] = 0.001
        reports["lightgbm"]["stability"]["psi"]["psi"] = 0.01

    passing = {**GATES, "passed": True, "failed": []}
    section = _section(_render(figures, params, gates=passing, edit=edit), "checks")
    assert "Every check passes" in section and "Check failed" not in section


def test_intervals_importance_and_points(figures, params):
    def edit(reports):
        reports["lightgbm"]["ranking"]["auc_interval"] = [0.81234, 0.85678]

    html = _render(figures, params, edit=edit)
    assert "0.8123 – 0.8568" in _section(html, "ranking")
    features = _section(html, "features")
    assert "dti_at_scoring" in features and "25.0%" in features and "liquidity" in features
    points = _section(html, "scorecard")
    assert "[0.1, 0.3)" in points and "12.5" in points


def test_every_section_has_a_stable_id(figures, params):
    html = _render(figures, params)
    for section in SECTIONS:
        assert re.search(rf'<h2 id="{section}">', html), section
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_figures_are_embedded_as_base64_pngs(figures, params):
    html = _render(figures, params)
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [base64.b64decode(e) for e in embedded] == [f.read_bytes() for f in figures]
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page must be self-contained"


def test_content_comes_from_the_reports_and_params(figures, params):
    html = _render(figures, params)
    auc = synthetic_inputs()[0]["lightgbm"]["ranking"]["auc"]
    assert f"{auc:.4f}" in html
    assert f"{params.label.performance_cycles} billing cycles" in html
    assert "Gross &amp; Souleles 2002" in html and "Agarwal et al. 2018" in html
    assert str(params.evaluate.regime_change_date) in html


def test_gate_results_appear(figures, params):
    html = _render(figures, params)
    section = html[html.index('<h2 id="gates">'):html.index('<h2 id="limits">')]
    assert "min_oot_auc" in section and "0.7123" in section and "0.7500" in section
    assert "own gates: failed" in section and "abc123" in section and "<td>no</td>" in section
    assert "limitjump promote" in section
    assert "not run" not in section


def test_gates_not_run(figures, params):
    html = _render(figures, params, gates=None)
    section = html[html.index('<h2 id="gates">'):html.index('<h2 id="limits">')]
    assert "not run" in section


def test_data_strings_are_escaped_and_missing_values_dashed(figures, params):
    def edit(reports):
        row = reports["lightgbm"]["segments"]["trigger"][0]
        row["segment"], row["auc"] = "<script>alert(1)</script>", None

    html = _render(figures, params, edit=edit)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<td>—</td>" in html


def test_number_formatting():
    assert card.num(0.123456) == "0.1235"
    assert card.num(12345) == "12,345"
    assert card.num(None) == card.num(float("nan")) == card.num(float("inf")) == "—"
    assert card.num(True) == "yes"
    assert card.pct(0.05) == "5.0%"


def test_the_goals_say_met_missed_or_not_applicable_with_a_row_per_cause(figures, params):
    def edit(reports):
        reports["lightgbm"]["goals"] = {"ece_at_most_0_01": False, "above_scorecard": True,
                                        "auc_within_0_02_of_truth": None,
                                        "cause_auc_within_0_03_of_truth": {"credit": True,
                                                                           "technical": False}}

    section = _section(_render(figures, params, edit=edit), "goals")
    rows = re.findall(r'<th scope="row">([^<]*)</th><td>([^<]*)</td>', section)
    assert rows == [("expected calibration error at most 0.01", "missed"),
                    ("AUC above the scorecard&#39;s", "met"),
                    ("AUC within 0.02 of the truth&#39;s",
                     "not applicable (no truth, or no miss to measure it on)"),
                    ("AUC of P(miss by cause) within 0.03 of the truth&#39;s: credit", "met"),
                    ("AUC of P(miss by cause) within 0.03 of the truth&#39;s: technical", "missed")]
    assert "No goals were judged" in _section(_render(figures, params), "goals")


def test_the_cause_model_section_shows_confusion_recall_and_baselines(figures, params):
    report = {"misses": 10, "accuracy": 0.8, "baselines": {"always_liquidity": 0.4, "truth_argmax": 0.85},
              "confusion": {"rows_true_columns_predicted": ["credit", "liquidity", "technical"],
                            "counts": [[3, 1, 0], [0, 3, 0], [1, 0, 2]]},
              "by_cause": {c: {"misses": 4, "recall": 0.75, "precision": 0.75, "auc": 0.9, "auc_truth": 0.93,
                               "auc_gap": 0.03} for c in ("credit", "liquidity", "technical")}}

    def edit(reports):
        reports["lightgbm"]["cause_model"] = report

    section = _section(_render(figures, params, edit=edit), "cause_model")
    assert "80.0%" in section and "always liquidity" in section and "85.0%" in section
    assert "<td>3</td>" in section and "0.9300" in section
    assert "per kind of miss" not in section  # no truth of the kinds, no table
    assert "own split on the same misses" not in section
    assert "No cause model" in _section(_render(figures, params), "cause_model")

    report["truth_confusion"] = {"rows_true_columns_predicted": ["credit", "liquidity", "technical"],
                                 "counts": [[4, 0, 0], [0, 2, 1], [0, 0, 3]]}
    report["by_cause"]["liquidity"]["recall_truth"] = 2 / 3
    section = _section(_render(figures, params, edit=edit), "cause_model")
    assert "own split on the same misses" in section
    assert '<th scope="row">credit</th><td>4</td><td>0</td><td>0</td>' in section
    assert "<td>0.6667</td>" in section  # the truth's recall beside the model's

    report["technical_by_kind"] = {"forgotten": {"misses": 7, "auc": 0.75, "auc_truth": 0.96,
                                                 "auc_gap": 0.21}}
    section = _section(_render(figures, params, edit=edit), "cause_model")
    assert "per kind of miss" in section
    row = "<td>7</td><td>0.7500</td><td>0.9600</td><td>0.2100</td>"
    assert f'<th scope="row">forgotten</th>{row}' in section
    assert "does the action answer what broke" not in section

    report["technical_actions"] = {"misses": 9, "answered": 0.9, "answered_by_one_action": 0.4,
                                   "by_kind": {"forgotten": {"misses": 5, "answered": 0.8,
                                                             "answered_by_one_action": 0.0}}}
    section = _section(_render(figures, params, edit=edit), "cause_model")
    assert "does the action answer what broke" in section
    assert '<th scope="row">forgotten</th><td>5</td><td>80.0%</td><td>0.0%</td>' in section
    assert '<th scope="row">all</th><td>9</td><td>90.0%</td><td>40.0%</td>' in section
    assert "as scored (no action" not in section
    report["technical_actions"].update(answered_as_scored=0.7)
    report["technical_actions"]["by_kind"]["forgotten"].update(answered_as_scored=0.6)
    section = _section(_render(figures, params, edit=edit), "cause_model")
    assert "as scored (no action in a quiet band)" in section
    assert '<th scope="row">all</th><td>9</td><td>90.0%</td><td>40.0%</td><td>70.0%</td>' in section


def test_a_contradicted_monotone_constraint_is_a_failed_check(figures, params):
    def edit(reports):
        reports["lightgbm"]["directions"] = [
            {"feature": "autodebit_active", "direction": -1, "z": -7.25, "contradicts": True},
            {"feature": "credit_score", "direction": -1, "z": 40.0, "contradicts": False}]

    section = _section(_render(figures, params, edit=edit), "checks")
    assert "The monotone constraint on autodebit_active contradicts the training data" in section
    assert "credit_score" not in section


def test_the_monitoring_section_shows_the_goals_and_embeds_the_chart(figures, params):
    goals = {"first_affected_month": "2025-09", "first_alert_after_change": "2025-10",
             "first_alert_rules": ["feature_csi"], "months_from_change_to_alert": 1,
             "false_alarm_months_before_change": 0, "max_auc_estimate_gap_before_change": 0.0338,
             "alerts_before_change_confirmed_by_truth": ["2025-06 realised_ece", "2025-07 realised_ece"],
             "fair_truth_limits": {"max_auc_estimate_gap_before_change_from_true_probabilities": 0.0277},
             "policies": {"frozen": {"mean_ece_after_alert": 0.0203, "min_auc_minus_frozen": 0.0,
                                     "first_month_ece_at_most_0_01": "2025-12"},
                          "recalibrate": {"mean_ece_after_alert": 0.0252, "min_auc_minus_frozen": -0.0008,
                                          "first_month_ece_at_most_0_01": None}}}
    chart = figures[0].read_bytes()
    details = {**DETAILS, "monitoring": {"goals": goals, "chart": chart}}
    section = _section(_render(figures, params, details=details), "monitoring")
    for text in ("2025-09", "2025-10 (feature_csi)", "0.0338", "0.0277", "recalibrate", "never", "-0.0008",
                 "alerts before it that the truth confirms"):
        assert text in section, text
    assert base64.b64encode(chart).decode("ascii") in section
    assert "not run" in _section(_render(figures, params), "monitoring")
    # months that end before any change: nothing touched, no alert, and no "None" printed
    quiet = {**goals, "first_affected_month": None, "first_alert_after_change": None, "first_alert_rules": [],
             "months_from_change_to_alert": None}
    section = _section(_render(figures, params, details={**DETAILS, "monitoring": {"goals": quiet,
                                                                                   "chart": chart}}),
                       "monitoring")
    assert "none in the monitored months" in section and "None" not in section


def _own_data_reports(reports):
    """What evaluate reports on a team's own data: no truth, no causes, no segments, no month with
    enough rows for a Gini, goals whose truth is absent None."""
    del reports["truth"]
    for report in reports.values():
        report["causes"] = report["truth_gap"] = None
        report["segments"] = {}
        report["stability"]["gini_by_month"] = {"periods": [], "slope": None, "mean": None, "std": None}
    reports["lightgbm"]["goals"] = {"above_scorecard": True, "psi_before_change_below_0_10": True,
                                    "ece_at_most_0_01": False, "auc_within_0_02_of_truth": None}


def test_an_own_data_card_describes_the_teams_data_and_says_what_cannot_be_measured(figures):
    tables = {"features": "team/features.csv", "score": "team/to_score.parquet", "id_column": "customer_id",
              "label_column": "default", "date_column": "scoring_date"}
    params = make_params({"source": {"kind": "tables", "tables": tables}})
    splits = {"train": {"rows": 1217, "misses": 531, "first": "2024-01-01", "last": "2024-10-20"},
              "valid": {"rows": 600, "misses": 267, "first": "2024-12-31", "last": "2025-05-31"},
              "test": {"rows": 600, "misses": 258, "first": "2025-08-07", "last": "2025-12-30"}}
    html = _render(figures, params, edit=_own_data_reports, details={**DETAILS, "splits": splits})
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    for false in ("Synthetic borrower histories", "The data are synthetic", "Simulator assumptions",
                  "Monte-Carlo estimate", "The regime change is on", "scored before the regime change",
                  "Gap to the truth", "AUC of the truth", "misses caught —", "<td>—</td>",
                  "PSI of the score below 0.10 before the regime change met"):
        assert false not in html and false not in text, false
    data = _section(html, "data")
    for said in ("source: tables", "team/features.csv", "team/to_score.parquet", "customer_id",
                 "<td>1,217</td>", "2025-12-30"):
        assert said in data, said
    unmeasured = _section(html, "unmeasured")
    for said in ("What cannot be measured", "gap to the true probability", "accuracy against the true causes",
                 "Per-cause AUC against the truth", "PSI before and after the regime change",
                 "AUC within 0.02 of the truth"):
        assert said in unmeasured, said
    assert html.count('<h2 id="unmeasured">') == 1
    for name in card.OWN_DATA_SECTIONS:
        assert re.search(rf'<h2 id="{name}">', html), name
    assert "Not measured" in _section(html, "causes") and "Not measured" in _section(html, "cause_model")
    stability = _section(html, "stability")
    assert "Not measured" in stability and "Gini by month of scoring_date" in stability
    assert "No segments" in _section(html, "segments")
    goals = _section(html, "goals")
    assert "AUC above the scorecard" in goals and "truth" not in goals and "regime" not in goals


def test_the_simulator_card_keeps_its_simulator_sections(figures, params):
    html = _render(figures, params)
    assert "unmeasured" not in html and "cannot be measured" not in html
    for said in ("Synthetic borrower histories from the project's simulator", "Simulator assumptions",
                 "The data are synthetic", "scored before the regime change", "AUC of the truth",
                 "share of credit misses caught", "Gini by jump month"):
        assert said in html, said


def test_the_details_are_read_from_the_stages_outputs(tmp_path, params):
    import json

    import pandas as pd

    models = tmp_path / "models"
    (models / "lightgbm").mkdir(parents=True)
    (models / "scorecard").mkdir()
    (models / "lightgbm" / "reference.json").write_text(json.dumps({"importance": {"dti_at_scoring": 3.0}}))
    pd.DataFrame([{"characteristic": "dti_at_scoring", "bin": "[0.1, 0.3)", "woe": -0.21, "points": 12.5}]
                 ).to_csv(models / "scorecard" / "scorecard_points.csv", index=False)
    split = {name: {"rows": 10 * i, "misses": i, "first_scoring_date": "2025-01-01", "last_scoring_date": "x",
                    "extra": 1} for i, name in enumerate(("train", "valid", "test", "embargo"))}
    (tmp_path / "split.json").write_text(json.dumps(split))
    decision, monitor = tmp_path / "decision.json", tmp_path / "monitor"
    monitor.mkdir()
    decision.write_text(json.dumps({"applicable": False, "why": "no test borrower"}))
    (monitor / "goals.json").write_text(json.dumps({"monitored": False}))
    where = (models, tmp_path / "split.json", (decision, tmp_path / "plots"), monitor)
    details = card.read_details(params, {"train": "0123456789abcdef"}, *where)
    assert details["importance"][0]["feature"] == "dti_at_scoring"
    assert details["points"] == [{"characteristic": "dti_at_scoring", "bin": "[0.1, 0.3)", "woe": -0.21,
                                  "points": 12.5}]
    assert details["splits"] == {name: {"rows": 10 * i, "misses": i, "first": "2025-01-01", "last": "x"}
                                 for i, name in enumerate(("train", "valid", "test", "embargo"))}
    assert details["monitoring"] is None and details["decision"] is None  # neither applied
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "dose_response.png").write_bytes(b"png")
    (monitor / "monthly.png").write_bytes(b"chart")
    decision.write_text(json.dumps({"policies": {}}))
    (monitor / "goals.json").write_text(json.dumps({"first_affected_month": "2025-06"}))
    details = card.read_details(params, {"train": "0123456789abcdef"}, *where)
    assert details["decision"] == {"report": {"policies": {}}, "appetite": params.decision.appetite,
                                   "chart": b"png"}
    assert details["monitoring"] == {"goals": {"first_affected_month": "2025-06"}, "chart": b"chart"}


def test_our_decision_policy_is_named_as_it_was_fitted():
    """A correction that split on nothing (135 line tests, leaves of 100) corrects nothing: the card
    had called the policy 'corrected by the line tests' all the same."""
    def named(line_tests: int, without: list[str]) -> str:
        return card._ours({"borrowers": {"line_tests_learnt_from": line_tests},
                           "models_without_splits": without})

    assert named(400, []) == card.POLICY_NAMES["ours"]
    assert "split on nothing" in named(135, ["miss correction", "balance correction"])
    assert "no line tests" in named(0, [])
    assert named(400, ["miss"]) == card.POLICY_NAMES["ours"]  # the observational model is warned of apart


def test_the_decision_policies_come_oracle_first_then_ours_then_the_others():
    """The report's keys are sorted, and the card had listed "line tests alone" first and the
    oracle in the middle."""
    policy = {"profit_per_borrower": 1.0, "share_of_oracle_profit": 0.5, "share_of_oracle_gain": 0.5,
              "miss_rate": 0.1}
    names = ["experimental", "largest_for_all", "naive", "no_increase", "oracle", "ours",
             "ours_at_platform_risk", "platform", "someone_elses"]
    report = {"policies": {n: policy for n in names}, "borrowers": {"line_tests_learnt_from": 400},
              "dose_response": {"mae": {}, "calibration_gap": {}, "mean_curve_mae": {},
                                "truth_noise_mae": 0.0}}
    rows = card._decision({"report": report, "appetite": 0.2, "chart": b""})["policies"]["rows"]
    assert [r[0] for r in rows] == [*card.POLICY_NAMES.values(), "someone_elses"]
    # a model flat in the amount says so where it is ranked (an outside check: unsaid)
    flat = {**report, "models_flat_in_the_amount": ["experimental"]}
    rows = card._decision({"report": flat, "appetite": 0.2, "chart": b""})["policies"]["rows"]
    said = {r[0] for r in rows if "never splits on the amount" in r[0]}
    assert said == {card.POLICY_NAMES["experimental"]
                    + " (never splits on the amount: one miss probability at every amount)"}


def test_the_data_section_gives_the_rows_each_split_has_not_the_shares_asked_for(figures, params):
    """The params' 60/25/15% of jumps set the cut dates; with a long label window the rows were 44%
    train and a quarter in the gaps, which the card never mentioned."""
    splits = {"train": {"rows": 1331, "misses": 100, "first": "2024-01-01", "last": "2024-12-31"},
              "valid": {"rows": 1000, "misses": 90, "first": "2025-03-01", "last": "2025-06-30"},
              "test": {"rows": 595, "misses": 60, "first": "2025-09-01", "last": "2025-12-31"},
              "embargo": {"rows": 1074, "misses": 99, "first": "2025-01-01", "last": "2025-08-31"}}
    html = _render(figures, params, details={**DETAILS, "splits": splits})
    data = re.sub(r"\s+", " ", _section(html, "data"))
    for said in ("Rows per split", "<td>1,331</td>", "<td>33.3%</td>", "in no split (the gaps between them)",
                 "<td>1,074</td>", "<td>26.9%</td>", "set the cut dates"):
        assert said in data, said


def test_the_regime_change_is_said_as_the_out_of_time_rows_fall_against_it(figures, params):
    """A test window wholly after the change had been said to 'contain' it, and its PSI goal to have
    no truth or no miss; the campaigns named are the simulator's, not the card's split date."""
    def after_only(reports):
        for report in reports.values():
            report["stability"]["psi_before_regime_change"] = None
            report["goals"] = {**report.get("goals", {}), "psi_before_change_below_0_10": None}

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _render(figures, params, edit=after_only)))
    assert "contains the regime change" not in text
    assert "Every out-of-time row was scored on or after the regime change" in text
    assert "not applicable (no out-of-time row was scored before the regime change)" in text
    assert "announced 2025-10-01, deadline 2025-11-01, 100% of agreements" in text
    both = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _render(figures, params)))
    assert "The out-of-time window contains the regime change (2025-10-01)" in both


def test_the_gates_say_their_ece_is_on_other_bins_than_the_evaluations(figures):
    """With evaluate.bins 20 the card gave ECE 0.0437 as the headline and 0.0299 at the gates, the
    same model on the same rows, unexplained."""
    same = re.sub(r"\s+", " ", _section(_render(figures, make_params()), "gates"))
    assert "equal-count bins, as training logs it" not in same
    other = _section(_render(figures, make_params({"evaluate": {"bins": 20}})), "gates")
    assert "on 10 equal-count bins, as training logs it" in re.sub(r"\s+", " ", other)
