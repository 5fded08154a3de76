"""`pipeline up` and `pipeline down` as a user runs them: in the background of a shell, then stopped by PID."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from pipeline.defaults import OFFLINE_ENV
from pipeline.processes import free_port

PIPELINE = str(Path(sys.executable).with_name("pipeline"))


@pytest.fixture
def data_dir():
    """Outside pytest's temporary root: every pytest start resets that root to mode 0700, which
    would lock out the unprivileged user the embedded Postgres runs as under root."""
    path = Path(tempfile.mkdtemp(prefix="weather-stack-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_pipeline_up_then_down_stops_exactly_its_processes_and_the_next_up_keeps_the_history(data_dir):
    tmp_path = data_dir
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PIPELINE_", "PREFECT_"))}
    env |= {"PIPELINE_DATA_DIR": str(tmp_path), **OFFLINE_ENV}
    # `&` in a non-interactive shell starts the command with SIGINT ignored, which every child
    # inherits: a Prefect worker started that way must still stop on `pipeline down`.
    up = subprocess.run(
        ["bash", "-c", f'"{PIPELINE}" up --port {port} --local-source --no-dashboard & wait $!'],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((tmp_path / "stack" / "pids.json").read_text(encoding="utf-8"))
    processes = {p["name"]: psutil.Process(p["pid"]) for p in state["processes"]}
    alive_after_up = {name: proc.is_running() for name, proc in processes.items()}
    deployments = httpx.post(f"{state['api_url']}/deployments/filter", json={}).json()
    created = _create_future_run(state["api_url"], deployments)

    down = subprocess.run([PIPELINE, "down"], env=env, capture_output=True, text=True, timeout=120)

    assert f"Prefect UI: http://127.0.0.1:{port}" in up.stdout
    assert "Prefect server database: postgresql+asyncpg://postgres@/prefect?host=" in up.stdout
    assert alive_after_up == {"postgres": True, "source": True, "server": True, "worker": True}
    assert sorted(d["name"] for d in deployments) == ["backfill", "backfill-chunk", "daily", "freshness", "report-run"]
    assert down.returncode == 0, down.stdout + down.stderr
    assert [line.split(" ")[0] for line in down.stdout.splitlines()] == ["worker", "source", "server", "postgres"]
    assert "killed" not in down.stdout  # each stopped on its polite signal, within the timeout
    assert not any(_alive(proc) for proc in processes.values())
    assert not (tmp_path / "stack" / "pids.json").exists()

    # The next `up` starts a new server on the same `prefect` database: the history is still there.
    again = subprocess.run([PIPELINE, "up", "--port", str(port)], env=env, capture_output=True, text=True, timeout=300)
    try:
        remembered = httpx.get(f"{state['api_url']}/flow_runs/{created['id']}")
        with psycopg.connect(f"postgresql://postgres@/prefect?host={tmp_path / 'stack' / 'postgres'}") as conn:
            stored = conn.execute("select name from flow_run where id = %s", [created["id"]]).fetchone()
    finally:
        subprocess.run([PIPELINE, "down"], env=env, capture_output=True, text=True, timeout=120)

    assert again.returncode == 0, again.stdout + again.stderr
    assert remembered.status_code == 200, remembered.text
    assert remembered.json()["deployment_id"] == created["deployment_id"]
    assert stored == (created["name"],)
    migrations = (tmp_path / "stack" / "logs" / "server-migrations.log").read_text(encoding="utf-8")
    assert migrations.count("Migrations succeeded!") == 2  # applied before each start, not by the server


def _create_future_run(api_url: str, deployments: list[dict]) -> dict:
    """A run of the daily deployment scheduled in 2100: the worker leaves it alone, the server keeps it."""
    [daily] = [d for d in deployments if d["name"] == "daily"]
    response = httpx.post(
        f"{api_url}/deployments/{daily['id']}/create_flow_run",
        json={"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2100-01-01T00:00:00Z"}}},
    )
    response.raise_for_status()
    return response.json()


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
