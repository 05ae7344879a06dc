"""End to end: ``dvc repro`` on a small configuration in a temporary clone, then again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, merge, raw_params

E2E = {"engine": {"workers": 2},
       "simulate": {"n_borrowers": 4000, "shard_size": 2000, "truth_replicates": 4},
       "incoming": {"n_borrowers": 1000},
       "train": {"lightgbm": {"num_boost_round": 200}},
       # 4,000 borrowers cannot meet the production gate; this test is about the pipeline
       "register": {"min_oot_auc": 0.5, "max_calibration_error": 0.5, "min_gain_over_scorecard": -1.0}}


def _run(args: list[str], cwd: Path, env: dict) -> str:
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
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(project), "DVC_NO_ANALYTICS": "1", "TQDM_DISABLE": "1"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_repro_then_nothing_to_do(tmp_path):
    project = clone_project(tmp_path / "clone")
    (project / "params.yaml").write_text(yaml.safe_dump(merge(raw_params(), E2E), sort_keys=False))
    env = project_env(project)
    first = _run(["dvc", "repro"], project, env)
    assert "Running stage 'simulate'" in first
    second = _run(["dvc", "repro"], project, env)
    assert "Running stage" not in second, second
    assert "Data and pipelines are up to date" in _run(["dvc", "status"], project, env)
    assert (project / "reports" / "simulation.json").exists()
