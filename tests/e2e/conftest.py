"""End-to-end fixtures: a real Prefect server and process worker, set up from this checkout's prefect.yaml.

Package-scoped: started once for the tests in this folder and stopped before any other test runs.
"""

import functools
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from psycopg import sql

from pipeline import deploy, processes, stack
from pipeline.settings import Settings
from pipeline.source_server import SourceServer
from tests.support import poll_until

CHECKOUT = Path(__file__).resolve().parents[2]
POOL = "weather-pool"
RUN_TIMEOUT_SECONDS = 150
LOCATIONS = """location_id,name,latitude,longitude
ams,Amsterdam,52.3676,4.9041
cpt,Cape Town,-33.9249,18.4241
rey,Reykjavík,64.1466,-21.9426
"""


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def stack_paths(tmp_path_factory) -> stack.StackPaths:
    return stack.StackPaths(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="package")
def source():
    with SourceServer() as server:
        yield server


@pytest.fixture(scope="package")
def locations_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("locations") / "locations.csv"
    path.write_text(LOCATIONS, encoding="utf-8")
    return path


@pytest.fixture(scope="package")
def server_database(admin_url):
    """The server's own database, created for these tests and dropped after them: as on a VM, Postgres."""
    name = f"prefect_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield stack.prefect_database_url(admin_url, database=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


class PrefectServer:
    """`prefect server start` on a fixed port and a Postgres database, which a test can stop and start again."""

    def __init__(self, paths: stack.StackPaths, database_url: str):
        self.port = processes.free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = paths.logs / "server.log"
        self.env = (
            stack.stack_env(paths, self.api_url)
            | stack.LEASE_STORAGE
            | {
                stack.SERVER_DATABASE_URL: database_url,
                "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
                # A queued run asks for a slot again after this many seconds (default 30).
                "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
                # The tests create every run themselves: the real 06:00 and 07:05 runs, due while the
                # suite happens to run then, would load today's window into the tests' warehouse.
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            }
        )
        self.process: processes.Process | None = None

    def start(self) -> None:
        self.process = processes.start_process("server", stack.server_command(self.port), self.env, self.log)
        processes.wait_until(
            lambda: stack.api_healthy(self.api_url), self.process, stack.SERVER_STARTUP_SECONDS, "the Prefect server"
        )

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_process(self.process)

    def restart(self) -> None:
        """Stop the server (SIGTERM, as systemd does) and start it again on the same port and database."""
        self.stop()
        self.start()


@pytest.fixture(scope="package")
def prefect_server(stack_paths, server_database):
    """The e2e tests' server, on a Postgres database migrated before it starts, as on a VM."""
    server = PrefectServer(stack_paths, server_database)
    stack.upgrade_server_database(server.env, stack_paths.logs / "server-migrations.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def prefect_api(prefect_server):
    """The server's API URL; this process's client uses it."""
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url
        # Deliver this process's queued events (block loads emit some) while the server listens:
        # a later drain of every events worker, as prefect_test_harness does, would wait on it.
        EventsWorker.drain_all()


@pytest.fixture(scope="package")
def configured(prefect_api, database_url, source) -> list[str]:
    """The server as `pipeline deploy` leaves it, its blocks pointing at the test warehouse and source API."""
    # The default rate limit stays on: runs take their slots from a real global concurrency limit.
    settings = Settings(database_url=database_url, source_url=source.url)
    said: list[str] = []
    deploy.configure_server(settings, POOL, project_dir=CHECKOUT, say=said.append)
    return said


class Worker:
    """A `prefect worker start` subprocess that a test can kill and start again.

    It starts in `cwd` (default `/`, not the checkout) with the interpreter of a checkout's virtualenv
    (default: this one's), as a systemd unit or an operator's shell could start it anywhere.
    """

    def __init__(
        self,
        paths: stack.StackPaths,
        api_url: str,
        locations_file: Path,
        python: str = sys.executable,
        cwd: Path = Path("/"),
        name: str = "worker",
    ):
        # No PIPELINE_* variable from this process: the database and source API must reach the
        # runs through the block documents, so the runs see only what blocks cannot carry.
        base = {name: value for name, value in os.environ.items() if not name.startswith(("PIPELINE_", "PYTEST_"))}
        self.env = stack.stack_env(paths, api_url, base) | {
            "PIPELINE_LOCATIONS_FILE": str(locations_file),
            "PIPELINE_FETCH_RETRY_BASE_SECONDS": "0.05",
            # Were the blocks ignored, a run would fail for want of a warehouse: a run never starts one.
            "PIPELINE_DATA_DIR": str(paths.root / "worker-data"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        }
        self.python, self.cwd, self.name = python, cwd, name
        self.log = paths.logs / f"{name}.log"
        self.process: processes.Process | None = None

    def start(self) -> None:
        command = stack.worker_command(POOL, self.python)
        self.process = processes.start_process(self.name, command, self.env, self.log, cwd=self.cwd)

    def kill(self) -> None:
        """SIGKILL the worker and every process under it, as the OOM killer or a lost VM would."""
        processes.kill_tree(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_process(self.process)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def wait_for(self, run_id: UUID, reached: Callable[[FlowRun], bool], what: str, timeout: float) -> FlowRun:
        """Poll the run until `reached(run)`; fail, quoting this worker's log, if it ends first or times out."""
        last: list[FlowRun] = []

        def check() -> FlowRun | None:
            run = client.read_flow_run(run_id)
            last[:] = [run]
            if reached(run):
                return run
            if run.state is not None and run.state.is_final():
                pytest.fail(f"run {run_id} is {run.state_name}, not {what}; worker log:\n{self.log_tail()}")
            return None

        with get_client(sync_client=True) as client:
            return poll_until(
                check,
                timeout=timeout,
                interval=0.2,
                what=lambda: f"run {run_id} ({last[0].state_name}) to be {what}; worker log:\n{self.log_tail()}",
            )

    def wait_for_final_state(self, run_id: UUID, timeout: float = RUN_TIMEOUT_SECONDS) -> FlowRun:
        return self.wait_for(run_id, lambda run: run.state is not None and run.state.is_final(), "final", timeout)

    def wait_for_running(self, run_id: UUID, timeout: float = 60.0) -> FlowRun:
        return self.wait_for(run_id, lambda run: run.state is not None and run.state.is_running(), "Running", timeout)


@pytest.fixture(scope="package")
def new_worker(configured, stack_paths, prefect_api, locations_file) -> Callable[..., Worker]:
    """Another worker on the same pool, not started: `new_worker(python=..., cwd=..., name=...)`."""
    return functools.partial(Worker, stack_paths, prefect_api, locations_file)


@pytest.fixture(scope="package")
def worker(configured, stack_paths, prefect_api, locations_file):
    worker = Worker(stack_paths, prefect_api, locations_file)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="package")
def warehouse(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
