"""The BI server in `pipeline up`: installed, set up, started beside the Prefect server, and deployed to."""

import time
from collections.abc import Callable
from pathlib import Path

from pipeline.dashboard import server
from pipeline.dashboard.client import SupersetClient
from pipeline.dashboard.deploy import Deployed, apply, prepare_warehouse
from pipeline.processes import Process, start_process, wait_until

STARTUP_SECONDS = 180.0


def home(stack_root: Path) -> server.SupersetHome:
    return server.SupersetHome(stack_root / "superset")


def start(
    stack_root: Path,
    warehouse_dsn: str,
    port: int,
    project_dir: Path,
    running: Process | None,
    remember: Callable[[Process], None],
    say: Callable[[str], None],
) -> tuple[Deployed, dict[str, str]]:
    """Start (or keep) Superset on `port` and deploy the dashboard; returns it and the settings a worker needs."""
    started = time.perf_counter()
    venv = server.install()
    superset_home = home(stack_root)
    values = server.ensure_secrets(superset_home.secrets)
    env = server.superset_env(superset_home, values, server.metadata_url(warehouse_dsn))
    if server.set_up(venv, superset_home, env, values["PIPELINE_DASHBOARD_PASSWORD"]):
        say(f"dashboard: Superset installed and set up in {time.perf_counter() - started:.0f} s")
    url = f"http://127.0.0.1:{port}"
    process = running or start_process(
        "dashboard", server.web_command(venv, port), env, stack_root / "logs" / "dashboard.log"
    )
    remember(process)
    wait_until(lambda: server.healthy(url), process, STARTUP_SECONDS, f"the dashboard at {url}")
    prepare_warehouse(warehouse_dsn, values["PIPELINE_DASHBOARD_READER_PASSWORD"], project_dir)
    with SupersetClient(url, server.ADMIN_USER, values["PIPELINE_DASHBOARD_PASSWORD"]) as client:
        deployed = apply(client, server.reader_url(warehouse_dsn, values["PIPELINE_DASHBOARD_READER_PASSWORD"]))
    settings = {
        "PIPELINE_DASHBOARD_URL": url,
        "PIPELINE_DASHBOARD_USER": server.ADMIN_USER,
        "PIPELINE_DASHBOARD_PASSWORD": values["PIPELINE_DASHBOARD_PASSWORD"],
    }
    return deployed, settings


def where(dashboard_url: str | None) -> str:
    """One line for the demo: the dashboard's URL when `pipeline up` runs one, else how to start it."""
    if dashboard_url and server.healthy(dashboard_url.split("/superset/")[0]):
        return f"dashboard: {dashboard_url} (`./dev pipeline dashboard admin` says how to log in)"
    return "dashboard: `./dev pipeline up` starts the BI dashboard (Superset) on the published marts"
