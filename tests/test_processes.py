"""The servers' process trees (``pipeline.processes``): a server told from a later process given its
id, and stopped with every child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from pipeline import processes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the boot time psutil reads is Linux's")
def test_a_running_server_is_recognised_when_the_reported_boot_time_moves(monkeypatch):
    """The CI failure: the boot time the kernel reports moved by a second between ``server start``
    and ``server stop``, psutil's create_time moved with it, and the server seemed gone."""
    me = psutil.Process()
    entry = processes.identity(me)
    legacy = {"pid": me.pid, "create_time": me.create_time()}  # server.json before "started"
    boot = psutil.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: boot + 1.0)
    moved = psutil.Process()
    assert moved.create_time() != pytest.approx(legacy["create_time"], abs=0.5)
    assert processes.started(moved) == entry["started"]
    assert processes.running(entry) and processes.running(legacy)
    assert not processes.running({**entry, "started": entry["started"] - 1.0})


def test_stop_tree_ends_a_process_and_its_children_and_spares_a_reused_id():
    parent = subprocess.Popen(["sh", "-c", "sleep 120 & sleep 120 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process(parent.pid).children()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        tree = [psutil.Process(parent.pid), *psutil.Process(parent.pid).children(recursive=True)]
        identity = {"pid": parent.pid, "started": processes.started(tree[0])}
        other = {**identity, "started": identity["started"] + 0.5}  # another process given the id
        assert not processes.stop_tree(parent.pid, identity=other)
        assert all(p.is_running() for p in tree)
        assert processes.stop_tree(parent.pid, identity=identity, timeout=5)
        parent.wait(timeout=10)
        assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
