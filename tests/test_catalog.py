"""The feature catalogue: one description, cause and direction per feature, the reasons and
their groups, and the docs generated from it."""

from __future__ import annotations

import pytest

from pipeline import contract
from pipeline.catalog import (
    BY_NAME,
    CAUSE_CATEGORIES,
    FEATURES,
    FEATURES_PAGE,
    REASON_GROUPS,
    TABLES,
    codes_hint,
    markdown_table,
    markers,
    monotone_constraints,
    reason_group,
    reasons_table,
)
from tests.conftest import ROOT


def test_catalogue_drives_constraints_and_docs():
    constraints = monotone_constraints(["credit_score", "inquiries_3m", "trigger", "team_feature"])
    assert constraints == [-1, 1, 0, 0]
    assert all(f.cause in CAUSE_CATEGORIES for f in FEATURES)
    assert markdown_table().count("\n") == len(FEATURES) + 1


def test_every_feature_is_named_once_and_described_in_a_sentence():
    assert len(BY_NAME) == len(FEATURES)
    assert all(f.description and f.unit and f.window for f in FEATURES)
    # a reason is said beyond a bound or the median on one side, or for listed codes
    assert all(f.direction in (-1, 0, 1) and (f.reason_side in (-1, 1) or f.reason_codes is not None)
               for f in FEATURES if f.reason)


def test_a_reason_names_one_cause_and_one_group_whichever_feature_gives_it():
    by_reason: dict[str, set] = {}
    for f in FEATURES:
        if f.reason:
            by_reason.setdefault(f.reason, set()).add((f.cause, reason_group(f)))
    assert {text: len(kinds) for text, kinds in by_reason.items() if len(kinds) > 1} == {}
    assert reason_group(BY_NAME["utilisation_last"]) == "utilisation"
    assert reason_group(BY_NAME["credit_score"]) == "score"


@pytest.mark.parametrize("feature", [f for f in FEATURES if f.reason_beyond is not None],
                         ids=lambda f: f.name)
def test_a_reason_bound_lies_inside_the_feature_domain(feature):
    assert feature.domain.low <= feature.reason_beyond < feature.domain.high


def test_a_coded_feature_explains_its_codes_and_others_say_nothing():
    assert codes_hint("trigger").startswith("; it holds codes: What triggered the increase")
    assert codes_hint("utilisation_last") == codes_hint("a_team_column") == ""


def test_docs_feature_and_reason_tables_are_the_catalogue():
    text = (ROOT / FEATURES_PAGE).read_text()
    for name, table in TABLES.items():
        start, end = markers(name)
        assert text.split(start, 1)[1].split(end, 1)[0].strip() == table(), name


def test_the_reasons_table_lists_every_reason_once_with_where_it_is_said():
    rows = reasons_table().splitlines()[2:]
    said = {row.split(" | ")[0].lstrip("| "): row.split(" | ")[-1].rstrip(" |") for row in rows}
    assert set(said) == {f.reason for f in FEATURES if f.reason} == set(REASON_GROUPS)
    assert said["utilisation rose on the last statement"] == "above 0.02"
    assert said["has less cash than the next 3 months' installments"] == "below 1"
    assert said["asked for the increase"] == "code 3"
    assert said["applied for credit elsewhere more than once recently"] == "2 or more"


def test_descriptions_name_the_params_they_read_and_state_their_defaults_truly():
    from pipeline.config import load_params

    defaults = load_params(ROOT / "params.yaml").features
    assert f"features.large_draw_share of the increase ({defaults.large_draw_share:.0%} by default" in \
        BY_NAME["days_to_first_large_draw"].description
    assert f"features.decay_days) ({defaults.decay_days:g} days by default)" in \
        BY_NAME["decayed_days_late"].description


def test_a_feature_that_is_one_raw_amount_is_capped_as_the_raw_tables_cap_it():
    """A features file's limit of 1e9 had been recommended an increase that the same limit in the
    raw tables was rejected for: the two inputs take the same bounds."""
    raw = {"limit_before_jump": contract.TABLES["limit_events"].column("old_limit"),
           "increase_amount": contract.TABLES["limit_events"].column("new_limit"),
           "declared_income": contract.TABLES["borrowers"].column("declared_monthly_income")}
    table = contract.features_table(list(raw))
    for name, col in raw.items():
        assert (table.column(name).min, table.column(name).max) == (col.min, col.max), name
