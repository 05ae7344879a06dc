"""Queued DVC experiments log to the repository's one MLflow store, each as its own run.

``dvc exp run --queue`` runs every experiment in a temporary copy under .dvc/tmp/exps; DVC sets
DVC_ROOT to the main repository, so the relative sqlite URI in params lands in the root's
mlflow.db, and the run records which experiment it was and which commit it ran from.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline import tracking
from tests.test_mlflow_integration import commit, env_for, run, small_clone

LEAVES = ("15", "63")


def _queue_status(project: Path, env: dict) -> tuple[dict[str, str], str]:
    """{experiment name: status} from ``dvc queue status``, and the raw text."""
    out = run(["dvc", "queue", "status"], project, env)
    tasks = {}
    for line in out.splitlines():
        match = re.match(r"^[0-9a-f]{7}\s+(\S+)\s+.*\b(Queued|Running|Success|Failed)\s*$", line)
        if match:
            tasks[match.group(1)] = match.group(2)
    return tasks, out


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_queued_experiments_are_runs_in_the_root_store(tmp_path):
    project = small_clone(tmp_path / "clone")
    env = env_for(project)
    started = time.perf_counter()
    run(["dvc", "repro", "register"], project, env)
    baseline = commit(project, "reproduced")
    print(f"dvc repro in {time.perf_counter() - started:.1f} s")

    run(["dvc", "exp", "run", "--queue", "-S", f"train.lightgbm.num_leaves={','.join(LEAVES)}", "register"],
        project, env)
    # HEAD moves after queueing: each experiment still runs on, and records, its baseline commit
    with open(project / "README.md", "a") as fh:
        fh.write("\nA change committed after the experiments were queued.\n")
    moved = commit(project, "after queueing")
    assert moved != baseline

    started = time.perf_counter()
    try:
        run(["dvc", "queue", "start"], project, env)
        deadline = time.monotonic() + 15 * 60
        while True:
            tasks, status = _queue_status(project, env)
            if len(tasks) == len(LEAVES) and not {"Queued", "Running"} & set(tasks.values()):
                break
            assert time.monotonic() < deadline, f"queue not done after 15 minutes\n{status}"
            time.sleep(5)
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=project, env=env, capture_output=True,
                       timeout=120)
    print(f"queue done in {time.perf_counter() - started:.1f} s")
    failed = {name: subprocess.run(["dvc", "queue", "logs", name], cwd=project, env=env, capture_output=True,
                                   text=True).stdout[-3000:]
              for name, state in tasks.items() if state != "Success"}
    assert not failed, f"{status}\n{failed}"

    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("limitjump")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    lightgbm = [r for r in runs if r.info.run_name == "lightgbm"]
    by_leaves = {}
    for r in lightgbm:
        by_leaves.setdefault(r.data.params["train.lightgbm.num_leaves"], []).append(r)
    assert sorted(by_leaves) == sorted(["31", *LEAVES])  # the workspace's run and one per experiment
    assert all(len(found) == 1 for found in by_leaves.values())
    assert len([r for r in runs if r.info.run_name == "scorecard"]) == 1  # unchanged, not retrained

    names = set()
    for leaves in LEAVES:
        r = by_leaves[leaves][0]
        tags = r.data.tags
        assert tags.get("dvc.exp_name") in tasks, (leaves, tags)
        names.add(tags["dvc.exp_name"])
        assert tags["dvc.stage"] == "train@lightgbm"
        assert tags["git.commit"] == baseline, "the run must name the commit it ran from"
        assert tags["git.dirty"] == "true"  # the queued params differ from that commit
        assert "oot_auc" in r.data.metrics and tracking.MODEL_URI_TAG in tags
    assert names == set(tasks)  # each experiment its own run
    assert "dvc.exp_name" not in by_leaves["31"][0].data.tags

    # the experiments' register stages used the same registry and the root's promotion log
    versions = client.search_model_versions("name='limitjump'")
    assert len(versions) == 3
    assert len((project / tracking.PROMOTION_LOG).read_text().splitlines()) == 3
