"""The promotion gates: the challenger's own gates and the comparison with the champion."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline import registry
from pipeline.config import LabelSettings
from pipeline.registry import champion_gate, own_gates
from pipeline.tracking import FAILED_GATES_TAG, GATE_TAG
from tests.conftest import make_params


def test_own_gates_name_what_failed():
    s = make_params().gate
    card = {"test_auc": 0.80, "test_ece": 0.01}
    good = own_gates({"test_auc": 0.84, "test_ece": 0.01, "test_misses": 3841}, card, s)
    assert good["passed"] and good["failed"] == []
    bad = own_gates({"test_auc": 0.70, "test_ece": 0.05, "test_misses": 3841}, card, s)
    assert not bad["passed"]
    assert set(bad["failed"]) == {"min_oot_auc", "max_calibration_error", "beats_scorecard"}
    assert bad["gates"]["min_oot_auc"] == {"value": 0.70, "threshold": s.min_oot_auc,
                                           "rule": "value >= threshold", "passed": False}


def test_figures_on_too_few_misses_fail_a_gate_of_their_own():
    """An outside check: 3 test misses (an AUC interval of 0.32-0.89) passed every gate, and the
    version was promoted. Counts stay counts; a version registered before the gate is not judged
    on it."""
    s = make_params().gate
    few = own_gates({"test_auc": 0.84, "test_ece": 0.01, "test_misses": 3}, {"test_auc": 0.80}, s)
    assert few["failed"] == ["min_test_misses"]
    assert few["gates"]["min_test_misses"] == {"value": 3, "threshold": s.min_test_misses,
                                               "rule": "value >= threshold", "passed": False}
    assert own_gates({"test_auc": 0.84, "test_ece": 0.01, "test_misses": s.min_test_misses},
                     {"test_auc": 0.80}, s)["passed"]
    older = {"min_oot_auc": 0.84, "max_calibration_error": 0.01, "beats_scorecard": 0.04}
    assert "min_test_misses" not in registry.judged(older, s)["gates"]
    # nor is a model saved before its misses were counted, or a monitor's candidate
    uncounted = own_gates({"test_auc": 0.84, "test_ece": 0.01}, {"test_auc": 0.80}, s)
    assert "min_test_misses" not in uncounted["gates"]


@pytest.mark.parametrize(("challenger", "champion", "passed"), [
    (0.850, 0.840, True),     # a clear gain
    (0.8405, 0.840, False),   # below min_gain_over_champion (0.001)
    (0.840, 0.840, False),    # a tie keeps the champion
    (0.830, 0.840, False),    # worse is never promoted
])
def test_champion_gate_needs_a_gain(challenger, champion, passed):
    assert champion_gate(challenger, champion, make_params().gate)["passed"] is passed


def test_with_no_required_gain_a_tie_still_keeps_the_champion():
    s = make_params({"register": {"min_gain_over_champion": 0.0}}).gate
    assert champion_gate(0.84, 0.84, s)["passed"] is False
    assert champion_gate(0.8401, 0.84, s)["passed"] is True
    assert champion_gate(0.84, 0.84, s)["rule"] == "value > threshold"


def test_a_label_changes_when_the_window_the_days_past_due_or_the_cycles_do():
    one = make_params().label
    assert not registry.trained_otherwise(one, one.model_copy())
    for change in ({"observation_days": 45}, {"dpd_threshold": 7}, {"performance_cycles": 2}):
        assert registry.trained_otherwise(one.model_copy(update=change), one)
    # older versions recorded neither
    assert not registry.trained_otherwise(None, one) and not registry.trained_otherwise(one, None)


class _Ranked:
    """A model that scores rows by one column."""

    def __init__(self, column: str):
        self.features = [column]

    def predict(self, rows):
        return rows[self.features[0]].to_numpy()


def test_both_models_are_judged_on_the_same_rows_and_missing_columns_are_named():
    import pandas as pd

    from pipeline.errors import InputError

    rows = pd.DataFrame({"label": [0, 0, 1, 1], "good": [0.1, 0.2, 0.8, 0.9], "bad": [0.9, 0.1, 0.2, 0.8]})
    aucs = registry.aucs_on(rows, {"challenger": _Ranked("good"), "champion": _Ranked("bad")})
    assert aucs == {"challenger": 1.0, "champion": 0.5}
    with pytest.raises(InputError, match=r"the champion needs columns the comparison rows lack: \['gone'\]"):
        registry.aucs_on(rows, {"challenger": _Ranked("good"), "champion": _Ranked("gone")})
    with pytest.raises(InputError, match="no 'label' column"):
        registry.aucs_on(rows.drop(columns="label"), {"challenger": _Ranked("good")})


class Scored:
    """A model that predicts a given column of the rows, with a label."""

    def __init__(self, column: str, label=None, feature_settings=None, fitted_until=None):
        self.features, self.label, self.feature_settings = [column], label, feature_settings
        self.fitted_until = fitted_until

    def predict(self, rows):
        return rows[self.features[0]].to_numpy()


ROWS = pd.DataFrame({"label": [0, 0, 1, 1], "good": [0.1, 0.2, 0.8, 0.9], "bad": [0.9, 0.2, 0.8, 0.1]})


def promote(candidate="2", champion="1", own_failures=(), new_label=False, challenger="good",
            labels=(None, None), feature_settings=(None, None)):
    """``registry.promotion`` of the candidate predicting the ``challenger`` column against a champion
    predicting the other; the comparison's models and rows fetched at most once each."""
    fetched = []

    def models():
        fetched.append("models")
        other = "bad" if challenger == "good" else "good"
        return {"challenger": Scored(challenger, labels[0], feature_settings[0]),
                "champion": Scored(other, labels[1], feature_settings[1])}

    def rows():
        fetched.append("rows")
        return ROWS

    decided = registry.promotion(candidate, champion, list(own_failures), new_label, models, rows,
                                 make_params().gate)
    return decided, fetched


def test_promotion_without_comparison():
    """Already champion, refused on its own gates, or promoted where no champion is: nothing fetched."""
    assert promote(champion="2", own_failures=["min_oot_auc"]) == (
        registry.Promotion("already_champion", ["min_oot_auc"]), [])
    assert promote(own_failures=["min_oot_auc"]) == (registry.Promotion("refused", ["min_oot_auc"]), [])
    assert promote(champion=None) == (registry.Promotion("promoted", []), [])


def test_promotion_compares_aucs_on_the_same_rows():
    won, fetched = promote()
    assert (won.decision, won.failed_gates, fetched) == ("promoted", [], ["models", "rows"])
    assert (won.figures["challenger_auc"], won.figures["champion_auc"], won.figures["rows"]) == (1.0, 0.25, 4)
    assert won.figures["passed"] is True
    lost, _ = promote(challenger="bad")
    assert (lost.decision, lost.failed_gates) == ("refused", ["beats_champion"])
    assert lost.figures["passed"] is False


def test_promotion_compares_only_rows_scored_after_what_either_model_was_fitted_on():
    """Known answer from outside: a version of another split was promoted on the workspace's test
    rows, 277 of 790 of them its own validation rows, where it won; on the rest it lost. Rows
    scored by the last date either model was trained or validated on are left out; none left is a
    refusal, and rows without dates cannot be judged."""
    import pandas as pd

    from pipeline.errors import InputError

    # the challenger ranks the two rows it saw right and the others wrong; the champion the opposite
    dated = pd.DataFrame({"label": [0, 1, 0, 1], "seen_best": [0.1, 0.9, 0.8, 0.2],
                          "plain": [0.9, 0.1, 0.2, 0.8],
                          "scoring_date": pd.to_datetime(["2025-01-10", "2025-02-10", "2025-03-10",
                                                          "2025-04-10"])})

    def decide(challenger_until, champion_until, rows=dated):
        models = {"challenger": Scored("seen_best", fitted_until=challenger_until),
                  "champion": Scored("plain", fitted_until=champion_until)}
        return registry.promotion("2", "1", [], False, lambda: models, lambda: rows, make_params().gate)

    # fitted until 2025-02-10: rows 0 and 1 are its own; on the other two it ranks the miss last
    decided = decide(pd.Timestamp("2025-02-10"), pd.Timestamp("2025-01-31"))
    assert (decided.decision, decided.failed_gates) == ("refused", ["beats_champion"])
    assert decided.figures["rows"] == 2 and decided.figures["rows_seen_left_out"] == 2
    assert decided.figures["compared_after"] == "2025-02-10"
    assert (decided.figures["challenger_auc"], decided.figures["champion_auc"]) == (0.0, 1.0)
    everything = decide(None, None)  # models from before they recorded it: all rows, and it wins
    assert (everything.decision, everything.figures["rows"]) == ("promoted", 4)
    none_left = decide(pd.Timestamp("2025-04-10"), None)
    assert (none_left.decision, none_left.failed_gates) == ("refused", ["unseen_rows"])
    assert none_left.figures == {"rows_seen_left_out": 4, "compared_after": "2025-04-10"}
    with pytest.raises(InputError, match="no 'scoring_date' column"):
        decide(pd.Timestamp("2025-02-10"), None, rows=dated.drop(columns="scoring_date"))
    # a code review: dates with a time zone keep their day; a blank or no date is named, not guessed
    zoned = dated.assign(scoring_date=dated["scoring_date"].dt.tz_localize("Asia/Shanghai"))
    assert decide(pd.Timestamp("2025-02-10"), None, rows=zoned).figures["rows_seen_left_out"] == 2
    for bad in (None, "soon"):
        text = dated.assign(scoring_date=["2025-01-10", "2025-02-10", bad, "2025-04-10"])
        with pytest.raises(InputError, match=r"blank or no date in 1 rows, the first \[3\]"):
            decide(pd.Timestamp("2025-02-10"), None, rows=text)


def test_promotion_of_another_label_needs_new_label():
    """Two labels have no AUC in common: refused, unless adopted with --new-label; no rows read."""
    new, old = LabelSettings(**{**make_params().label.model_dump(), "dpd_threshold": 30}), make_params().label
    refused, fetched = promote(labels=(new, old))
    assert (refused.decision, refused.failed_gates, fetched) == ("refused", ["same_label"], ["models"])
    assert refused.figures == {"challenger_label": new.model_dump(), "champion_label": old.model_dump()}
    adopted, _ = promote(labels=(new, old), new_label=True)
    assert (adopted.decision, adopted.failed_gates) == ("promoted", [])


def test_promotion_of_features_computed_otherwise_needs_new_label():
    """An outside check promoted a version of features.decay_days 90 over one of 180 on rows
    computed at 90 (the champion scored 0.8006 there, 0.8034 on its own): the rows hold one way's
    features, so no AUC on them is fair; refused unless adopted with --new-label, no rows read."""
    old = make_params().features
    new = old.model_copy(update={"decay_days": 90.0})
    refused, fetched = promote(feature_settings=(new, old))
    assert (refused.decision, refused.failed_gates, fetched) == ("refused", ["same_features"], ["models"])
    assert refused.figures["challenger_features"]["decay_days"] == 90.0
    assert refused.figures["champion_features"]["decay_days"] == old.decay_days
    adopted, _ = promote(feature_settings=(new, old), new_label=True)
    assert (adopted.decision, adopted.failed_gates) == ("promoted", [])
    same, _ = promote(feature_settings=(old, old.model_copy()))
    assert same.decision == "promoted"


def test_own_failures_are_read_from_the_version_tags():

    gates = make_params().gate
    assert registry.own_failures({GATE_TAG: "true", FAILED_GATES_TAG: "none"}, gates) == []
    assert registry.own_failures({GATE_TAG: "false", FAILED_GATES_TAG: "min_oot_auc, max_ece"}, gates) == \
        ["min_oot_auc", "max_ece"]
    assert registry.own_failures({}, gates) == ["own gates"]  # a version registered otherwise


def test_own_failures_judge_the_recorded_figures_by_todays_gates():
    """An outside check lowered register.min_gain_over_scorecard to -0.05 and promote still
    refused a version with a gain of -0.006 on the verdict of its registration (under 0.01)."""
    from pipeline.tracking import FAILED_GATES_TAG, GATE_TAG, GATE_VALUES_TAG

    tags = {GATE_TAG: "false", FAILED_GATES_TAG: "beats_scorecard",
            GATE_VALUES_TAG: json.dumps({"min_oot_auc": 0.80, "max_calibration_error": 0.004,
                                         "beats_scorecard": -0.006})}
    gates = make_params().gate
    assert registry.own_failures(tags, gates.model_copy(update={"min_gain_over_scorecard": 0.01})) == \
        ["beats_scorecard"]
    assert registry.own_failures(tags, gates.model_copy(update={"min_gain_over_scorecard": -0.05})) == []
    raised = gates.model_copy(update={"min_gain_over_scorecard": -0.05, "min_oot_auc": 0.81})
    assert registry.own_failures(tags, raised) == ["min_oot_auc"]  # raised gates hold too


def test_a_model_of_other_features_than_the_rows_is_a_refusal_not_an_error():
    """Known answer from outside: promoting a team-data version over a simulator champion stopped
    with "needs columns the comparison rows lack", exit 1, and nothing was logged."""
    refused, fetched = promote(challenger="team_feature")
    assert (refused.decision, refused.failed_gates, fetched) == ("refused", ["comparable_rows"],
                                                                 ["models", "rows"])
    assert refused.figures == {"rows": 4, "missing": {"challenger": ["team_feature"]}}


def test_a_model_of_other_features_is_adopted_with_new_label_on_its_own_gates():
    """Known answer from outside: the README's "compare and promote as with the simulator" for a
    team's own model over a simulator @champion refused it with and without --new-label, so no
    team model could ever take over."""
    adopted, _ = promote(challenger="team_feature", new_label=True)
    assert (adopted.decision, adopted.failed_gates) == ("promoted", [])
    assert adopted.figures == {"rows": 4, "missing": {"challenger": ["team_feature"]}}
    failing, fetched = promote(challenger="team_feature", new_label=True, own_failures=["min_oot_auc"])
    assert (failing.decision, fetched) == ("refused", [])  # its own gates still hold


def test_a_run_whose_gates_differ_from_the_registrys_verdict_says_which_stands():
    """An experiment that lowered a gate had published "passed" on the production version that
    the registry records as failed: its run now says the registry's verdict stands."""
    from types import SimpleNamespace

    failed = SimpleNamespace(version="1", tags={GATE_TAG: "false", FAILED_GATES_TAG: "beats_scorecard"})
    passed = {"passed": True, "failed": []}
    assert registry.other_verdict(failed, passed) == (
        ". Under this run's gates version 1 passed; the registry records it failed beats_scorecard (by "
        "the gates of the last plain `dvc repro`), and `limitjump promote` judges its recorded figures "
        "by the gates of the params file it is given")
    assert registry.other_verdict(failed, {"passed": False, "failed": ["beats_scorecard"]}) == ""
    assert registry.other_verdict(SimpleNamespace(version="2", tags={GATE_TAG: "true"}), passed) == ""
    assert registry.other_verdict(SimpleNamespace(version="3", tags={}), passed) == ""  # none recorded
    assert registry.other_verdict(None, passed) == ""
