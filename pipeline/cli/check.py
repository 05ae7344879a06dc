"""``limitjump check-params``: the first DVC stage, upstream of every other.

DVC removes a stage's outputs just before running it, and every stage checks params only when it
starts: a bad value would delete the outputs of the stages it affects before being rejected.
Every stage depends on this one, so DVC runs it first and a bad value stops ``dvc repro`` before
any output is removed. Its output is the same bytes whenever params are valid, so it never makes
a downstream stage run again.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline import io
from pipeline.cli import PARAMS, app, load
from pipeline.cli.paths import PARAMS_REPORT


@app.command(name="check-params")
def check_params(params: Path = PARAMS) -> None:
    """Validate params.yaml (every stage's section) before any stage runs."""
    load(params)
    io.write_json({"params": "valid"}, PARAMS_REPORT)
    typer.echo(f"{params}: valid")
