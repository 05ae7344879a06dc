"""dvc.yaml declares each stage's code exactly: the pipeline modules its command imports, so DVC
re-runs a stage when, and only when, code it runs has changed."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
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
# modules a stage's code imports inside a function that the stage's command never calls, so that
# an edit to them cannot change its outputs; every other import, at any depth, is declared
NOT_REACHED = {
    "pipeline/contract.py": "model.Served checks what MLflow hands the logged model",
    "pipeline/readers.py": "model.Served checks what MLflow hands the logged model",
    "pipeline/catalog.py": "model.Served names the codes of what MLflow hands the logged model",
}
NOT_REACHED_BY_STAGE = {"score": {"pipeline/tracking.py": "cli/score loads a models:/ URI; the stage scores "
                                                         "the folder models/lightgbm"}}


def _declared(stage: str) -> set[str]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    deps = spec.get("do", spec)["deps"]
    return {d for d in deps if d.startswith("pipeline/") and d != "pipeline/templates"}


def _imports(module: str) -> set[str]:
    """Every pipeline module ``module``'s source imports, at the top or inside a function."""
    def source(name: str) -> Path | None:
        path = ROOT.joinpath(*name.split("."))
        return next((p for p in (path / "__init__.py", path.with_suffix(".py")) if p.is_file()), None)

    found = set()
    for node in ast.walk(ast.parse(source(module).read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
            found |= {f"{node.module}.{a.name}" for a in node.names if source(f"{node.module}.{a.name}")}
            found |= {node.module} - {"pipeline"}
    return found


def _all_imports(module: str) -> set[str]:
    """The pipeline files reached from ``module`` through any import, as dvc.yaml names them."""
    seen, todo = set(), [module, "pipeline.cli"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            parts = name.split(".")
            todo += [".".join(parts[:i]) for i in range(2, len(parts))] + sorted(_imports(name))
    files = set()
    for name in seen:
        path = ROOT.joinpath(*name.split("."))
        files.add("pipeline/simulate" if name.startswith("pipeline.simulate") else
                  str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(ROOT)))
    return files


@pytest.mark.parametrize(("stage", "module"), sorted(STAGES.items()))
def test_each_stage_declares_the_code_it_imports(stage, module):
    """What importing the command loads is declared, and so is every import inside its functions
    (decide logged to MLflow through one such import, undeclared) unless the command never calls it."""
    done = subprocess.run([sys.executable, "-c", CLOSURE.format(module=module)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    imported, declared = set(done.stdout.split()), _declared(stage)
    assert imported <= declared, f"{stage}: missing {sorted(imported - declared)}"
    reachable = _all_imports(f"pipeline.cli.{module}")
    assert declared <= reachable, f"{stage}: not imported {sorted(declared - reachable)}"
    unreached = {**NOT_REACHED, **NOT_REACHED_BY_STAGE.get(stage, {})}
    assert reachable - declared <= set(unreached), \
        f"{stage}: imported inside a function, undeclared: {sorted(reachable - declared - set(unreached))}"


def _simulate_keys_read(settings_of) -> list[str]:
    """The ``simulate`` params (calendar keys one by one) whose value reaches what ``settings_of``
    (SimulateSettings -> SimulateSettings) makes of them: each is swapped for a marker in turn, and
    read if the marker comes out, or if the function fails on it (it computed with the value)."""
    from pipeline.config import SimulateSettings, load_params

    simulate = load_params(ROOT / "params.yaml").simulate
    read = []
    for name in SimulateSettings.model_fields:
        inner = type(simulate.calendar).model_fields if name == "calendar" else [None]
        for sub in inner:
            mark = object()
            given = simulate.model_copy(update={name: mark} if sub is None else
                                        {name: simulate.calendar.model_copy(update={sub: mark})})
            try:
                out = settings_of(given)
                kept = (out.__dict__[name] if sub is None else out.calendar.__dict__[sub]) is mark
            except Exception:
                kept = True
            if kept:
                read.append(f"simulate.{name}" + (f".{sub}" if sub else ""))
    return read


def test_the_new_borrowers_stages_declare_the_simulate_params_they_read():
    """simulate_batch and simulate_stream simulate with their own seed, size, dates and replicates:
    declaring all of ``simulate`` re-ran them for the same bytes when one of those changed (the
    stream's 144,000 borrowers take minutes), so each declares the keys that reach its settings."""
    from pipeline.config import load_params
    from pipeline.simulate.new_borrowers import batch_settings, stream_settings
    from pipeline.split import stream_start

    p = load_params(ROOT / "params.yaml")
    months = stream_start(p.monitor, pd.Timestamp("2025-05-17"))  # 'auto' as the split makes it
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, settings_of in (
            ("simulate_batch", lambda s: batch_settings(s, p.incoming)),
            ("simulate_stream", lambda s: stream_settings(s, p.label, months))):
        declared = sorted(k for k in spec[stage]["params"] if k.split(".")[0] == "simulate")
        assert declared == sorted(_simulate_keys_read(settings_of)), stage


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
