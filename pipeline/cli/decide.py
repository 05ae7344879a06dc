"""``limitjump decide``: how much to raise, learnt from line tests and checked against the
counterfactual truth (models/decision, reports/decision.json, reports/decision/)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from pipeline import decision, io, tracking
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import (
    COUNTERFACTUAL_DIR,
    DECISION_MODEL,
    DECISION_PLOTS,
    DECISION_REPORT,
    RAW_DIR,
    SPLIT_DIR,
    TRUTH_DIR,
)
from pipeline.config import Params, label_horizon
from pipeline.engine import map_shards
from pipeline.features import build_features
from pipeline.shards import read_shard


@app.command()
def decide(params: Path = PARAMS) -> None:
    """Train the limit-increase decision models on the line tests (and, for comparison, on every
    increase) and compare their policy with the oracle's, the platform's and fixed ones."""
    p = load(params)
    if p.source.kind == "tables":
        note = {"source": "tables", "applicable": False,
                "why": "the decision needs line tests and the simulator's counterfactual truth"}
        with io.atomic_dir(DECISION_MODEL) as out, io.atomic_dir(DECISION_PLOTS) as plots:
            io.write_json(note, out / "source.json")
            io.write_json(note, plots / "source.json")
        io.write_json(note, DECISION_REPORT)
        typer.echo("source: tables; no decision model (docs/decision.md)")
        return
    shards = [io.part_index(f) for f in io.parts(RAW_DIR / "borrowers")]
    cycles = label_horizon(p.label, p.simulate.calendar.due_day_offset) + 1
    frame = pd.concat(map_shards(decision_rows, shards, p.engine, "decision features", p, cycles,
                                 borrowers=len, parent_works=True), ignore_index=True)
    frame = decision.with_splits(frame, io.read_splits(SPLIT_DIR, columns=["borrower_id"]))
    report, model, figures = decision.run(frame, io.read_dataset(COUNTERFACTUAL_DIR), p.decision,
                                          np.asarray(p.simulate.jump.line_test_amounts, dtype=float),
                                          cycles + decision.jump_cycles(p.label.observation_days))
    model.feature_settings = p.features  # the decision features were computed so (decision_rows)
    model.label = p.label  # and its P(miss) is this label's
    with io.atomic_dir(DECISION_MODEL) as out:
        model.save(out)
    with io.atomic_dir(DECISION_PLOTS) as out:
        for name, figure in figures.items():
            io.write_png(figure, out / f"{name}.png")
        if not figures:
            io.write_json(report, out / "not_evaluated.json")
    io.write_json(report, DECISION_REPORT)
    version = _log_and_register(p, report, frame, model)
    if not report["borrowers"]["line_tests_learnt_from"]:
        typer.echo("warning: no line tests among the training borrowers (simulate.jump.line_test_share): "
                   "the decision model learns the amount's effect from the platform's own sizing, which "
                   "confounds amount and risk (docs/decision.md)", err=True)
    counts = report["borrowers"]
    for name in report["models_without_splits"]:
        why = (f"the line tests ({counts['line_tests_learnt_from']}) correct nothing "
               "(decision.correction.min_data_in_leaf)" if name.endswith("correction") else
               f"every borrower gets the same {name} curve ({counts['increases_learnt_from']} increases "
               "learnt from; decision.observational.min_data_in_leaf), so its recommendations tell no one "
               "apart")
        typer.echo(f"warning: the decision's {name} model split on nothing: {why}", err=True)
    for name in report.get("models_flat_in_the_amount", []):
        typer.echo(f"warning: the decision's {name} model never splits on the amount: its miss "
                   "probability is the same at every amount, so it sizes increases by profit alone", err=True)
    if report.get("applicable") is False:
        typer.echo(f"decision: registered as version {version}, not evaluated: {report['why']}")
        return
    ours, oracle = report["policies"]["ours"], report["policies"]["oracle"]
    typer.echo(f"decision: our policy earns {ours['profit_per_borrower']:.0f} CNY a borrower "
               f"(the oracle {oracle['profit_per_borrower']:.0f}: {_share(ours['share_of_oracle_profit'])}; "
               f"{_share(ours['share_of_oracle_gain'])} of its gain over no increases), miss rate "
               f"{ours['miss_rate']:.3f}; registered as version {version}")


def _share(value: float) -> str:
    """A share as a percentage; 'n/a' where there is nothing to share (the oracle gains nothing over
    no increases at an appetite of 0: 'nan%' had been printed)."""
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def _log_and_register(p: Params, report: dict, frame: pd.DataFrame, model: decision.DecisionModel) -> str:
    """Two MLflow runs, each found again rather than duplicated when it has not changed: the model's
    (its params and the model, loaded by the installed package), registered, and its evaluation's
    (the report's figures, the report and the chart). An evaluation of the same model changes with
    the counterfactual's replicates: kept in the model's run, it had not been logged again, and
    MLflow had shown the first figures beside a report of others."""
    fingerprint = "decision-" + io.file_digest(DECISION_MODEL)[:32]
    policies = report.get("policies", {})
    description = (f"How much to raise: {policies['ours']['share_of_oracle_profit']:.1%} of the "
                   f"oracle's profit out of time, miss rate {policies['ours']['miss_rate']:.3f}"
                   if policies else f"How much to raise: not evaluated, {report['why']}")
    with tracking.new_run(p.mlflow, "decision", fingerprint, "How much to raise: the decision model") as run:
        if run is not None:
            tracking.log_params({"decision": p.decision.model_dump(), "label": p.label.model_dump(),
                                 "line_test_amounts": p.simulate.jump.line_test_amounts})
            example = frame[frame["split"] == "test"].head(5).reset_index(drop=True)
            example = example[list(decision.SERVED_COLUMNS)]
            tracking.log_served_model("pipeline.decision", DECISION_MODEL, example, model.recommend(example))
    run = tracking.run_for_fingerprint(p.mlflow, fingerprint)
    files = {f.name: io.file_digest(f) for f in sorted(DECISION_MODEL.iterdir())}
    tags = {tracking.FILES_TAG: json.dumps(files)}
    version = tracking.register_version(p.mlflow, run, fingerprint, tags, description, decision=True).version
    evaluated = f"{fingerprint}-{io.text_digest(io.json_text(report))[:16]}"
    links = {"limitjump.decision_run": run.info.run_id, "limitjump.model_version": str(version)}
    with tracking.new_run(p.mlflow, "decision-evaluation", evaluated, description, links) as run:
        if run is not None:
            tracking.log_metrics({f"{name}_{k}": v for name, result in policies.items()
                                  for k, v in result.items() if isinstance(v, float)})
            if policies:
                _log_dose_response(report["dose_response"])
            tracking.log_json(report, DECISION_REPORT.name)
            tracking.log_artifact(DECISION_PLOTS, "plots")
    return version


def _log_dose_response(dose: dict) -> None:
    for kind in ("mae", "calibration_gap", "mean_curve_mae"):
        tracking.log_metrics({f"dose_response_{kind}_{name}": v for name, v in dose[kind].items()})
    tracking.log_metrics({"dose_response_truth_noise_mae": dose["truth_noise_mae"]})


def decision_rows(index: int, p: Params, cycles: int) -> pd.DataFrame:
    """One shard's borrowers as the decision learns from them (``decision.training_rows``), their
    features taken at the jump."""
    tables = read_shard(RAW_DIR, index)
    return decision.training_rows(build_features(tables, 0, p.features), tables["limit_events"],
                                  tables["statements"], io.read_part(TRUTH_DIR, index),
                                  p.label.observation_days, cycles)
