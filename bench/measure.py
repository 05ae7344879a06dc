"""Helpers for the benchmarks: run a command in a scratch project and measure wall time and the
peak memory of its whole process tree (workers included)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def scratch_project(where: Path, overrides: dict) -> Path:
    """A directory with the repository's params.yaml, some keys overridden."""
    where.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return where


@dataclass
class Measured:
    wall: float  # seconds
    cpu: float  # seconds of user + system time, whole process tree
    peak: float  # MB, whole process tree at its largest
    peak_per_process: float  # MB, the largest single process (a worker, say)
    output: str


def run(args: list[str], cwd: Path, env: dict | None = None) -> Measured:
    """Run a command; time it and sample the resident memory of its process tree."""
    # a scratch project is no repository: its MLflow store is its own file
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{Path(cwd).resolve() / 'mlflow.db'}", **(env or {})}
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak, peak_one = [0.0], [0.0]

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                sizes = [p.memory_info().rss / 2**20 for p in [root, *root.children(recursive=True)]]
                peak[0], peak_one[0] = max(peak[0], sum(sizes)), max(peak_one[0], max(sizes))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.decode()}")
    return Measured(wall, _children_cpu() - cpu_before, peak[0], peak_one[0], out.decode())


def _children_cpu() -> float:
    """CPU seconds of every finished descendant: a worker's count once its parent waited for
    it, so a run's tree is complete after the run."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


# each stage a benchmark's project may need, and the output that shows it ran
STAGES = ((["simulate"], "data/raw"), (["features"], "data/features"), (["split"], "data/split"),
          (["train", "lightgbm"], "models/lightgbm"))


def prepare(where: Path | None, borrowers: int, upto: str, overrides: dict | None = None) -> Path:
    """A scratch project of ``borrowers`` borrowers with the stages up to ``upto`` run. A ``where``
    that already holds a params.yaml is reused as configured, and only its stages whose output is
    missing run: a project one benchmark simulated serves the next."""
    if where is None or not (where / "params.yaml").exists():
        where = where or Path(tempfile.mkdtemp(prefix=f"bench-{borrowers}-"))
        scratch_project(where, {"simulate.n_borrowers": borrowers, "engine.workers": 2, **(overrides or {})})
    for stage, output in STAGES:
        if not (where / output).exists():
            measured = run(["limitjump", *stage], where)
            print(f"  prepared: limitjump {' '.join(stage)} in {measured.wall:.1f} s", flush=True)
        if stage[0] == upto:
            break
    return where


def split_matrices(project: Path, names: tuple[str, ...] = ("train", "valid", "test")) -> tuple:
    """The split frames of a project whose split stage ran, their feature columns and which of
    them are categorical, each frame as the model's matrix, and each row's cause code (-1: no miss).
    Returns (frames, matrices, codes, columns, categorical), the first three keyed by split."""
    # imported here: the other benchmarks measure commands and need none of it
    from pipeline import causes, io, train
    from pipeline.model import encode

    frames = io.read_splits(project / "data" / "split", names)
    columns = train.feature_columns(frames[names[0]])
    categorical = train.categorical_columns(frames[names[0]], columns)
    categories = train.learn_categories(frames[names[0]], columns)
    matrices = {n: encode(f, columns, categories) for n, f in frames.items()}
    codes = {n: causes.cause_codes(f[causes.MISS_CAUSE]) for n, f in frames.items()}
    return frames, matrices, codes, columns, categorical


def write_json(path: Path, figures: dict) -> None:
    """A benchmark's figures, for the README (``tools/readme_figures.py`` reads them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n")


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def project_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of a benchmark that runs in a prepared scratch project."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--borrowers", type=int, default=1_000_000)
    parser.add_argument("--project", type=Path, help="reuse a scratch project (kept after); the stages "
                        "the benchmark needs whose output is missing run first")
    parser.add_argument("--json", type=Path, help="write the figures the docs quote here")
    return parser


def on_built_project(doc: str | None, measure: Callable[[Path], dict], needed: tuple[str, ...]) -> None:
    """The command line of a benchmark that reads a project ``./run repro`` built (--project,
    default this repository; --json): checks the ``needed`` paths are there, measures, writes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--json", type=Path, help="write the figures the docs quote here")
    args = parser.parse_args()
    for path in needed:
        if not (args.project / path).exists():
            parser.error(f"{args.project / path} is missing: run ./run repro first")
    figures = measure(args.project)
    if args.json:
        write_json(args.json, figures)


@contextmanager
def prepared(args: argparse.Namespace, upto: str) -> Iterator[Path]:
    """The project of ``--project``, or a new one removed at the end."""
    project = prepare(args.project, args.borrowers, upto)
    try:
        yield project
    finally:
        if args.project is None:
            clean(project)
