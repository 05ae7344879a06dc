"""The command line: ``limitjump --help`` lists every command without importing any (it took
4 s when it imported them all), with the summaries the commands' own help gives."""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer

from pipeline import cli
from tests.conftest import ROOT

HELP_IMPORTS = """
import sys
sys.argv = ["limitjump", "--help"]
from pipeline.cli import main
try:
    main()
except SystemExit as done:
    assert done.code == 0, done.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("lightgbm", "mlflow", "sklearn", "matplotlib")
               or m.startswith("pipeline.cli."))
print("imported:", *heavy)
"""


def test_the_command_list_imports_no_command_and_names_them_all():
    done = subprocess.run([sys.executable, "-c", HELP_IMPORTS], cwd=ROOT, capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "imported:", done.stdout.splitlines()[-1]
    for name in cli.COMMANDS:
        assert f" {name} " in done.stdout, name


def test_each_summary_read_from_source_is_the_commands_own_help():
    for module in set(cli.COMMANDS.values()):
        importlib.import_module(f"pipeline.cli.{module}")
    commands = typer.main.get_command(cli.app).commands
    for name, module in cli.COMMANDS.items():
        own = commands[name].help or ""
        first = " ".join(own.split("\n\n")[0].split())
        source = (ROOT / "pipeline" / "cli" / f"{module}.py").read_text()
        assert cli.summary(source, name) == first, name


def test_an_unknown_command_is_a_usage_error():
    done = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "no-such-command"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "No such command" in done.stderr


def test_the_score_command_imports_no_mlflow_scikit_learn_or_matplotlib():
    """MLflow is imported only to fetch a registered model; scoring a local folder never needs it."""
    code = ("import sys, pipeline.cli.score\n"
            "print(*sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'sklearn', 'matplotlib'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
