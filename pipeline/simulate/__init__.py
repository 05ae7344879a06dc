"""The borrower simulator: monthly histories around a one-time limit jump, with ground truth.

``simulate_shard`` is the unit of work: a contiguous block of borrower ids with its own random
streams, returning every warehouse table plus the ground truth for those borrowers. Shards are
independent, so they can run in any order or on any worker and give the same bytes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import (
    CAUSES,
    TRIGGERS,
    LabelSettings,
    SimulateSettings,
    label_horizon,
    truth_replicates,
)
from pipeline.contract import RAW_TABLES, TABLES, TECHNICAL_KINDS
from pipeline.simulate.calendar import day_number, to_datetime64
from pipeline.simulate.counterfactual import FIELDS, counterfactual
from pipeline.simulate.dynamics import World, advance, balance, cycle_start
from pipeline.simulate.events import EventLog
from pipeline.simulate.outages import draw_outages
from pipeline.simulate.population import draw_population
from pipeline.simulate.state import State, due_in
from pipeline.simulate.statements import StatementBook, draw_offsets
from pipeline.simulate.truth import add_label_slots, outcome, true_probability

__all__ = ["World", "build_world", "shard_bounds", "simulate_shard"]

CANDIDATE_OVERSAMPLE = (1.25, 1.6, 2.2, 3.0)  # candidates per borrower needed, tried in turn


def shard_bounds(settings: SimulateSettings) -> list[tuple[int, int]]:
    """[first id, end id) of every shard."""
    n, size = settings.n_borrowers, settings.shard_size
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def seed_streams(settings: SimulateSettings) -> tuple[np.random.SeedSequence, list[np.random.SeedSequence]]:
    """One stream for the shared world (outages), one per shard."""
    root = np.random.SeedSequence(settings.seed)
    world, shards = root.spawn(2)
    return world, shards.spawn(len(shard_bounds(settings)))


def build_world(settings: SimulateSettings, label: LabelSettings) -> World:
    """Everything shards share; drawn from its own stream so every shard sees the same outages."""
    world_seed, _ = seed_streams(settings)
    cal = settings.calendar
    first = day_number(cal.first_scoring_date) - 31 * (cal.history_months + 6)
    outages = draw_outages(settings.technical.outages, first, day_number(cal.export_end),
                           np.random.default_rng(world_seed))
    return World(settings, label, outages, label_horizon(label, cal.due_day_offset))


def simulate_shard(index: int, settings: SimulateSettings, world: World) -> dict[str, pd.DataFrame]:
    """All raw tables and the ground truth for shard ``index``.

    The platform grants increases only to borrowers in good standing (no arrears, line not
    restricted), so the shard simulates more candidates than it needs and keeps, in order, the
    first eligible ones at the scoring date; their ids are then numbered from the shard's first id.
    A population too delinquent for the usual margin is drawn again, deterministically, with a
    larger one.
    """
    lo, hi = shard_bounds(settings)[index]
    _, shard_seeds = seed_streams(settings)
    # a fourth stream for the statement days: the first three stay as they were without it
    main_seed, truth_seed, counterfactual_seed, statement_seed = shard_seeds[index].spawn(4)
    for oversample in CANDIDATE_OVERSAMPLE:
        n_candidates = int(np.ceil((hi - lo) * oversample)) + 16
        rng, truth_rng = np.random.default_rng(main_seed), np.random.default_rng(truth_seed)
        # the counterfactual's sample, drawn apart so that its share changes nothing else
        sampled = (np.random.default_rng(counterfactual_seed).random(n_candidates)
                   < settings.counterfactual.share)
        statement_rng = np.random.default_rng(statement_seed)
        state, log, at_jump = _until_scoring(n_candidates, settings, world, rng, sampled, statement_rng)
        if state.eligible.sum() >= hi - lo:
            break
    state = state.take(_first_eligible(state, hi - lo, index))
    at_jump = at_jump.take(np.flatnonzero(np.isin(at_jump.borrower_id, state.borrower_id)))
    at_jump = at_jump.take(np.argsort(at_jump.borrower_id, kind="stable"))
    add_label_slots(state, world.label.performance_cycles)
    truth = true_probability(state.copy(), world, truth_rng, truth_replicates(settings, world.label))
    row_of = np.zeros(n_candidates, dtype="int64")
    row_of[state.borrower_id] = np.arange(len(state))
    at_jump.trigger = state.trigger[row_of[at_jump.borrower_id]]  # drawn at the jump, kept
    granted = state.increase[row_of[at_jump.borrower_id]]
    what_if = counterfactual(at_jump, granted, world, counterfactual_seed.spawn(1)[0],
                             settings.counterfactual.replicates)
    at_scoring = _scoring_snapshot(state)
    # after scoring everyone runs to the longest history; rows past a borrower's own export
    # end are dropped when the tables are built
    for k in range(int(state.last_cycle.max()) + 1):
        advance(state, k, world, rng, log)
    id_map = np.full(n_candidates, -1, dtype="int64")
    id_map[state.borrower_id] = np.arange(lo, hi)
    last_day = np.full(n_candidates, -1, dtype="int64")
    last_day[state.borrower_id] = cycle_start(state, state.last_cycle.astype("int64") + 1) - 1
    tables = {name: log.frame(name, id_map, last_day) for name in RAW_TABLES}
    tables["ground_truth"] = _ground_truth(state, truth, at_scoring, world, id_map)
    tables["counterfactual"] = _counterfactual_table(id_map[at_jump.borrower_id], granted, what_if,
                                                     world)
    return tables


def _until_scoring(n_candidates: int, settings: SimulateSettings, world: World,
                   rng: np.random.Generator, sampled: np.ndarray,
                   statement_rng: np.random.Generator) -> tuple[State, EventLog, State]:
    """Draw candidates and simulate them up to their scoring date; also returns the state of the
    ``sampled`` candidates at the start of their jump cycle (the counterfactual's decision)."""
    log = EventLog(StatementBook(n_candidates))
    state = draw_population(np.arange(n_candidates, dtype="int64"), settings, world.label,
                            world.horizon, rng, log)
    state["statement_offset"] = draw_offsets(state.scoring_day, settings.calendar, statement_rng)
    # sorted by onboarding, the borrowers active before scoring are a prefix: views, no copies
    state = state.take(np.argsort(state.onboard_cycle, kind="stable"))
    sampled = sampled[state.borrower_id]
    since = day_number(settings.counterfactual.since)
    onboarded = state.onboard_cycle
    at_jump = []
    for k in range(int(onboarded.min()), 0):
        m = int(np.searchsorted(onboarded, k, side="right"))
        part = state.head(m)
        at_jump.append(part.take(np.flatnonzero(sampled[:m] & (part.k_jump == k)
                                                & (part.scoring_day >= since))))
        advance(part, k, world, rng, log)
        state.write_back(m, part)
    return state, log, State.concat(at_jump)


def _first_eligible(state, needed: int, index: int) -> np.ndarray:
    """Rows of the first ``needed`` eligible candidates in the order they were drawn."""
    eligible = np.flatnonzero(state.eligible)
    eligible = eligible[np.argsort(state.borrower_id[eligible], kind="stable")]
    if eligible.size < needed:
        raise RuntimeError(
            f"shard {index}: only {eligible.size} of {len(state)} candidates were in good standing "
            f"at their jump, {needed} needed; the simulated population is far more delinquent "
            "than the defaults assume (check the income and drawdown settings)")
    return np.sort(eligible[:needed])


def _counterfactual_table(ids: np.ndarray, granted: np.ndarray, what_if: dict[str, np.ndarray],
                          world: World) -> pd.DataFrame:
    """One row per sampled borrower and amount (the grid's, then the granted one)."""
    amounts, n = what_if["p_miss"].shape
    grid = np.asarray(world.settings.jump.line_test_amounts, dtype=float)
    frame = pd.DataFrame({
        "borrower_id": np.tile(ids, amounts),
        "amount": np.concatenate([np.repeat(grid, n), granted]),
        "granted": np.repeat(np.arange(amounts) == amounts - 1, n).astype("int64"),
        **{name: what_if[name].ravel() for name in FIELDS},
    })
    frame["p_miss"] = frame["p_miss"].clip(0.0, 1.0)
    return frame.sort_values(["borrower_id", "granted", "amount"], kind="stable",
                             ignore_index=True)[TABLES["counterfactual"].names]


def _scoring_snapshot(s) -> dict[str, np.ndarray]:
    """Hidden quantities at the scoring date, for the ground-truth table."""
    own = due_in(s.own_due, s.own_changes, 0)
    outside = due_in(s.outside_due, s.outside_changes, 0)
    income = np.exp(s.log_perm)
    return dict(true_income=income, cash=s.cash.copy(), employed=s.employed.copy(),
                dti=(own + outside) / income, balance=balance(s))


def _ground_truth(s, truth: dict[str, np.ndarray], snap: dict[str, np.ndarray],
                  world: World, id_map: np.ndarray) -> pd.DataFrame:
    end_day = cycle_start(s, int(s.last_cycle.max()) + 1) - 1
    result = outcome(s, world.label, end_day)
    has = result["label"]
    cause = np.where(has, np.array(CAUSES, dtype=object)[np.maximum(result["cause"], 0)], None)
    technical = has & (result["cause"] == CAUSES.index("technical"))
    frame = pd.DataFrame({
        "borrower_id": id_map[s.borrower_id],
        "scoring_date": to_datetime64(s.scoring_day),
        "jump_date": to_datetime64(s.jump_day),
        "label": has.astype("int64"),
        "first_miss_cause": pd.array(cause, dtype="str"),
        "first_miss_due_date": np.where(has, to_datetime64(result["due"]), np.datetime64("NaT")),
        "first_miss_days_past_due": np.where(has, result["dpd"].astype(float), np.nan),
        "technical_kind": pd.array(np.where(technical, np.array(TECHNICAL_KINDS, dtype=object)[
            np.maximum(result["tech"], 0)], None), dtype="str"),
        **{k: np.clip(v, 0.0, 1.0) for k, v in truth.items()},
        "trigger": pd.array(np.array(TRIGGERS, dtype=object)[s.trigger], dtype="str"),
        "increase_amount": s.increase,
        "score_at_jump": s.score_at_jump,
        "utilisation_at_jump": s.util_at_jump,
        "drawdown_propensity_12m": s.m12,
        "drawn_share_first_quarter": s.drawn_q1,
        "drawn_share_12m": s.drawn_12m,
        "dti_at_scoring": snap["dti"],
        "inquiries_since_jump": s.inquiries_since_jump.astype("int64"),
        "true_income_at_scoring": snap["true_income"],
        "cash_at_scoring": snap["cash"],
        "spend_propensity": s.propensity,
        "employed_at_scoring": snap["employed"].astype("int64"),
    })
    frame["first_miss_due_date"] = frame["first_miss_due_date"].astype("datetime64[s]")
    return frame[TABLES["ground_truth"].names]
