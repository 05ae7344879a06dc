"""The scoring model: a LightGBM text model plus a JSON calibration, with no pickles anywhere.

The logged MLflow model is data only (these files); its ``loader_module`` is this installed
module, so loading ``models:/limitjump@champion`` reads a LightGBM text file and JSON, runs no
code from the artifact store and unpickles nothing. The class is plain and importable, so a
loaded model can be sent to worker processes and Dask workers. Importing this module does not
import MLflow: scoring with a local model folder does not pay for it.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import causes, io
from pipeline.cells import blank_cells, code_keys, codes_as_text, quoted, written_numbers
from pipeline.config import CAUSES, FeatureSettings, LabelSettings
from pipeline.errors import UsageError
from pipeline.lgbm import lgb

BOOSTER_FILE = "model.txt"
CALIBRATION_FILE = "calibration.json"
CATEGORIES_FILE = "categories.json"  # codes of non-numeric columns, learned on train
REFERENCE_FILE = "reference.json"  # training distributions (for drift) and feature importance
DIRECTIONS_FILE = "directions.json"  # each constrained feature's trend in the training data
CAUSES_FILE = "causes.txt"  # the cause model (three classes), when trained with cause labels
CAUSE_CALIBRATION_FILE = "causes.json"
# the label the model predicts: a scorer takes features its observation window after the jump,
# whatever params.yaml says when it scores
LABEL_FILE = "label.json"
FEATURE_SETTINGS_FILE = "feature_settings.json"  # params.yaml: features, as the model was trained
MODEL_FILES = (BOOSTER_FILE, CALIBRATION_FILE, CATEGORIES_FILE, REFERENCE_FILE, CAUSES_FILE, LABEL_FILE,
               CAUSE_CALIBRATION_FILE, FEATURE_SETTINGS_FILE)


def read_booster(path: Path) -> lgb.Booster:
    """A LightGBM model file, or a usage error naming it: a model folder given to a command may be
    anything, and LightGBM's own error names neither the folder nor what it expected."""
    try:
        return lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as err:
        raise UsageError(f"{path}: not a LightGBM model file ({err})") from err


def read_json(path: Path) -> dict:
    """A model's JSON file, or a usage error naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: a model file that cannot be read ({err})") from err


def read_label(path: Path) -> LabelSettings | None:
    """The label a model folder records, None for a model from before it did; a usage error
    naming the file when it holds no label."""
    return _read_settings(path, LabelSettings, "a label (label.observation_days, performance_cycles, "
                                               "dpd_threshold)")


def read_feature_settings(path: Path) -> FeatureSettings | None:
    """How a model's features were computed (params.yaml: features), None for a model from
    before it recorded them; a usage error naming the file when it holds no such settings."""
    return _read_settings(path, FeatureSettings, "the features' settings (params.yaml: features)")


def _read_settings(path: Path, kind: type, what: str):
    if not path.exists():
        return None
    try:
        return kind(**read_json(path))
    except (TypeError, ValueError) as err:
        raise UsageError(f"{path}: not {what}: {err}") from err


def encode(frame: pd.DataFrame, columns: list[str], categories: dict[str, list]) -> np.ndarray:
    """float64 matrix of ``columns``; a column of ``categories`` becomes the position of its value
    (as text) among them (NaN if unknown)."""
    out = np.empty((len(frame), len(columns)))
    for j, c in enumerate(columns):
        if c in categories:
            codes = category_codes(frame[c], categories[c], c)
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = numbers(frame[c], c)
    return out


def category_codes(values: pd.Series, learned: list, column: str) -> np.ndarray:
    """The position of each value among the ``learned`` categories of ``column``, -1 where unseen
    or missing. Text in other capitals or spacing ('UNIVERSITY', ' high-school') is the category
    it writes when exactly one learned category reads so, as raw tables read their codes."""
    text = _as_text(values, column)
    # an index lookup, not pd.Categorical: building one from unseen values is deprecated
    codes = pd.Index(learned, dtype=object).get_indexer(text)
    other = (codes < 0) & text.notna().to_numpy()
    if other.any():
        keys = code_keys(pd.Series(learned, dtype="str"))
        twice = keys.duplicated(keep=False).to_numpy()
        alike = {key: j for j, key in enumerate(keys) if not twice[j]}
        codes[other] = code_keys(text[other]).map(alike).fillna(-1).to_numpy(dtype="int64")
    return codes


def _as_text(values: pd.Series, column: str) -> pd.Series:
    """A column learned as text categories, as text: codes written as numbers (MLflow reads a CSV's
    1, 2, 3 as integers) are the codes '1', '2', '3', as ``limitjump score`` reads them, not the
    positions of the learned categories."""
    if pd.api.types.is_bool_dtype(values):
        raise ValueError(f"column '{column}' holds true/false, but the model learned it as text categories")
    if not pd.api.types.is_numeric_dtype(values):
        return values.astype(str)
    return codes_as_text(values)


def numbers(values: pd.Series, column: str, shown: int = 3) -> np.ndarray:
    """float64 of a column that must hold numbers: nullable integers (pd.NA), and object or text
    columns (None, blanks and numbers written as text), as MLflow hands a CSV or JSON over. Text
    that is not a number is an error naming the column, how many rows and the first few, by
    position (0-based) and value; a column of the catalogue's codes says what its codes mean."""
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    parsed = written_numbers(values)  # as a file's cells are read: '33,000.00', '¥12,500'

    bad = np.flatnonzero(parsed.isna().to_numpy() & ~blank_cells(values))
    if bad.size:
        examples = ", ".join(f"row {i} {quoted(values.iloc[i])}" for i in bad[:shown])
        raise ValueError(f"column '{column}' must hold numbers: {bad.size} of {len(values)} rows hold "
                         f"text that is not one ({examples}; rows counted from 0){_codes_hint(column)}")
    return parsed.to_numpy(dtype="float64", na_value=np.nan)


def never_missing(frame: pd.DataFrame, columns: list[str], boosters: list[lgb.Booster]) -> list[str]:
    """The ``columns`` (the boosters' own, in their order) that no row of ``frame`` lacks and a
    tree of ``boosters`` splits on. LightGBM reads a missing number it never saw in training as 0,
    so a scorer may not be given such a number blank; a blank text category it sends where it
    sends a category it never saw, which a scorer counts (``score.unseen_categories``). One no
    tree reads cannot be misread."""
    read = np.zeros(len(columns), dtype=bool)
    for booster in boosters:
        read |= booster.feature_importance("split") > 0
    return [c for c, used in zip(columns, read, strict=True) if used and not frame[c].isna().any()]


def refuse_outside_contract(frame: pd.DataFrame, columns: list[str], categories: dict,
                            never_missing: tuple[str, ...] = (), shown: int = 3) -> None:
    """Raise ValueError naming the values of the model's ``columns`` in ``frame`` that the features
    contract refuses (a negative amount, an unknown code, a blank where a value is always known),
    which ``limitjump score`` rejects: per column its rule, how many rows and the first few, by
    position (0-based) and value. A pyfunc answers for every row or for none, so a bad row refuses
    the request rather than get a probability no scorer would give it. Text categories (any text
    is allowed) and columns the frame lacks (the model's own message names them) are not read;
    ``never_missing`` names the features no training row lacked: its numbers may not be given blank."""
    # imported here: the catalogue and contract are needed only where MLflow is the caller
    from dataclasses import replace

    from pipeline.contract import features_table, row_violations

    numeric = [c for c in columns if c in frame.columns and c not in categories]
    table = features_table(numeric, never_missing=never_missing)
    found = row_violations(pd.DataFrame(encode(frame, numeric, {}), columns=numeric),
                           replace(table, columns=tuple(map(table.column, numeric)), key=()))
    if found.empty:
        return
    said = []
    for (column, check), rows in found.groupby(["column", "check"], sort=False):
        examples = ", ".join(f"row {r} {'missing' if v == 'nan' else v}"
                             for r, v in zip(rows["row"][:shown], rows["value"][:shown], strict=True))
        said.append(f"'{column}' fails {check} in {len(rows)} row{'s' * (len(rows) > 1)} ({examples})")
    raise ValueError(f"{found['row'].nunique()} of {len(frame)} rows hold values the features contract "
                     f"refuses: {'; '.join(said)} (rows counted from 0; `limitjump score` rejects such "
                     "rows and scores the others)")


def refuse_dates(frame: pd.DataFrame, observation_days: int | None, today: pd.Timestamp,
                 shown: int = 3) -> None:
    """Raise ValueError naming the rows of ``frame`` whose ``jump_date`` or ``scoring_date``
    ``limitjump score`` would reject: not a date, outside the contract's years, a scoring date
    after ``today`` (its window not over), or, for a model with a window (``observation_days``)
    and both dates given, no scoring date or another number of days after the jump. A blank, as
    'NULL' or '', is no date, as a null is. A frame without a date column is taken at its word."""
    from pipeline.contract import FIRST_DATE, LAST_DATE  # imported here, as MLflow is the only caller
    from pipeline.readers import as_dates, days_after_jump

    given = [c for c in ("jump_date", "scoring_date") if c in frame.columns]
    dates = pd.DataFrame({c: as_dates(frame[c]) for c in given})  # read once

    def refuse(rows: np.ndarray, what: str, example=lambda i: "") -> None:
        if rows.size:
            examples = ", ".join(f"row {i} {example(i)}".strip() for i in rows[:shown])
            raise ValueError(f"{rows.size} of {len(frame)} rows {what} ({examples}; rows counted from 0; "
                             "`limitjump score` rejects such rows and scores the others)")

    for column in given:
        written, read = frame[column], dates[column]
        day = read.dt.strftime("%Y-%m-%d")
        refuse(np.flatnonzero(~blank_cells(written) & read.isna().to_numpy()),
               f"have a {column} that is not a date (dates are written as 2025-11-18)",
               lambda i: quoted(written.iloc[i]))  # noqa: B023 (called at once, in this loop)
        refuse(np.flatnonzero(((read < FIRST_DATE) | (read > LAST_DATE)).to_numpy()),
               f"have a {column} outside {FIRST_DATE:%Y} to {LAST_DATE:%Y}", lambda i: day.iloc[i])  # noqa: B023
        if column == "scoring_date":
            refuse(np.flatnonzero((read.dt.floor("D") > today.normalize()).to_numpy()),
                   f"have a scoring_date after today, {today:%Y-%m-%d}: their observation window is not over",
                   lambda i: day.iloc[i])  # noqa: B023
    if observation_days is None or len(given) < 2:
        return
    # the jump date may be unknown, the day the features were taken may not
    refuse(np.flatnonzero(dates["scoring_date"].isna().to_numpy()), "have no scoring_date")
    days = days_after_jump(dates)
    refuse(np.flatnonzero((days.notna() & (days != observation_days)).to_numpy()),
           f"were taken on another day than the model reads: scoring_date not {observation_days} days "
           "after jump_date, the model's window", lambda i: f"{int(days.iloc[i])} days")


def require_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    """Raise ValueError naming the ``columns`` ``frame`` lacks, and why where it can tell: names
    in other capitals or with spaces around, or a request read as one column whose name holds
    separators (a ';' CSV: MLflow's server and `mlflow models predict` split on commas only)."""
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return
    from pipeline.readers import missing_columns  # imported here: only this message needs it

    names = [str(n) for n in frame.columns]
    one = names[0] if len(names) == 1 else ""
    note = (f" (the input is read as one column, {quoted(one[:40] + '...' * (len(one) > 40))}: a CSV "
            "separated otherwise than by commas? MLflow reads commas only; `limitjump score` reads "
            "';', tabs and '|' too)" if any(mark in one for mark in ";\t|") else "")
    raise ValueError(missing_columns(names, missing, f"the input lacks {len(missing)} of the model's "
                                     "columns:", note, columns))


def refuse_copies(frame: pd.DataFrame, columns: list[str]) -> None:
    """Raise ValueError on a column of ``columns`` that comes twice in a CSV request: MLflow's
    server reads it with pandas, which names the second copy 'name.1', and the first copy had
    been scored, HTTP 200 (JSON's copies are refused by ``as_frame``)."""
    names = set(map(str, frame.columns))
    copies = {c: n for n in names for c in columns
              if n.startswith(c + ".") and n[len(c) + 1:].isdigit() and c in names}
    if copies:
        said = ", ".join(f"'{c}' (its copy read as '{n}')" for c, n in sorted(copies.items()))
        raise ValueError(f"the input holds a column more than once: {said}; keep one of each")


def _codes_hint(column: str) -> str:
    # imported here: only this message needs the catalogue (and, through it, the settings)
    from pipeline.catalog import codes_hint

    return codes_hint(column)


def calibrate(raw: np.ndarray, calibration: dict) -> np.ndarray:
    """Raw LightGBM probabilities to calibrated ones: isotonic (a piecewise-linear map through
    the fitted points) or Platt (a logistic line on the log-odds)."""
    raw = np.asarray(raw, dtype=float)
    if calibration["method"] == "isotonic":
        return np.interp(raw, calibration["x"], calibration["y"])
    logit = np.log(np.clip(raw, 1e-15, 1 - 1e-15) / np.clip(1 - raw, 1e-15, 1))
    return 1.0 / (1.0 + np.exp(-(calibration["intercept"] + calibration["slope"] * logit)))


# the features the floors read (pipeline.catalog); a model without them has no such floor
BLOCKED_DUE_DATES, AUTODEBIT_ACTIVE = "due_dates_in_announced_outage", "autodebit_active"
FORGOTTEN_DUE_DATES, MANUAL_DUE_DATES = "forgotten_due_dates", "manual_due_dates"
AUTODEBIT_LAPSED, REAUTH_PENDING = "autodebit_lapsed", "reauth_pending"


def maintenance_floor(matrix: np.ndarray, features: list[str], calibration: dict) -> np.ndarray:
    """The least probability of a miss per row: for a borrower whose agreement is in force and
    whose k next due dates fall in announced maintenance that stops the debit batch,
    1 - (1 - rate)^k, the rate at which such a stopped debit became a miss in the platform's
    history (``split.maintenance_miss_rate``, kept in the calibration as "maintenance"); 0
    elsewhere, and everywhere for a model without that history or without the two features. A
    booster learns the effect only if its training rows happened to meet it; the floor holds
    whether or not they did, and changes nothing where the booster already ranks them higher."""
    known = calibration.get("maintenance")
    if not known or BLOCKED_DUE_DATES not in features or AUTODEBIT_ACTIVE not in features:
        return np.zeros(len(matrix))
    blocked = np.nan_to_num(matrix[:, features.index(BLOCKED_DUE_DATES)])
    active = matrix[:, features.index(AUTODEBIT_ACTIVE)] == 1.0
    return np.where(active, 1.0 - (1.0 - known["rate"]) ** blocked, 0.0)


def forgetting_floor(matrix: np.ndarray, features: list[str], calibration: dict) -> np.ndarray:
    """The least probability of a miss per row for a borrower with no agreement in force, who
    must pay by hand whatever became of an agreement (one lapsed or awaiting re-authorisation
    leaves the borrower no better off: a floor that let such a flag lower the probability would
    contradict its + direction; an unknown state is not by hand): the
    chance to forget at least one of the label's m due dates,
    1 - E[(1 - q)^m] = 1 - prod_{i<m} (b' + i) / (a' + b' + i),
    where q ~ Beta(a', b') is the borrower's own chance to forget a due date given the history:
    a' = a + k and b' = b + n - k, k forgotten of n due dates paid by hand, under the prior
    Beta(a, b) fitted on the training rows (``train.forgetting_prior``, kept in the calibration as
    "forgetting"). 0 elsewhere, and everywhere for a model without the prior or the features.
    Forgetting is rare and varies widely between borrowers (the prior's mean is a few per cent,
    its mass near 0): a booster splits on a count of forgotten due dates only where enough rows
    share it, while the posterior reads each borrower's own record, however short."""
    known = calibration.get("forgetting")
    needed = (FORGOTTEN_DUE_DATES, MANUAL_DUE_DATES, AUTODEBIT_ACTIVE)
    if not known or not set(needed) <= set(features):
        return np.zeros(len(matrix))
    forgotten, chances, active = (matrix[:, features.index(f)] for f in needed)
    forgotten = np.nan_to_num(forgotten)
    a, b = known["a"] + forgotten, known["b"] + np.maximum(np.nan_to_num(chances) - forgotten, 0.0)
    remembers = np.ones(len(matrix))
    for i in range(known["due_dates"]):
        remembers *= (b + i) / (a + b + i)
    return np.where(active == 0.0, 1.0 - remembers, 0.0)  # a missing state is not 0


def lapse_floor(matrix: np.ndarray, features: list[str], calibration: dict) -> np.ndarray:
    """The least probability of a miss per row for a borrower whose auto-debit agreement has
    lapsed (revoked or expired, not renewed): the rate at which such borrowers missed among the
    training rows (``train.lapse_history``, kept in the calibration as "lapse"); 0 elsewhere, and
    everywhere for a model without that history or the feature. A lapse the platform has seen
    leaves the next debit to fail, so nearly all such borrowers miss (39 of 40 training rows on
    the defaults), but they are too few to fill a leaf: out of time the booster alone gave the 88
    the floor lifts a mean 0.30, and 87 of them missed."""
    known = calibration.get("lapse")
    if not known or AUTODEBIT_LAPSED not in features:
        return np.zeros(len(matrix))
    return np.where(matrix[:, features.index(AUTODEBIT_LAPSED)] == 1.0, known["rate"], 0.0)


# each floor by the calibration's entry it reads
FLOORS = {"maintenance": maintenance_floor, "forgetting": forgetting_floor, "lapse": lapse_floor}


def floor(matrix: np.ndarray, features: list[str], calibration: dict) -> np.ndarray:
    """The least probability of a miss per row: the largest of the floors (the maintenance floor
    needs an agreement in force, the forgetting floor none; a lapsed agreement has both the
    forgetting and the lapse floor)."""
    return np.max([least(matrix, features, calibration) for least in FLOORS.values()], axis=0)


def with_floor(share: np.ndarray, p: np.ndarray, lift: np.ndarray) -> np.ndarray:
    """Cause shares (n, 3) of probabilities ``p`` of which a floor added ``lift``: the
    booster's part (p - lift) split by ``share``, the lift all technical."""
    technical = np.arange(len(CAUSES)) == CAUSES.index("technical")
    by_cause = share * (p - lift)[:, None] + lift[:, None] * technical
    return np.where((lift > 0)[:, None], by_cause / np.maximum(p, 1e-12)[:, None], share)


class CalibratedLightGBM:
    """A features frame in, the calibrated probability of a missed repayment out (also MLflow's
    pyfunc implementation, through ``_load_pyfunc``)."""

    def __init__(self, booster: lgb.Booster | None = None, calibration: dict | None = None,
                 categories: dict[str, list] | None = None, reference: dict | None = None,
                 causes: tuple[lgb.Booster, dict] | None = None, label: LabelSettings | None = None,
                 feature_settings: FeatureSettings | None = None):
        self.booster, self.calibration = booster, calibration
        self.label = label  # None for a model that did not record it
        # how its features are computed from raw tables (None likewise): a scorer computes them
        # so, whatever params.yaml states when it scores
        self.feature_settings = feature_settings
        self.categories, self.reference = categories or {}, reference or {}
        self.causes = causes  # (booster, calibration) of P(cause | miss), if trained
        # threads of each LightGBM call; 0 is LightGBM's default, every core. A scorer running
        # one call per core sets 1: more threads than cores make OpenMP wait on itself
        self.threads = 0

    @classmethod
    def from_dir(cls, directory: str | Path) -> CalibratedLightGBM:
        directory = Path(directory)
        missing = [name for name in (BOOSTER_FILE, CALIBRATION_FILE, CATEGORIES_FILE)
                   if not (directory / name).is_file()]
        if missing:
            raise UsageError(f"{directory}: not a scoring model (no {', '.join(missing)}; "
                             "`limitjump train lightgbm` writes one to models/lightgbm)")
        reference = directory / REFERENCE_FILE
        causes = None
        if (directory / CAUSES_FILE).exists():
            causes = (read_booster(directory / CAUSES_FILE), read_json(directory / CAUSE_CALIBRATION_FILE))
        return cls(read_booster(directory / BOOSTER_FILE), read_json(directory / CALIBRATION_FILE),
                   read_json(directory / CATEGORIES_FILE),
                   read_json(reference) if reference.exists() else None, causes,
                   read_label(directory / LABEL_FILE),
                   read_feature_settings(directory / FEATURE_SETTINGS_FILE))

    def save(self, directory: Path) -> None:
        """Write the model's files into ``directory`` (``from_dir`` reads them back)."""
        self.booster.save_model(str(directory / BOOSTER_FILE))
        io.write_json(self.calibration, directory / CALIBRATION_FILE)
        io.write_json(self.categories, directory / CATEGORIES_FILE)
        if self.reference:
            io.write_json(self.reference, directory / REFERENCE_FILE)
        if self.label:
            io.write_json(self.label.model_dump(), directory / LABEL_FILE)
        if self.feature_settings:
            io.write_json(self.feature_settings.model_dump(mode="json"), directory / FEATURE_SETTINGS_FILE)
        if self.causes:
            self.causes[0].save_model(str(directory / CAUSES_FILE))
            io.write_json(self.causes[1], directory / CAUSE_CALIBRATION_FILE)

    @property
    def features(self) -> list[str]:
        return self.booster.feature_name()

    @property
    def never_missing(self) -> tuple[str, ...]:
        """The features no training row lacked that a tree splits on (``train.drift_reference``):
        a number it may not be given blank, a text category's blank is counted as unseen (none
        recorded by a model from before it recorded them)."""
        return tuple((self.reference or {}).get("never_missing", ()))

    @property
    def fitted_until(self) -> pd.Timestamp | None:
        """The last scoring date of the rows it was trained and validated on (None: a model from
        before it recorded it): rows scored by then are not out of time for it (``registry.unseen_rows``)."""
        until = (self.reference or {}).get("fitted_until")
        return pd.Timestamp(until) if until else None

    @property
    def observation_days(self) -> int | None:
        """Days after the jump its features are taken (None: a model that did not record it, or
        one trained on a team's own features, taken when the team takes them)."""
        return self.label.observation_days if self.label and not self.reference.get("own_data") else None

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's columns, in its order, as float64 (extra columns are ignored)."""
        require_columns(frame, self.features)
        return encode(frame, self.features, self.categories)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(self.matrix(frame), num_threads=self.threads)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the raw log-odds (TreeSHAP) for rows of an encoded matrix,
        shape (n, features + 1); the last column is the expected value."""
        return self.booster.predict(matrix, pred_contrib=True, num_threads=self.threads)

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for rows of an encoded matrix (``matrix(frame)``)."""
        p = calibrate(self.booster.predict(matrix, num_threads=self.threads), self.calibration)
        return np.maximum(p, floor(matrix, self.features, self.calibration))

    def floor_lift(self, matrix: np.ndarray, p: np.ndarray) -> np.ndarray:
        """What the floors added to each probability ``p`` (``probability(matrix)``) above the
        booster's own: 0 where the booster's stands."""
        least = floor(matrix, self.features, self.calibration)
        lift = np.zeros(len(matrix))
        floored = (least > 0) & (p <= least)
        if floored.any():  # the booster again, for these few rows only
            own = calibrate(self.booster.predict(matrix[floored], num_threads=self.threads), self.calibration)
            lift[floored] = p[floored] - own
        return lift

    def cause_shares(self, matrix: np.ndarray, p: np.ndarray | None = None) -> np.ndarray | None:
        """P(cause | miss) per row of an encoded matrix, shape (n, 3), or None without a cause model.
        Given ``p`` (``probability(matrix)``), what a floor added is technical risk:
        P(miss by c) = booster's P(miss) x share_c, plus the floor's lift for the technical cause."""
        if self.causes is None:
            return None
        share = causes.shares(*self.causes, matrix, self.threads)
        return share if p is None else with_floor(share, p, self.floor_lift(matrix, p))

    def predict(self, frame: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """Calibrated probabilities, shape (n,). ``params`` is MLflow's pyfunc argument; unused."""
        return self.probability(self.matrix(frame))

    def __getstate__(self) -> dict:
        """Sent to a worker process with every batch: the boosters travel as their pickled state
        (model text) made once per booster, not once per batch (``_shipped``), and are read once
        per receiving process (``_received``)."""
        causes = self.causes and (_shipped(self.causes[0]), self.causes[1])
        return {**self.__dict__, "booster": _shipped(self.booster), "causes": causes}

    def __setstate__(self, state: dict) -> None:
        causes = state["causes"] and (_received(state["causes"][0]), state["causes"][1])
        self.__dict__.update(state, booster=_received(state["booster"]), causes=causes)


# LightGBM pickles a booster by writing its model text anew each time: for a model sent with each
# batch of a raw-tables scoring run, the parent spent 0.26 s a batch writing the two boosters,
# on a core its workers wanted, and each worker as long reading them back (2026-12-04, 1M).
_SHIPPED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RECEIVED: dict[str, lgb.Booster] = {}
RECEIVED_MODELS = 4  # boosters kept per process (a model has one or two)


def _shipped(booster: lgb.Booster) -> dict:
    """The booster's pickled state, made once per booster object (boosters are not changed
    after training)."""
    if booster not in _SHIPPED:
        _SHIPPED[booster] = booster.__getstate__()
    return _SHIPPED[booster]


def _received(state: dict) -> lgb.Booster:
    """The booster of a pickled state, read once per process for each model text."""
    text = state["_handle"]
    if text not in _RECEIVED:
        if len(_RECEIVED) >= RECEIVED_MODELS:
            _RECEIVED.pop(next(iter(_RECEIVED)))
        booster = lgb.Booster.__new__(lgb.Booster)
        booster.__setstate__(dict(state))  # it replaces the text by the handle in what it is given
        _RECEIVED[text] = booster
    return _RECEIVED[text]


def as_frame(model_input) -> pd.DataFrame:
    """The rows MLflow hands over as a frame: a DataFrame as it is; MLflow's ``inputs`` JSON, which
    it passes on as records (a list of objects) or columns (an object of lists or of objects by
    row), as the frame they describe. A repeated column is an error naming it: which copy the
    model should read is not for it to guess."""
    if isinstance(model_input, list) and all(isinstance(row, dict) for row in model_input):
        model_input = pd.DataFrame.from_records([{k: _unwrapped(v) for k, v in row.items()}
                                                 for row in model_input])
    elif isinstance(model_input, dict):
        model_input = {k: _unwrapped(v) for k, v in model_input.items()}
        many = {isinstance(v, (list, dict, tuple, np.ndarray, pd.Series)) for v in model_input.values()}
        if len(many) > 1:
            raise ValueError("JSON columns must each hold a list of values (or each one value, for one row)")
        model_input = pd.DataFrame(model_input) if many == {True} else pd.DataFrame([model_input])
    if not isinstance(model_input, pd.DataFrame):
        raise ValueError(f"the model takes a table of named columns (a DataFrame, or JSON records or "
                         f"columns), not {type(model_input).__name__}")
    repeated = model_input.columns[model_input.columns.duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"the input holds {len(repeated)} column name{'s' * (len(repeated) > 1)} more "
                         f"than once: {repeated[:10]}; keep one of each")
    return model_input


def _unwrapped(value):
    """A JSON value as written: MLflow hands each one over as a 0-dimensional array."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


class Served:
    """What MLflow's pyfunc calls: ``model.predict``, a bad input's ValueError raised as MLflow's
    INVALID_PARAMETER_VALUE. `mlflow models serve` then answers with our message (the column,
    the rows) rather than "an unexpected error while evaluating the model", our message buried at
    the end of a stack trace. MLflow is imported only here, where MLflow is the caller."""

    def __init__(self, model):
        self.model = model

    def predict(self, model_input: pd.DataFrame, params: dict | None = None):
        try:
            model_input = as_frame(model_input)
            if model_input.shape == (0, 0):  # JSON's empty records: no rows, so no columns either
                return np.empty(0)
            refuse_copies(model_input, list(self.model.features))
            refuse_outside_contract(model_input, list(self.model.features),
                                    getattr(self.model, "categories", {}),
                                    getattr(self.model, "never_missing", ()))
            refuse_dates(model_input, self.model.observation_days, pd.Timestamp.now())
            return self.model.predict(model_input, params)
        except ValueError as err:
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(str(err)) from err


def _load_pyfunc(data_path: str) -> Served:
    """MLflow's entry point for the logged model (``loader_module``): the model files' folder."""
    return Served(CalibratedLightGBM.from_dir(data_path))
