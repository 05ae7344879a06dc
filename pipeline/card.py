"""The model card: one self-contained HTML page (figures embedded) from the evaluation reports.

``model_card`` turns the reports of ``pipeline.evaluate.model_report`` into formatted tables and
renders ``templates/model_card.html.j2`` (autoescaped, so names from the data cannot inject HTML).
Every number is formatted here; the template only lays out text and tables.
"""

from __future__ import annotations

import base64
import json
import math
import numbers
from collections.abc import Callable, Sequence
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from pipeline import io, plots
from pipeline.catalog import BY_NAME
from pipeline.config import CAUSES, Params, truth_replicates
from pipeline.evaluate import GOALS
from pipeline.metrics import ECE_BINS, PSI_SHIFTED, PSI_WATCH
from pipeline.model import FLOORS, REFERENCE_FILE

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "model_card.html.j2"
MISSING = "—"
PRIMARY = plots.PRIMARY
SECTIONS = ("provenance", "checks", "goals", "purpose", "data", "simulator", "ranking", "probabilities",
            "lift", "stability", "segments", "causes", "cause_model", "truth_gap", "features", "scorecard",
            "plots", "monitoring", "decision", "gates", "limits")
# a team's own data (source: tables) has no simulator and no truth: its card says what cannot be
# measured where the simulator's assumptions were, and drops the gap to the truth
OWN_DATA_SECTIONS = tuple("unmeasured" if s == "simulator" else s for s in SECTIONS if s != "truth_gap")
# goals judged against the simulator's truth or its regime-change date; on own data the card names
# them among what cannot be measured instead of listing them as "not applicable"
TRUTH_GOALS = ("psi_before_change_below_0_10", "auc_within_0_02_of_truth", "cause_accuracy_at_least_0_80",
               "cause_recall_at_least_0_60", "cause_auc_within_0_03_of_truth")

# what produced the evaluated models; the card names their digest
PRODUCING_SECTIONS = ("label", "simulate", "features", "split", "train", "evaluate")

Keys = tuple[str, ...]
Row = tuple[str, Keys]  # a table row: label and the keys leading to the value in a report


def _rows(section: Keys, *pairs: tuple[str, str]) -> list[Row]:
    """Table rows (label, path) for keys of one section of a report."""
    return [(label, (*section, key)) for label, key in pairs]


RANKING = _rows(("ranking",), ("AUC", "auc"), ("Gini", "gini"), ("KS", "ks"),
                ("AUC, 95% bootstrap interval", "auc_interval"),
                ("KS, 95% bootstrap interval", "ks_interval"),
                ("PR-AUC (average precision)", "pr_auc"),
                ("base rate (share of rows that miss)", "base_rate"))
PROBABILITIES = _rows(("probabilities",), ("Brier score", "brier"), ("log loss (nats)", "log_loss"),
                      ("ECE (equal-count bins)", "ece"),
                      ("calibration intercept (ideal 0)", "calibration_intercept"),
                      ("calibration slope (ideal 1)", "calibration_slope"),
                      ("mean predicted probability", "mean_predicted"),
                      ("observed miss rate", "observed_rate"),
                      ("mean predicted − observed", "calibration_in_the_large"))
LIFT = _rows(("lift",), ("riskiest share of rows", "top_share"), ("miss rate in that share", "top_miss_rate"),
             ("share of all misses captured by it", "top_capture"),
             ("share of all misses in the top decile", "top_decile_capture"),
             ("deciles rank-ordered", "rank_ordered"),
             ("rank-order breaks (adjacent deciles out of order)", "rank_order_breaks"))
GINI_TREND = _rows(("stability", "gini_by_month"), ("Gini slope per jump month", "slope"),
                   ("mean Gini over months", "mean"), ("sd of Gini over months", "std"))
CAUGHT = [(f"share of {c} misses caught", ("causes", "by_cause", c, "share_caught")) for c in CAUSES] + _rows(
    ("causes",), ("rows flagged", "flagged"),
    ("technical misses flagged as high risk", "technical_misses_flagged_as_high_risk"),
    ("share of flagged rows that are technical misses", "share_of_flagged_that_are_technical_misses"))
TRUTH_GAP = _rows(("truth_gap",), ("AUC of the truth", "auc_true"), ("AUC of the model", "auc_model"),
                  ("AUC gap (truth − model)", "auc_gap"), ("Brier of the truth", "brier_true"),
                  ("Brier of the model", "brier_model"),
                  ("regression p_true = a + b·p: intercept a (ideal 0)", "regression_intercept"),
                  ("slope b (ideal 1)", "regression_slope"), ("R² (ideal 1)", "regression_r2"),
                  ("mean |p − p_true|", "mean_abs_difference"))
SEGMENT_NAMES = {"trigger": "by trigger of the increase", "history_months": "by months of history",
                 "city_tier": "by city tier"}


# ---------------------------------------------------------------------------------------------
# Formatting


def num(value, digits: int = 4) -> str:
    """A number for the page: counts with thousands separators, other numbers to ``digits``
    decimals, booleans as yes/no, missing (None, NaN, ±inf) as a dash."""
    if value is None:
        return MISSING
    if isinstance(value, list | tuple) and len(value) == 2:  # an interval
        return f"{num(value[0], digits)} – {num(value[1], digits)}"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):.{digits}f}" if math.isfinite(value) else MISSING
    return str(value)


def pct(value, digits: int = 1) -> str:
    """A share (0..1) as a percentage."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{100 * float(value):.{digits}f}%"


def _dig(data, path: Keys):
    """``data[k1][k2]...``, or None where a key is absent."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# ---------------------------------------------------------------------------------------------
# Tables: {"header": [...], "rows": [[cell, ...], ...]} with every cell a string


def _by_model(reports: dict, models: Sequence[str], rows: Sequence[Row]) -> dict:
    """One row per figure, one column per model."""
    return {"header": ["", *(plots.LABELS.get(m, m) for m in models)],
            "rows": [[label, *(num(_dig(reports[m], path)) for m in models)] for label, path in rows]}


Column = tuple[str, str, Callable[[object], str]]  # header, key of the record, formatter


def _records(records: Sequence[dict], columns: Sequence[Column]) -> dict:
    """One row per record."""
    return {"header": [c[0] for c in columns],
            "rows": [[fmt(record.get(key)) for _, key, fmt in columns] for record in records]}


DECILES: list[Column] = [("decile (1 = riskiest)", "decile", num), ("rows", "n", num),
                         ("misses", "misses", num), ("miss rate", "miss_rate", num),
                         ("lowest p", "min_score", num), ("highest p", "max_score", num),
                         ("capture", "capture", num), ("cumulative capture", "cumulative_capture", num),
                         ("lift", "lift", num)]
SEGMENTS: list[Column] = [("segment", "segment", str), ("rows", "rows", num), ("miss rate", "miss_rate", num),
                          ("mean probability", "mean_probability", num), ("AUC", "auc", num)]
CSI: list[Column] = [("feature", "feature", str), ("CSI", "psi", num),
                     ("largest in one training month", "baseline", num), ("flag", "flag", str),
                     ("bins", "bins_used", num)]
GATES: list[Column] = [("gate", "name", str), ("value", "value", num), ("threshold", "threshold", num),
                       ("rule", "rule", str), ("passed", "passed", num)]
IMPORTANCE: list[Column] = [("feature", "feature", str), ("cause", "cause", str),
                            ("share of gain", "share", pct), ("description", "description", str)]
POINTS: list[Column] = [("characteristic", "characteristic", str), ("bin", "bin", str),
                        ("WoE", "woe", num), ("points", "points", lambda v: num(v, 1))]
PROVENANCE = (("model version", "model_version"), ("LightGBM run", "lightgbm_run"),
              ("scorecard run", "scorecard_run"), ("evaluation run", "evaluation_run"),
              ("git commit", "git_commit"), ("data digests", "data_digests"),
              ("params digest", "params_digest"), ("generated", "generated"))


def _cause_model(report: dict | None) -> dict | None:
    """The cause model's confusion matrix, per-cause figures beside the truth's, and accuracy
    beside the baselines measured in the same run."""
    if not report:
        return None
    per_cause = {"header": ["cause", "misses", "recall", "recall of the truth's split", "precision", "AUC",
                            "AUC of the truth", "gap"],
                 "rows": [[c, num(v["misses"]), num(v["recall"]), num(v.get("recall_truth")),
                           num(v["precision"]), num(v["auc"]), num(v.get("auc_truth")), num(v.get("auc_gap"))]
                          for c, v in report["by_cause"].items()]}
    scored = report.get("as_scored")
    accuracy = {"header": ["method", "share of misses whose leading cause is the true cause"],
                "rows": [["cause model (the most probable cause of every miss)", pct(report["accuracy"])],
                         *([[f"as scored: no cause in a quiet band ({num(scored['misses_explained'])} "
                             f"of {num(report['misses'])} misses outside them)", pct(scored["accuracy"])]]
                           if scored else []),
                         *[[name.replace("_", " "), pct(v)] for name, v in report["baselines"].items()]]}
    by_kind = report.get("technical_by_kind")
    technical = by_kind and {
        "header": ["kind of technical miss", "misses", "AUC", "AUC of the truth", "gap"],
        "rows": [[k.replace("_", " "), num(v["misses"]), num(v["auc"]), num(v["auc_truth"]),
                  num(v["auc_gap"])] for k, v in by_kind.items()]}
    answered = report.get("technical_actions")
    as_scored = bool(answered) and "answered_as_scored" in answered
    actions = answered and {
        "header": ["kind of technical miss", "misses named technical", "action answers it",
                   "one technical action would",
                   *(["as scored (no action in a quiet band)"] if as_scored else [])],
        "rows": [[k.replace("_", " "), num(v["misses"]), pct(v["answered"]), pct(v["answered_by_one_action"]),
                  *([pct(v["answered_as_scored"])] if as_scored else [])]
                 for k, v in {**answered["by_kind"], "all": answered}.items()]}
    return {"confusion": _confusion(report["confusion"], "leading cause"),
            "truth_confusion": report.get("truth_confusion") and _confusion(report["truth_confusion"],
                                                                             "the truth's split"),
            "per_cause": per_cause, "accuracy": accuracy,
            "technical_by_kind": technical, "technical_actions": actions, "misses": num(report["misses"])}


def _confusion(confusion: dict, predicted: str) -> dict:
    """A confusion matrix of the report (rows true) as a table whose columns are ``predicted``."""
    names = confusion["rows_true_columns_predicted"]
    return {"header": [f"true cause \\ {predicted}", *names],
            "rows": [[name, *(num(v) for v in row)]
                     for name, row in zip(names, confusion["counts"], strict=True)]}


def _floor(report: dict | None, name: str) -> dict | None:
    """A floor: what it rests on and what it did to the out-of-time rows."""
    if not report:
        return None
    known = report["history"]
    if name == "forgetting":
        basis = [["due dates paid by hand in the training rows' histories", num(known["chances"])],
                 ["of them forgotten", num(known["forgotten"])],
                 ["prior of the chance to forget: Beta(a, b), a", num(known["a"])],
                 ["b", num(known["b"])],
                 ["due dates of the label ahead", num(known["due_dates"])]]
    else:  # a history of misses and their rate
        counted = {"maintenance": ("debits stopped by announced maintenance in the history", "due_dates"),
                   "lapse": ("training rows whose auto-debit agreement had lapsed", "rows")}[name]
        basis = [[counted[0], num(known[counted[1]])],
                 ["of them missed by the label's days", num(known["missed"])],
                 ["floor rate (half a miss and half a payment added)", num(known["rate"])]]
    return {"header": ["", "value"], "rows": [
        *basis,
        ["out-of-time rows lifted", num(report["rows_lifted"])],
        ["misses among them", num(report["misses_among_lifted"])],
        ["their mean probability without the floor", num(report["mean_p_lifted_without_floor"])],
        ["their mean probability", num(report["mean_p_lifted"])],
        ["AUC without the floor", num(report["auc_without_floor"])],
        ["AUC", num(report["auc"])]]}


def checks(reports: dict, gates: dict | None, primary: str = PRIMARY) -> list[str]:
    """Plain sentences for every check that fails, for the top of the card; empty if none do."""
    main = reports.get(primary, {})
    failed = []
    breaks = _dig(main, ("lift", "rank_order_breaks"))
    if _dig(main, ("lift", "rank_ordered")) is False:
        failed.append(f"Deciles are not rank-ordered: {num(breaks)} adjacent deciles out of order.")
    slope = _dig(main, ("stability", "gini_by_month", "slope"))
    if slope is not None and math.isfinite(slope) and slope < 0:
        failed.append(f"The Gini falls by {num(-slope, 3)} per jump month over the out-of-time window.")
    psi = _dig(main, ("stability", "psi", "psi"))
    if psi is not None and psi >= PSI_WATCH:
        failed.append(f"The score distribution moved: PSI {num(psi, 3)} against training.")
    for d in main.get("directions", []):
        if d.get("contradicts"):
            failed.append(f"The monotone constraint on {d['feature']} contradicts the training data "
                          f"(rank trend z = {num(d['z'], 1)} against the constraint).")
    if gates is not None and gates.get("failed"):
        failed.append("Promotion gates failed: " + ", ".join(gates["failed"]) + ".")
    return failed


# why a goal has no verdict, where one reason alone can make it so
UNMEASURED = {"psi_before_change_below_0_10": "no out-of-time row was scored before the regime change"}


def _goals(verdicts: dict | None, own_data: bool = False) -> dict | None:
    """The model's goals (``evaluate.goals``) as met, missed or not applicable (no truth to judge
    by, or no miss of a cause); a goal judged per cause gets a row per cause. On own data the goals
    that need the simulator are left out (the card says why in one place)."""
    verdicts = {k: v for k, v in (verdicts or {}).items() if not (own_data and k in TRUTH_GOALS)}
    if not verdicts:
        return None
    said = {True: "met", False: "missed", None: "not applicable (no truth, or no miss to measure it on)"}
    rows = []
    for key, verdict in verdicts.items():
        text = GOALS.get(key, key.replace("_", " "))
        parts = verdict.items() if isinstance(verdict, dict) else [(None, verdict)]
        rows += [[text if part is None else f"{text}: {part}",
                  f"not applicable ({UNMEASURED[key]})" if v is None and key in UNMEASURED else said[v]]
                 for part, v in parts]
    return {"header": ["goal", "verdict"], "rows": rows}


# the rows PSI is computed on: its key in the stability report and its column in the per-bin table
PSI_PERIODS = {"all out-of-time rows": ("psi", "out-of-time rows, all"),
               "scored before the regime change": ("psi_before_regime_change", "before"),
               "scored on or after the regime change": ("psi_after_regime_change", "after")}


def _psi_tables(stability: dict, regime_change: bool = True) -> dict:
    """PSI of the score overall and, with the simulator's regime change (``regime_change``), before
    and after it; and the rows per PSI bin."""
    names = list(PSI_PERIODS) if regime_change else list(PSI_PERIODS)[:1]
    periods = {name: stability.get(PSI_PERIODS[name][0]) for name in names}
    bins = {name: (r or {}).get("bins", []) for name, r in periods.items()}

    def count(name: str, i: int) -> str:
        return num(bins[name][i]["actual_count"] if i < len(bins[name]) else None)

    summary = [[name, num(_dig(r, ("psi",))), _dig(r, ("flag",)) or MISSING,
                num(len(bins[name]) if r else None),
                num(sum(b["actual_count"] for b in bins[name]) if r else None)]
               for name, r in periods.items()]
    per_bin = [[b["bin"], num(b["expected_count"]), *(count(name, i) for name in periods)]
               for i, b in enumerate(bins["all out-of-time rows"])]
    return {"summary": {"header": ["rows", "PSI", "flag", "bins", "out-of-time rows"], "rows": summary},
            "bins": {"header": ["score bin (probability)", "train rows",
                                *(PSI_PERIODS[name][1] for name in periods)], "rows": per_bin}}


def _gates(gates: dict | None) -> dict | None:
    if gates is None:
        return None
    records = [{"name": name, **g} for name, g in gates.get("gates", {}).items()]
    decision = "passed" if gates.get("passed") else "failed"
    return {"table": _records(records, GATES), "decision": decision,
            "failed": ", ".join(gates.get("failed") or []) or "none",
            "fingerprint": gates.get("challenger_fingerprint", MISSING)}


def _monitoring(data: dict | None) -> dict | None:
    """The monitor's goals (reports/monitor/goals.json) and its monthly chart, when it has run."""
    if not data:
        return None
    g = data["goals"]
    rules = ", ".join(g["first_alert_rules"]) or "none"
    alert = f"{g['first_alert_after_change']} ({rules})" if g["first_alert_after_change"] else "none"
    summary = [["first batch most of whose label windows reach a regime change",
                g["first_affected_month"] or "none in the monitored months"],
               ["first alert on an affected batch (rules)", alert],
               ["months from that batch to the alert", num(g["months_from_change_to_alert"])],
               ["months with a false alarm before it (an alert the truth does not confirm)",
                num(g["false_alarm_months_before_change"])],
               ["alerts before it that the truth confirms",
                num(len(g["alerts_before_change_confirmed_by_truth"]))],
               ["largest |estimated − realised AUC| before it", num(g["max_auc_estimate_gap_before_change"])],
               ["the same, estimated with every borrower's true probability (the best estimate possible)",
                num(g["fair_truth_limits"]["max_auc_estimate_gap_before_change_from_true_probabilities"])]]
    policies = [[name, num(v["mean_ece_after_alert"]), v["first_month_ece_at_most_0_01"] or "never",
                 num(v["min_auc_minus_frozen"])] for name, v in g["policies"].items()]
    return {"summary": {"header": ["", "measured"], "rows": summary},
            "policies": {"header": ["policy", "mean ECE from the alert on", "first month with ECE ≤ 0.01",
                                    "lowest monthly AUC minus the frozen model's"], "rows": policies},
            "chart": base64.b64encode(data["chart"]).decode("ascii")}


# in the card's order: the bound, ours, then what ours is compared with (POLICY_NAMES' order)
POLICY_NAMES = {"oracle": "oracle (the rule on the true curves)",
                "ours": "ours (every increase, corrected by the line tests)",
                "ours_at_platform_risk": "ours, appetite set to the platform's predicted miss rate",
                "experimental": "line tests alone", "naive": "every increase, no correction",
                "platform": "the platform's (as granted)", "no_increase": "no increases",
                "largest_for_all": "the largest amount for everyone"}


def _order(policy: str) -> int:
    """A policy's place in the card (the JSON's keys are sorted: "line tests alone" had come first
    and the oracle in the middle); one the card does not know comes last."""
    names = list(POLICY_NAMES)
    return names.index(policy) if policy in names else len(names)


def _ours(report: dict) -> str:
    """Our policy's name, as it was fitted: a correction that split on nothing corrects nothing."""
    if not report["borrowers"]["line_tests_learnt_from"]:
        return "ours (every increase; no line tests to correct it)"
    if any(name.endswith("correction") for name in report.get("models_without_splits", [])):
        return "ours (every increase; the line tests' correction split on nothing, so corrects nothing)"
    return POLICY_NAMES["ours"]


def _decision(data: dict | None) -> dict | None:
    """How much to raise (reports/decision.json) and its dose-response chart, when it has run."""
    if not data:
        return None
    r = data["report"]
    flat = set(r.get("models_flat_in_the_amount", []))
    if "ours" in flat:  # the same model at another appetite
        flat.add("ours_at_platform_risk")
    names = {name: f"{text} (never splits on the amount: one miss probability at every amount)"
             if name in flat else text for name, text in (POLICY_NAMES | {"ours": _ours(r)}).items()}
    rows = [[names.get(name, name), num(v["profit_per_borrower"], 1), pct(v["share_of_oracle_profit"]),
             pct(v["share_of_oracle_gain"]), num(v["miss_rate"]),
             pct(v["same_amount_as_oracle"]) if "same_amount_as_oracle" in v else MISSING]
            for name, v in sorted(r["policies"].items(), key=lambda kv: _order(kv[0]))]
    dose = r["dose_response"]
    fit = [[name, *(num(dose[kind][name]) for kind in ("mae", "calibration_gap", "mean_curve_mae"))]
           for name in dose["mae"]]
    return {"borrowers": r["borrowers"], "appetite": data["appetite"],
            "policies": {"header": ["policy", "true profit per borrower (CNY)", "share of the oracle's",
                                    "share of its gain over no increases", "true miss rate",
                                    "same amount as the oracle"], "rows": rows},
            "fit": {"header": ["model", "|predicted − true| P(miss), per borrower and amount "
                               f"(a perfect model: {num(dose['truth_noise_mae'])}, the truth's own noise)",
                               "calibration gap against the truth, mean over amounts",
                               "|predicted − true| of the mean curve"], "rows": fit},
            "chart": base64.b64encode(data["chart"]).decode("ascii")}


def _measured(table: dict) -> dict | None:
    """A table with at least one figure, or None when every figure is missing (nothing measured it:
    the card says so instead of a table of dashes)."""
    return table if any(cell != MISSING for row in table["rows"] for cell in row[1:]) else None


def _text(value) -> str:
    return str(value) if value else MISSING


SPLITS: list[Column] = [("split", "split", str), ("rows", "rows", num), ("share of rows", "share", pct),
                        ("misses", "misses", num), ("first date", "first", _text),
                        ("last date", "last", _text)]
SPLIT_NAMES = {io.EMBARGOED: "in no split (the gaps between them)"}


def _own_data(params: Params) -> dict | None:
    """What the card says of a team's own data (``source.kind: tables``): its files and columns;
    None for the simulator, whose card describes the simulator."""
    if params.source.kind != "tables":
        return None
    return {"tables": params.source.tables, "truth_goals": [GOALS[k] for k in TRUTH_GOALS]}


def _regime_side(stability: dict) -> str:
    """Where the out-of-time rows fall against ``evaluate.regime_change_date``: 'both', 'after' or
    'before' (the card had said the window contained the change when every row came after it)."""
    before = stability.get("psi_before_regime_change") is not None
    after = stability.get("psi_after_regime_change") is not None
    return "both" if before and after else ("before" if before else "after")


def _split_rows(splits: dict | None) -> dict | None:
    """Rows per split as the split stage made them (``splits``: name -> rows, misses, first and last
    date), with those in the gaps between splits: the shares in params set the cut dates, and the
    card had given them as if they were the rows (60% train, where 44% of the rows were)."""
    if not splits:
        return None
    total = sum(figures["rows"] for figures in splits.values())
    records = [{"split": SPLIT_NAMES.get(name, name), **figures,
                "share": figures["rows"] / total if total else None} for name, figures in splits.items()]
    return _records(records, SPLITS)


def _figures(paths: Sequence[Path]) -> list[dict]:
    return [{"name": Path(p).name, "title": plots.TITLES.get(Path(p).name, Path(p).stem),
             "data": base64.b64encode(Path(p).read_bytes()).decode("ascii")} for p in paths]


# ---------------------------------------------------------------------------------------------
# The page


def _context(reports: dict, gates: dict | None, params: Params, figures: Sequence[Path],
             details: dict) -> dict:
    models = plots.model_order(reports)
    primary = PRIMARY if PRIMARY in reports else models[0]
    challengers = [m for m in models if m != "truth"] or models
    main = reports[primary]
    stability = main.get("stability", {})
    csi_flagged = [r for r in stability.get("csi", []) if r.get("flag") != "stable"]
    own = _own_data(params)
    return {
        "p": params, "primary": plots.LABELS.get(primary, primary), "own": own,
        "split_rows": _split_rows(details.get("splits")),
        "regime": _regime_side(stability),
        "gate_ece_bins": ECE_BINS,
        "truth_replicates": truth_replicates(params.simulate, params.label),
        "psi_watch": num(PSI_WATCH, 2), "psi_shifted": num(PSI_SHIFTED, 2),
        "data": _by_model(reports, models, [("out-of-time test rows", ("ranking", "n")),
                                            ("misses", ("ranking", "positives")),
                                            ("base rate", ("ranking", "base_rate"))]),
        "ranking": _by_model(reports, models, RANKING),
        "probabilities": _by_model(reports, models, PROBABILITIES),
        "lift": _by_model(reports, models, LIFT),
        "top_share": pct(_dig(main, ("lift", "top_share"))),
        "deciles": _records(_dig(main, ("lift", "deciles")) or [], DECILES),
        "psi": _psi_tables(stability, regime_change=own is None),
        "csi_flagged": _records(csi_flagged, CSI) if csi_flagged else None,
        "gini_trend": _measured(_by_model(reports, models, GINI_TREND)),
        "segments": {SEGMENT_NAMES.get(k, k): _records(v, SEGMENTS)
                     for k, v in main.get("segments", {}).items()},
        "flag_rate": pct(_dig(main, ("causes", "flag_rate"))),
        "caught": _measured(_by_model(reports, models, CAUGHT)),
        "cause_misses": {c: num(_dig(main, ("causes", "by_cause", c, "misses"))) for c in CAUSES},
        "truth_gap": _measured(_by_model(reports, challengers, TRUTH_GAP)),
        "figures": _figures(figures),
        "gates": _gates(gates),
        "monitoring": _monitoring(details.get("monitoring")),
        "decision": _decision(details.get("decision")),
        "cause_model": _cause_model(main.get("cause_model")),
        **{name: _floor(main.get(f"{name}_floor"), name) for name in FLOORS},
        "checks": checks(reports, gates, primary),
        "goals": _goals(main.get("goals"), own_data=own is not None),
        "provenance": [(label, details["provenance"][key]) for label, key in PROVENANCE
                       if details.get("provenance", {}).get(key)],
        "importance": _records(details.get("importance", []), IMPORTANCE),
        "points": _records(details.get("points", []), POINTS),
        "sections": SECTIONS if own is None else OWN_DATA_SECTIONS,
    }


def read_details(p: Params, data_digests: dict[str, str], models: Path, split_report: Path,
                 decision: tuple[Path, Path], monitor: Path) -> dict:
    """What the card shows beyond the reports, read from the stages' outputs: the LightGBM's
    importance and the scorecard's points (under ``models``), the split report, the decision's
    report and plots folder (``decision``) and the monitor's folder. Only what DVC tracks: no run
    id, version or time (the copy logged to MLflow adds those)."""
    gains = json.loads((models / "lightgbm" / REFERENCE_FILE).read_text())["importance"]
    return {
        "provenance": provenance(p, data_digests),
        "importance": importance(gains),
        "points": pd.read_csv(models / "scorecard" / "scorecard_points.csv").to_dict("records"),
        # the monitor's summary and chart (the monitor stage runs before this one), if it monitored
        "monitoring": _read_monitoring(monitor),
        "decision": _read_decision(*decision, p.decision.appetite),
        "splits": _read_splits(split_report),
    }


def _read_splits(report_path: Path) -> dict:
    """Rows, misses and first and last scoring date of each split, as the split stage reported
    them: a team's own data has no simulator to describe, so its card describes these."""
    report = json.loads(report_path.read_text())
    return {name: {"rows": report[name]["rows"], "misses": report[name]["misses"],
                   "first": report[name]["first_scoring_date"], "last": report[name]["last_scoring_date"]}
            for name in (*io.SPLITS, io.EMBARGOED) if name in report}


def _read_decision(report_path: Path, plots_dir: Path, appetite: float) -> dict | None:
    """The increase decision's report and chart (the decide stage runs before this one)."""
    report = json.loads(report_path.read_text())
    if report.get("applicable") is False:
        return None
    return {"report": report, "appetite": appetite, "chart": (plots_dir / "dose_response.png").read_bytes()}


def _read_monitoring(folder: Path) -> dict | None:
    goals = json.loads((folder / "goals.json").read_text())
    if goals.get("monitored") is False:
        return None
    return {"goals": goals, "chart": (folder / "monthly.png").read_bytes()}


def provenance(params: Params, data_digests: dict[str, str]) -> dict[str, str]:
    """The digests of the models' data and of the params sections that produced them: all the
    provenance DVC tracks (no run id, version or time: the copy logged to MLflow adds those)."""
    produced_by = params.model_dump(mode="json", by_alias=True)
    sections = json.dumps({k: produced_by[k] for k in PRODUCING_SECTIONS}, sort_keys=True)
    return {"data_digests": ", ".join(f"{k} {v[:12]}" for k, v in data_digests.items()),
            "params_digest": io.text_digest(sections)[:12]}


def importance(gains: dict[str, float]) -> list[dict]:
    """The ``plots.TOP_FEATURES`` features of most gain, each with its share of the total gain and
    its cause and description in the catalogue (``MISSING`` for a team's own feature)."""
    total = sum(gains.values()) or 1.0
    ranked = sorted(gains.items(), key=lambda kv: -kv[1])[:plots.TOP_FEATURES]
    return [{"feature": f, "share": g / total,
             "cause": BY_NAME[f].cause if f in BY_NAME else MISSING,
             "description": BY_NAME[f].description if f in BY_NAME else MISSING} for f, g in ranked]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def model_card(reports: dict[str, dict], gates: dict | None, params: Params, figures: list[Path],
               details: dict | None = None) -> str:
    """The HTML model card: provenance, failed checks in plain words, purpose, data, simulator,
    every evaluation section, feature importance, the scorecard's points, the figures (base64
    PNGs), the promotion gates ("not run" when ``gates`` is None) and known limits.

    ``details`` holds ``provenance`` (key -> text: model version, run ids, commit, digests, time;
    the copy kept by DVC carries only what DVC tracks), ``importance`` (records of feature, cause,
    share, description), ``points`` (the scorecard's records) and ``splits`` (rows, misses and
    dates of each split, shown for a team's own data, ``params.source.kind`` tables: that card
    describes the team's files and says what cannot be measured without the simulator's truth)."""
    if not reports:
        raise ValueError("model_card needs at least one model report")
    context = _context(reports, gates, params, figures, details or {})
    return _environment().get_template(TEMPLATE).render(**context)
