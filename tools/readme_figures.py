"""Keep the documentation's measured figures equal to the reports they come from.

A figure in README.md or a page of docs/ is written between two markers that name its source, a
path into it and a Python format::

    AUC <!--@ metrics.json/lightgbm/auc .3f-->0.836<!--@-->

The source is a JSON file under ``reports/`` (``monitor/goals.json`` too), then keys, list
positions or ``[field=value]`` (the list's entry whose field has that value: a benchmark's size
by its ``borrowers``, so a run at other sizes fails the check rather than being misread as the
documented ones) separated by ``/``. The format ``verdict`` writes a goal's true or false as "met"
or "missed", and ``verdict<=60`` (or ``<``, ``>=``, ``>``) judges a figure against its goal, so a
verdict cannot outlive the figure it judges. Markdown
hides the comments, so the README reads as plain text. ``python tools/readme_figures.py`` rewrites
every marked figure from the reports; ``--check`` only says which differ (exit 1), which the
end-to-end test runs on a fresh clone's own ``dvc repro`` output.

Usage: python tools/readme_figures.py [--check] [--pages FILE ...] [--reports reports]
(the files default to README.md and docs/*.md)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from pipeline.io import atomic_path

MARK = re.compile(r"<!--@ (?P<source>[^ ]+?\.json)/(?P<path>.+?) (?P<format>[^ ]*?)-->(?P<value>.*?)<!--@-->")
ROOT = Path(__file__).resolve().parents[1]


class FigureError(ValueError):
    """A marker whose source, path or format does not give a figure."""


def lookup(reports: Path, source: str, path: str, cache: dict[str, object]) -> object:
    """The value at ``path`` (keys or list positions, ``/``-separated) in ``reports/source``."""
    if source not in cache:
        try:
            cache[source] = json.loads((reports / source).read_text())
        except (OSError, ValueError) as err:
            hint = "; `./run repro` writes it" if not (reports / source).exists() else ""
            raise FigureError(f"{reports / source}: cannot read ({err}){hint}") from err
    value = cache[source]
    for key in path.split("/"):
        try:
            if key.startswith("[") and key.endswith("]"):
                value = _entry(value, *key[1:-1].split("=", 1))
            else:
                value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise FigureError(f"{source}: no '{path}' (stops at '{key}')") from err
    return value


def _entry(entries: list, field: str, wanted: str) -> object:
    """The first of ``entries`` whose ``field`` is ``wanted`` (compared as numbers where it is one)."""
    for entry in entries:
        found = entry[field]
        if str(found) == wanted or (isinstance(found, int | float) and found == float(wanted)):
            return entry
    raise KeyError(wanted)


VERDICT = re.compile(r"verdict(?P<op><=|>=|<|>)(?P<goal>-?[0-9.]+)")
COMPARE = {"<=": float.__le__, ">=": float.__ge__, "<": float.__lt__, ">": float.__gt__}


def figure(value: object, spec: str) -> str:
    """``value`` in format ``spec`` (``verdict``: a goal's bool as met or missed; ``verdict<=60``:
    met if the figure is at most 60); a negative number
    gets a typographic minus, as the prose has, unless it rounds to zero."""
    if spec == "verdict":
        if not isinstance(value, bool):
            raise FigureError(f"a verdict needs true or false, not {value!r}")
        return "met" if value else "missed"
    if judged := VERDICT.fullmatch(spec):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FigureError(f"'{spec}' needs a number, not {value!r}")
        return "met" if COMPARE[judged["op"]](float(value), float(judged["goal"])) else "missed"
    try:
        text = format(value, spec)
    except (ValueError, TypeError) as err:
        raise FigureError(f"cannot format {value!r} with '{spec}'") from err
    if not text.startswith("-"):
        return text
    return text[1:] if not re.search(r"[1-9]", text) else "\u2212" + text[1:]


def render(text: str, reports: Path) -> tuple[str, list[str]]:
    """``text`` with every marked figure taken from the reports, and a line per figure that changed."""
    cache: dict[str, object] = {}
    changes = []

    def replace(match: re.Match) -> str:
        new = figure(lookup(reports, match["source"], match["path"], cache), match["format"])
        if new != match["value"]:
            line = text.count("\n", 0, match.start()) + 1
            changes.append(f"line {line}: {match['source']}/{match['path']} is {new}, the text says "
                           f"{match['value']}")
        return match.group(0).replace(f"-->{match['value']}<!--@-->", f"-->{new}<!--@-->")

    return MARK.sub(replace, text), changes


def documents() -> list[Path]:
    """The pages whose figures are kept: the README and every page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    parser.add_argument("--pages", type=Path, nargs="+", default=None,
                        help="the pages to keep (default: README.md and docs/*.md)")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)
    statuses = [_keep(path, args.reports, args.check) for path in args.pages or documents()]
    return max(statuses)


def _keep(path: Path, reports: Path, check: bool) -> int:
    """Check or rewrite one page's figures: 0 when they agree (or were rewritten), 1 when
    ``check`` found some stale, 2 when a marker gives no figure."""
    text = path.read_text()
    try:
        rendered, changes = render(text, reports)
    except FigureError as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 2
    for change in changes:
        print(f"{path}: {change}")
    if check:
        return 1 if changes else 0
    if changes:
        with atomic_path(path) as tmp:  # a unique temporary: two writers never share one
            tmp.write_text(rendered)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
          f"{len(MARK.findall(text))} figures, {len(changes)} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
