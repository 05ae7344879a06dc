"""``limitjump promote``: the one way a version becomes @champion, by a person or by CI on main.

It re-checks the candidate's own gates (its figures recorded at registration, by the gates in
params.yaml now) and compares it with the
current champion on the same out-of-time rows; every decision, a refusal included, is appended
to the promotion log and tagged on the version. Not a DVC stage: production state is not an
output of the pipeline.
"""

from __future__ import annotations

import getpass
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipeline import io, registry, tracking
from pipeline.cli import PARAMS, app, load, params_file
from pipeline.cli.paths import REGISTERED, SPLIT_DIR
from pipeline.errors import InputError, UsageError
from pipeline.model import CalibratedLightGBM

PROMOTION_TAG = "limitjump.promotion"


@app.command()
def promote(
        version: Annotated[str | None, typer.Option(
            "--version", help="Version to promote; default: @challenger, the version the last plain "
                              "`dvc repro` registered (experiments move no alias), if it is this "
                              "checkout's model.")] = None,
        test: Annotated[Path | None, typer.Option(
            "--test", help="Out-of-time rows both models are compared on (features and label); "
                           "default: the repository's data/split/test.parquet.")] = None,
        new_label: Annotated[bool, typer.Option(
            "--new-label", help="Adopt a version that predicts another label than the champion's, "
                                "takes features computed otherwise (params.yaml: features) or other "
                                "features (a team's own data), on its own gates (no AUC compares "
                                "the two).")] = False,
        params: Path = PARAMS) -> None:
    """Make a registered version @champion if its gates hold and it beats the champion."""
    p = load(params)
    if version is not None and not version.strip():
        # an unset $VERSION in a script: promoting the latest instead would move production unasked
        raise UsageError("--version is empty: give a version number or an alias, or leave the option "
                         "out to promote @challenger")
    candidate = tracking.get_version(p.mlflow, version) if version is not None else _challenger(p)
    champion = _current_champion(p)
    came_from = {k: v for k, v in tracking.provenance().items() if k in ("git.commit", "git.dirty")}
    # a whole number in the log whichever store answered: a SQL store gives one, a server text
    entry = {"version": int(candidate.version),
             "previous_champion": int(champion.version) if champion else None, "by": _who(), **came_from}
    decided = registry.promotion(
        candidate.version, champion.version if champion else None,
        registry.own_failures(candidate.tags, p.gate), new_label,
        models=lambda: _models({"challenger": candidate, "champion": champion}),
        rows=lambda: _comparison_rows(test),
        settings=p.gate)
    entry.update(decision=decided.decision, failed_gates=decided.failed_gates, figures=decided.figures,
                 **_judged_by(p, params, candidate.tags))
    if decided.decision == "promoted":
        tracking.set_alias(p.mlflow, "champion", candidate.version, {
            "limitjump.previous_champion": str(entry["previous_champion"] or "none")})
    now = datetime.now(UTC)
    entry["time"] = now.isoformat(timespec="seconds")
    log = tracking.append_promotion_log(entry)
    tracking.set_version_tags(p.mlflow, candidate, _registry_record(entry, now))
    typer.echo(_message(entry) + f"; logged in {log}")
    if decided.decision == "refused":  # a script or CI step must tell a refusal from a promotion
        raise typer.Exit(1)


def _judged_by(p, params: Path, tags: dict[str, str]) -> dict:
    """What the decision was judged by, for an auditor: the gates and the params file they came
    from (its path and digest: an untracked copy with a gate lowered leaves git clean), and the
    candidate's own figures recorded at registration. A promotion on gates lowered for it had
    logged only "failed_gates": [] (an outside check)."""
    path = params_file(params).resolve()
    recorded = tags.get(tracking.GATE_VALUES_TAG)
    return {"gates": p.gate.model_dump(), "params_file": str(path), "params_sha256": io.file_digest(path),
            "own_figures": json.loads(recorded) if recorded else None}


def _registry_record(entry: dict, now: datetime) -> dict[str, str]:
    """The registry's record of a decision, which the whole team sees (the log is this machine's):
    a tag of its own per decision, never overwritten, and the latest in ``limitjump.promotion``,
    which a no-op leaves alone (a second `promote` of the champion had replaced its record with
    "already_champion", no figures and itself as the previous champion)."""
    record = json.dumps({k: entry[k] for k in ("time", "decision", "failed_gates", "figures", "by",
                                               "previous_champion", "gates", "params_sha256")},
                        default=str, sort_keys=True)
    tags = {f"{PROMOTION_TAG}.{now.strftime('%Y%m%dT%H%M%S.%fZ')}": record}
    if entry["decision"] != "already_champion":
        tags[PROMOTION_TAG] = record
    return tags


def _challenger(p):
    """@challenger: a plain `dvc repro` points it at the version it registered, and experiments
    move no alias, so promoting without --version never picks an experiment's version. Nor one
    that is not this checkout's model: after `dvc exp apply` the checkout holds the experiment's
    model while @challenger stays (DVC restores the outputs and runs nothing), and a teammate's
    `dvc repro` moves @challenger to their model; promote had judged that one, exit 0."""
    try:
        challenger = tracking.get_version(p.mlflow, "challenger")
    except tracking.NoVersion as err:  # a refusal (401, 403) is said as itself, not as no @challenger
        raise InputError(f"model {p.mlflow.registered_model}: no @challenger to promote (a plain "
                         "`dvc repro` sets it to the version it registers; experiments set no alias): "
                         "run it, or name the version with --version N") from err
    ours = _checkout_fingerprint(p.mlflow.registered_model)
    if ours is None or ours == challenger.tags.get(tracking.FINGERPRINT_TAG):
        return challenger
    version = tracking.version_for_fingerprint(p.mlflow, ours)
    said = (f"version {version.version}" + (f" (registered by experiment {version.tags['dvc.exp_name']})"
                                            if version.tags.get("dvc.exp_name") else "")
            if version else "registered in no version of this store")
    raise UsageError(
        f"@challenger is version {challenger.version}, but this checkout's model ({REGISTERED}) is "
        f"{said}: `dvc exp apply` restores an experiment's model without moving @challenger, and "
        "another checkout's `dvc repro` moves it to its own. Name the version to promote: "
        + (f"--version {version.version} for this checkout's, " if version else "")
        + f"--version challenger for version {challenger.version}")


def _checkout_fingerprint(registered_model: str) -> str | None:
    """The fingerprint of the model this checkout's `dvc repro` registered, if it did."""
    path = tracking.repo_root() / REGISTERED
    if not path.exists():
        return None
    registered = json.loads(path.read_text())
    return registered["fingerprint"] if registered.get("registered_model") == registered_model else None


def _who() -> str:
    """The person promoting: their MLflow account on a team server, and this machine's account."""
    account = getpass.getuser()
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return f"{user} ({account})" if user else account


def _current_champion(p):
    try:
        return tracking.get_version(p.mlflow, "champion")
    except tracking.NoVersion:
        return None


def _models(versions: dict) -> dict[str, CalibratedLightGBM]:
    """Each registered version's model, built from its verified files."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = {role: tracking.fetch_model_files(version, Path(tmp) / role)
                   for role, version in versions.items()}
        return {role: CalibratedLightGBM.from_dir(folder) for role, folder in folders.items()}


def _comparison_rows(test: Path | None) -> pd.DataFrame:
    """The rows both models are compared on: --test's, else the repository's out-of-time split."""
    if test is not None:
        return pd.read_parquet(test)
    return io.read_splits(tracking.repo_root() / SPLIT_DIR, ("test",))["test"]


def _message(entry: dict) -> str:
    v, previous = entry["version"], entry["previous_champion"] or "none"
    if entry["decision"] == "promoted":
        adopted = entry["figures"].get("challenger_label")
        features = entry["figures"].get("challenger_features")
        missing = entry["figures"].get("missing")
        return (f"promoted version {v} to @champion (was {previous})"
                + (f" on {entry['figures']['rows']:,} rows{_left_out(entry['figures'])}"
                   if entry["figures"].get("rows_seen_left_out") else "")
                + (f", adopting its label ({_said(adopted)})" if adopted else "")
                + (f", adopting its features ({_said(features)})" if features else "")
                + (f", adopting a model of other features (the comparison rows lack {_lacking(missing)})"
                   if missing else ""))
    if entry["decision"] == "already_champion":
        # its own gates are judged again by today's params: a champion that now fails them is said
        failing = entry["failed_gates"]
        return (f"version {v} is already @champion"
                + (f", though it fails today's gates: {', '.join(failing)} (promote a version that holds "
                   "them)" if failing else ""))
    f = entry["figures"]
    if entry["failed_gates"] == ["same_label"]:
        return (f"refused version {v}: it predicts another label ({_said(f['challenger_label'])}) than "
                f"@champion {previous} ({_said(f['champion_label'])}), and an AUC on one label's rows "
                "cannot say which predicts better; to adopt the new label, promote it with --new-label "
                f"(its own gates still hold); @champion stays {previous}")
    if entry["failed_gates"] == ["same_features"]:
        mine, theirs = f["challenger_features"], f["champion_features"]
        said = ", ".join(f"{k} {mine[k]} against {theirs.get(k)}" for k in mine if mine[k] != theirs.get(k))
        return (f"refused version {v}: its features are computed otherwise than @champion {previous}'s "
                f"(features: {said}), and the comparison rows hold one way's, which is unfair to the "
                "other; to adopt them, promote it with --new-label (its own gates still hold); "
                f"@champion stays {previous}")
    if entry["failed_gates"] == ["comparable_rows"]:
        return (f"refused version {v}: the comparison rows lack {_lacking(f['missing'])}, so no AUC compares "
                f"it with @champion {previous} (a model of other features); compare on rows that hold both "
                f"models' features with --test, or adopt it with --new-label (its own gates still hold); "
                f"@champion stays {previous}")
    if entry["failed_gates"] == ["unseen_rows"]:
        return (f"refused version {v}: all {f['rows_seen_left_out']:,} comparison rows were scored by "
                f"{f['compared_after']}, the last scoring date it or @champion {previous} was trained or "
                "validated on, so no AUC on them is out of time for both; compare on later rows with --test; "
                f"@champion stays {previous}")
    detail = (f" (AUC {f['challenger_auc']:.4f} vs champion {f['champion_auc']:.4f} on {f['rows']:,} rows"
              + _left_out(f) + ")" if f else "")
    failed = ", ".join(entry["failed_gates"])
    return f"refused version {v}: failed {failed}{detail}; @champion stays {previous}"


def _left_out(figures: dict) -> str:
    n = figures.get("rows_seen_left_out")
    return (f" scored after {figures['compared_after']}; {n:,} a model was trained or validated on left out"
            if n else "")


def _lacking(missing: dict[str, list[str]]) -> str:
    return "; ".join(f"the {role}'s {', '.join(cols)}" for role, cols in missing.items())


def _said(label: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in label.items())
