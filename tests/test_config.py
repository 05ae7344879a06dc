from __future__ import annotations

import pytest

from pipeline.config import ConfigError, anchor_at, as_trained, load_params, repo_root
from tests.conftest import ROOT, make_params


def error_for(overrides: dict) -> str:
    with pytest.raises(ConfigError) as info:
        make_params(overrides)
    return str(info.value)


def test_repository_params_load():
    params = load_params(ROOT / "params.yaml")
    assert params.label.observation_days == 30
    assert params.simulate.drawdown.apr == {3: 0.12, 6: 0.15, 12: 0.18}


def test_unknown_key_is_named():
    assert "simulate.n_borower" in error_for({"simulate": {"n_borower": 10}})


def test_wrong_type_is_named():
    assert "label.dpd_threshold" in error_for({"label": {"dpd_threshold": "thirty"}})


def test_negative_count_is_named():
    assert "simulate.n_borrowers" in error_for({"simulate": {"n_borrowers": -5}})


@pytest.mark.parametrize("overrides, key", [
    ({"evaluate": {"top_share": 0}}, "evaluate.top_share"),  # had shown "Top 0.0%" and no miss rate
    ({"monitor": {"truth_replicates": 1}}, "monitor.truth_replicates"),  # one replicate has no spread
    ({"evaluate": {"flag_rate": 0}}, "evaluate.flag_rate"),  # had reported 0 flagged and a 0/0 share
])
def test_values_that_measure_nothing_are_named(overrides, key):
    assert key in error_for(overrides)


def test_probability_above_one_is_named():
    message = error_for({"simulate": {"technical": {"known_lapse_rate": 1.5}}})
    assert "simulate.technical.known_lapse_rate" in message


def test_mix_must_sum_to_one():
    message = error_for({"simulate": {"population": {"employment_mix": {
        "salaried": 0.5, "self_employed": 0.2, "gig_worker": 0.2, "student": 0.2}}}})
    assert "simulate.population" in message and "sum to 1" in message


def test_overlapping_windows_fail():
    assert "last_scoring_date must be after" in error_for(
        {"simulate": {"calendar": {"first_scoring_date": "2026-02-01"}}})
    campaign = {"announce_date": "2025-10-01", "deadline": "2025-09-01", "share": 1.0}
    assert "deadline must be after announce_date" in error_for(
        {"simulate": {"technical": {"reauthorisation_campaigns": [campaign]}}})
    close = [{"announce_date": "2024-05-01", "deadline": "2024-06-01", "share": 0.3},
             {"announce_date": "2024-07-01", "deadline": "2024-08-01", "share": 1.0}]
    assert "at least 62 days" in error_for(
        {"simulate": {"technical": {"reauthorisation_campaigns": close}}})


def test_label_must_be_observable_before_export_end():
    """A check across sections names its key, not "(top level)", and the label it was judged for."""
    message = error_for({"simulate": {"calendar": {"export_end": "2026-03-01"}}})
    assert "  simulate.calendar.export_end: must be at least" in message and "(top level)" not in message
    assert "label.performance_cycles 3, label.dpd_threshold 1" in message


def test_a_statement_must_leave_its_grace_before_the_due_date():
    """The latest statement day is the one before the cycle starts: a longer grace cannot fit."""
    message = error_for({"simulate": {"calendar": {"due_day_offset": 5, "statement_min_grace_days": 7}}})
    assert "statement_min_grace_days" in message and "due_day_offset + 1" in message
    assert make_params({"simulate": {"calendar": {"due_day_offset": 5, "statement_min_grace_days": 6}}})


def test_missing_key_is_named(tmp_path):
    (tmp_path / "params.yaml").write_text("label: {observation_days: 30}\n")
    with pytest.raises(ConfigError) as info:
        load_params(tmp_path / "params.yaml")
    assert "label.performance_cycles" in str(info.value) and "simulate" in str(info.value)


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")


def test_the_monitor_stream_starts_on_the_first_of_a_month_and_needs_two_months():
    mid_month = error_for({"monitor": {"first_month": "2025-06-15"}})
    assert "first_month must be the first day of a month, or auto" in mid_month
    assert "monitor.months" in error_for({"monitor": {"months": 1}})


@pytest.mark.parametrize("grid", [[5000, 10000], [0, 20000, 10000], [0, 0, 5000], [0, 60000]])
def test_the_line_test_grid_starts_at_no_increase_rises_and_stays_under_the_cap(grid):
    message = error_for({"simulate": {"jump": {"line_test_amounts": grid}}})
    assert "simulate.jump" in message and "line_test_amounts must start at 0" in message


@pytest.mark.parametrize(("dpd", "cycles", "expected"), [(1, 3, 64), (3, 6, 64), (4, 3, 128), (30, 1, 128),
                                                         (14, 4, 256), (14, 6, 256), (7, 9, 384)])
def test_auto_truth_replicates_follow_the_label_and_a_number_overrides_them(dpd, cycles, expected):
    from pipeline.config import LabelSettings, truth_replicates
    p = make_params({"simulate": {"truth_replicates": "auto"}})
    label = LabelSettings(observation_days=30, dpd_threshold=dpd, performance_cycles=cycles)
    assert truth_replicates(p.simulate, label) == expected
    fixed = make_params({"simulate": {"truth_replicates": 7}})
    assert truth_replicates(fixed.simulate, label) == 7


@pytest.mark.parametrize(("uri", "why"), [("ftp://store/runs", "MLflow keeps runs in http, https, sqlite"),
                                          ("http://", "no host"), ("https:///runs", "no host")])
def test_a_tracking_uri_mlflow_has_no_store_for_stops_check_params(uri, why):
    """Not the train stage, after the simulation and the features have run."""
    message = error_for({"mlflow": {"tracking_uri": uri}})
    assert "mlflow.tracking_uri" in message and why in message


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "mlruns", "file:///srv/mlruns", "https://team-host:5000",
                                 "postgresql://mlflow@db/mlflow"])
def test_the_stores_mlflow_has_pass(uri):
    assert make_params({"mlflow": {"tracking_uri": uri}}).mlflow.tracking_uri == uri


@pytest.mark.parametrize("bounds", [(0.05, 0.05, 0.35, 1.0), (0.05, 0.15, 0.1, 1.0), (0.05, 0.15, 0.35, 0.9)])
def test_risk_bands_that_do_not_rise_to_1_are_named(bounds):
    """A band no probability falls in (two equal upper bounds) is refused too."""
    bands = dict(zip(("low", "medium", "high", "very_high"), bounds, strict=True))
    assert "bands must ascend" in error_for({"score": {"bands": bands}})


@pytest.mark.parametrize("bad", ["many", 0, 1, -64, 5000])  # 1: no spread, so no standard error
def test_truth_replicates_other_than_auto_or_a_count_are_named(bad):
    assert "simulate.truth_replicates" in error_for({"simulate": {"truth_replicates": bad}})


def test_a_params_file_in_a_repository_anchors_a_command_started_outside_one(tmp_path, monkeypatch):
    """A scheduled job started elsewhere with a repository's params file uses that repository's
    MLflow store and registry (it stopped with 'not inside a limitjump repository'); inside a
    repository, or under DVC, nothing moves."""
    project, elsewhere, other = tmp_path / "project", tmp_path / "elsewhere", tmp_path / "other"
    for folder in (project, other):
        folder.mkdir()
        (folder / "dvc.yaml").write_text("stages: {}\n")
        (folder / "params.yaml").write_text("{}\n")
    elsewhere.mkdir()
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError, match="not inside a limitjump repository"):
        repo_root()
    anchor_at(project / "params.yaml")
    assert repo_root() == project.resolve()
    anchor_at(other / "params.yaml")  # already anchored: DVC_ROOT wins
    assert repo_root() == project.resolve()
    monkeypatch.delenv("DVC_ROOT")
    monkeypatch.chdir(other)
    anchor_at(project / "params.yaml")  # inside a repository: its own
    assert repo_root() == other.resolve()
    monkeypatch.chdir(elsewhere)
    anchor_at(elsewhere / "params.yaml")  # a params file outside any: nothing to anchor at
    with pytest.raises(ConfigError):
        repo_root()


def test_a_models_label_and_feature_settings_replace_the_params_and_nothing_else():
    p = make_params()
    assert as_trained(p, None, None).model_dump() == p.model_dump()
    theirs = as_trained(p, p.label.model_copy(update={"observation_days": 45, "dpd_threshold": 7}), None)
    assert (theirs.label.observation_days, theirs.label.dpd_threshold) == (45, 7)
    assert theirs.model_dump(exclude={"label"}) == p.model_dump(exclude={"label"})
    assert p.label.observation_days == 30
    decayed = as_trained(p, None, p.features.model_copy(update={"decay_days": 90.0}))
    assert decayed.features.decay_days == 90.0 and p.features.decay_days != 90.0
    assert decayed.model_dump(exclude={"features"}) == p.model_dump(exclude={"features"})


@pytest.mark.parametrize("override, said", [
    ({"train": {"lightgbm": {"num_boost_round": True}}},
     "num_boost_round: Value error, must be a number, not True"),
    ({"split": {"train": "0.6"}}, "split.train: Value error, must be a number, not '0.6'"),
    ({"train": {"lightgbm": {"monotone": "off"}}}, "monotone: Value error, must be true or false, not 'off'"),
    ({"train": {"scorecard": {"pdo": float("inf")}}}, "pdo: Input should be a finite number"),
    ({"simulate": {"drawdown": {"intercept": float("nan")}}}, "intercept: Input should be a finite number"),
    ({"incoming": {"first_scoring_date": "2026-03-01", "last_scoring_date": "2026-02-01"}},
     "incoming: Value error, last_scoring_date must be on or after first_scoring_date"),
])
def test_a_value_that_would_pass_for_another_is_refused(override, said):
    """pydantic's lax reading took true for 1 round, the text "0.6" for a share and "off" for
    false; NaN and infinity passed as numbers; a reversed incoming window failed a later stage,
    after DVC had removed its outputs."""
    with pytest.raises(ConfigError) as refused:
        make_params(override)
    assert said in str(refused.value)
    make_params({"train": {"lightgbm": {"num_leaves": 31.0}}})  # a whole float is the whole number


def test_a_params_file_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(ConfigError, match=f"{path}: cannot read params: 'utf-8' codec"):
        load_params(path)


def test_line_test_amounts_are_whole_cny_since_each_names_its_output_columns():
    """2500.2 and 2500.4 both named the columns p_miss_at_2500: one candidate's were lost."""
    message = error_for({"simulate": {"jump": {"line_test_amounts": [0, 2500.2, 2500.4, 10000]}}})
    assert "line_test_amounts must be whole CNY, found [2500.2, 2500.4]" in message
    assert make_params({"simulate": {"jump": {"line_test_amounts": [0, 100, 5000]}}}).simulate.jump \
        .line_test_amounts == [0, 100, 5000]


def test_dask_scheduler_address_in_the_environment_overrides_engine_scheduler(monkeypatch):
    """README: ``export DASK_SCHEDULER_ADDRESS`` or engine.scheduler; the command's params carry
    the address and what set it, which the engine's messages name."""
    from pipeline.cli import load

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    plain = load(ROOT / "params.yaml").engine
    assert plain.scheduler_origin == "engine.scheduler"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tls://10.0.0.5:8786")
    engine = load(ROOT / "params.yaml").engine
    assert (engine.scheduler, engine.scheduler_origin) == ("tls://10.0.0.5:8786", "$DASK_SCHEDULER_ADDRESS")
    assert engine.model_dump() == {**plain.model_dump(), "scheduler": "tls://10.0.0.5:8786"}


@pytest.mark.parametrize(("tables", "said"), [
    ({"label_column": "customer_id"}, "id_column and label_column both name column 'customer_id'"),
    ({"id_column": "scoring_date"}, "id_column and date_column both name column 'scoring_date'"),
    ({"catalogue": ["credit_score", "default"]},
     r"catalogue lists \['default'\], named as the id, label or date"),
])
def test_one_column_named_for_two_roles_stops_check_params(tables, said):
    """Known answers from outside: check-params passed a label column that was the id column, and
    `features` then blamed the data ("column 'customer_id' must be 0 or 1")."""
    with pytest.raises(ConfigError, match=said):
        make_params({"source": {"tables": tables}})
