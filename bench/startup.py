"""Start-up: what each command imports and how long that takes (goals: ``limitjump --help`` in
under 1 s; each command imports only what it uses, and scoring with a local model folder imports
no MLflow). Each command's own ``--help`` is timed too: it imports the command's module only.

Usage: python bench/startup.py [--borrowers 20000] [--project DIR] [--repeats 3] [--json FILE]
In a small prepared project (start-up does not depend on its size): the wall time of
``limitjump --help``, and for ``features``, ``score`` (a local model folder) and ``train
lightgbm`` run to the end under ``python -X importtime``, the seconds spent importing (the sum of
every module's own import time, whenever during the run it was imported) and which of the
libraries that take seconds to import were loaded. Medians of --repeats runs.
"""

from __future__ import annotations

import re
import sys
from statistics import median

from measure import BIN, prepared, project_parser, run, write_json

from pipeline.cli import COMMANDS as ALL_COMMANDS

COMMANDS = {"features": ["features"],
            "score, local model folder": ["score", "--input", "data/features", "--output",
                                          "out/startup.parquet", "--model", "models/lightgbm"],
            "train lightgbm": ["train", "lightgbm"]}
# the libraries whose import costs a second or more here, as Python names them
HEAVY = ("mlflow", "sklearn", "matplotlib", "optbinning", "dask", "lightgbm", "scipy")
LINE = re.compile(r"^import time:\s+(?P<own>\d+) \|\s+\d+ \|(?P<indent>\s*)(?P<module>[\w.]+)\s*$")


def imports(output: str) -> tuple[float, set[str]]:
    """Seconds of import (each module's own time, summed) and the top-level packages loaded, from
    the ``-X importtime`` lines of a run's output. A package counts as loaded when one of its
    submodules was: an import that failed also gets a line (``pipeline/lgbm.py`` makes
    LightGBM's import of scikit-learn fail on purpose), and a package that loads imports parts."""
    seconds, packages = 0.0, set()
    for line in output.splitlines():
        if match := LINE.match(line):
            seconds += int(match["own"]) / 1e6
            top, _, rest = match["module"].partition(".")
            if rest:
                packages.add(top)
    return seconds, packages


def main() -> None:
    parser = project_parser(__doc__)
    parser.set_defaults(borrowers=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with prepared(args, upto="train") as project:
        help_seconds = [run(["limitjump", "--help"], project).wall for _ in range(args.repeats)]
        command_help = {name: median(run(["limitjump", name, "--help"], project).wall
                                     for _ in range(args.repeats)) for name in ALL_COMMANDS}
        commands = {}
        for name, command in COMMANDS.items():
            runs = [imports(run([sys.executable, "-X", "importtime", str(BIN / "limitjump"), *command],
                                project).output) for _ in range(args.repeats)]
            heavy = [h for h in HEAVY if h in runs[0][1]]
            commands[name] = {"import_seconds": [seconds for seconds, _ in runs],
                              "import_seconds_median": median(seconds for seconds, _ in runs),
                              "heavy_libraries": ", ".join(heavy) or "none",
                              "imports_mlflow": "mlflow" in runs[0][1]}
    figures = {"repeats": args.repeats, "help": {"seconds": help_seconds, "median": median(help_seconds),
                                                 "max": max(help_seconds)},
               "command_help": {"seconds": command_help, "slowest": max(command_help.values()),
                                "slowest_command": max(command_help, key=command_help.get)},
               "commands": commands}
    print(f"limitjump --help: median {figures['help']['median']:.2f} s, slowest {max(help_seconds):.2f} s "
          f"(goal < 1 s)")
    slowest = figures["command_help"]["slowest_command"]
    print(f"limitjump <command> --help: slowest {slowest}, median {command_help[slowest]:.2f} s")
    for name, c in commands.items():
        print(f"{name:26}: imports {c['import_seconds_median']:.2f} s (median of {args.repeats}); "
              f"heavy libraries: {c['heavy_libraries']}")
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
