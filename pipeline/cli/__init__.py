"""``limitjump``: one command per DVC stage, one module per command.

A command reads params through ``pipeline.config``, calls its stage's pure functions and writes
the outputs atomically. Each module is listed as a dependency of its own DVC stage only.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
from pathlib import Path

import typer

from pipeline.config import (
    ConfigError,
    FeatureSettings,
    Params,
    anchor_at,
    load_params,
    project_dir,
    scheduler_from_environment,
)
from pipeline.errors import InputError, UsageError

# MLflow 3 sends usage events to mlflow.org unless told not to (it stays quiet only when it sees a
# CI or pytest run): a command calls nothing outside the machine and the team's own server.
# Before any command imports MLflow; a user who wants telemetry sets the variable to false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# exit codes: 0 done; 1 bad data (a file, a table, a row the run cannot use); 2 a command that
# cannot run as given (options, params, paths, the cluster's address), as click's own usage errors
DATA_ERROR, USAGE_ERROR = 1, 2

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Predict missed repayments after a credit-limit jump.")

PARAMS = typer.Option(Path("params.yaml"), "--params", help="Params file.")


@app.callback()
def _commands() -> None:
    """Predict missed repayments after a credit-limit jump: one command per DVC stage, and
    the commands a team runs outside the pipeline (promote, score, recommend, server)."""


def params_file(path: Path) -> Path:
    """The params file a command reads: the default params.yaml is the repository's, from
    whichever directory inside it the command runs."""
    if path == Path("params.yaml") and not path.exists():
        return project_dir("pass --params path/to/params.yaml") / "params.yaml"
    return path


def say_feature_settings(built: FeatureSettings | None, asked: FeatureSettings, given: str) -> None:
    """Say that raw tables' features are computed as a model's training computed them (``built``,
    which ``config.as_trained`` applies), where the params file (named ``given``) asks otherwise."""
    if built is None or built == asked:
        return
    mine, wanted = built.model_dump(), asked.model_dump()
    differ = "; ".join(f"features.{k} {mine[k]} ({given}: {wanted[k]})" for k in mine if mine[k] != wanted[k])
    typer.echo(f"the model was trained on features computed with {differ}: raw tables are read so, "
               "and a features file must have been computed so (its values cannot tell)")


def load(path: Path) -> Params:
    """Params (``params_file(path)``), or exit 2 with every bad key named."""
    try:
        path = params_file(path)
        params = load_params(path)
        anchor_at(path)
        return params.model_copy(update={"engine": scheduler_from_environment(params.engine, os.environ)})
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err


# command -> module; each module registers its command when imported
COMMANDS = {"check-params": "check", "simulate": "simulate", "features": "features", "split": "split",
            "tune": "tune", "train": "train", "register": "register", "evaluate": "evaluate",
            "simulate-batch": "incoming", "score": "score", "promote": "promote",
            "simulate-stream": "stream", "monitor": "monitor", "decide": "decide",
            "recommend": "recommend"}
# DVC stages read and write paths relative to the repository: run them there from anywhere in it
# (score and promote take the user's own paths, relative to where the user is)
STAGES = set(COMMANDS) - {"score", "promote", "recommend"}
COMMANDS["server"] = "server"  # not a stage: it runs where it is started (pipeline/cli/server.py)


def _params_from_here(argv: list[str]) -> list[str]:
    """``argv`` with a relative ``--params`` path made absolute: it is the user's, from where they
    are, and a stage then runs at the project directory (it read the repository's params.yaml for
    `--params params.yaml` given in a subdirectory)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--params" and i + 1 < len(out):
            out[i + 1] = str(Path(out[i + 1]).absolute())
        elif arg.startswith("--params="):
            out[i] = "--params=" + str(Path(arg.removeprefix("--params=")).absolute())
    return out


def _enter_project() -> None:
    """Run a stage at its project directory when started below it; elsewhere (a scratch folder
    with a params file) where it is."""
    try:
        os.chdir(project_dir())
    except ConfigError:
        pass


def summary(source: str, name: str) -> str:
    """The first paragraph of command ``name``'s help, read from its module's source: the docstring
    of the function registered as ``@app.command`` under that name, or the ``help`` of the Typer
    group the module adds (``server``)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        registered = isinstance(node, ast.FunctionDef) and any(_registers(d, node.name) == name
                                                               for d in node.decorator_list)
        if registered:
            return " ".join((ast.get_docstring(node) or "").split("\n\n")[0].split())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Typer":
            return next(k.value.value for k in node.keywords if k.arg == "help")
    raise LookupError(f"no command {name!r} in its module")


def _registers(decorator: ast.expr, function: str) -> str | None:
    """The command name an ``@app.command(...)`` decorator gives (typer's default: the function's
    name with dashes), None for any other decorator."""
    if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "command" and getattr(decorator.func.value, "id", None) == "app"):
        return None
    return next((k.value.value for k in decorator.keywords if k.arg == "name"), function.replace("_", "-"))


def _list_commands() -> None:
    """Every command by name and summary, for the command list alone (``limitjump --help``, or a
    command that does not exist): importing every module would take seconds (MLflow, LightGBM,
    matplotlib), so the summaries come from their source."""
    for name, module in COMMANDS.items():
        text = summary(Path(__file__).with_name(f"{module}.py").read_text(), name)
        app.command(name=name, help=text, short_help=text)(_listed_only)


def _listed_only() -> None:
    raise UsageError("a listed command ran without its module")  # never: only listed when none is run


def main() -> None:
    # import only the invoked command's module: a stage should not pay for the others' libraries
    # (MLflow, scikit-learn, matplotlib take seconds to import)
    name = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if name in COMMANDS:
        importlib.import_module(f"pipeline.cli.{COMMANDS[name]}")
    else:
        _list_commands()
    try:
        if name in STAGES and "--help" not in sys.argv:
            sys.argv = _params_from_here(sys.argv)
            _enter_project()
        app()
    except (ConfigError, UsageError) as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(USAGE_ERROR)
    except (InputError, FileNotFoundError) as err:
        typer.echo(f"error: {error_text(err)}", err=True)
        sys.exit(DATA_ERROR)
    except Exception as err:
        refusal = permission_denied(err)
        if refusal is None:
            raise
        typer.echo(f"error: {refusal}", err=True)
        sys.exit(USAGE_ERROR)


def permission_denied(err: Exception) -> str | None:
    """A team server's refusal of a request the user may not make (HTTP 403), in one line, or
    None for any other error. MLflow raises it as its generic exception, with the response body;
    matched by name, so that commands without MLflow never import it."""
    text = str(err)
    if type(err).__name__ not in ("MlflowException", "RestException") or not (
            "error code 403" in text or getattr(err, "error_code", "") == "PERMISSION_DENIED"):
        return None
    endpoint = re.search(r"endpoint (\S+)", text)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "the user")
    return (f"the tracking server refused {endpoint.group(1) if endpoint else 'a request'}: {user} lacks "
            "the permission on this experiment or model (an admin grants it: `limitjump server grant`)")


def error_text(err: Exception) -> str:
    """What the user reads of an error: Arrow's FileNotFoundError carries only the path."""
    if isinstance(err, FileNotFoundError) and not err.strerror:
        return f"{err}: no such file or folder"
    return str(err)
