"""``limitjump monitor``: the stream month by month (drift, estimated and realised performance,
alerts) and the backtest of the retraining policies, with a decisions log and a monthly chart.

Every recalibration or retrain the backtest fits is an MLflow run of its own (tagged with its
policy, month and gate results), and the monitor itself is one run holding the chart and the
tables. The backtest replays the past: it registers no version and moves no alias; @champion
moves only through ``limitjump promote``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from matplotlib.figure import Figure

from pipeline import io, metrics, monitor, split, tracking, train
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import MODELS, MONITOR_DIR, SPLIT_DIR, SPLIT_REPORT, STREAM_DIR
from pipeline.config import Params
from pipeline.contract import features_table
from pipeline.errors import UsageError
from pipeline.model import CalibratedLightGBM


@app.command(name="monitor")
def monitor_command(params: Path = PARAMS) -> None:
    """Monitor the stream month by month and backtest the retraining policies (with a team's own
    tables there is no stream: the outputs then only say so)."""
    p = load(params)
    if p.source.kind == "tables":
        _nothing_monitored()
        return
    fitted_until = split.fitted_until(SPLIT_REPORT)
    m = split.stream_start(p.monitor, fitted_until)
    champion = CalibratedLightGBM.from_dir(MODELS / "lightgbm")
    frame = monitor.read_stream(STREAM_DIR, features_table(champion.features, tuple(champion.categories),
                                                           champion.never_missing))
    record = STREAM_DIR / split.STREAM_RECORD
    written = json.loads(record.read_text()) if record.exists() else None
    mismatch = (monitor.record_mismatch(written, split.stream_record(m))
                or monitor.stream_mismatch(frame[monitor.MONTH], m))
    if mismatch:
        raise UsageError(f"{STREAM_DIR} was simulated with other monitor settings: {mismatch}. "
                         "Run `limitjump simulate-stream` with these params first (`dvc repro` does)")
    metadata = json.loads((MODELS / "lightgbm" / "metadata.json").read_text())
    card = json.loads((MODELS / "scorecard" / "scorecard.json").read_text())
    matrix = champion.matrix(frame)
    raw = champion.booster.predict(matrix)
    frozen = champion.probability(matrix)
    reference_auc = metadata["metrics"]["valid_auc"]
    watched = metrics.watched_features(champion.reference["importance"], m.watched_features)
    training = io.read_splits(SPLIT_DIR, ("train",))["train"]
    baseline = monitor.csi_baseline(champion.reference, champion.matrix(training), champion.features, watched,
                                    monitor.month_of(training["scoring_date"]))
    table, alert_log = monitor.monitor(frame, frozen, matrix, champion.features, champion.reference,
                                       reference_auc, baseline, m)
    scorecard = train.scorecard_predict(card, frame)
    scores, candidates = monitor.backtest(frame, champion, raw, scorecard, alert_log, m, p.train.lightgbm,
                                          p.gate, metadata["categorical"])
    policies = monitor.by_policy(frame, scores, m.bins)
    changes = monitor.change_dates(m.first_month, p.simulate)
    touched = monitor.touched_share(frame, changes, p.label)
    affected = monitor.first_affected_month(touched)
    truth = monitor.truth_view(frame, frozen, m.alerts, reference_auc, m.bins)
    goals = monitor.goals(table, alert_log, policies, truth, affected)
    goals |= {"reference_auc": reference_auc, "change_dates": [str(d.date()) for d in changes],
              "share_of_batch_touched_by_change": {monitor.month_label(k): v for k, v in touched.items()}}

    monthly = monitor.monthly_table(table, policies, truth)
    decisions = monitor.decisions(table, alert_log, candidates)
    with io.atomic_dir(MONITOR_DIR / "plots") as out:
        io.write_json(monitor.rounded_records(monthly), out / "monthly.json")
    io.write_json(monitor.rounded(decisions), MONITOR_DIR / "decisions.json")
    io.write_json(monitor.rounded(goals), MONITOR_DIR / "goals.json")
    chart = MONITOR_DIR / "monthly.png"
    io.write_png(monitor.monthly_figure(table, policies, alert_log, candidates, affected), chart)
    _log_runs(p, metadata["fingerprint"], frame, candidates, goals, chart)
    typer.echo(_summary(goals, candidates))


def _nothing_monitored() -> None:
    """The stage's outputs when there is no stream to monitor (``goals.monitored`` false)."""
    with io.atomic_dir(MONITOR_DIR / "plots") as out:
        io.write_json([], out / "monthly.json")
    io.write_json([], MONITOR_DIR / "decisions.json")
    io.write_json({"monitored": False, "source": "tables"}, MONITOR_DIR / "goals.json")
    figure = Figure(figsize=(4, 1))
    figure.text(0.5, 0.5, "source: tables, no monthly stream monitored", ha="center", va="center")
    io.write_png(figure, MONITOR_DIR / "monthly.png")
    typer.echo("source: tables; nothing monitored (the monitor needs the simulated stream)")


def _log_runs(p: Params, champion: str, frame: pd.DataFrame, candidates: list, goals: dict,
              chart: Path) -> None:
    """One MLflow run per recalibration or retrain, then the monitor's own run; a second run of the
    stage finds them by fingerprint and logs nothing again."""
    rows = pd.util.hash_pandas_object(frame[["borrower_id", "label"]], index=False).to_numpy()
    stream = io.text_digest(rows.tobytes().hex())
    for c in candidates:
        fingerprint = io.text_digest(json.dumps({"champion": champion, "stream": stream, **monitor.action(c),
                                                 "month": monitor.month_label(c.month),
                                                 "calibration": c.calibration}, sort_keys=True, default=str))
        note = (f"backtest {c.policy}: {c.action} at {monitor.month_label(c.month)} on "
                f"{', '.join(c.fitted_on)}; {monitor.action(c)['decision']} (no alias moved)")
        tags = {"limitjump.policy": c.policy, "limitjump.month": monitor.month_label(c.month),
                tracking.GATE_TAG: str(c.gates["passed"]).lower(), "limitjump.champion": champion}
        with tracking.new_run(p.mlflow, f"monitor-{c.action}", fingerprint, note, tags) as run:
            if run is not None:
                tracking.log_params({"monitor": p.monitor.model_dump(mode="json"),
                                     "calibration_method": p.train.lightgbm.calibration})
                tracking.log_metrics({k: float(v) for k, v in c.figures.items()})
                tracking.log_metrics({f"gate.{k}": g["value"] for k, g in c.gates["gates"].items()})
                tracking.log_json(c.calibration, "calibration.json", "files")
                if c.booster is not None:
                    tracking.log_json(c.booster.dump_model(), "model.json", "files")
    fingerprint = io.text_digest(json.dumps({"champion": champion, "stream": stream,
                                             "goals": monitor.rounded(goals), "chart": io.file_digest(chart)},
                                            sort_keys=True, default=str))
    with tracking.new_run(p.mlflow, "monitor", fingerprint, "monthly monitoring and policy backtest",
                          {"limitjump.champion": champion}) as run:
        if run is not None:
            tracking.log_params({"monitor": p.monitor.model_dump(mode="json")})
            tracking.log_artifact(chart)
            for name in ("decisions.json", "goals.json", "plots/monthly.json"):
                tracking.log_artifact(MONITOR_DIR / name)


def _gap_before(goals: dict) -> str:
    """The largest gap of estimated to realised AUC before the change, or why there is none: with a
    long label window every batch may reach the change; months too small are not judged (an outside
    check read "no batch before the change" of three such months)."""
    gap, affected = goals["max_auc_estimate_gap_before_change"], goals["first_affected_month"]
    if gap is not None:
        return f"{gap:.4f}"
    if goals.get("months_judged_before_change"):
        return "not measured (no batch before the change held both misses and repayments)"
    if any(affected is None or month < affected for month in goals["months_not_judged"]):
        return "not measured (no batch before the change large enough to judge)"
    return "none (no batch before the change)"


def _summary(goals: dict, candidates: list) -> str:
    applied = sum(c.applied for c in candidates)
    gap = _gap_before(goals)
    affected, alert = goals["first_affected_month"], goals["first_alert_after_change"]
    change = ("no monitored batch is touched by a change" if affected is None
              else f"first batch touched by a change {affected}, " + (
                  "no alert after it" if alert is None
                  else f"first alert after it {alert} ({', '.join(goals['first_alert_rules'])})"))
    small = goals["months_not_judged"]
    if small:
        change += (f" ({len(small)} month{'s' if len(small) > 1 else ''} of fewer than "
                   "monitor.min_batch_rows borrowers shown but not judged)")
    return (f"monitor: {change}, "
            f"{goals['false_alarm_months_before_change']} false-alarm months before; max |estimated - "
            f"realised AUC| before the change {gap}; "
            f"{len(candidates)} candidates fitted, {applied} applied (decisions in {MONITOR_DIR})")
