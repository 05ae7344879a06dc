"""Scoring a batch of borrowers: probability, risk band, reasons in the article's terms and the
action a lender should take. Pure functions over one batch; the CLI streams batches through them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.catalog import (
    BY_NAME,
    CAUSE_CATEGORIES,
    DUE_DATES,
    FORGOTTEN_MAX_DAYS_LATE,
    LATENESS_COUNTS,
    MAINTENANCE_DUE,
    NEXT_DUE,
    REASON_GROUPS,
    TECHNICAL_LATENESS,
    reason_group,
)
from pipeline.cells import blank_cells, shortened
from pipeline.config import CAUSES, ScoreSettings
from pipeline.model import (
    AUTODEBIT_ACTIVE,
    AUTODEBIT_LAPSED,
    BLOCKED_DUE_DATES,
    FORGOTTEN_DUE_DATES,
    REAUTH_PENDING,
    CalibratedLightGBM,
    category_codes,
    with_floor,
)

ACTIONS = {  # the source article's responses, by leading cause
    "technical": "remind the borrower before the next due date to re-authorise or repair the auto-debit "
                 "agreement; do not lower the limit",
    "check": "remind the borrower before the next due date and confirm the auto-debit agreement will "
             "debit (no fault with it is on record); do not lower the limit",
    "manual": "remind the borrower a few days before the next due date and offer an auto-debit "
              "agreement; do not lower the limit",
    "maintenance": "remind the borrower to pay before the announced maintenance on the due date it "
                   "falls on (maintenance_due_date); do not lower the limit",
    "liquidity": "offer an installment or repayment plan and freeze further limit increases",
    "credit": "stop further limit increases, review the exposure and contact the borrower early",
    # no credit, liquidity or technical feature raised the risk (a team's own columns may have)
    "unclear": "review the file: no known cause (credit, liquidity, technical) raised the risk",
    "none": "none",
}
# the date each timed action is for, and where to take it when the output has none (no due date
# before scoring in the tables, or a features file without the column)
DATED = {"technical": NEXT_DUE, "check": NEXT_DUE, "manual": NEXT_DUE, "maintenance": MAINTENANCE_DUE}
UNDATED = {NEXT_DUE: f" (no {NEXT_DUE} here: take it from the account)",
           MAINTENANCE_DUE: f" (no {MAINTENANCE_DUE} here: take it from the announced maintenance calendar)"}
# an agreement in force none of whose faults (each a flag or a count above 0) is on record needs a
# check, not a repair
AGREEMENT_FAULTS = (AUTODEBIT_LAPSED, REAUTH_PENDING, "debit_failures_mandate_6m", "autodebit_changed_30d")
# the first reason of a borrower whose leading cause shows in none of the features that raised
# the risk (a silent card change, say): the cause itself, so reason and action never disagree
CAUSE_REASONS = {"technical": "a failed or forgotten payment is the likeliest cause of a miss",
                 "liquidity": "a cash shortfall is the likeliest cause of a miss",
                 "credit": "worsening credit is the likeliest cause of a miss"}
CAUSE_PROBABILITIES = [f"p_{c}" for c in CAUSES]
MAX_REASONS = 4  # the output's reason columns, reason_1 .. reason_4
REASON_COLUMNS = [f"reason_{i}" for i in range(1, MAX_REASONS + 1)]
# the output's columns and their types, which an output without a row has too
OUTPUT_DTYPES = {"borrower_id": "int64", "scoring_date": "datetime64[s]", "probability": "float64",
                 "risk_band": "str", "leading_cause": "str", **dict.fromkeys(CAUSE_PROBABILITIES, "float64"),
                 **dict.fromkeys(REASON_COLUMNS, "str"), "action": "str",
                 **dict.fromkeys(DUE_DATES, "datetime64[s]"), "model_version": "str"}
OUTPUT_COLUMNS = list(OUTPUT_DTYPES)
TOO_FEW_ROWS = "too few rows"  # a drift flag: not judged (``metrics.MIN_PSI_ROWS``)
UNSEEN = "unseen_categories"  # what scoring counts beside the scores: the categories the model never learned
BLANK = "(blank)"  # how UNSEEN counts a blank where no training row had one


def risk_band(p: np.ndarray, bands: dict[str, float]) -> np.ndarray:
    """The first band whose upper bound the probability does not exceed (bands in order)."""
    names, uppers = list(bands), np.array(list(bands.values()))
    return np.array(names, dtype=object)[np.minimum(np.searchsorted(uppers, p, side="left"), len(names) - 1)]


def _membership(features: list[str], key) -> tuple[list[str], np.ndarray]:
    """Groups of features by ``key`` (a function of the catalogue entry; None = no group) as a
    (features, groups) 0/1 matrix, so per-group sums are one matrix product."""
    keys = [key(BY_NAME[f]) if f in BY_NAME else None for f in features]
    groups = list(dict.fromkeys(k for k in keys if k))
    matrix = np.array([[k == g for g in groups] for k in keys], dtype=float).reshape(len(features), -1)
    return groups, matrix


def cause_contributions(contrib: np.ndarray, features: list[str]) -> pd.DataFrame:
    """Log-odds contributions summed by the catalogue's cause category (features the catalogue
    does not know belong to no category and are left out)."""
    names, matrix = _membership(features, lambda f: f.cause)
    sums = contrib[:, :-1] @ matrix
    # a cause none of the model's features belongs to (a model of a team's own columns) sums to 0
    return pd.DataFrame({c: sums[:, names.index(c)] if c in names else np.zeros(len(contrib))
                         for c in CAUSE_CATEGORIES})


def leading_cause_from_contributions(by_cause: pd.DataFrame) -> np.ndarray:
    """Without a cause model: the cause whose features raised the risk most, or "unclear" when
    none raised it (all three sums at or below zero)."""
    sums = by_cause[list(CAUSES)].to_numpy()
    leading = np.array(CAUSES, dtype=object)[np.argmax(sums, axis=1)]
    return np.where(sums.max(axis=1) > 0, leading, "unclear")


def reasons(contrib: np.ndarray, features: list[str], leading: np.ndarray, max_reasons: int,
            own_words: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """Up to ``max_reasons`` reasons per borrower, in the catalogue's words: the features that
    raised the risk (TreeSHAP of the risk model, whose monotone constraints keep a reason's
    direction, which a cause model's class contributions cannot promise; scoring passes them
    through ``worded_contributions``, so that each reason is also true of the borrower's value),
    summed per reason, one reason per reason group (the strongest), those of the leading cause first.
    A feature the catalogue does not know is a group of its own, of no cause, worded per row by
    ``own_words[feature]`` ("team_score is high")."""
    texts, by_text = _membership(features, lambda f: f.reason or None)
    raised = np.maximum(contrib[:, :-1] @ by_text, 0.0)  # (n, texts)
    entry = {BY_NAME[f].reason: BY_NAME[f] for f in features if f in BY_NAME and BY_NAME[f].reason}
    groups = list(dict.fromkeys(reason_group(entry[t]) for t in texts))
    own = [f for f in features if f in (own_words or {})]
    rows = np.arange(len(raised))
    value = np.zeros((len(raised), len(groups) + len(own)))
    wording = np.full(value.shape, None, dtype=object)
    group_cause = np.empty(value.shape[1], dtype=object)
    texts = np.array(texts, dtype=object)
    for g, group in enumerate(groups):  # a dozen groups, each a vectorised pass over borrowers
        members = np.flatnonzero([reason_group(entry[t]) == group for t in texts])
        best = members[raised[:, members].argmax(axis=1)]
        wording[:, g], value[:, g] = texts[best], raised[rows, best]
        group_cause[g] = entry[texts[members[0]]].cause  # a group's reasons share one cause
    for g, name in enumerate(own, start=len(groups)):
        worded = pd.notna(own_words[name])  # a value at the training median has no words
        value[:, g] = np.where(worded, np.maximum(contrib[:, features.index(name)], 0.0), 0.0)
        wording[:, g] = own_words[name]
    first = (group_cause[None, :] == np.asarray(leading, dtype=object)[:, None]) & (value > 0)
    order = np.argsort(np.where(first, -value - 1e12, -value), axis=1, kind="stable")
    out = []
    for rank in range(min(max_reasons, value.shape[1])):
        g = order[:, rank]
        out.append(np.where(value[rows, g] > 0, wording[rows, g], None))
    return out


AT_THE_BOUND = 1e-9  # relative: a value this close to a reason's bound is at it


def reason_edges(reference: dict) -> dict[str, tuple[float, float]]:
    """Per feature, the value below which words of a low value hold and above which words of a
    high one do: the edges of the training rows' lower and upper thirds (``train.drift_reference``).
    Not the median: a value a hair beyond it had been told "has little history with us" at 19.97
    months (the median 20.0) and "credit score is low" at 683 (691); held to the riskier third, the
    defaults' out-of-time borrowers kept 3.87 reasons on average (3.91), and none was left without
    one (2026-12-08). A model from before the thirds has its medians on both sides."""
    if "thirds" in reference:
        return {name: (low, high) for name, (low, high) in reference["thirds"].items()}
    return {name: (median, median) for name, median in reference.get("medians", {}).items()}


def worded_contributions(contrib: np.ndarray, matrix: np.ndarray, features: list[str],
                         edges: dict[str, tuple[float, float]]) -> np.ndarray:
    """The contributions (n, features + 1) that reasons are worded from. A catalogue feature's
    reason describes its value, but TreeSHAP credits a feature for lying on the riskier side of
    the average path, not of the words: a catalogue feature gives a reason only where its value
    is known and lies strictly on the reason's side of the bound its words name ("utilisation is
    climbing": above 0, "uses most of the credit line": above 0.5), else beyond the training
    rows' riskier third (``reason_edges``: "credit score is low" below the lower third's edge), or
    is one of its
    reason's codes ("asked for the increase": a user request). On the defaults' out-of-time rows,
    before this rule, 2,557 of the 2,748 borrowers told of a large drawdown had made none, all
    1,683 told they "paid less than was due" had paid it, and 375 of 407 told they "asked for the
    increase" had not (2026-12-05). A team's own column keeps its words (``own_words``). The
    arrears counts give no reason where the technical counts already name every late day
    (``_only_technical_lateness``)."""
    out = contrib.copy()
    for j, name in enumerate(features):
        entry = BY_NAME.get(name)
        if entry is None or not entry.reason:  # a team's own column, or no words to be true
            continue
        value = matrix[:, j]
        said = ~np.isnan(value)
        edge = entry.reason_beyond
        if edge is None and name in edges:
            edge = edges[name][entry.reason_side > 0]
        if entry.reason_codes is not None:
            said &= np.isin(value, entry.reason_codes)
        elif entry.reason_side and edge is not None:
            said &= beyond(value, edge, entry.reason_side)
        out[:, j] = np.where(said, contrib[:, j], 0.0)
    told = np.flatnonzero(np.isin(features, LATENESS_COUNTS))
    out[np.ix_(_only_technical_lateness(matrix, features), told)] = 0.0
    return out


def beyond(values: np.ndarray, edge: float, side: int) -> np.ndarray:
    """Whether each value lies strictly beyond ``edge``, above it (``side`` +1) or below (-1).
    At it within rounding (a spreadsheet keeps 15 digits) is on neither side: an .xlsx copy of a
    file had gained "little history with us" for a value at the edge."""
    return (values - edge) * side > AT_THE_BOUND * max(1.0, abs(edge))


def _only_technical_lateness(matrix: np.ndarray, features: list[str]) -> np.ndarray:
    """Whether each borrower's late due dates were all paid within days and are no more than
    either count of ``TECHNICAL_LATENESS`` holds: the arrears counts then hold the same days, and
    their reasons are not said. The larger count, not their sum: a forgotten due date paid within
    3 days is in both, and a sum had hidden a second late day that neither holds (a shortfall of
    6 days beside it)."""
    needed = ("max_days_late", "due_dates_over_0_days_late", *TECHNICAL_LATENESS)
    if not all(name in features for name in needed):
        return np.zeros(len(matrix), dtype=bool)
    value = {name: np.nan_to_num(matrix[:, features.index(name)]) for name in needed}
    technical = np.maximum.reduce([value[name] for name in TECHNICAL_LATENESS])
    return ((value["max_days_late"] <= FORGOTTEN_MAX_DAYS_LATE) & (technical > 0)
            & (value["due_dates_over_0_days_late"] <= technical))


def own_words(model: CalibratedLightGBM, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Reasons for the columns the catalogue does not know, named after the column: a text
    category by its value ("segment is retail"; one never learned, which is scored as missing,
    says so), a number as high or low beyond the training rows' upper or lower third
    (``reason_edges``; between them, or at an edge, no words, so no reason: 11 of 201 told
    "limit_bal is low" had held the median itself; without edges, "raised the risk"), and "is
    missing"."""
    out, reference = {}, model.reference or {}
    edges = reason_edges(reference)
    for name in model.features:
        if name in BY_NAME:
            continue
        if name in model.categories:
            # the category learned ('university'), however the file spells it ('UNIVERSITY ');
            # one never learned as written
            learned = np.asarray(model.categories[name], dtype=object).astype(str)
            codes = category_codes(frame[name], model.categories[name], name)
            written = shortened(frame[name].fillna("").astype(str).str.strip()).to_numpy(dtype=object)
            value = np.where(codes >= 0, learned[np.maximum(codes, 0)],
                             written + ", never seen in training (scored as missing)")
            out[name] = np.where(blank_cells(frame[name]), f"{name} is missing", name + " is " + value)
            continue
        values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
        if name not in edges and name in reference.get("bins", {}):  # a model from before the medians
            side = np.where(above_median(values, reference["bins"][name]), f"{name} is high",
                            f"{name} is low")
        elif name not in edges:
            side = np.full(len(frame), f"{name} raised the risk", dtype=object)
        else:
            low, high = edges[name]
            side = np.where(beyond(values, high, 1), f"{name} is high",
                            np.where(beyond(values, low, -1), f"{name} is low", None))
        out[name] = np.where(np.isnan(values), f"{name} is missing", side).astype(object)
    return out


def above_median(values: np.ndarray, reference: dict) -> np.ndarray:
    """Whether each value lies in the upper half of the reference's training rows (its decile
    bins): the share of them below its bin plus half of its bin's own, at least one half."""
    counts = np.asarray(reference["counts"][:-1], dtype=float)  # the last bin counts missing values
    below = (np.cumsum(counts) - counts / 2) / max(counts.sum(), 1.0)
    return below[np.searchsorted(reference["edges"], values, side="left")] >= 0.5


def name_the_cause(texts: list[np.ndarray], leading: np.ndarray) -> list[np.ndarray]:
    """Reasons with the cause's own statement first wherever none of them belongs to the leading
    cause (the last reason makes room)."""
    if not texts:
        return texts
    cause_of = {f.reason: f.cause for f in BY_NAME.values() if f.reason}
    own = np.zeros(len(leading), dtype=bool)
    for column in texts:
        own |= np.array([cause_of.get(t) for t in column], dtype=object) == leading
    missing = ~own & np.isin(leading, list(CAUSE_REASONS))
    return lead_with(texts, missing, np.array([CAUSE_REASONS.get(c) for c in leading], dtype=object))


def lead_with(texts: list[np.ndarray], rows: np.ndarray, statement) -> list[np.ndarray]:
    """Reasons with ``statement`` (one text, or one per row) first in ``rows``, and no other
    reason of its group beside it (the floor's "auto-debit agreement has lapsed" replaces "...
    changed recently"); the others keep their order, the last making room."""
    table = np.column_stack(texts).astype(object)
    said = np.broadcast_to(np.asarray(statement, dtype=object), (len(table),))
    cells = np.column_stack([said, table])
    groups = _groups(cells)
    cells[:, 1:][groups[:, 1:] == groups[:, :1]] = None
    packed = np.take_along_axis(cells, np.argsort(pd.isna(cells), axis=1, kind="stable"), axis=1)
    result = np.where(rows[:, None], packed[:, :table.shape[1]], table)
    return [result[:, i] for i in range(table.shape[1])]


def _groups(texts: np.ndarray) -> np.ndarray:
    """The reason group of each text (a text the catalogue does not group is a group of its own)."""
    flat = pd.Series(texts.ravel(), dtype=object)
    return flat.map(REASON_GROUPS).fillna(flat).to_numpy(dtype=object).reshape(texts.shape)


def pays_by_hand(frame: pd.DataFrame) -> np.ndarray:
    """True for a borrower who pays by hand with no agreement to mend: none in force, and none
    lapsed or awaiting re-authorisation on record (columns a team's features lack record none).
    Such a borrower's technical miss is a forgotten due date, which a reminder and the offer of an
    agreement answer; a broken agreement needs repair. False where the features do not say (no
    ``autodebit_active``, a missing value)."""
    no_agreement = _flag(frame, AUTODEBIT_ACTIVE, lambda v: v == 0)
    return no_agreement & _none_on_record(frame, (AUTODEBIT_LAPSED, REAUTH_PENDING))


def agreement_in_order(frame: pd.DataFrame) -> np.ndarray:
    """True for a borrower whose agreement is in force and whose record shows none of its faults
    (``AGREEMENT_FAULTS``; columns a team's features lack record none): nothing to repair, but a
    silent fault (a card changed at the bank) shows in no feature, so a technical risk asks for a
    check. False where the features do not say (no ``autodebit_active``, a missing value)."""
    return _flag(frame, AUTODEBIT_ACTIVE, lambda v: v == 1) & _none_on_record(frame, AGREEMENT_FAULTS)


def _none_on_record(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """True where every one of ``columns`` the frame has is 0 (an outside check: a team's file with
    only autodebit_active had every technical borrower told to repair an agreement, even one with
    none); a missing value is not 0."""
    return np.all([np.ones(len(frame), dtype=bool),
                   *(_numbers(frame, c) == 0 for c in columns if c in frame)], axis=0)


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def floor_reasons(frame: pd.DataFrame) -> np.ndarray:
    """The reason that says what a floor read, per row of ``frame``: for a lapsed agreement (the
    lapse floor's) that it has lapsed; for one awaiting re-authorisation and not in force (the
    forgetting floor's: the borrower must pay by hand meanwhile) that it needs it; for a borrower
    who pays by hand (the forgetting floor's) "has forgotten due dates before" if any were, else
    "pays by hand"; for the others (the maintenance floor's) the due date in announced maintenance."""
    forgot = _flag(frame, FORGOTTEN_DUE_DATES, lambda v: v > 0)
    by_hand = np.where(forgot, BY_NAME[FORGOTTEN_DUE_DATES].reason, BY_NAME[AUTODEBIT_ACTIVE].reason)
    not_in_force = _flag(frame, AUTODEBIT_ACTIVE, lambda v: v == 0)
    return np.select([_flag(frame, AUTODEBIT_LAPSED, lambda v: v == 1),
                      not_in_force & _flag(frame, REAUTH_PENDING, lambda v: v == 1), pays_by_hand(frame)],
                     [BY_NAME[AUTODEBIT_LAPSED].reason, BY_NAME[REAUTH_PENDING].reason, by_hand],
                     BY_NAME[BLOCKED_DUE_DATES].reason)


def _flag(frame: pd.DataFrame, column: str, test) -> np.ndarray:
    """``test`` of the column's numbers; False where the frame lacks the column."""
    return test(_numbers(frame, column)) if column in frame else np.zeros(len(frame), dtype=bool)


def in_announced_maintenance(frame: pd.DataFrame) -> np.ndarray:
    """True for a borrower one of whose next due dates falls in announced maintenance: the count
    of such due dates, or the date itself, where the frame gives either."""
    dated = frame[MAINTENANCE_DUE].notna().to_numpy() if MAINTENANCE_DUE in frame else False
    return _flag(frame, BLOCKED_DUE_DATES, lambda v: v > 0) | dated


def action_keys(cause: np.ndarray, reason_texts: list[np.ndarray], frame: pd.DataFrame) -> np.ndarray:
    """The key in ``ACTIONS`` for each leading cause, a row of ``frame`` each. A technical risk
    with a due date in announced maintenance gets "pay before the maintenance" where nothing is
    wrong with how the borrower pays (the window blocks the debit batch and the paying hours
    alike), or where the maintenance is a first or second reason; otherwise a borrower who pays by
    hand gets a reminder and the offer of an agreement, one whose agreement shows no fault a
    reminder and a check of it, and the others (a lapsed or failing agreement) its repair."""
    technical = cause == "technical"
    by_hand, in_order = pays_by_hand(frame), agreement_in_order(frame)
    leads = np.zeros(len(cause), dtype=bool)
    for column in reason_texts[:2]:
        leads |= (pd.Series(column, dtype=object).map(REASON_GROUPS) == "maintenance").to_numpy()
    maintenance = leads | ((by_hand | in_order) & in_announced_maintenance(frame))
    key = cause.astype(object)
    key[technical & in_order] = "check"
    key[technical & by_hand] = "manual"
    key[technical & maintenance] = "maintenance"
    return key


def actions(cause: np.ndarray, reason_texts: list[np.ndarray], frame: pd.DataFrame,
            dates: pd.DataFrame) -> np.ndarray:
    """The action for each leading cause, in words (``action_keys``). One timed by a date the
    output lacks (``dates``: the output's DUE_DATES columns) says where to take the date from:
    such a borrower had been told to be reminded before an empty next_due_date."""
    keys = action_keys(cause, reason_texts, frame)
    words = pd.Series(keys).map(ACTIONS).to_numpy(dtype=object)
    for key, column in DATED.items():
        undated = (keys == key) & dates[column].isna().to_numpy()
        words[undated] = words[undated] + UNDATED[column]
    return words


def action_key_of(words: pd.Series) -> pd.Series:
    """The ``ACTIONS`` key of each action in words, an undated one's too."""
    key_of = {text: key for key, text in ACTIONS.items()}
    for suffix in UNDATED.values():
        words = words.str.removesuffix(suffix)
    return words.map(key_of)


def score_batch(model: CalibratedLightGBM, frame: pd.DataFrame, bands: dict[str, float],
                quiet_bands: tuple[str, ...], version: str, explain_risky: bool = True,
                matrix: np.ndarray | None = None) -> pd.DataFrame:
    """One output row per borrower of ``frame`` (a features frame with borrower_id and
    scoring_date). The probability of a miss by each cause is given for every borrower (they add
    up to the probability; a prediction of the cause model, with or without ``explain_risky``),
    and the leading cause, reasons and the action are worked out only for borrowers outside the
    quiet bands (none of them without ``explain_risky``): TreeSHAP costs far
    more than the prediction, and a borrower in a quiet band has no cause and needs no action. With
    a cause model the leading cause is the most probable cause of a miss; without one, the cause
    whose features raised the risk most. ``matrix`` is ``model.matrix(frame)`` when the caller
    has encoded the frame already."""
    matrix = model.matrix(frame) if matrix is None else matrix
    p = model.probability(matrix)
    band = risk_band(p, bands)
    explain = ~np.isin(band, quiet_bands) & explain_risky
    # a risky borrower left unexplained has no cause and no action (not "none": that means safe)
    cause = np.where(np.isin(band, quiet_bands), "none", None).astype(object)
    by_cause = np.full((len(frame), len(CAUSES)), np.nan)
    text = [np.full(len(frame), None, dtype=object) for _ in REASON_COLUMNS]
    # what a floor added to the booster's probability is technical risk
    lift = model.floor_lift(matrix, p)
    share = model.cause_shares(matrix)
    if share is not None:
        share = with_floor(share, p, lift)  # as CalibratedLightGBM.cause_shares(m, p)
        by_cause = p[:, None] * share
    if explain.any():
        contrib = model.contributions(matrix[explain])
        lift = lift[explain]
        worded = worded_contributions(contrib, matrix[explain], model.features,
                                      reason_edges(model.reference or {}))
        if share is None:  # the floor leads where it is at least half the probability
            # a feature raises its cause only where its words are true of the borrower (a credit
            # score at its training median had made "worsening credit" lead, with no reason to
            # say); one that lowered the risk still counts against its cause
            evidence = np.where(contrib < 0, contrib, worded)
            cause[explain] = np.where(lift >= p[explain] / 2, "technical", leading_cause_from_contributions(
                cause_contributions(evidence, model.features)))
        else:
            cause[explain] = np.array(CAUSES, dtype=object)[share[explain].argmax(axis=1)]
        words = own_words(model, frame[explain])
        texts = reasons(worded, model.features, cause[explain], MAX_REASONS, words)
        if texts:  # what the floor read first: a technical reason, so no statement of the cause is needed
            texts = lead_with(texts, (lift > 0) & (cause[explain] == "technical"),
                              floor_reasons(frame[explain]))
        for i, column in enumerate(name_the_cause(texts, cause[explain])):
            text[i][explain] = column
    out = pd.DataFrame({"borrower_id": frame["borrower_id"].to_numpy(),
                        "scoring_date": frame["scoring_date"].to_numpy(),
                        "probability": p, "risk_band": band, "leading_cause": cause,
                        **{name: by_cause[:, i] for i, name in enumerate(CAUSE_PROBABILITIES)}})
    for column, values in zip(REASON_COLUMNS, text, strict=True):
        out[column] = values
    action = np.full(len(frame), None, dtype=object)
    known = pd.notna(cause)
    # the dates the actions are for, where the input gives them (the raw tables do wherever the
    # account had a due date before scoring)
    for column in DUE_DATES:
        out[column] = (frame[column].to_numpy() if column in frame
                       else np.full(len(frame), np.datetime64("NaT", "s")))
    action[known] = actions(cause[known], [t[known] for t in text], frame[known],
                            out.loc[known, list(DUE_DATES)])
    out["action"] = action
    out["model_version"] = version
    for col in ("risk_band", "leading_cause", "action", "model_version", *REASON_COLUMNS):
        out[col] = out[col].astype("str")
    return out[OUTPUT_COLUMNS]


def score_and_watch(frame: pd.DataFrame, *, model: CalibratedLightGBM, settings: ScoreSettings,
                    version: str, watched: list[str]) -> tuple[pd.DataFrame, dict]:
    """The scores of ``frame`` (``score_batch``) and what a run counts beside them: the values
    of the score and of the ``watched`` features that ``Drift`` bins, and the categories the model
    never learned (``UNSEEN``). The frame is encoded once: the training reference's bins are of
    the encoded values (a text category's code), which are the model's matrix's columns."""
    matrix = model.matrix(frame)
    scored = score_batch(model, frame, settings.bands, tuple(settings.quiet_bands), version,
                         settings.explain, matrix)
    column = {name: j for j, name in enumerate(model.features)}
    return scored, {"score": scored["probability"].to_numpy(),
                    **{name: matrix[:, column[name]] for name in watched},
                    UNSEEN: unseen_categories(frame, matrix, column, model.categories, model.never_missing)}


def unseen_categories(frame: pd.DataFrame, matrix: np.ndarray, column: dict[str, int],
                      categories: dict[str, list],
                      never_blank: tuple[str, ...] = ()) -> dict[str, dict[str, int]]:
    """Per column learned as text ``categories``, how many rows hold each value the model never
    saw: a value given (not missing) that ``matrix`` (the frame encoded, ``column`` its columns'
    positions) holds as missing, so scored as missing, as a renamed code would be, silently; and,
    in a column of ``never_blank`` (no training row lacked it), a blank, counted as ``BLANK``:
    LightGBM sends it where it sends a category it never saw (an outside check blanked a team's
    'education' in 500 rows: 314 scores moved, and nothing was said)."""
    out = {}
    for name in categories:
        blank = blank_cells(frame[name])
        unseen = np.isnan(matrix[:, column[name]]) & (~blank | (name in never_blank))
        if unseen.any():
            out[name] = shortened(frame[name].where(~blank, BLANK)[unseen]).value_counts().to_dict()
    return out


class Drift:
    """Adds up, batch after batch, how scores and watched features fall into the training
    reference's bins; PSI at the end, flagged by how far it goes beyond the variable's
    ``baseline`` (its largest PSI of one training month: months_of_history's calendar fractions
    moved it by a PSI of 3.4 from month to month on the defaults, and every scored batch had
    flagged it), and not judged on fewer than ``metrics.MIN_PSI_ROWS`` rows (19 rows had flagged
    the score and 9 features)."""

    def __init__(self, reference: dict, baseline: dict[str, float] | None = None):
        self.reference, self.baseline = reference, baseline or {}
        self.counts = {name: np.zeros(len(ref["counts"]), dtype="int64") for name, ref in reference.items()}

    def add(self, values: dict[str, np.ndarray]) -> None:
        for name, ref in self.reference.items():
            self.counts[name] += metrics.bin_counts(values[name], ref["edges"])

    def summary(self) -> dict:
        out = {}
        for name, ref in self.reference.items():
            if self.counts[name].sum() == 0:
                continue
            psi = metrics.psi_from_counts(ref, self.counts[name])["psi"]
            baseline = self.baseline.get(name, 0.0)
            flag = (metrics.psi_flag(psi - baseline) if self.counts[name].sum() >= metrics.MIN_PSI_ROWS
                    else TOO_FEW_ROWS)
            out[name] = {"psi": psi, "baseline": baseline, "flag": flag}
        return out
