"""End to end: ``dvc repro`` on the repository's own params in a fresh clone, then again.

The clone holds what git would commit (dvc.lock and the small reports kept in git included), so
this is what a new user gets: the run must reproduce what is committed (every DVC output depends
only on what DVC tracks), produce figures in range and lose no borrower; the second run must do
nothing. On the CPU that made the commit the run leaves ``git status`` clean; on another one
NumPy's vectorised maths (AVX-512 or not) may round the last bit of a float differently, so there
the committed reports must agree to a relative 1e-6 (the model's fingerprint aside) and dvc.lock
may differ only in the hashes of the pipeline's own outputs and of files inside them, never in
code, params or commands.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline import score
from tests.conftest import ROOT, raw_params


def run_ok(args: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def clone_project(dest: Path) -> Path:
    """The working tree's files as git would commit them, in a fresh repository."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], cwd=dest, check=True)
    return dest


def project_env(project: Path) -> dict:
    """The clone's own code first on the path (the installed package points at this checkout)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(project), "DVC_NO_ANALYTICS": "1", "TQDM_DISABLE": "1"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        env.pop(name, None)
    return env


def numbers_agree(a, b, rel: float = 1e-6) -> bool:
    """Two JSON values equal but for floats within ``rel`` of each other."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(numbers_agree(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(numbers_agree(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, int | float) and isinstance(b, int | float)
                and math.isclose(a, b, rel_tol=rel, abs_tol=1e-12))
    return a == b


def lock_agrees(committed: dict, fresh: dict) -> bool:
    """The same stages, commands, params and hashes of every dependency the pipeline does not
    write itself (code, params.yaml); the hashes of its outputs may differ."""
    written = [o["path"] for stage in fresh["stages"].values() for o in stage.get("outs", [])]

    def is_written(path: str) -> bool:  # an output, or a file inside an output folder
        return any(path == out or path.startswith(f"{out}/") for out in written)

    def fixed(stage: dict) -> dict:
        return {"cmd": stage["cmd"], "params": stage.get("params"),
                "deps": [d for d in stage.get("deps", []) if not is_written(d["path"])],
                "outs": [o["path"] for o in stage.get("outs", [])]}
    return ({k: fixed(v) for k, v in committed["stages"].items()}
            == {k: fixed(v) for k, v in fresh["stages"].items()})


def assert_reproduces_commit(project: Path) -> None:
    """Every tracked file the run rewrote is dvc.lock (outputs' hashes only) or a JSON report
    equal to the committed one up to the last bits of its floats."""
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True,
                            check=True).stdout
    for line in status.splitlines():
        name = line[3:]
        before = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=project, capture_output=True,
                                text=True).stdout
        after = (project / name).read_text() if (project / name).is_file() else ""
        if name == "dvc.lock":
            assert lock_agrees(yaml.safe_load(before), yaml.safe_load(after)), \
                "dvc.lock differs in code, params or commands: the commit's outputs are stale"
        else:
            assert name.startswith("reports/") and name.endswith(".json"), f"the run changed {line}"
            assert numbers_agree(without_fingerprints(json.loads(before)),
                                 without_fingerprints(json.loads(after))), f"{name} differs from the commit"


def without_fingerprints(report):
    """A report without the hashes of the pipeline's own outputs (gates.json's model fingerprint),
    which change with their last bits, as their hashes in dvc.lock do."""
    if not isinstance(report, dict):  # the plots' tables are lists of points
        return report
    return {k: v for k, v in report.items() if not k.endswith("fingerprint")}


def test_json_and_lock_comparisons_tell_rounding_from_change():
    assert numbers_agree({"auc": 0.8354000000000001, "n": [3, "a"]}, {"auc": 0.8354, "n": [3, "a"]})
    assert not numbers_agree({"auc": 0.8354}, {"auc": 0.8355})
    assert not numbers_agree({"auc": 0.8354}, {"auc": 0.8354, "ks": 0.5})
    assert not numbers_agree({"note": "a"}, {"note": "b"})
    assert without_fingerprints({"challenger_fingerprint": "9165", "passed": True}) == {"passed": True}
    lock = {"stages": {"a": {"cmd": "x", "deps": [{"path": "pipeline/a.py", "md5": "1"}],
                             "outs": [{"path": "data/a", "md5": "2"}]},
                       "b": {"cmd": "y", "deps": [{"path": "data/a", "md5": "2"}],
                             "outs": [{"path": "data/b", "md5": "3"}]}}}
    rounded = yaml.safe_load(yaml.safe_dump(lock))
    rounded["stages"]["a"]["outs"][0]["md5"] = rounded["stages"]["b"]["deps"][0]["md5"] = "9"
    assert lock_agrees(lock, rounded)
    stale = yaml.safe_load(yaml.safe_dump(lock))
    stale["stages"]["a"]["deps"][0]["md5"] = "8"
    assert not lock_agrees(lock, stale)
    # a stage may depend on one file of another's output folder (monitor on data/split/train.parquet)
    inner = yaml.safe_load(yaml.safe_dump(lock))
    inner["stages"]["b"]["deps"].append({"path": "data/a/part.parquet", "md5": "4"})
    rerun = yaml.safe_load(yaml.safe_dump(inner))
    rerun["stages"]["b"]["deps"][-1]["md5"] = "5"
    assert lock_agrees(inner, rerun)
    beside = yaml.safe_load(yaml.safe_dump(inner))  # data/ab.parquet is not inside data/a
    beside["stages"]["b"]["deps"][-1]["path"] = "data/ab.parquet"
    beside_changed = yaml.safe_load(yaml.safe_dump(beside))
    beside_changed["stages"]["b"]["deps"][-1]["md5"] = "5"
    assert not lock_agrees(beside, beside_changed)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_fresh_clone_repro_is_clean_in_range_and_then_idle(tmp_path):
    project = clone_project(tmp_path / "clone")
    env = project_env(project)
    committed = {name: (project / "reports" / name).read_text()
                 for name in ("metrics.json", "gates.json", "simulation.json", "split.json")}
    first = run_ok(["dvc", "repro"], project, env)
    assert "Running stage 'simulate'" in first and "Running stage 'score'" in first
    assert_reproduces_commit(project)

    p = raw_params()
    metrics = json.loads(committed["metrics.json"])
    assert set(metrics) == {"lightgbm", "scorecard", "truth", "gates_passed"}
    assert sum(len(v) if isinstance(v, dict) else 1 for v in metrics.values()) <= 25
    assert 0.75 < metrics["lightgbm"]["auc"] < metrics["truth"]["auc"] < 1
    assert metrics["lightgbm"]["auc"] > metrics["scorecard"]["auc"] and metrics["gates_passed"] == 1
    assert 0 <= metrics["lightgbm"]["ece"] < 0.05 and 0 <= metrics["lightgbm"]["psi"] < 0.1
    split = json.loads(committed["split.json"])
    # every borrower in one split or in the embargo between them
    assert sum(split[name]["rows"] for name in ("train", "valid", "test", "embargo")) == \
        p["simulate"]["n_borrowers"]
    summary = json.loads((project / "data" / "scored" / "scores.summary.json").read_text())
    assert summary["borrowers_in"] == summary["scored"] + summary["rejected"] == p["incoming"]["n_borrowers"]
    scores = pd.read_parquet(project / "data" / "scored" / "scores.parquet")
    assert len(scores) == summary["scored"] and scores["borrower_id"].is_unique
    assert scores["probability"].between(0, 1).all()
    assert scores["model_version"].str.startswith("local:").all()  # the pipeline's own model
    # the increase decision: every policy judged on the truth; the oracle may always choose none
    policies = json.loads((project / "reports" / "decision.json").read_text())["policies"]
    assert all(0 <= v["miss_rate"] <= 1 for v in policies.values())
    assert policies["oracle"]["profit_per_borrower"] > policies["no_increase"]["profit_per_borrower"]
    assert policies["oracle"]["profit_per_borrower"] >= policies["platform"]["profit_per_borrower"] or \
        policies["platform"]["miss_rate"] > policies["oracle"]["miss_rate"]
    assert sum(policies["ours"]["binding_reason"].values()) == pytest.approx(1.0)
    card = (project / "reports" / "model_card.html").read_text()
    assert f"{metrics['lightgbm']['auc']:.4f}" in card
    # the cause model against the simulated causes: better than its baselines, below the truth's
    # split, and technical actions that answer what broke more often than one action for all
    evaluation = json.loads((project / "reports" / "evaluation.json").read_text())["lightgbm"]
    causes = evaluation["cause_model"]
    baselines = causes["baselines"]
    # 0.15: the risk model's contributions by category rose from 0.509 to 0.560 on the defaults
    # when manual_due_dates (technical) joined them, 2026-12-05; the cause model leads by 0.19
    assert max(baselines["always_liquidity"], baselines["risk_contributions_by_category"]) + 0.15 \
        < causes["accuracy"] < baselines["truth_argmax"]
    assert all(v["recall"] > 0.6 for v in causes["by_cause"].values())
    actions = causes["technical_actions"]
    assert actions["answered"] > 0.9 and actions["answered"] > actions["answered_by_one_action"] + 0.3
    assert actions["answered_as_scored"] <= actions["answered"]
    assert "does the action answer what broke" in card
    technical = scores[scores["leading_cause"] == "technical"]
    said = score.action_key_of(technical["action"])  # a timed action given no date too
    assert said.isin(["technical", "check", "manual", "maintenance"]).all()
    assert said.eq("manual").any() and said.eq("check").any()
    # a timed action names its date, or says it has none
    for key, column in score.DATED.items():
        timed = said.eq(key)
        assert (technical.loc[timed, column].notna()
                | technical.loc[timed, "action"].str.endswith(score.UNDATED[column])).all(), key
    # the maintenance floor: the split's history of stopped debits is the model's, and the
    # out-of-time borrowers it lifted did miss
    history = json.loads((project / "data" / "split" / "maintenance.json").read_text())
    assert 0 < history["missed"] <= history["due_dates"]
    calibration = json.loads((project / "models" / "lightgbm" / "calibration.json").read_text())
    assert calibration["maintenance"] == history
    # the label it was trained for travels with the model: a scorer takes features on its window
    label = json.loads((project / "models" / "lightgbm" / "label.json").read_text())
    assert label == yaml.safe_load((project / "params.yaml").read_text())["label"]
    floor = evaluation["maintenance_floor"]
    assert floor["rows_lifted"] > 0 and floor["misses_among_lifted"] >= 0.9 * floor["rows_lifted"]
    assert floor["auc"] >= floor["auc_without_floor"] and "Maintenance floor" in card
    # the forgetting floor: the training rows' prior, and the borrowers it lifted miss about as
    # often as it says (a binomial band of 4 standard errors around their mean probability)
    forgetting = evaluation["forgetting_floor"]
    assert calibration["forgetting"] == forgetting["history"] and 0 < forgetting["history"]["a"]
    lifted, mean_p = forgetting["rows_lifted"], forgetting["mean_p_lifted"]
    assert lifted > 0 and forgetting["mean_p_lifted_without_floor"] < mean_p
    assert abs(forgetting["misses_among_lifted"] - lifted * mean_p) <= 4 * math.sqrt(lifted * mean_p) + 2
    assert "Forgetting floor" in card
    # the lapse floor, where the training rows had a lapsed agreement: their history is the model's
    lapse = evaluation.get("lapse_floor")
    assert calibration.get("lapse") == (lapse or {}).get("history")
    assert ("Lapse floor" in card) == bool(lapse)
    if lapse:
        assert lapse["misses_among_lifted"] >= lapse["rows_lifted"] / 2
    # the README's figures are this run's (tools/readme_figures.py writes them from reports/)
    figures = subprocess.run([sys.executable, "tools/readme_figures.py", "--check"], cwd=project, env=env,
                             capture_output=True, text=True)
    assert figures.returncode == 0, f"README differs from the reports:\n{figures.stdout}{figures.stderr}"

    second = run_ok(["dvc", "repro"], project, env)
    assert "Running stage" not in second, second
    assert "Data and pipelines are up to date" in run_ok(["dvc", "status"], project, env)
    # a new search result retrains the model that reads it, not the scorecard
    best = project / "reports" / "tune" / "best.json"
    kept = best.read_bytes()
    best.write_bytes(kept + b" ")
    changed = run_ok(["dvc", "status"], project, env)
    best.write_bytes(kept)
    assert "train@lightgbm" in changed and "train@scorecard" not in changed, changed
    assert "lightgbm.auc" in run_ok(["dvc", "metrics", "show"], project, env)
    # the plots page works offline and tells the models apart by colour
    run_ok(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], project, env)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "<script src=" not in page and "vegaEmbed" in page
    assert page.count('"color": {"field": "filename"') >= 6
