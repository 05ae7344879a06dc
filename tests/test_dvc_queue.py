"""Queued DVC experiments log to the repository's one MLflow store, each as its own run, and never
touch production: @champion stays where `limitjump promote` put it and finished runs stay as they
were.

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
from tests.test_mlflow_integration import _snapshot, commit, env_for, run, small_clone

# leaf sizes, not leaf counts: on 4,000 borrowers a leaf of 200 rows caps the trees below 15 leaves,
# so only the leaf size changes the model (and the metrics the table must show)
LEAVES = ("40", "80")


def _queue_status(project: Path, env: dict) -> tuple[dict[str, str], str]:
    """{experiment name: status} from ``dvc queue status``, and the raw text."""
    out = run(["dvc", "queue", "status"], project, env)
    tasks = {}
    for line in out.splitlines():
        match = re.match(r"^[0-9a-f]{7}\s+(\S+)\s+.*\b(Queued|Running|Success|Failed)\s*$", line)
        if match:
            tasks[match.group(1)] = match.group(2)
    return tasks, out


# -n 2: the experiments hang on the commit before HEAD (HEAD moved after queueing)
EXP_SHOW = ["dvc", "exp", "show", "--no-pager", "-n", "2", "--only-changed",
            "--drop", "^(data|models|reports)/[^:]*$"]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_queued_experiments_are_runs_in_the_root_store_and_touch_no_production(tmp_path):
    project = small_clone(tmp_path / "clone")
    env = env_for(project)
    started = time.perf_counter()
    run(["dvc", "repro", "evaluate"], project, env)
    run(["limitjump", "promote"], project, env)
    baseline = commit(project, "reproduced")
    print(f"dvc repro in {time.perf_counter() - started:.1f} s")
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    before = _snapshot(client)
    log_before = (project / tracking.PROMOTION_LOG).read_text()

    sweep = f"train.lightgbm.min_data_in_leaf={','.join(LEAVES)}"
    run(["dvc", "exp", "run", "--queue", "-S", sweep, "evaluate"], project, env)
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

    experiment = client.get_experiment_by_name("limitjump")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    lightgbm = [r for r in runs if r.data.tags["model"] == "lightgbm"]
    by_leaves = {}
    for r in lightgbm:
        by_leaves.setdefault(r.data.params["train.lightgbm.min_data_in_leaf"], []).append(r)
    assert sorted(by_leaves) == sorted(["200", *LEAVES])  # the workspace's run and one per experiment
    assert all(len(found) == 1 for found in by_leaves.values())
    assert len([r for r in runs if r.data.tags["model"] == "scorecard"]) == 1  # unchanged, not retrained
    assert len([r for r in runs if r.data.tags["model"] == "evaluate"]) == 1 + len(LEAVES)

    names = set()
    for leaves in LEAVES:
        r = by_leaves[leaves][0]
        tags = r.data.tags
        assert tags.get("dvc.exp_name") in tasks, (leaves, tags)
        assert r.info.run_name == f"lightgbm · exp {tags['dvc.exp_name']}"
        names.add(tags["dvc.exp_name"])
        assert tags["dvc.stage"] == "train@lightgbm"
        assert tags["git.commit"] == baseline, "the run must name the commit it ran from"
        assert tags["git.dirty"] == "true"  # the queued params differ from that commit
        assert "oot_auc" in r.data.metrics and tracking.MODEL_URI_TAG in tags
    assert names == set(tasks)  # each experiment its own run
    assert "dvc.exp_name" not in by_leaves["200"][0].data.tags

    # experiments register and tag versions; production does not move, history is not rewritten
    versions = client.search_model_versions("name='limitjump'")
    assert len(versions) == 3
    assert {v.tags.get("dvc.exp_name") for v in versions} == names | {None}
    assert str(client.get_model_version_by_alias("limitjump", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("limitjump", "challenger").version) == "1"
    assert (project / tracking.PROMOTION_LOG).read_text() == log_before
    after = _snapshot(client)
    assert {k: after[k] for k in before} == before

    # the experiments' headline metrics fit a 200-column terminal, next to their names
    table = run(EXP_SHOW, project, {**env, "COLUMNS": "200"})
    print(table)
    assert max(len(line) for line in table.splitlines()) <= 200
    for name in names:
        assert name in table
    for header in ("lightgbm.auc", "lightgbm.ece", "lightgbm.psi"):
        assert header in table
