"""``limitjump server``: a team's MLflow server on PostgreSQL with basic authentication.

Not a DVC stage: it runs on the machine that hosts the team's store, and its paths are relative
to where it is started. The work is in ``pipeline.team``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline import mlflow_users, team
from pipeline.cli import app

# main() moves to the repository for DVC stages after importing the command's module: the user's
# own directory is the one at import time
_INVOKED_IN = Path.cwd()

server_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="A team's MLflow server: PostgreSQL, served artifacts, basic auth.")
app.add_typer(server_app, name="server")

DATA_DIR = typer.Option("--data-dir", help="Where PostgreSQL's data, the artifacts and the logs live.")


def _path(path: Path) -> Path:
    return path if path.is_absolute() else _INVOKED_IN / path


@server_app.command()
def start(data_dir: Annotated[Path, DATA_DIR],
          host: Annotated[str | None, typer.Option(
              help=f"Address the MLflow server listens on (default: the last start's, else {team.HOST}).")]
          = None,
          port: Annotated[int | None, typer.Option(
              help=f"The MLflow server's port (default: the last start's, else {team.MLFLOW_PORT}).")] = None,
          pg_port: Annotated[int | None, typer.Option(
              help=f"PostgreSQL's port, on 127.0.0.1 (default: the last start's, else {team.PG_PORT}).")]
          = None,
          workers: Annotated[int | None, typer.Option(
              help="MLflow server worker processes (default: the last start's, else 2).")] = None,
          allowed_hosts: Annotated[str | None, typer.Option(
              help="Host names clients use, needed with a --host other than loopback (default: the "
                   "last start's).")] = None,
          default_permission: Annotated[str | None, typer.Option(
              help="What an authenticated user may do where nothing was granted: "
                   f"{', '.join(team.DEFAULT_PERMISSIONS)} (default: the last start's, else READ).")]
          = None) -> None:
    """Start PostgreSQL and the MLflow server; the first start creates them (MLFLOW_AUTH_ADMIN_PASSWORD)."""
    state = team.start(_path(data_dir), host=host, port=port, pg_port=pg_port, workers=workers,
                       allowed_hosts=allowed_hosts, default_permission=default_permission)
    typer.echo(f"MLflow server at {state['url']} (PostgreSQL on 127.0.0.1:{state['pg_port']}); "
               f"logs in {state['data_dir']}\n"
               f"export MLFLOW_TRACKING_URI={state['url']} "
               "MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=...")


@server_app.command()
def stop(data_dir: Annotated[Path, DATA_DIR]) -> None:
    """Stop the MLflow server, then PostgreSQL."""
    stopped = team.stop(_path(data_dir))
    typer.echo(", ".join(f"{name} {'stopped' if was else 'was not running'}"
                         for name, was in stopped.items()))


@server_app.command()
def status(data_dir: Annotated[Path, DATA_DIR]) -> None:
    """What runs for the data directory (JSON); exit 1 unless both servers run."""
    state = team.status(_path(data_dir))
    typer.echo(json.dumps(state, indent=2))
    if not (state["postgres"] and state["mlflow"]):
        raise typer.Exit(1)


@server_app.command()
def backup(data_dir: Annotated[Path, DATA_DIR],
           output: Annotated[Path | None, typer.Option(
               help="Folder for the dumps (default: the data directory's backups/).")] = None) -> None:
    """pg_dump both databases (runs and registry; users and permissions) while the server runs."""
    for path in team.backup(_path(data_dir), output and _path(output)):
        typer.echo(str(path))


@server_app.command()
def upgrade(data_dir: Annotated[Path, DATA_DIR],
            pg_port: Annotated[int | None, typer.Option(
                help="PostgreSQL's port if it is not running (default: the last start's).")] = None) -> None:
    """After upgrading MLflow: migrate both databases to its schema (mlflow db upgrade), server stopped."""
    for command in team.upgrade(_path(data_dir), pg_port):
        typer.echo(f"done: {command}")


URL = typer.Option("--url", envvar="MLFLOW_TRACKING_URI", help="The server (default: $MLFLOW_TRACKING_URI).")


PASSWORD_ENV = typer.Option(help="Variable holding the user's new password; prompted for if unset.")


def _new_password(username: str, password_env: str) -> str:
    return os.environ.get(password_env) or typer.prompt(f"new password for {username}", hide_input=True,
                                                        confirmation_prompt=True)


@server_app.command(name="add-user")
def add_user(username: str, url: Annotated[str, URL],
             password_env: Annotated[str, PASSWORD_ENV] = "LIMITJUMP_USER_PASSWORD") -> None:
    """Create a user (as an admin: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)."""
    admin = mlflow_users.credentials_from_env()
    created = mlflow_users.create_user(url, admin, username, _new_password(username, password_env))
    typer.echo(f"user {username} {'created' if created else 'already exists, with this password'}")


@server_app.command(name="set-password")
def set_password(username: str, url: Annotated[str, URL],
                 password_env: Annotated[str, PASSWORD_ENV] = "LIMITJUMP_USER_PASSWORD") -> None:
    """Give a user a new password (as an admin); the server's workers take it within a minute."""
    admin = mlflow_users.credentials_from_env()
    mlflow_users.set_password(url, admin, username, _new_password(username, password_env))
    typer.echo(f"user {username}: password changed")


@server_app.command()
def grant(username: str, url: Annotated[str, URL],
          permission: Annotated[str, typer.Option(
              help="READ, USE, EDIT, MANAGE, or DENY to revoke access.")] = "READ",
          experiment: Annotated[str | None, typer.Option(help="Experiment name, or * for all.")] = None,
          model: Annotated[str | None, typer.Option(
              help="Registered model name, or * for all.")] = None) -> None:
    """Grant a permission on an experiment and/or a registered model (as an admin)."""
    admin = mlflow_users.credentials_from_env()
    granted = mlflow_users.grant(url, admin, username, permission.upper(), experiment, model)
    for resource_type, resource_id in granted:
        typer.echo(f"{username}: {permission.upper()} on {resource_type} {resource_id}")
