"""Per-borrower simulation state: a bag of numpy arrays whose last axis is the borrower.

Keeping every quantity (static attributes, balances, ring buffers of future installments) in one
container lets a step run on the borrowers active in a cycle (``take``/``put``) and lets the
Monte-Carlo truth replicate the whole state at the scoring date (``repeat``).
"""

from __future__ import annotations

import numpy as np

# Installments are constant over their tenor, so a schedule is a running total due per cycle
# plus a ring of changes: column (k % width) holds how the total changes at the start of cycle k.
OWN_RING = 14  # our installments: tenors up to 12 months
OUTSIDE_RING = 26  # other lenders' loans: tenors up to 24 months
INQUIRY_RING = 3  # inquiry counts of the last three cycles
SCORE_RING = 6  # credit scores at the end of the last six cycles


class State(dict):
    """Arrays keyed by name. The borrower is the last axis, so a ring buffer of shape
    (width, n) keeps each of its columns (one cycle) contiguous."""

    __getattr__ = dict.__getitem__
    __setattr__ = dict.__setitem__

    def __len__(self) -> int:  # number of borrowers, not number of fields
        return next(iter(self.values())).shape[-1]

    def take(self, idx: np.ndarray) -> State:
        return State({k: v[..., idx] for k, v in self.items()})

    def head(self, m: int) -> State:
        """The first ``m`` borrowers as views: in-place updates reach this state."""
        return State({k: v[..., :m] for k, v in self.items()})

    def write_back(self, m: int, part: State) -> None:
        """Copy into the first ``m`` borrowers the fields ``part`` replaced rather than updated."""
        for k, v in part.items():
            if not np.shares_memory(v, self[k]):
                self[k][..., :m] = v

    def tile(self, times: int) -> State:
        """``times`` copies of every borrower: replicate r of borrower i at r * n + i."""
        return State({k: np.tile(v, (1,) * (v.ndim - 1) + (times,)) for k, v in self.items()})

    @staticmethod
    def concat(parts: list[State]) -> State:
        """The borrowers of every part, in order (the parts have the same fields)."""
        return State({k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]})

    def copy(self) -> State:
        return State({k: v.copy() for k, v in self.items()})


def annuity_factor(monthly_rate: float | np.ndarray, months: np.ndarray) -> np.ndarray:
    """Equal monthly installment per unit of principal: r / (1 - (1 + r)^-n)."""
    return monthly_rate / (1.0 - (1.0 + monthly_rate) ** -np.asarray(months, dtype=float))


def schedule(changes: np.ndarray, first_cycle: int | np.ndarray, monthly: np.ndarray,
             tenor: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Payments of ``monthly`` in cycles first_cycle .. first_cycle + tenor - 1, for borrowers
    ``rows`` (may repeat) or for every borrower when ``rows`` is None."""
    width = changes.shape[0]
    repeats = rows is not None
    if rows is None:
        rows = np.arange(changes.shape[1])
    start = np.broadcast_to(np.asarray(first_cycle) % width, rows.shape)
    _add(changes, (start, rows), monthly, repeats)
    _add(changes, ((start + tenor) % width, rows), -monthly, repeats)


def _add(cells: np.ndarray, index: tuple, values: np.ndarray, repeats: bool) -> None:
    """``cells[index] += values``, where a cell named more than once in ``index`` (``repeats``)
    gets every one of its values. Only repeats need np.add.at, which is slow; without them plain
    indexing adds the same amounts to the same cells (the same bytes), an order of magnitude faster."""
    if repeats:
        np.add.at(cells, index, values)
    else:
        cells[index] += values


def due_in(total: np.ndarray, changes: np.ndarray, cycle: int) -> np.ndarray:
    """What falls due in ``cycle`` if it is the next one, without changing anything."""
    due = total + changes[cycle % changes.shape[0]]
    return np.where(due < 1e-6, 0.0, due)


def start_cycle(total: np.ndarray, changes: np.ndarray, cycle: int) -> None:
    """Apply the changes that take effect at the start of ``cycle`` (in place)."""
    col = cycle % changes.shape[0]
    total += changes[col]
    total[total < 1e-6] = 0.0  # additions and subtractions of the same amounts leave round-off
    changes[col] = 0.0
