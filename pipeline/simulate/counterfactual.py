"""The counterfactual truth of the increase decision: what would have happened at every amount.

Real data shows only the amount that was granted; the simulator can show them all. From the state
at the start of the jump cycle (the decision; the trigger as it was), each borrower is simulated
``replicates`` times through the label window at every amount of the line-test grid and at the
amount actually granted. Every amount uses the same random numbers (common random numbers), so
the differences between amounts carry far less noise than each probability.

The information set is the decision date's: outage windows, campaigns and the rule change not
announced by the jump are redrawn in each replicate (``truth``), as the ordinary truth does at the
scoring date. The replicates run the truth's machinery (``advance`` with ``integrate_technical``):
a technical block at a due date before the scoring date is integrated out as not having happened,
which the ordinary truth, starting at the scoring date, does not need.

Per borrower and amount the result holds the probability of the label, its standard error and
the standard error of its change from no increase (the grid's first amount, 0), the expected
balance summed over the cycles from the jump to the last label due date (CNY x
months: what interest is earned on), and the expected exposure at the first bad miss (CNY: what a
miss puts at risk). Profit is computed from these downstream, with the economics in params.
"""

from __future__ import annotations

import numpy as np

from pipeline.simulate.dynamics import World, advance, balance, cycle_start
from pipeline.simulate.state import State
from pipeline.simulate.truth import (
    MAX_REPLICATED_ROWS,
    add_known_outages,
    add_label_slots,
    first_miss_by_slot,
    redraw_unannounced,
)

FIELDS = ("p_miss", "p_miss_se", "p_miss_change_se", "balance_months", "exposure_at_miss")


def counterfactual(snapshot: State, granted: np.ndarray, world: World, seed: np.random.SeedSequence,
                   replicates: int) -> dict[str, np.ndarray]:
    """Each of ``FIELDS`` with shape (amounts + 1, n): the grid's amounts, then the one granted.

    ``snapshot`` is the state of n borrowers at the start of their jump cycle, with the trigger
    they got at the jump; ``granted`` the amount each actually got.
    """
    grid = np.asarray(world.settings.jump.line_test_amounts, dtype=float)
    n = len(snapshot)
    amounts = np.vstack([np.repeat(grid[:, None], n, axis=1), granted[None, :]])
    out = {name: np.zeros(amounts.shape) for name in FIELDS}
    chunk = max(1, MAX_REPLICATED_ROWS // replicates)
    tasks = [(rows[lo:lo + chunk], int(k)) for k in np.unique(snapshot.k_jump)
             for rows in [np.flatnonzero(snapshot.k_jump == k)] for lo in range(0, rows.size, chunk)]
    for (rows, first_cycle), task_seed in zip(tasks, seed.spawn(len(tasks)), strict=True):
        base = snapshot.take(rows)
        p_none = None  # each replicate's P(miss) with no increase, the differences' reference
        for a in range(amounts.shape[0]):
            per_replicate = _replicate(base, amounts[a, rows], first_cycle, world, task_seed, replicates)
            for name, values in per_replicate.items():
                out[name][a, rows] = values.mean(axis=0)
            # a replicate is weighted by its shortfall branches' likelihood ratio, so a mean over
            # few of them can pass 1 (as the ordinary truth's, which is clipped the same way)
            out["p_miss"][a, rows] = np.clip(out["p_miss"][a, rows], 0.0, 1.0)
            p = per_replicate["p_miss"]
            p_none = p if p_none is None else p_none
            out["p_miss_se"][a, rows] = _standard_error(p)
            out["p_miss_change_se"][a, rows] = _standard_error(p - p_none)
    return out


def _standard_error(values: np.ndarray) -> np.ndarray:
    """Of the mean over replicates (axis 0)."""
    return values.std(axis=0, ddof=1 if len(values) > 1 else 0) / np.sqrt(len(values))


def _replicate(base: State, amount: np.ndarray, first_cycle: int, world: World,
               seed: np.random.SeedSequence, replicates: int) -> dict[str, np.ndarray]:
    """One amount for borrowers who share their jump cycle, per replicate (shape: replicates,
    borrowers); the same ``seed`` for every amount."""
    s = base.copy()
    s.forced_amount = amount.astype(float)
    add_label_slots(s, world.label.performance_cycles)
    add_known_outages(s, world, known_until=s.jump_day, first_cycle=first_cycle)
    s = s.tile(replicates)
    rng = np.random.default_rng(seed)
    redraw_unannounced(s, world, rng, known_until=s.jump_day)
    balance_months = np.zeros(len(s))
    exposure = np.zeros((world.label.performance_cycles, len(s)))
    for k in range(first_cycle, world.horizon + 1):
        advance(s, k, world, rng, None, integrate_technical=True, label_only=k == world.horizon)
        owed = balance(s)
        balance_months += owed
        if 0 <= k < exposure.shape[0]:
            exposure[k] = owed
    first = first_miss_by_slot(s, world.label, cycle_start(s, world.horizon + 1) - 1).sum(axis=1)
    per_replicate = {
        "p_miss": first.sum(axis=0),
        "balance_months": balance_months,
        "exposure_at_miss": (first * exposure).sum(axis=0),
    }
    return {k: v.reshape(replicates, -1) for k, v in per_replicate.items()}
