"""dvc.yaml declares each stage's code exactly: the pipeline modules its command imports, so DVC
re-runs a stage when, and only when, code it runs has changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

STAGES = {"check_params": "check", "simulate": "simulate", "features": "features", "split": "split",
          "tune": "tune", "train": "train", "register": "register", "evaluate": "evaluate",
          "simulate_batch": "incoming", "score": "score", "simulate_stream": "stream", "monitor": "monitor",
          "decide": "decide"}
# stages whose command writes to this machine's MLflow store, a side effect DVC does not see. Not
# tune: its result is kept in git on purpose, so that a fresh clone reuses a search (40 trials)
# instead of repeating it; its runs are the search's history on the machine that ran it.
MLFLOW_STAGES = ("train", "register", "decide", "monitor", "evaluate")
CLOSURE = """
import importlib, pathlib, sys
importlib.import_module("pipeline.cli.{module}")
root = pathlib.Path.cwd()
for name in sorted(k for k in sys.modules if k.startswith("pipeline.")):
    path = pathlib.Path(sys.modules[name].__file__).relative_to(root)
    print("pipeline/simulate" if path.parts[1] == "simulate" else path)
"""


def _declared(stage: str) -> set[str]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    deps = spec.get("do", spec)["deps"]
    return {d for d in deps if d.startswith("pipeline/") and d != "pipeline/templates"}


@pytest.mark.parametrize(("stage", "module"), sorted(STAGES.items()))
def test_each_stage_declares_the_code_it_imports(stage, module):
    done = subprocess.run([sys.executable, "-c", CLOSURE.format(module=module)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    imported = set(done.stdout.split())
    assert _declared(stage) == imported, (f"{stage}: missing {sorted(imported - _declared(stage))}, "
                                          f"not imported {sorted(_declared(stage) - imported)}")


def test_the_committed_lock_matches_the_code_and_params():
    """dvc.lock records the code and params the committed reports came from: a change to either
    without ``dvc repro`` leaves the reports stale (the end-to-end test finds it ten minutes later)."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    written = {out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "status", "--json"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    stale = {stage: sorted(path for change in changes if isinstance(change, dict)
                           for path, state in change.get("changed deps", {}).items()
                           if path not in written and state != "deleted")
             for stage, changes in json.loads(done.stdout or "{}").items()}
    assert not {stage: paths for stage, paths in stale.items() if paths}, \
        "code or params changed since dvc.lock was written: run `dvc repro` and commit its outputs"


@pytest.mark.parametrize("stage", MLFLOW_STAGES)
def test_a_stage_that_writes_to_mlflow_runs_again_in_a_fresh_clone(stage):
    """The MLflow store belongs to the machine, not to git. A stage that logs or registers needs an
    output git does not hold (cached by DVC, or ignored): with every output in git, DVC finds a fresh
    clone current and skips it, and that clone's registry stays empty (``limitjump promote`` then
    finds nothing to promote)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    outs = [(o, True) if isinstance(o, str) else (next(iter(o)), next(iter(o.values())).get("cache", True))
            for o in spec.get("do", spec).get("outs", [])]
    outside_git = [path for path, cached in outs
                   if cached or subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0]
    assert outside_git, f"{stage}: every output is kept in git: {[path for path, _ in outs]}"
