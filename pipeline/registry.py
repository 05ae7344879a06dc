"""The promotion gates: when a new LightGBM may replace the champion. No I/O of its own: figures
in, verdict out; what only a comparison needs (the models, the rows) comes from fetchers it calls.

Two sets, checked at two moments. ``own_gates`` depend only on what DVC tracks (the challenger and
the scorecard on the out-of-time split), so the register stage can record them as a DVC output.
``champion_gate`` compares the challenger with whatever is @champion now, which DVC does not
track, so only ``limitjump promote`` checks it, just before moving the alias (``promotion``).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.config import RegisterSettings, Settings
from pipeline.errors import InputError
from pipeline.tracking import FAILED_GATES_TAG, GATE_TAG, GATE_VALUES_TAG

if TYPE_CHECKING:
    from pipeline.model import CalibratedLightGBM


@dataclass(frozen=True)
class Promotion:
    """What ``limitjump promote`` decided, with the gates that failed and the figures it compared."""

    decision: str  # "promoted", "refused" or "already_champion"
    failed_gates: list[str]
    figures: dict = field(default_factory=dict)


def other_verdict(version, result: dict) -> str:
    """A sentence for when a registered ``version``'s recorded verdict is not ``result``'s (this
    run's gates, ``own_gates``), else "": an experiment with its own gates judges only what it
    registers, and it had published "passed" on a production version the registry records as
    failed (an outside check)."""
    recorded = version.tags.get(GATE_TAG) if version is not None else None
    if recorded is None:
        return ""
    ours = "passed" if result["passed"] else "failed " + ", ".join(result["failed"])
    theirs = "passed" if recorded == "true" else "failed " + version.tags.get(FAILED_GATES_TAG, "own gates")
    if theirs == ours:
        return ""
    return (f". Under this run's gates version {version.version} {ours}; the registry records it "
            f"{theirs} (by the gates of the last plain `dvc repro`), and `limitjump promote` judges its "
            "recorded figures by the gates of the params file it is given")


def own_failures(tags: dict[str, str], settings: RegisterSettings) -> list[str]:
    """The own gates a registered version fails: its figures recorded at registration
    (``GATE_VALUES_TAG``) judged by the gates of ``settings`` (params.yaml today: promote had
    refused a version on a gate a team had since lowered), else its recorded verdict
    (``GATE_TAG`` and ``FAILED_GATES_TAG``, for a version registered before the figures were
    kept); a version registered otherwise fails them all ("own gates")."""
    recorded = tags.get(GATE_VALUES_TAG)
    if recorded:
        return judged(json.loads(recorded), settings)["failed"]
    if tags.get(GATE_TAG) == "true":
        return []
    return [g.strip() for g in tags.get(FAILED_GATES_TAG, "own gates").split(",")]


def promotion(candidate: str, champion: str | None, own_failures: list[str], new_label: bool,
              models: Callable[[], dict[str, CalibratedLightGBM]], rows: Callable[[], pd.DataFrame],
              settings: RegisterSettings) -> Promotion:
    """Whether version ``candidate`` becomes @champion in place of ``champion`` (None: there is
    none). It must have passed its own gates (``own_failures`` lists those it failed), and then
    predict the champion's label from features computed the same way (or be adopted with
    ``new_label``, as is a model of other features that no row holds both of) and beat it on the
    same out-of-time rows. ``models`` (the "challenger" and the "champion") and ``rows`` are fetched only when
    the comparison needs them."""
    if champion == candidate:
        return Promotion("already_champion", own_failures)
    if own_failures:
        return Promotion("refused", own_failures)
    if champion is None:
        return Promotion("promoted", [])
    compared = models()
    labels = {role: m.label for role, m in compared.items()}
    settings_of = {role: m.feature_settings for role, m in compared.items()}
    if trained_otherwise(**labels):
        figures = {f"{role}_label": label.model_dump() for role, label in labels.items()}
        failed = [] if new_label else ["same_label"]
    elif trained_otherwise(**settings_of):  # the rows hold one way's features: unfair to the other
        figures = {f"{role}_features": s.model_dump(mode="json") for role, s in settings_of.items()}
        failed = [] if new_label else ["same_features"]
    else:
        test, seen = unseen_rows(rows(), compared)
        lacking = features_lacking(test, compared)
        if lacking:  # a model of other features (a team's own data): no AUC compares the two
            figures = {"rows": len(test), "missing": {role: cols[:5] for role, cols in lacking.items()}}
            failed = [] if new_label else ["comparable_rows"]
        elif test.empty:
            figures, failed = seen, ["unseen_rows"]
        else:
            aucs = aucs_on(test, compared)
            gate = champion_gate(aucs["challenger"], aucs["champion"], settings)
            figures = {"challenger_auc": aucs["challenger"], "champion_auc": aucs["champion"],
                       "rows": len(test), **seen, **gate}
            failed = [] if gate["passed"] else ["beats_champion"]
    return Promotion("refused" if failed else "promoted", failed, figures)


def own_gates(challenger: dict[str, float], scorecard: dict[str, float],
              settings: RegisterSettings) -> dict:
    """Minimum AUC, maximum calibration error, gain over the scorecard and the misses they were
    measured on, each with its value, threshold and verdict. ``challenger`` holds the model's
    out-of-time ``test_auc``, ``test_ece`` and, where counted, ``test_misses`` (a model saved before
    they were; the monitor's candidates, whose months ``monitor.min_batch_rows`` judges), and
    ``scorecard`` its ``test_auc``."""
    return judged({"min_oot_auc": challenger["test_auc"], "max_calibration_error": challenger["test_ece"],
                   "beats_scorecard": challenger["test_auc"] - scorecard["test_auc"],
                   **({"min_test_misses": challenger["test_misses"]} if "test_misses" in challenger else {})},
                  settings)


def judged(values: dict[str, float], settings: RegisterSettings) -> dict:
    """The own gates' verdict on their figures (``own_gates``'s values, as registration records
    them) under the thresholds of ``settings``."""
    checks = {
        "min_oot_auc": check(values["min_oot_auc"], settings.min_oot_auc, ">="),
        "max_calibration_error": check(values["max_calibration_error"], settings.max_calibration_error,
                                        "<="),
        "beats_scorecard": check(values["beats_scorecard"], settings.min_gain_over_scorecard, ">="),
    }
    # figures on a handful of misses say nothing (an outside check: 3 test misses, an AUC interval
    # of 0.32-0.89, every gate passed and the version promoted); a version registered before this
    # gate has no count recorded, and is not judged on it
    if "min_test_misses" in values:
        checks["min_test_misses"] = check(values["min_test_misses"], settings.min_test_misses, ">=")
    return verdict(checks)


def champion_gate(challenger_auc: float, champion_auc: float, settings: RegisterSettings) -> dict:
    """The challenger's AUC gain over the champion's, both measured on the same rows. A gain below
    ``min_gain_over_champion`` (a tie included) fails: the incumbent stays."""
    return check(challenger_auc - champion_auc, settings.min_gain_over_champion, ">=",
                  strict=settings.min_gain_over_champion == 0.0)


def aucs_on(rows: pd.DataFrame, models: dict[str, CalibratedLightGBM]) -> dict[str, float]:
    """Each model's AUC on the same out-of-time ``rows`` (its features and ``label``), for
    ``champion_gate``; InputError when the rows lack the label or a model's features."""
    if "label" not in rows:
        raise InputError("the comparison rows have no 'label' column")
    lacking = features_lacking(rows, models)
    if lacking:
        role, missing = next(iter(lacking.items()))
        raise InputError(f"the {role} needs columns the comparison rows lack: {missing[:5]}")
    return {role: metrics.ranking(rows["label"].to_numpy(), fitted.predict(rows))["auc"]
            for role, fitted in models.items()}


def unseen_rows(rows: pd.DataFrame, models: dict[str, CalibratedLightGBM]) -> tuple[pd.DataFrame, dict]:
    """The rows scored after the last scoring date either model was trained or validated on
    (``CalibratedLightGBM.fitted_until``), and what was left out: {"rows_seen_left_out": n,
    "compared_after": that date} where a model records it. An outside check promoted a version
    of another split on the workspace's test rows, 277 of 790 of them its own validation rows (its
    early stopping and calibration): it won 0.836 to 0.811 there and lost 0.800 to 0.801 on the
    rest. Rows without a scoring date cannot be told apart: an InputError."""
    until = [m.fitted_until for m in models.values() if getattr(m, "fitted_until", None) is not None]
    if not until:
        return rows, {}
    if "scoring_date" not in rows:
        raise InputError("the comparison rows have no 'scoring_date' column, so which of them a model "
                         "was trained or validated on cannot be told: give rows with their scoring dates")
    dates = pd.to_datetime(rows["scoring_date"], errors="coerce")
    if isinstance(dates.dtype, pd.DatetimeTZDtype):  # the day written, as every reader keeps it
        dates = dates.dt.tz_localize(None)
    unknown = np.flatnonzero(dates.isna().to_numpy())
    if unknown.size:  # a row of no date would count as seen, or as unseen, on no evidence
        raise InputError(f"the comparison rows' scoring_date is blank or no date in {unknown.size} rows, "
                         f"the first {(unknown[:5] + 1).tolist()} (counted from 1): give each row its "
                         "scoring date")
    last = max(until)
    after = (dates > last).to_numpy()
    return rows[after], {"rows_seen_left_out": int((~after).sum()), "compared_after": last.date().isoformat()}


def features_lacking(rows: pd.DataFrame, models: dict[str, CalibratedLightGBM]) -> dict[str, list[str]]:
    """Per model whose features ``rows`` lack some of, those features, sorted."""
    lacking = {role: sorted(set(m.features) - set(rows.columns)) for role, m in models.items()}
    return {role: cols for role, cols in lacking.items() if cols}


def trained_otherwise(challenger: Settings | None, champion: Settings | None) -> bool:
    """Whether the two predict different events (window, days past due or cycles), or take
    features computed otherwise (``FeatureSettings``). An AUC on one label's rows, with features
    of one window or one decay, cannot say which predicts better, so adopting a new label or new
    features is a decision of its own (``limitjump promote --new-label``). A version from before
    models recorded them is taken to predict the same, from the same features."""
    return challenger is not None and champion is not None and challenger != champion


def verdict(gates: dict[str, dict]) -> dict:
    failed = [name for name, g in gates.items() if not g["passed"]]
    return {"gates": gates, "failed": failed, "passed": not failed}


def check(value: float, threshold: float, op: str, strict: bool = False) -> dict:
    """A gate: ``value`` against ``threshold`` (op ">=", strictly with ``strict``, or "<="), as
    the registry's gates and the monitor's recalibration record them."""
    if op == ">=":
        passed = value > threshold if strict else value >= threshold
    else:
        passed = value <= threshold
    rule = f"value {'>' if strict else op} threshold"
    whole = isinstance(value, numbers.Integral) and isinstance(threshold, numbers.Integral)  # a count
    kind = int if whole else float
    return {"value": kind(value), "threshold": kind(threshold), "rule": rule, "passed": bool(passed)}
