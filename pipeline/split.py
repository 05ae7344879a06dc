"""Out-of-time split: the oldest jump cohorts train, the next validate, the most recent test.

A label is known only once its window has run out: the last due date of the performance window
plus ``dpd_threshold`` days (``label_matures``). Validation drives early stopping and the
calibration, so a validation label that matures after the first test scoring date would let the
test period's outcomes shape the model; likewise for training labels and the validation period.
The split therefore keeps a gap (the embargo) before validation and before test: a row is used
only if its label has matured before the first scoring date of the next split. Test keeps the
newest ``test`` share of rows, validation the ``valid`` share just before test's embargo, and
training what matured before validation's first scoring date; rows in the gaps are dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.config import LabelSettings, MonitorSettings
from pipeline.errors import InputError, UsageError
from pipeline.io import EMBARGOED, SPLITS
from pipeline.metrics import rate_with_half_added

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOO_LONG = ("the embargo between splits leaves a split without rows: the label window is too long "
            "for the range of scoring dates (shorten label.performance_cycles or label.dpd_threshold; "
            "with the simulator, widen simulate.calendar; with your own tables, they need scoring "
            "dates spread over more than two label windows)")


class SplitError(InputError, ValueError):
    """The rows cannot be split out of time into three splits a model can learn and be judged on."""


def label_matures(scoring_date: pd.Series, label: LabelSettings, due_day_offset: int) -> pd.Series:
    """The day each label is known: last due date of the window + dpd_threshold days. Billing
    cycles start on the scoring date's day of the month (always <= 28), one month apart."""
    last_cycle = scoring_date + pd.DateOffset(months=label.performance_cycles - 1)
    return last_cycle + pd.to_timedelta(due_day_offset + label.dpd_threshold, unit="D")


def out_of_time(frame: pd.DataFrame, fractions: tuple[float, float, float], label: LabelSettings,
                due_day_offset: int) -> pd.Series:
    """Split name per row ("train", "valid", "test" or "embargo"). Whole jump dates go to one
    split, the cut-offs placed where the cumulative share of rows first reaches each share."""
    jump, scoring = frame["jump_date"], frame["scoring_date"]
    matures = label_matures(scoring, label, due_day_offset)
    if jump.nunique() < len(SPLITS):
        raise SplitError(_too_few_dates(jump))
    test = jump > _cut(jump, 1.0 - fractions[2])
    before_test = ~test & (matures < scoring[test].min())
    share_of_rest = fractions[1] * len(frame) / max(int(before_test.sum()), 1)
    if share_of_rest >= 1.0:  # too few rows matured before test for validation and training
        raise SplitError(_no_room(scoring, matures))
    valid = before_test & (jump > _cut(jump[before_test], 1.0 - share_of_rest))
    train = before_test & ~valid & (matures < scoring[valid].min())
    if not train.any():
        raise SplitError(_no_room(scoring, matures))
    names = np.select([train, valid, test], list(SPLITS), EMBARGOED)
    return pd.Series(names, index=frame.index, name="split")


def check_both_labels(report: dict[str, dict]) -> None:
    """Raise SplitError unless every split (``summary``'s) holds misses and repayments: a model
    learns nothing from one class, and a split of one class has no AUC to judge it by."""
    one = [f"{name} ({row['rows']} rows, {row['misses']} misses, scored {row['first_scoring_date']}.."
           f"{row['last_scoring_date']})" for name, row in report.items()
           if name in SPLITS and row["misses"] in (0, row["rows"])]
    if one:
        raise SplitError(f"{', '.join(one)}: a split needs both labels, misses and repayments, for a "
                         "model to learn from it or be judged on it; give rows with both over the whole "
                         "range of scoring dates (more borrowers: simulate.n_borrowers, or a team's "
                         "tables), or change split.train, split.valid and split.test")


def labelled(frame: pd.DataFrame, where: object) -> pd.Series:
    """The label column as 0/1 integers; SplitError naming ``where`` and the first borrowers
    when a row has none (a borrower without a label can be neither learnt from nor judged)."""
    missing = frame["label"].isna()
    if missing.any():
        first = ", ".join(map(str, frame.loc[missing, "borrower_id"].head(5)))
        raise SplitError(f"{where}: no label for {int(missing.sum())} borrowers ({first}"
                         f"{', ...' if missing.sum() > 5 else ''})")
    return frame["label"].astype("int64")


def check_labels_known(frame: pd.DataFrame, matures: pd.Series, today: pd.Timestamp, where: str) -> None:
    """Raise SplitError when a row's label window has not ended by ``today``: its label cannot
    have been observed, and a 0 there would only mean "not yet missed". A team's file is checked
    (the simulator's truth is known whenever its calendar ends); ``where`` names its file and date
    column, and the message the first borrowers."""
    early = matures > today
    scoring_date = frame["scoring_date"]
    if early.any():
        first = ", ".join(map(str, frame.loc[early, "borrower_id"].head(5)))
        more = ", ..." if early.sum() > 5 else ""
        raise SplitError(f"{where}: {int(early.sum())} rows (borrowers {first}{more}) have labels that "
                         f"cannot be known yet: scored from "
                         f"{scoring_date[early].min().date()}, their label window ends after today "
                         f"({today.date()}), as late as {matures[early].max().date()}; leave them out, or "
                         "set label.performance_cycles and label.dpd_threshold to the window the label "
                         "was measured over")


def maintenance_miss_rate(failures: pd.DataFrame, repayments: pd.DataFrame, windows: pd.DataFrame,
                          known_by: pd.Timestamp, dpd_threshold: int) -> dict | None:
    """How often a payment that announced maintenance stopped became a miss of the label's
    days, from the platform's own history: the due dates with a ``system_unavailable`` debit
    failure on the day of a window announced before it (``failures``: platform_events rows of
    borrower_id, event_date, event_type, detail), each settled on its last payment
    (``repayments``: borrower_id, due_date, payment_date), counted if its outcome is known by
    ``known_by`` (the first out-of-time scoring date). Returns {"due_dates", "missed", "rate"},
    the rate with half a miss and half a payment added (a handful of due dates gives no
    certainty), or None without such a due date.

    The training rows alone cannot teach this: a world whose maintenance fell on none of their
    performance windows left the model at a median 0.03 for borrowers whose next debit
    announced maintenance will stop, every one of whom missed (bench/oracle.py, seed 1)."""
    blocked = failures[(failures["event_type"] == "debit_failed")
                       & (failures["detail"] == "system_unavailable")]
    days = pd.to_datetime(blocked["event_date"]).dt.normalize()
    start = pd.to_datetime(windows["start_time"])
    announced = start.dt.normalize()[pd.to_datetime(windows["announced_date"]) < start.dt.normalize()]
    known = days + pd.Timedelta(days=dpd_threshold) <= known_by
    blocked = blocked.assign(due_date=days)[days.isin(announced.unique()) & known]
    if blocked.empty:
        return None
    paid = (repayments.assign(due_date=pd.to_datetime(repayments["due_date"]).dt.normalize())
            .groupby(["borrower_id", "due_date"], as_index=False)["payment_date"].max())
    settled = blocked[["borrower_id", "due_date"]].merge(paid, on=["borrower_id", "due_date"], how="left")
    last = pd.to_datetime(settled["payment_date"]).fillna(known_by)
    late = (last.clip(upper=known_by) - settled["due_date"]).dt.days
    missed = int((late >= dpd_threshold).sum())
    return {"due_dates": len(settled), "missed": missed, "rate": rate_with_half_added(missed, len(settled))}


def _too_few_dates(jump: pd.Series) -> str:
    dates = ", ".join(str(d.date()) for d in sorted(jump.dropna().unique())[:len(SPLITS)])
    return (f"the rows jump on {jump.nunique()} distinct date(s) ({dates or 'none'}): the out-of-time "
            "split puts whole jump dates in one split, so train, validation and test need at least "
            "three dates, spread over more than two label windows; give rows that jumped on more dates")


def _no_room(scoring: pd.Series, matures: pd.Series) -> str:
    """TOO_LONG with the figures behind it: the span of scoring dates against the label window."""
    span = (scoring.max() - scoring.min()).days
    window = int((matures - scoring).dt.days.median())
    return (f"{TOO_LONG}: scoring dates run {scoring.min().date()}..{scoring.max().date()} ({span} days), "
            f"and a label is known {window} days after its scoring date, so the two embargoes alone "
            f"take about {2 * window} days")


def _cut(jump: pd.Series, share: float) -> pd.Timestamp:
    """Last jump date of the oldest ``share`` (0 < share <= 1) of rows (whole dates)."""
    dates = np.sort(jump.unique())
    cumulative = np.cumsum(jump.value_counts().reindex(dates).to_numpy()) / len(jump)
    return dates[np.searchsorted(cumulative, share - 1e-12)]


def summary(frame: pd.DataFrame, matures: pd.Series) -> dict[str, dict]:
    """Rows, misses, miss rate, and the ranges of jump, scoring and label-maturity dates per
    split (the embargoed rows included, as "embargo")."""
    out = {}
    for name in (*SPLITS, EMBARGOED):
        rows = frame["split"] == name
        part = frame[rows]
        out[name] = {
            "rows": int(len(part)),
            "misses": int(part["label"].sum()),
            "miss_rate": float(part["label"].mean()) if len(part) else float("nan"),
            **{f"{edge}_{column}": _day(fn(values)) if len(part) else None
               for column, values in (("jump_date", part["jump_date"]),
                                      ("scoring_date", part["scoring_date"]),
                                      ("label_matures", matures[rows]))
               for edge, fn in (("first", pd.Series.min), ("last", pd.Series.max))},
        }
    return out


def _day(value: pd.Timestamp) -> str:
    return str(pd.Timestamp(value).date())


def timeline_figure(report: dict[str, dict]) -> Figure:
    """Per split, the span of scoring dates (solid) and of label maturity (hatched): the
    embargo shows as no hatched bar of one split reaching past the start of the next one."""
    # matplotlib takes about a second to import: the stages and workers that only use
    # label_matures (stream, monitor) do not pay for it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter, MonthLocator
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 2.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = {"train": "#1f77b4", "valid": "#ff7f0e", "test": "#2ca02c"}
    for row, name in enumerate(reversed(SPLITS)):
        part = report[name]
        if not part["rows"]:
            continue
        scored = [pd.Timestamp(part[f"{e}_scoring_date"]) for e in ("first", "last")]
        known = [scored[0], pd.Timestamp(part["last_label_matures"])]
        ax.barh(row, known[1] - known[0], left=known[0], height=0.6, color="none",
                edgecolor=colours[name], hatch="///", label=f"{name}: labels maturing")
        ax.barh(row, scored[1] - scored[0], left=scored[0], height=0.35, color=colours[name],
                label=f"{name}: scoring dates")
    ax.axvline(pd.Timestamp(report["test"]["first_scoring_date"]), color="black", linestyle="--",
               linewidth=1, label="first test scoring date")
    ax.set_yticks(range(len(SPLITS)), list(reversed(SPLITS)))
    ax.xaxis.set_major_locator(MonthLocator(bymonth=(1, 7)))
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m"))
    ax.set_title(f"Out-of-time split with embargo ({report[EMBARGOED]['rows']:,} rows in the gaps)")
    fig.legend(loc="outside right upper", fontsize=7)
    return fig


def fitted_until(split_report: Path) -> pd.Timestamp:
    """The last scoring date of the months the model was fitted on, from the split stage's report:
    validation follows training in time."""
    return pd.Timestamp(json.loads(Path(split_report).read_text())["valid"]["last_scoring_date"])


def stream_start(settings: MonitorSettings, last_fitted: pd.Timestamp) -> MonitorSettings:
    """``settings`` with a ``first_month`` of 'auto' made the month after ``last_fitted`` (the last
    scoring date of the model's training and validation rows): a shorter label or a smaller test
    share moves the validation period later, and a fixed month had failed the run at the monitor,
    after the model was trained and registered. A fixed month within the fitted months stops here
    (``training_overlap``): the stream's command and the monitor's both ask, so a bad month stops
    before a stream is simulated and before the monitor's outputs are removed."""
    if settings.first_month == "auto":
        first = pd.Timestamp(last_fitted).normalize() + pd.offsets.MonthBegin(1)
        return settings.model_copy(update={"first_month": first.date()})
    overlap = training_overlap(settings, last_fitted)
    if overlap:
        raise UsageError(overlap)
    return settings


STREAM_RECORD = "simulated_with.json"  # beside the stream's folders: ``stream_record``
# the monitor's settings that shape the stream it simulates (the rest only read it)
STREAM_SHAPING = ("seed", "first_month", "months", "borrowers_per_month", "truth_replicates")


def stream_record(settings: MonitorSettings) -> dict:
    """The monitor settings a stream was simulated with (``stream_start``'s, a first month of
    'auto' resolved), kept beside it: a monitor run with another seed or other replicates had
    reported on a stream simulated otherwise, as if it were its own (an outside check)."""
    return {key: value for key, value in settings.model_dump(mode="json").items() if key in STREAM_SHAPING}


def training_overlap(settings: MonitorSettings, last_fitted: pd.Timestamp) -> str | None:
    """Why a stream starting at ``first_month`` would overlap the months the model was fitted on
    (``last_fitted``: the last scoring date of its training and validation rows), or None: those
    months are in-sample, so their AUC and calibration would flatter the model and their drift
    would be measured against themselves."""
    first = pd.Timestamp(settings.first_month)
    if first > last_fitted:
        return None
    after = pd.Timestamp(last_fitted) + pd.offsets.MonthBegin(1)
    return (f"monitor.first_month {first.date()} is not after the model's training and validation "
            f"period, whose last scoring date is {pd.Timestamp(last_fitted).date()}: start the stream "
            f"in {after.strftime('%Y-%m')} or later")
