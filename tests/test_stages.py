"""dvc.yaml declares each stage's code exactly: the pipeline modules its command imports, so DVC
re-runs a stage when, and only when, code it runs has changed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

STAGES = {"check_params": "check", "simulate": "simulate", "features": "features", "split": "split",
          "tune": "tune", "train": "train", "register": "register", "evaluate": "evaluate",
          "simulate_batch": "incoming", "score": "score", "simulate_stream": "stream", "monitor": "monitor"}
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
