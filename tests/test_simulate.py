from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import io
from pipeline.config import LabelSettings, label_horizon
from pipeline.contract import RAW_TABLES, TABLES, conformed, pandera_violations, validate
from pipeline.features import build_features
from pipeline.simulate import build_world, simulate_shard
from pipeline.simulate.calendar import add_months, day_number, spring_festival_cycle
from pipeline.simulate.outages import calendar_from_windows
from pipeline.simulate.state import State, schedule, start_cycle
from pipeline.simulate.statements import draw_offsets
from pipeline.simulate.truth import expected_outcome, outcome, probabilities
from tests.conftest import ROOT, SMALL, make_params, realism_of, simulate_tables

HIDDEN = {"propensity", "spend_propensity", "true_income", "cash", "buffer_months", "payday",
          "m12", "drawdown_propensity_12m", "score_anchor", "employed", "p_true", "label"}


def test_every_table_meets_the_contract(small_sim):
    """In the contract's columns and dtypes, so that the simulator's checks run on whole columns,
    and passing pandera's checks as well."""
    for name, frame in small_sim.items():
        assert conformed(frame, TABLES[name]), name
        validate(frame, name, f"simulated {name}")
        assert pandera_violations(frame, name).empty, name


def test_same_params_same_bytes(tmp_path, small_params):
    world = build_world(small_params.simulate, small_params.label)
    first = simulate_shard(1, small_params.simulate, world)
    second = simulate_shard(1, small_params.simulate, build_world(small_params.simulate, small_params.label))
    for name in first:
        io.write_parquet(first[name], tmp_path / f"a-{name}.parquet")
        io.write_parquet(second[name], tmp_path / f"b-{name}.parquet")
        assert (tmp_path / f"a-{name}.parquet").read_bytes() == (tmp_path / f"b-{name}.parquet").read_bytes()


def test_a_shard_does_not_depend_on_the_others(small_sim):
    alone = make_params({**SMALL, "simulate": {**SMALL["simulate"], "n_borrowers": 3000}})
    tables = simulate_shard(0, alone.simulate, build_world(alone.simulate, alone.label))
    in_full = small_sim["ground_truth"].query("borrower_id < 3000").reset_index(drop=True)
    pd.testing.assert_frame_equal(tables["ground_truth"], in_full)


def test_hidden_quantities_stay_out_of_the_raw_tables():
    for name in RAW_TABLES:
        assert not HIDDEN & set(TABLES[name].names), name


def test_one_jump_per_borrower_dated_before_scoring(small_sim, small_params):
    truth = small_sim["ground_truth"]
    increases = small_sim["limit_events"].query("event_type == 'increase'")
    assert increases["borrower_id"].is_unique and len(increases) == len(truth)
    merged = increases.merge(truth, on="borrower_id")
    assert (merged["event_date"] == merged["jump_date"]).all()
    window = (merged["scoring_date"] - merged["jump_date"]).dt.days
    assert window.eq(small_params.label.observation_days).all()
    assert merged["trigger_x"].eq(merged["trigger_y"]).all()
    amount = merged["new_limit"] - merged["old_limit"]
    policy = merged["test_cell"] == "policy"
    assert amount[policy].between(1000, 50_000).all()
    assert amount[~policy].isin(small_params.simulate.jump.line_test_amounts).all()
    months = merged["jump_date"].dt.to_period("M")
    assert months.max().ordinal - months.min().ordinal >= 24


def test_statements_keep_the_accounts_day_and_straddle_the_scoring_date(small_sim, small_params):
    """Each account is billed on one day of the month, its periods follow one another, most
    scoring dates fall inside a period, every due date leaves the grace the params ask for, and
    every drawdown is billed once, on the first statement on or after its date."""
    cal = small_params.simulate.calendar
    stmt = small_sim["statements"].sort_values(["borrower_id", "statement_date"], ignore_index=True)
    next_start = stmt["statement_date"] + pd.Timedelta(days=1)
    assert next_start.dt.day.groupby(stmt["borrower_id"]).nunique().eq(1).all()
    assert next_start.dt.day.max() <= 28
    previous = stmt.groupby("borrower_id")["statement_date"].shift()
    chained = previous.isna() | (stmt["cycle_start_date"] == previous + pd.Timedelta(days=1))
    assert chained.all()

    scoring = stmt["borrower_id"].map(small_sim["ground_truth"].set_index("borrower_id")["scoring_date"])
    inside = (stmt["cycle_start_date"] < scoring) & (stmt["statement_date"] >= scoring)
    assert 0.6 < inside.sum() / stmt["borrower_id"].nunique() < 0.95

    dues = small_sim["installments"][["borrower_id", "due_date"]].sort_values("due_date")
    grace = pd.merge_asof(stmt.sort_values("statement_date"), dues, left_on="statement_date",
                          right_on="due_date", by="borrower_id", direction="forward")
    grace = grace.dropna(subset=["due_date"])
    days = (grace["due_date"] - grace["statement_date"]).dt.days
    days = days[days < 28]  # the cycle's own due date (a cycle with nothing due has no row)
    assert days.between(cal.statement_min_grace_days, cal.due_day_offset + 1).all()
    assert days.nunique() > 3

    draws = small_sim["drawdowns"].sort_values("drawdown_date")
    billed = pd.merge_asof(draws, stmt.sort_values("statement_date"), left_on="drawdown_date",
                           right_on="statement_date", by="borrower_id", direction="forward")
    billed = billed.dropna(subset=["statement_date"])
    billed = billed.groupby(["borrower_id", "statement_date"])["amount"].sum()
    on_statement = stmt.set_index(["borrower_id", "statement_date"])["purchases"]
    # everyday purchases under 0.5 CNY are billed without a drawdown row
    gap = on_statement.sub(billed, fill_value=0.0)
    assert gap.abs().max() < 0.6


def test_rows_belong_to_known_borrowers_and_end_with_the_export(small_sim, small_params):
    ids = set(small_sim["borrowers"]["borrower_id"])
    end = pd.Timestamp(small_params.simulate.calendar.export_end)
    for name in RAW_TABLES:
        table = small_sim[name]
        assert set(table["borrower_id"]) <= ids, name
        assert (table[TABLES[name].date_column] <= end).all(), name


def test_the_truth_ranks_alike_whatever_its_last_bits():
    # another CPU's vector maths or summing order moves the last bits of equal probabilities
    rng = np.random.default_rng(3)
    by_cause = np.repeat(rng.uniform(0.0, 0.4, (3, 50)) * np.array([[1.0], [1.0], [0.2]]), 4, axis=1)
    by_cause[:, :4] = [[0.5], [0.3], [0.2]]  # exactly 1 in all
    jittered = by_cause * (1.0 + rng.uniform(-4e-16, 4e-16, by_cause.shape))
    assert np.unique(jittered.sum(axis=0)).size > 50  # without rounding, the ties break
    exact, moved = probabilities(by_cause), probabilities(jittered)
    for name in exact:
        np.testing.assert_array_equal(exact[name], moved[name])
    assert np.unique(exact["p_true"]).size == 50 and (exact["p_true"][:4] == 1.0).all()
    np.testing.assert_allclose(exact["p_true"], by_cause.sum(axis=0), atol=1e-9)


def test_truth_is_consistent_and_calibrated(small_sim):
    truth = small_sim["ground_truth"]
    causes = truth[["p_true_credit", "p_true_liquidity", "p_true_technical"]].sum(axis=1)
    np.testing.assert_allclose(causes.clip(upper=1.0), truth["p_true"], atol=1e-9)
    assert (truth["p_true"] == truth["p_true"].round(9)).all()
    # the realised label is one more draw of the same process: on average it matches p_true
    gap = truth["label"].mean() - truth["p_true"].mean()
    assert abs(gap) < 4 * np.sqrt(truth["p_true"].mean() / len(truth))
    assert (truth.loc[truth["label"] == 1, "first_miss_cause"].notna()).all()
    assert truth.loc[truth["label"] == 0, "first_miss_cause"].isna().all()


def test_realism_on_a_small_population(small_sim, small_params):
    report = realism_of(small_sim, small_params.simulate.truth_replicates, small_params.label)
    # 8 replicates flatten the truth's calibration slope; the defaults' is measured in docs/simulator.md
    slope = "true_probability_calibration_slope_0_9_to_1_1"
    failed = [name for name, result in report["checks"].items() if result != "pass" and name != slope]
    assert not failed, (failed, report)
    assert 0.5 < report["p_true"]["calibration_slope"] < 1.1
    # were no unannounced outage to come, no borrower is riskier, and some are safer
    truth = small_sim["ground_truth"]
    assert (truth["p_true_spared"] <= truth["p_true"] + 1e-9).all()
    assert (truth["p_true"] - truth["p_true_spared"]).mean() > 0.001


@pytest.mark.parametrize(("dpd", "cycles", "high"), [(1, 3, 0.95), (3, 2, 0.95), (1, 1, 0.99), (7, 3, 0.99),
                                                     (30, 6, 0.99), (90, 3, 0.99)])
def test_the_truths_auc_band_is_stated_per_label(dpd, cycles, high):
    """Known answers: the band's top is 0.95 while future shocks decide the label (a miss of a
    few days over two cycles or more), 0.99 once the state at scoring all but settles it."""
    from pipeline.simulate.realism import true_auc_target
    label = LabelSettings(observation_days=30, performance_cycles=cycles, dpd_threshold=dpd)
    assert true_auc_target(label) == (0.75, high)


def test_thirty_days_past_due_label_works():
    params = make_params({**SMALL, "label": {"dpd_threshold": 30},
                          "simulate": {**SMALL["simulate"], "n_borrowers": 3000}})
    truth = simulate_tables(params)["ground_truth"]
    bad = truth[truth["label"] == 1]
    assert 0 < len(bad) < 0.1 * len(truth)
    assert (bad["first_miss_days_past_due"] >= 30).all()
    assert (bad["first_miss_cause"] != "technical").mean() > 0.95  # technical misses cure fast


def test_a_thirty_day_truth_reaches_the_rare_paths_of_safe_borrowers():
    """A cash-rich borrower misses 30 days only after a severe emergency; drawn plainly, 8
    replicates found none for 65% of borrowers (p_true exactly 0), importance-sampled 40%."""
    params = make_params({**SMALL, "label": {"dpd_threshold": 30},
                          "simulate": {**SMALL["simulate"], "n_borrowers": 3000}})
    tables = simulate_tables(params)
    truth = tables["ground_truth"]
    zero = realism_of(tables, 8, params.label)["p_true"]["share_exactly_zero"]
    assert zero == (truth["p_true"] == 0).mean() and zero < 0.5
    gap = truth["label"].mean() - truth["p_true"].mean()
    assert abs(gap) < 4 * np.sqrt(truth["p_true"].mean() / len(truth))


def test_severe_emergencies_are_importance_sampled_without_bias():
    """Weighted, the sampler's draws have the plain law: E_q[w f] = E_p[f] for the size's tail,
    the timing and both together; the weights average 1 and stay bounded."""
    from scipy.stats import norm

    from pipeline.simulate.dynamics import severe_emergency

    rng = np.random.default_rng(7)
    n, before_prob = 1_000_000, np.full(1_000_000, 0.3)
    hit = rng.random(n) < 0.5
    size, before, w = severe_emergency(hit, rng.normal(0.0, 1.0, n), rng.random(n), before_prob, rng)
    assert (w[~hit] == 1).all() and w.max() <= 4.0
    assert w[hit].mean() == pytest.approx(1.0, abs=0.005)
    tail = size > 2.5
    assert (w * (hit & tail)).sum() / hit.sum() == pytest.approx(norm.sf(2.5), rel=0.03)
    assert (w * (hit & before)).sum() / hit.sum() == pytest.approx(0.3, rel=0.01)
    assert (w * (hit & before & tail)).sum() / hit.sum() == pytest.approx(0.3 * norm.sf(2.5), rel=0.04)
    assert (hit & tail).mean() / hit.mean() > 20 * norm.sf(2.5)  # what it is for: tails drawn often


def test_technical_misses_come_from_agreements_outages_and_forgetting_and_cure_fast(small_sim):
    technical = small_sim["ground_truth"].query("first_miss_cause == 'technical'")
    assert len(technical) > 20
    # every technical miss says what broke, a forgotten manual payment included
    assert technical["technical_kind"].notna().all()
    assert set(technical["technical_kind"]) <= {"mandate_known", "mandate_silent", "outage", "forgotten"}
    assert (technical["technical_kind"] == "forgotten").mean() > 0.2
    assert (technical["first_miss_days_past_due"] <= 7).mean() > 0.8


def test_calendar_arithmetic():
    d = np.array([day_number(dt.date(2024, 1, 28)), day_number(dt.date(2025, 12, 5))])
    shifted = add_months(d, np.array([1, 2]))
    assert shifted.tolist() == [day_number(dt.date(2024, 2, 28)), day_number(dt.date(2026, 2, 5))]
    start = np.array([day_number(dt.date(2025, 1, 20)), day_number(dt.date(2025, 3, 1))])
    end = start + 27
    assert spring_festival_cycle(start, end).tolist() == [True, False]  # festival 2025-01-29


def test_label_horizon_covers_the_threshold():
    assert label_horizon(LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=1), 9) == 2
    assert label_horizon(LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=30), 9) == 3


def test_a_slot_carries_the_ratios_of_the_due_dates_that_can_still_settle_it():
    """Due dates on 2025-01-19, 02-19 and 03-19: at dpd 7 each slot is settled in its own cycle;
    at dpd 30 slot 0 is too (paid on 02-19, 31 days late, it lasted), but slot 1's arrears paid on
    03-19 are 28 days late: the third slot's draws decide it; at dpd 90 both later ones count."""
    from pipeline.simulate.truth import later_ratios

    s = State(slot_due=np.array([[day_number(dt.date(2025, m, 19))] for m in (1, 2, 3)]),
              slot_weight=np.array([[0.5], [2.0], [3.0]]))
    assert later_ratios(s, 7)[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert later_ratios(s, 30)[:, 0].tolist() == [1.0, 3.0, 1.0]
    assert later_ratios(s, 90)[:, 0].tolist() == [6.0, 3.0, 1.0]


def test_installment_schedule():
    due, changes = np.zeros(2), np.zeros((14, 2))
    schedule(changes, 1, np.array([100.0, 50.0]), np.array([3, 6]))
    seen = []
    for k in range(1, 9):
        start_cycle(due, changes, k)
        seen.append(due.tolist())
    assert [s[0] for s in seen] == [100, 100, 100, 0, 0, 0, 0, 0]
    assert [s[1] for s in seen] == [50, 50, 50, 50, 50, 50, 0, 0]


def slots(missed, paid, due, cause, risk=None) -> State:
    missed = np.array(missed, dtype=bool)[:, None]
    return State(slot_missed=missed, slot_paid=np.array(paid)[:, None], slot_due=np.array(due)[:, None],
                 slot_cause=np.array(cause, dtype="int8")[:, None], slot_tech=np.full(missed.shape, -1),
                 slot_technical_risk=np.array(risk if risk is not None else [0.0] * len(missed))[:, None],
                 slot_weight=np.ones(missed.shape), slot_shortfall=np.zeros((2, *missed.shape)))


def test_label_counts_only_misses_past_the_threshold():
    s = slots([False, True, True], [10, 48, -1], [10, 40, 70], [-1, 1, 0])
    thirty = LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=30)
    one = LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=1)
    result = outcome(s, thirty, end_day=np.array([110]))
    assert result["label"].tolist() == [True] and result["first"].tolist() == [2]
    assert result["dpd"].tolist() == [40] and result["cause"].tolist() == [0]
    assert outcome(s, one, np.array([110]))["first"].tolist() == [1]


def test_expected_outcome_combines_technical_risk_and_misses():
    one = LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=1)
    s = slots([False, False, True], [10, 40, 75], [10, 40, 70], [-1, -1, 1], risk=[0.1, 0.2, 0.0])
    probs = expected_outcome(s, one, np.array([110]))[:, 0]  # credit, liquidity, technical
    np.testing.assert_allclose(probs, [0.0, 0.9 * 0.8, 0.1 + 0.9 * 0.2])
    assert probs.sum() == pytest.approx(1.0)


def test_a_larger_candidate_margin_is_drawn_deterministically(monkeypatch, small_params):
    import pipeline.simulate as simulate

    world = build_world(small_params.simulate, small_params.label)
    monkeypatch.setattr(simulate, "CANDIDATE_OVERSAMPLE", (1.25,))
    direct = simulate_shard(0, small_params.simulate, world)["ground_truth"]
    monkeypatch.setattr(simulate, "CANDIDATE_OVERSAMPLE", (0.5, 1.25))  # 0.5 can never suffice
    retried = simulate_shard(0, small_params.simulate, world)["ground_truth"]
    pd.testing.assert_frame_equal(direct, retried)


def _future_events(campaign: tuple[str, str], rule_change: str, share: float = 1.0,
                   extra: tuple[str, str] | None = None, rules: dict | None = None) -> dict:
    """Params whose second campaign (and ``extra``, a third) and rule change (with ``rules``)
    fall after every scoring date."""
    campaigns = [{"announce_date": "2024-05-01", "deadline": "2024-06-01", "share": 0.3},
                 {"announce_date": campaign[0], "deadline": campaign[1], "share": share}]
    if extra:
        campaigns.append({"announce_date": extra[0], "deadline": extra[1], "share": 0.8})
    return {**SMALL, "simulate": {**SMALL["simulate"], "n_borrowers": 2000, "shard_size": 2000,
                                  "truth_replicates": 4,
                                  "technical": {"reauthorisation_campaigns": campaigns},
                                  "risk_rules": {"rule_change_date": rule_change, **(rules or {})}}}


def _outage_on_every_day_from(world, first: int):
    """The world's calendar as announced before ``first``, then an all-day outage every day."""
    cal = world.outages
    keep = cal.announced < first
    last = cal.first_day + cal.auto_block.size - 1
    dense = np.arange(first, last + 1)
    return calendar_from_windows(
        cal.settings, cal.first_day, last, np.concatenate([cal.day[keep], dense]),
        np.concatenate([cal.planned[keep], np.zeros(dense.size, dtype=bool)]),
        np.concatenate([cal.start_hour[keep], np.zeros(dense.size)]),
        np.concatenate([cal.end_hour[keep], np.full(dense.size, 24.0)]),
        np.concatenate([cal.announced[keep], dense]))


def test_the_truth_does_not_know_the_future():
    """p_true conditions on what is announced at the scoring date: a different realised future
    (outages, the date of a campaign and of a rule change, all after every scoring date) changes
    the labels but not one bit of p_true."""
    params = make_params(_future_events(("2026-02-10", "2026-03-10"), "2026-02-15"))
    other = make_params(_future_events(("2026-03-20", "2026-04-17"), "2026-04-01"))
    cut = day_number(params.simulate.calendar.last_scoring_date) + 1
    world = build_world(params.simulate, params.label)
    changed = replace(build_world(other.simulate, other.label),
                      outages=_outage_on_every_day_from(world, cut))
    a = simulate_shard(0, params.simulate, world)["ground_truth"]
    b = simulate_shard(0, other.simulate, changed)["ground_truth"]
    assert (a["label"] != b["label"]).sum() > 20  # the future did change
    columns = ["p_true", "p_true_credit", "p_true_liquidity", "p_true_technical", "p_true_se"]
    pd.testing.assert_frame_equal(a[columns], b[columns], check_exact=True)


@pytest.mark.parametrize("future", [
    {"share": 0.3},                                                  # the future campaign's share
    {"extra": ("2026-06-01", "2026-07-01")},                         # one more campaign
    {"rules": {"restrict_below_score_after_change": 650,              # the rule change's thresholds
               "restrict_inquiries_after_change": 2}},
], ids=["share", "extra_campaign", "rule_thresholds"])
def test_the_truth_draws_what_is_not_announced_from_the_history_alone(future):
    """An outside check moved p_true by up to 0.07 with events configured after every scoring date:
    the truth had drawn the next campaign at the rate, and with the share, of the whole
    configuration, and the rule change's thresholds before it came. Only what was announced by
    the scoring date may enter."""
    base = make_params(_future_events(("2026-02-10", "2026-03-10"), "2026-02-15"))
    other = make_params(_future_events(("2026-02-10", "2026-03-10"), "2026-02-15", **future))
    a = simulate_shard(0, base.simulate, build_world(base.simulate, base.label))["ground_truth"]
    b = simulate_shard(0, other.simulate, build_world(other.simulate, other.label))["ground_truth"]
    columns = ["p_true", "p_true_credit", "p_true_liquidity", "p_true_technical", "p_true_se"]
    pd.testing.assert_frame_equal(a[columns], b[columns], check_exact=True)


def test_line_tests_draw_the_amount_from_the_grid_for_a_share_of_reviews(small_sim, small_params):
    jset = small_params.simulate.jump
    increases = small_sim["limit_events"].query("event_type == 'increase'")
    reviews = increases[increases["trigger"] != "new_user"]
    tested = reviews["test_cell"] == "line_test"
    assert tested.mean() == pytest.approx(jset.line_test_share, abs=0.02)
    assert (increases.loc[increases["trigger"] == "new_user", "test_cell"] == "policy").all()
    amounts = (reviews["new_limit"] - reviews["old_limit"])[tested]
    assert set(amounts) == set(jset.line_test_amounts)  # every cell is used


def test_the_counterfactual_covers_its_sample_at_every_amount(small_sim, small_params):
    what_if, truth = small_sim["counterfactual"], small_sim["ground_truth"]
    grid = small_params.simulate.jump.line_test_amounts
    per_borrower = what_if.groupby("borrower_id").size()
    assert (per_borrower == len(grid) + 1).all()
    since = pd.Timestamp(small_params.simulate.counterfactual.since)
    assert set(truth.set_index("borrower_id").loc[per_borrower.index, "scoring_date"].ge(since)) == {True}
    eligible = (truth["scoring_date"] >= since).sum()
    assert len(per_borrower) / eligible == pytest.approx(small_params.simulate.counterfactual.share,
                                                           abs=0.03)
    granted = what_if[what_if["granted"] == 1].set_index("borrower_id")["amount"]
    assert granted.eq(truth.set_index("borrower_id").loc[granted.index, "increase_amount"]).all()


def test_the_counterfactual_shares_its_random_numbers_across_amounts(small_sim):
    """Common random numbers: the granted amount's row equals the grid row of the same amount."""
    what_if = small_sim["counterfactual"]
    same = what_if[what_if["granted"] == 1].merge(what_if[what_if["granted"] == 0],
                                                  on=["borrower_id", "amount"], suffixes=("", "_grid"))
    assert len(same) > 50
    for col in ("p_miss", "balance_months", "exposure_at_miss"):
        np.testing.assert_array_equal(same[col], same[f"{col}_grid"])


def test_the_counterfactual_at_the_granted_amount_agrees_with_the_truth(small_sim):
    """From the jump, at the amount granted, the miss probability averages to the ordinary truth's
    (taken a month later, knowing more); the two are strongly related borrower by borrower."""
    what_if = small_sim["counterfactual"].query("granted == 1").set_index("borrower_id")
    truth = small_sim["ground_truth"].set_index("borrower_id").loc[what_if.index]
    assert what_if["p_miss"].mean() == pytest.approx(truth["p_true"].mean(), abs=0.015)
    assert np.corrcoef(what_if["p_miss"], truth["p_true"])[0, 1] > 0.6


def test_risk_and_balance_rise_with_the_amount_on_average(small_sim):
    grid = small_sim["counterfactual"].query("granted == 0").groupby("amount")[
        ["p_miss", "balance_months", "exposure_at_miss"]].mean()
    assert grid["p_miss"].is_monotonic_increasing and grid["balance_months"].is_monotonic_increasing
    assert grid["p_miss"].iloc[-1] > grid["p_miss"].iloc[0] + 0.03


def test_common_random_numbers_make_the_change_far_more_precise_than_the_level(small_sim):
    grid = small_sim["counterfactual"].query("granted == 0 and amount > 0")
    assert (grid["p_miss_change_se"].mean() < 0.5 * grid["p_miss_se"].mean())
    none = small_sim["counterfactual"].query("granted == 0 and amount == 0")
    assert (none["p_miss_change_se"] == 0).all()


def test_counts_drawn_by_inverse_cdf_follow_their_laws():
    from scipy.stats import binom, poisson

    from pipeline.simulate.borrowing import MAX_INQUIRIES, _binomial_pmf, _inverse_cdf, _poisson_pmf

    trials, p = np.array([0, 1, 3, 6, 6]), np.array([0.3, 0.5, 0.84, 0.2, 0.0])
    np.testing.assert_allclose(np.array(_binomial_pmf(trials, p)),
                               [binom.pmf(j, trials, p) for j in range(MAX_INQUIRIES)], atol=1e-15)
    rate = np.array([0.0, 0.05, 1.0, 4.0])
    np.testing.assert_allclose(np.array(_poisson_pmf(rate)),
                               [poisson.pmf(j, rate) for j in range(MAX_INQUIRIES)], atol=1e-15)
    # a uniform just below each distribution function's step gives that count; the top is capped
    u = np.array([0.0, 0.9999, 0.5, 0.999999])
    counts = _inverse_cdf(u, *_poisson_pmf(np.array([1.0, 1.0, 1.0, 4.0])))
    assert counts.tolist() == [0, MAX_INQUIRIES, int(poisson.ppf(0.5, 1.0)), MAX_INQUIRIES]


def test_only_cohorts_scored_from_the_since_date_get_a_counterfactual():
    params = make_params({**SMALL, "simulate": {**SMALL["simulate"], "n_borrowers": 1500, "shard_size": 1500,
                                                "counterfactual": {"share": 1.0, "since": "2025-06-01"}}})
    tables = simulate_shard(0, params.simulate, build_world(params.simulate, params.label))
    truth = tables["ground_truth"].set_index("borrower_id")
    covered = set(tables["counterfactual"]["borrower_id"])
    assert covered == set(truth.index[truth["scoring_date"] >= pd.Timestamp("2025-06-01")])
    assert 0 < len(covered) < len(truth)


def test_the_forgetfulness_prior_has_the_configured_mean_and_repeat_rate():
    from pipeline.simulate.population import forgetfulness_prior
    a, b = forgetfulness_prior(0.03, 0.2)
    assert a / (a + b) == pytest.approx(0.03)
    assert (a + 1) / (a + b + 1) == pytest.approx(0.2)  # E[p^2] / E[p]: forgetting again
    draws = np.random.default_rng(0).beta(a, b, 400_000)
    assert (draws ** 2).mean() / draws.mean() == pytest.approx(0.2, rel=0.03)


def test_an_outage_miss_counts_as_announced_only_if_its_window_was_announced_before_scoring():
    from pipeline.simulate.realism import announced_outage_misses
    day = pd.to_datetime
    windows = pd.DataFrame({"start_time": day(["2025-03-10 01:00", "2025-04-10 01:00"]),
                            "announced_date": day(["2025-02-20", "2025-04-05"])})
    truth = pd.DataFrame({
        # scored before / after the first window's announcement; the second window announced
        # after scoring; an outage on a day with no window in this list; a liquidity miss
        "scoring_date": day(["2025-03-01", "2025-02-10", "2025-03-20", "2025-03-01", "2025-03-01"]),
        "first_miss_due_date": day(["2025-03-10", "2025-03-10", "2025-04-10", "2025-03-11", "2025-03-10"]),
        "technical_kind": pd.array(["outage", "outage", "outage", "outage", None], dtype="str"),
    }, index=[7, 3, 9, 1, 5])  # the truth's own index plays no part
    assert announced_outage_misses(truth, windows).tolist() == [True, False, False, False, False]


def test_the_truth_report_tells_a_worlds_outage_days_from_the_estimators_noise():
    """A calibrated truth prices an outage that strikes 5% of borrowers; this world's struck 15%,
    whatever their risk. Over every row the slope flattens; the borrowers it spared drew their
    label from p_true_spared (no outage to come), and against it their slope is 1, where p_true
    would over-predict them by the chance they escaped."""
    from pipeline.simulate.realism import _truth_quality
    rng = np.random.default_rng(3)
    n = 40_000
    p_spared = rng.uniform(0.02, 0.5, n)
    p = 1 - (1 - p_spared) * (1 - 0.05)
    y = rng.random(n) < p_spared
    struck = rng.random(n) < 0.15
    truth = pd.DataFrame({"label": (y | struck).astype("int64"), "p_true": p, "p_true_spared": p_spared,
                          "p_true_se": 0.01,
                          "technical_kind": pd.array(np.where(struck & ~y, "outage", None), dtype="str")})
    quality = _truth_quality(truth, 64, struck)
    assert quality["outage_misses"] == (struck & ~y).sum()
    assert quality["calibration_slope"] < 0.85
    assert quality["calibration_slope_spared_by_unforeseen_outages"] == pytest.approx(1.0, abs=0.08)
    spared = quality["spared_by_unforeseen_outages"]
    assert spared["mean_p_true_spared"] == pytest.approx(spared["miss_rate"], abs=0.01)
    assert p[~struck].mean() > spared["miss_rate"] + 0.03  # p_true over-predicts the spared
    assert quality["struck_by_unforeseen_outages"] == {"borrowers": struck.sum(), "miss_rate": 1.0,
                                                       "mean_p_true": pytest.approx(p[struck].mean())}
    calm = _truth_quality(truth.assign(label=y.astype("int64"), technical_kind=None, p_true=p_spared), 64,
                          np.zeros(n, bool))
    assert calm["calibration_slope_spared_by_unforeseen_outages"] == calm["calibration_slope"]
    assert calm["struck_by_unforeseen_outages"]["miss_rate"] is None


def test_a_borrower_counts_as_struck_when_a_window_unknown_at_scoring_falls_on_a_label_due_date():
    """Known answers, by exposure and never by outcome: a window announced before scoring is
    foreseen; one announced on or after it (an unplanned one: the same day) is not; only the
    label's due dates count, from the scoring date to the end of its last cycle."""
    from pipeline.simulate.realism import struck_by_unforeseen_outages
    day = pd.to_datetime
    windows = pd.DataFrame({"start_time": day(["2025-03-10 02:00", "2025-04-10 13:00", "2025-07-10 02:00"]),
                            "announced_date": day(["2025-02-20", "2025-04-10", "2025-06-01"])})
    truth = pd.DataFrame({"borrower_id": [1, 2, 3, 4, 5, 6],
                          "scoring_date": day(["2025-03-01", "2025-02-10", "2025-03-01", "2025-01-01",
                                               "2025-04-01", "2025-03-01"]),
                          "label": [0, 1, 0, 1, 0, 0]}, index=[9, 8, 7, 6, 5, 4])
    due = pd.DataFrame({"borrower_id": [1, 2, 3, 3, 4, 5, 6],
                        # 1: the known window; 2: the same window, announced after its scoring; 3: the
                        # unplanned one; 4: a due date before its scoring; 5: after its 3 cycles
                        # (ends 2025-07-01); 6: no window on its due date
                        "due_date": day(["2025-03-10", "2025-03-10", "2025-03-10", "2025-04-10", "2024-03-10",
                                         "2025-07-10", "2025-03-11"])})
    label = LabelSettings(observation_days=30, performance_cycles=3, dpd_threshold=1)
    struck = struck_by_unforeseen_outages(truth, due, windows, label)
    assert struck.tolist() == [False, True, True, False, False, False]
    one_more = LabelSettings(observation_days=30, performance_cycles=4, dpd_threshold=1)
    assert struck_by_unforeseen_outages(truth, due, windows, one_more).tolist() == [
        False, True, True, False, True, False]


def test_the_defaults_tell_the_features_the_simulated_platforms_payment_hours():
    """The features stage knows the lender's own schedule from params; on the defaults it must be
    the simulated platform's, or announced maintenance would be matched to the wrong hours."""
    from pipeline.simulate.outages import AUTO_DEBIT_HOUR, MANUAL_HOURS
    features = make_params().features
    assert features.debit_batch_hour == AUTO_DEBIT_HOUR
    assert tuple(features.paying_hours) == MANUAL_HOURS


def test_statement_days_fall_between_the_day_before_the_cycle_and_the_grace(small_params):
    """Every offset from -1 (the day before the cycle) to the due date minus the grace is drawn,
    none later, and no statement day passes the 27th (its next period starts on the 28th at the
    latest, a day every month has)."""
    cal = small_params.simulate.calendar
    first = day_number(dt.date(2025, 3, 1))
    scoring = np.repeat(np.arange(first, first + 28, dtype="int64"), 500)  # days 1..28 of March
    offsets = draw_offsets(scoring, cal, np.random.default_rng(0))
    latest = cal.due_day_offset - cal.statement_min_grace_days
    early = scoring < first + 10  # room for every offset
    assert set(np.unique(offsets[early])) == set(range(-1, latest + 1))
    statement_day = (scoring - first) + offsets  # 0-based day of March
    assert statement_day.max() == 26 and offsets.min() == -1


def test_the_incoming_batch_is_cut_at_each_scoring_date_with_ids_offset(small_sim):
    from pipeline.simulate.new_borrowers import BATCH_ID_OFFSET, cut_at_scoring

    cut = cut_at_scoring(small_sim)
    assert set(cut) == set(RAW_TABLES)
    scoring = small_sim["ground_truth"].set_index("borrower_id")["scoring_date"]
    for name, frame in cut.items():
        original = frame["borrower_id"] - BATCH_ID_OFFSET
        assert (frame[TABLES[name].date_column] < original.map(scoring)).all()
        kept = small_sim[name][TABLES[name].date_column] < small_sim[name]["borrower_id"].map(scoring)
        assert len(frame) == kept.sum() and original.isin(scoring.index).all()
    assert sum(map(len, cut.values())) < sum(len(small_sim[name]) for name in RAW_TABLES)  # some cut


def test_the_batch_lists_the_windows_announced_by_its_last_scoring_date():
    from pipeline.simulate.new_borrowers import announced_windows

    windows = pd.DataFrame({"announced_date": pd.to_datetime(["2025-01-01", "2025-03-02", "2025-02-01"]),
                            "start_time": pd.to_datetime(["2025-01-10", "2025-03-10", "2025-02-10"])})
    listed = announced_windows(windows, dt.date(2025, 3, 1))
    assert listed["announced_date"].tolist() == [pd.Timestamp("2025-01-01"), pd.Timestamp("2025-02-01")]
    assert listed.index.tolist() == [0, 1]


def test_the_truths_quality_is_not_judged_on_a_handful_of_misses(small_sim, small_params):
    """Ten borrowers with one miss had failed the truth's AUC and slope checks (AUC 1.000, slope
    22.2): too few misses to judge by are 'not applicable'."""
    from pipeline.simulate.realism import MIN_CLASS

    truth = small_sim["ground_truth"]
    few = pd.concat([truth[truth["label"] == 1].head(MIN_CLASS - 1), truth[truth["label"] == 0].head(500)])
    report = realism_of(small_sim, small_params.simulate.truth_replicates, small_params.label, few)
    assert report["p_true"]["auc"] is None and report["p_true"]["calibration_slope"] is None
    for check in ("true_probability_auc", "true_probability_calibration_slope_0_9_to_1_1"):
        assert report["checks"][check] == "not applicable"
    enough = pd.concat([truth[truth["label"] == 1].head(MIN_CLASS), truth[truth["label"] == 0].head(500)])
    report = realism_of(small_sim, small_params.simulate.truth_replicates, small_params.label, enough)
    assert report["p_true"]["auc"]


def test_a_check_allows_its_own_sampling_noise_and_no_more():
    from pipeline.simulate.realism import ALLOWANCE_SE, _within
    assert _within((0.157, 0.004), 0.10, 0.15)  # 1.75 standard errors over: noise
    assert not _within((0.15 + (ALLOWANCE_SE + 0.1) * 0.004, 0.004), 0.10, 0.15)
    assert _within((-0.01, 0.005), 0.0) and not _within((-0.02, 0.005), 0.0)  # "rising"
    assert _within((0.3, 0.0), high=0.3) and not _within((0.31, 0.0), high=0.3)
    assert _within(None, 0.0, 1.0) is None


def test_a_small_worlds_checks_pass_on_noise_but_fail_where_the_data_contradict_them(small_sim, small_params):
    """On 6,000 borrowers every check but the truth's slope (8 replicates) passes; moving the
    drawdown by a tenth of the increase, or making the miss rate fall with debt, fails its check
    however small the world."""
    report = realism_of(small_sim, small_params.simulate.truth_replicates, small_params.label)
    slope = "true_probability_calibration_slope_0_9_to_1_1"
    assert {k for k, v in report["checks"].items() if v != "pass"} <= {slope}
    estimate = report["estimates"]["first_quarter_drawdown_10_to_15pct"]
    assert estimate["value"] == report["drawdown_first_quarter_mean"]
    assert 0 < estimate["standard_error"] < 0.01
    truth = small_sim["ground_truth"]
    drawn_more = truth.assign(drawn_share_first_quarter=truth["drawn_share_first_quarter"] + 0.1)
    moved = realism_of(small_sim, small_params.simulate.truth_replicates, small_params.label, drawn_more)
    assert moved["checks"]["first_quarter_drawdown_10_to_15pct"] == "fail"
    dti = truth["dti_at_scoring"]  # the same values, the highest debt given to the lowest's borrower
    reversed_debt = truth.assign(dti_at_scoring=np.sort(dti.to_numpy())[::-1][dti.rank(method="first")
                                                                               .astype(int) - 1])
    falling = realism_of(small_sim, small_params.simulate.truth_replicates, small_params.label, reversed_debt)
    assert falling["checks"]["miss_rate_rises_with_dti"] == "fail"


def test_the_truths_next_campaign_comes_two_cycles_after_the_last_announced_deadline_for_everyone():
    """Known answer from a review: a borrower the announced campaign did not cover (or who had
    renewed, no deadline of their own) drew a next campaign while it still ran."""
    from types import SimpleNamespace

    from pipeline.config import CAMPAIGN_GAP_DAYS
    from pipeline.simulate.truth import redraw_unannounced
    n = 20_000
    s = State({"scoring_day": np.full(n, 1010, dtype="int32"),
               "rule_change_day": np.full(n, 5000, dtype="int32"),
               "reauth_deadline": np.where(np.arange(n) < n // 2, 1031, 0).astype("int32")})
    world = SimpleNamespace(campaigns=[(1000, 1031, 0.3), (3000, 3031, 1.0)],
                            outages=SimpleNamespace(first_day=0))
    redraw_unannounced(s, world, np.random.default_rng(0))
    assert (s.campaign_announce >= 1031 + CAMPAIGN_GAP_DAYS).all()
    assert (s.campaign_deadline - s.campaign_announce == 31).all() and (s.campaign_share == 0.3).all()
    assert (s.rule_change_day == np.iinfo("int32").max).all()  # not in force at scoring: unknown


def test_the_incoming_batch_reads_of_the_label_only_its_observation_window():
    """The batch is cut at each scoring date, and before it nothing depends on how the label is
    measured: so simulate_batch declares ``label.observation_days`` alone (it had re-run on every
    change of ``dpd_threshold`` or ``performance_cycles`` for the same bytes)."""
    from pipeline.simulate.new_borrowers import batch_settings, cut_at_scoring

    p = make_params({"incoming": {"n_borrowers": 300}, "simulate": {"shard_size": 300}})
    settings = batch_settings(p.simulate, p.incoming)

    def batch(**label) -> dict[str, pd.DataFrame]:
        world = build_world(settings, p.label.model_copy(update=label))
        return cut_at_scoring(simulate_shard(0, settings, world))

    plain, other = batch(), batch(dpd_threshold=30, performance_cycles=6)
    for name in RAW_TABLES:
        pd.testing.assert_frame_equal(plain[name], other[name])
    later = batch(observation_days=60)
    assert not all(plain[name].equals(later[name]) for name in RAW_TABLES)
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["simulate_batch"]["params"]
    assert [k for k in declared if k.split(".")[0] == "label"] == ["label.observation_days"]


def test_every_increase_goes_to_a_borrower_in_good_standing_on_the_day(small_sim, small_params):
    """An outside check: borrowers 20 days past due had their limit raised (the arrears were read at
    the start of the cycle, and a due date missed later in it, before the jump, was not): 3 of
    these 6,000, 82 of the defaults' 150,000. Features taken on the jump date (records before it)
    show no day past due for anyone."""
    at_jump = build_features(small_sim, 0, small_params.features)
    assert len(at_jump) == small_params.simulate.n_borrowers
    late = at_jump.loc[at_jump["days_past_due_now"] > 0, ["borrower_id", "days_past_due_now"]]
    assert late.empty, late.head()
