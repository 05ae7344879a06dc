"""``limitjump register``: register the new LightGBM and record whether it passes its own gates.

No alias is moved for an experiment: ``dvc exp run`` registers and tags versions only. A plain
``dvc repro`` also points @challenger at its version (the candidate for ``limitjump promote``).
@champion moves only through ``limitjump promote``. reports/gates.json depends only on what DVC
tracks (the two models and the out-of-time split), never on the registry's state; models/
registered.json, kept out of git, makes a fresh clone's ``dvc repro`` register in its own registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline import io, model, registry, tracking
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import GATES, MODELS, REGISTERED


@app.command()
def register(params: Path = PARAMS) -> None:
    """Register the LightGBM model with its gate results; experiments move no alias."""
    p = load(params)
    challenger = json.loads((MODELS / "lightgbm" / "metadata.json").read_text())
    scorecard = json.loads((MODELS / "scorecard" / "metadata.json").read_text())
    # a model saved before its misses were counted has none
    counted = {"test_misses": challenger["misses"]["test"]} if "misses" in challenger else {}
    result = registry.own_gates({**challenger["metrics"], **counted}, scorecard["metrics"], p.gate)
    io.write_json({"challenger_fingerprint": challenger["fingerprint"], **result}, GATES)

    run = tracking.run_for_fingerprint(p.mlflow, challenger["fingerprint"])
    judged = {tracking.GATE_TAG: str(result["passed"]).lower(),
              tracking.FAILED_GATES_TAG: ", ".join(result["failed"]) or "none",
              tracking.GATE_VALUES_TAG: json.dumps({name: g["value"] for name, g in result["gates"].items()}),
              **{f"gate.{name}": f"{g['value']:.4f}" if isinstance(g["value"], float) else str(g["value"])
                 for name, g in result["gates"].items()}}
    came_from = {k: v for k, v in tracking.provenance().items() if k in ("git.commit", "dvc.exp_name")}
    tags = {tracking.FILES_TAG: json.dumps(tracking.file_digests(MODELS / "lightgbm", model.MODEL_FILES)),
            **judged, **came_from}
    description = (f"{run.info.run_name}: out-of-time AUC {challenger['metrics']['test_auc']:.4f}; "
                   f"own gates {'passed' if result['passed'] else 'failed: ' + ', '.join(result['failed'])}")
    version = tracking.register_version(p.mlflow, run, challenger["fingerprint"], tags, description)
    where = "experiment " + tracking.provenance()["dvc.exp_name"] if tracking.in_experiment() else None
    if where is None:
        # a version registered before is judged again by the gates now in params.yaml (a team
        # that lowered them to its portfolio's reach could not promote it); an experiment's gates
        # judge only what it registers
        tracking.set_version_tags(p.mlflow, version, judged, description)
        tracking.set_alias(p.mlflow, "challenger", version.version, {})
    # what was registered, not the version number: the same on every machine, so dvc.lock is too
    io.write_json({"registered_model": p.mlflow.registered_model, "fingerprint": challenger["fingerprint"],
                   "gates_passed": result["passed"]}, REGISTERED)
    gates = "passes its gates" if result["passed"] else f"fails {', '.join(result['failed'])}"
    typer.echo(f"registered version {version.version} ({gates}); "
               + (f"{where}: no alias moved{registry.other_verdict(version, result)}" if where
                  else "now @challenger; @champion moves only with `limitjump promote`"))
