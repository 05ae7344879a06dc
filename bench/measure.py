"""Helpers for the benchmarks: run a command in a scratch project and measure wall time and the
peak memory of its whole process tree (workers included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
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


def run(args: list[str], cwd: Path) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak resident memory of its process tree in MB)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0.0]

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree) / 2**20)
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
    return wall, peak[0]


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
