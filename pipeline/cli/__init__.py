"""``limitjump``: one command per DVC stage, one module per command.

A command reads params through ``pipeline.config``, calls its stage's pure functions and writes
the outputs atomically. Each module is listed as a dependency of its own DVC stage only.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import typer

from pipeline.config import ConfigError, Params, load_params, project_dir
from pipeline.errors import InputError, UsageError

# exit codes: 0 done; 1 bad data (a file, a table, a row the run cannot use); 2 a command that
# cannot run as given (options, params, paths, the cluster's address), as click's own usage errors
DATA_ERROR, USAGE_ERROR = 1, 2

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Predict missed repayments after a credit-limit jump.")

PARAMS = typer.Option(Path("params.yaml"), "--params", help="Params file.")


@app.callback()
def _commands() -> None:
    """Predict missed repayments after a credit-limit jump: one command per DVC stage."""


def load(path: Path) -> Params:
    """Params, or exit 2 with every bad key named. The default params.yaml is the repository's,
    from whichever directory inside it the command runs."""
    try:
        if path == Path("params.yaml") and not path.exists():
            path = project_dir() / "params.yaml"
        return load_params(path)
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err


# command -> module; each module registers its command when imported
COMMANDS = {"check-params": "check", "simulate": "simulate", "features": "features", "split": "split",
            "tune": "tune", "train": "train", "register": "register", "evaluate": "evaluate",
            "simulate-batch": "incoming", "score": "score", "promote": "promote",
            "simulate-stream": "stream", "monitor": "monitor"}
# DVC stages read and write paths relative to the repository: run them there from anywhere in it
# (score and promote take the user's own paths, relative to where the user is)
STAGES = set(COMMANDS) - {"score", "promote"}
COMMANDS["server"] = "server"  # not a stage: it runs where it is started (pipeline/cli/server.py)


def _enter_project() -> None:
    """Run a stage at its project directory when started below it; elsewhere (a scratch folder
    with a params file) where it is."""
    try:
        os.chdir(project_dir())
    except ConfigError:
        pass


def main() -> None:
    # import only the invoked command's module: a stage should not pay for the others' libraries
    # (MLflow, scikit-learn, matplotlib take seconds to import); --help imports them all
    name = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    for module in [COMMANDS[name]] if name in COMMANDS else sorted(set(COMMANDS.values())):
        importlib.import_module(f"pipeline.cli.{module}")
    try:
        if name in STAGES and "--help" not in sys.argv:
            _enter_project()
        app()
    except (ConfigError, UsageError) as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(USAGE_ERROR)
    except (InputError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(DATA_ERROR)
