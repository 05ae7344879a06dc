"""The process trees of the team's servers (PostgreSQL, the MLflow server and its workers): telling a
server we started from a later process given the same id, and stopping all of it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil

STOP_TIMEOUT = 30.0  # seconds a server gets to stop on its signal before SIGKILL


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def started(p: psutil.Process) -> float:
    """When ``p`` started, as the mark that tells it from a later process given the same id.

    On Linux, the seconds from boot to its start, read from ``/proc``: no clock adjustment moves
    them. psutil's ``create_time`` adds the boot time the kernel reports now, which on a virtual
    machine moved by a second between the command that started a server and the one that stopped
    it, so the server looked like another process and was left running."""
    try:
        raw = Path(f"/proc/{p.pid}/stat").read_bytes()
    except FileNotFoundError:
        if sys.platform.startswith("linux"):
            raise psutil.NoSuchProcess(p.pid) from None
        return p.create_time()
    return int(raw[raw.rindex(b")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")


def _same_process(p: psutil.Process, entry: dict) -> bool:
    if "started" in entry:
        return abs(started(p) - entry["started"]) < 1e-6
    # server.json written before "started": the wall-clock start, allowing for the drift above
    return abs(p.create_time() - entry["create_time"]) <= 2


def identity(p: psutil.Process) -> dict:
    return {"pid": p.pid, "started": started(p)}


def _group(pgid: int) -> list[psutil.Process]:
    """The processes of process group ``pgid``."""
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return members


def _tree(pid: int, identity: dict | None = None) -> list[psutil.Process]:
    """The live processes a server started as ``pid`` (in a session of its own) left: it, its
    descendants and the rest of its process group. When the leader dies (kill -9), its children
    are reparented to init but stay in its group, still serving the port; Linux gives no new
    process an id that a group still bears, so the group is ours while it has members. A live
    ``pid`` whose start differs from ``identity`` (as in ``server.json``) is another process that
    reused the id, once the group was empty: nothing of ours."""
    procs = set(_group(pid))
    try:
        root = psutil.Process(pid)
        if identity is not None and not _same_process(root, identity):
            return []
        procs.update([root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        pass
    return [p for p in procs if _alive(p)]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_tree(pid: int, sig: int = signal.SIGTERM, identity: dict | None = None,
              timeout: float = STOP_TIMEOUT) -> bool:
    """Stop what :func:`_tree` finds: ``sig`` first, SIGKILL after ``timeout``. Return whether
    anything was running."""
    procs = _tree(pid, identity)
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    return bool(procs)


def running(entry: dict | None) -> bool:
    return bool(entry) and bool(_tree(entry["pid"], entry))
