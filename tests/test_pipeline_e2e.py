"""End to end: ``dvc repro`` on the repository's own params in a fresh clone, then again.

The clone holds what git would commit (dvc.lock and the small reports kept in git included), so
this is what a new user gets: the run must leave ``git status`` clean (every DVC output depends
only on what DVC tracks and the same params give the same bytes), produce figures in range and
lose no borrower; the second run must do nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

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


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_fresh_clone_repro_is_clean_in_range_and_then_idle(tmp_path):
    project = clone_project(tmp_path / "clone")
    env = project_env(project)
    committed = {name: (project / "reports" / name).read_text()
                 for name in ("metrics.json", "gates.json", "simulation.json", "split.json")}
    first = run_ok(["dvc", "repro"], project, env)
    assert "Running stage 'simulate'" in first and "Running stage 'score'" in first
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True,
                            check=True).stdout
    assert status == "", f"the run changed tracked files (outputs differ from dvc.lock):\n{status}"
    for name, text in committed.items():
        assert (project / "reports" / name).read_text() == text, name

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
    card = (project / "reports" / "model_card.html").read_text()
    assert f"{metrics['lightgbm']['auc']:.4f}" in card
    # the README's figures are this run's (tools/readme_figures.py writes them from reports/)
    figures = subprocess.run([sys.executable, "tools/readme_figures.py", "--check"], cwd=project, env=env,
                             capture_output=True, text=True)
    assert figures.returncode == 0, f"README differs from the reports:\n{figures.stdout}{figures.stderr}"

    second = run_ok(["dvc", "repro"], project, env)
    assert "Running stage" not in second, second
    assert "Data and pipelines are up to date" in run_ok(["dvc", "status"], project, env)
    assert "lightgbm.auc" in run_ok(["dvc", "metrics", "show"], project, env)
    # the plots page works offline and tells the models apart by colour
    run_ok(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], project, env)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "<script src=" not in page and "vegaEmbed" in page
    assert page.count('"color": {"field": "filename"') >= 6
