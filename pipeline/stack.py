"""`pipeline up` and `pipeline down`: a Prefect server, a process worker and their helpers, run on this
machine in the background and recorded so that `down` stops exactly them."""

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psycopg
from prefect.settings import PREFECT_API_URL, temporary_settings
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url

from pipeline import embedded
from pipeline.dashboard import service as dashboard_service
from pipeline.defaults import OFFLINE_ENV
from pipeline.deploy import Say, configure_server
from pipeline.processes import (
    STOP_TIMEOUT_SECONDS,
    Process,
    ProcessError,
    free_port,
    is_running,
    record,
    start_process,
    stop_process,
    tail,
    wait_until,
)
from pipeline.settings import Settings

SERVER_STARTUP_SECONDS = 180.0
# The Prefect server's own database, beside the warehouse on the same Postgres.
PREFECT_DATABASE = "prefect"
SERVER_DATABASE_URL = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
# Concurrency slot leases (a deployment's limit, global limits) kept on disk under PREFECT_HOME rather
# than in the server's memory: a restarted server still knows them, so the runs holding them are not
# cancelled at their next renewal ("410 Gone"). Several server processes share leases through Redis
# instead (prefect_redis.lease_storage).
LEASE_STORAGE = {"PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem"}
MIGRATION_TIMEOUT_SECONDS = 600.0


@dataclass
class StackState:
    api_url: str
    ui_url: str
    source_url: str | None = None
    dashboard_url: str | None = None
    processes: list[Process] = field(default_factory=list)

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)


@dataclass(frozen=True)
class StackPaths:
    """Where `up` keeps its state, logs, Prefect home and embedded Postgres: under `<data_dir>/stack`."""

    root: Path

    @property
    def pids(self) -> Path:
        return self.root / "pids.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"


def up(
    settings: Settings,
    port: int,
    pool: str,
    local_source: bool = False,
    say: Say = print,
    dashboard_port: int | None = None,
) -> StackState:
    """Start what is not running yet (Postgres, source API, server, dashboard, worker), then configure the server."""
    paths = StackPaths(settings.data_dir / "stack")
    api_url = f"http://127.0.0.1:{port}/api"
    previous = load_state(paths)
    alive = [p for p in previous.processes if is_running(p)] if previous else []
    state = StackState(api_url=api_url, ui_url=f"http://127.0.0.1:{port}", processes=alive)
    if state.process("server") and previous.api_url != api_url:
        raise ProcessError(f"the stack already runs a server at {previous.api_url}; run `pipeline down` first")
    env = stack_env(paths, api_url)

    def ensure(name: str, argv: list[str], process_env: dict[str, str] = env) -> Process:
        # Recorded as soon as it starts, so `down` can stop it even if a later step fails.
        process = state.process(name) or start_process(name, argv, process_env, paths.logs / f"{name}.log")
        _remember(paths, state, process)
        return process

    if settings.database_url is None:
        dsn, postmaster = _start_postgres(paths.postgres)
        _remember(paths, state, postmaster)
        settings = settings.model_copy(update={"database_url": SecretStr(dsn)})
        say(f"warehouse: embedded Postgres in {paths.postgres}")
    if local_source:
        reuse = previous is not None and previous.source_url and state.process("source")
        state.source_url = previous.source_url if reuse else f"http://127.0.0.1:{free_port()}"
        port_text = state.source_url.rsplit(":", 1)[1]
        source = ensure("source", [_console_script("pipeline"), "source", "serve", "--port", port_text])
        wait_until(lambda: _answers(state.source_url), source, 30.0, "the local source API")
        # The local server has no quota to protect.
        settings = settings.model_copy(update={"source_url": state.source_url, "source_rate_limit": ""})
        say(f"source API: local, {state.source_url}")

    if state.process("server") is None:
        server_env = env | server_database_env(settings.database_url.get_secret_value())
        say(f"Prefect server database: {describe_database_url(server_env[SERVER_DATABASE_URL])}")
        upgrade_server_database(server_env, paths.logs / "server-migrations.log")
    else:
        server_env = env
    server = ensure("server", server_command(port), server_env)
    wait_until(lambda: api_healthy(api_url), server, SERVER_STARTUP_SECONDS, f"the Prefect server at {api_url}")
    say(f"Prefect server: {api_url} (pid {server.pid}, log {server.log})")
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        configure_server(settings, pool, say=say)
    if dashboard_port is not None:
        deployed, dashboard_env = dashboard_service.start(
            paths.root,
            settings.database_url.get_secret_value(),
            dashboard_port,
            settings.dbt_project_dir,
            state.process("dashboard"),
            lambda process: _remember(paths, state, process),
            say,
        )
        env.update(dashboard_env)  # the worker's runs refresh it after each publish
        state.dashboard_url = deployed.url
        save_state(paths, state)
        say(f"dashboard: {deployed.url} (user admin; password in {dashboard_service.home(paths.root).secrets})")
    worker = ensure("worker", worker_command(pool))
    say(f"process worker on pool {pool}: pid {worker.pid}, log {worker.log}")
    return state


def down(data_dir: Path, say: Say = print, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the processes `up` recorded, worker first, and forget them; returns whether there was a stack."""
    paths = StackPaths(data_dir / "stack")
    state = load_state(paths)
    if state is None:
        return False
    order = ["worker", "source", "dashboard", "server", "postgres"]
    for process in sorted(state.processes, key=lambda p: order.index(p.name) if p.name in order else len(order)):
        say(stop_process(process, timeout))
    paths.pids.unlink()
    return True


def server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]


def worker_command(pool: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]


def server_database_env(warehouse_dsn: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's database settings: PREFECT_SERVER_DATABASE_CONNECTION_URL if set, else a `prefect`
    database beside the warehouse (created if missing); migrations only by `upgrade_server_database`.
    Its leases are kept where a restart finds them, unless `environ` names another lease storage."""
    environ = os.environ if environ is None else environ
    url = environ.get(SERVER_DATABASE_URL) or _ensure_prefect_database(warehouse_dsn)
    # Several server processes starting at once would race to migrate; `up` and the units migrate first.
    return (
        LEASE_STORAGE
        | {name: environ[name] for name in LEASE_STORAGE if environ.get(name)}
        | {SERVER_DATABASE_URL: url, "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false"}
    )


def prefect_database_url(warehouse_dsn: str, database: str = PREFECT_DATABASE) -> str:
    """The asyncpg URL of `database` on the server, and as the user, of the warehouse's libpq DSN."""
    info = psycopg.conninfo.conninfo_to_dict(warehouse_dsn)
    host = info.get("host") or None
    # asyncpg takes a Unix socket directory (the embedded Postgres) as the `host` query parameter.
    socket = host is not None and host.startswith("/")
    return URL.create(
        "postgresql+asyncpg",
        username=info.get("user") or None,
        password=info.get("password") or None,
        host=None if socket else host,
        port=int(info["port"]) if info.get("port") else None,
        database=database,
        query={"host": host} if socket else {},
    ).render_as_string(hide_password=False)


def describe_database_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def upgrade_server_database(env: dict[str, str], log_path: Path) -> None:
    """`prefect server database upgrade -y` with the server's settings: migrations applied before it starts."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        result = subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=MIGRATION_TIMEOUT_SECONDS,
        )
    if result.returncode != 0:
        raise ProcessError(
            f"the Prefect server's database migrations failed (exit {result.returncode}); {log_path} ends:"
            f" {tail(log_path.read_text(encoding='utf-8', errors='replace'))}"
        )


def stack_env(paths: StackPaths, api_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the stack's processes: `base` (default: this one's) plus a project-local Prefect home."""
    return {
        **(os.environ if base is None else base),
        "PREFECT_HOME": str(paths.prefect_home),
        "PREFECT_API_URL": api_url,
        **OFFLINE_ENV,
    }


def load_state(paths: StackPaths) -> StackState | None:
    if not paths.pids.exists():
        return None
    data = json.loads(paths.pids.read_text(encoding="utf-8"))
    return StackState(**{**data, "processes": [Process(**p) for p in data["processes"]]})


def save_state(paths: StackPaths, state: StackState) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pids.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")


def api_healthy(api_url: str) -> bool:
    """Whether the Prefect API at `api_url` answers its health check."""
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2.0)
        return True
    except httpx.HTTPError:
        return False


def _start_postgres(pgdata: Path) -> tuple[str, Process]:
    """Start (or reuse) a Postgres under `pgdata` that outlives this process; returns its DSN and postmaster."""
    # cleanup_mode=None: the server keeps running after `up` exits, until `down` stops it.
    server = embedded.serve(pgdata, cleanup_mode=None)
    # What `pg_ctl stop -m fast` sends: roll back open transactions, shut down cleanly.
    postmaster = record("postgres", server.get_pid(), str(pgdata / "log"), stop_signal="SIGINT", group=False)
    return server.get_uri(embedded.DATABASE), postmaster


def _ensure_prefect_database(warehouse_dsn: str) -> str:
    """Create the `prefect` database on the warehouse's server if it is missing; its asyncpg URL."""
    with psycopg.connect(warehouse_dsn, autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", [PREFECT_DATABASE]).fetchone():
            try:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(PREFECT_DATABASE)))
            except psycopg.errors.InsufficientPrivilege:
                raise ProcessError(
                    f"the warehouse's user may not create the {PREFECT_DATABASE!r} database for the Prefect server:"
                    f" create it (createdb -O <user> {PREFECT_DATABASE}), or set {SERVER_DATABASE_URL}"
                ) from None
    return prefect_database_url(warehouse_dsn)


def _remember(paths: StackPaths, state: StackState, process: Process) -> None:
    state.processes = [p for p in state.processes if p.name != process.name] + [process]
    save_state(paths, state)


def _console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))
