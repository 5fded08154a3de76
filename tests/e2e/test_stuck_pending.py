"""A flow run a worker took and never started is marked Crashed, so a lost host cannot stall a backfill.

The run sends no heartbeat before it starts, so weather-crashed-runs cannot find it; the
weather-stuck-pending-runs automation does, on the real server. No worker is needed: the runs are put
in the states a worker would leave them in (Pending, and Pending then Running).
"""

import time

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Pending, Running

from pipeline import deploy
from tests.e2e.conftest import CHECKOUT
from tests.support import poll_until

QUICK_SECONDS = 15


@flow(name="taken-by-a-worker")
def taken() -> None:
    """A flow for runs that exist only as states on the server."""


@pytest.fixture
def quick_pending_detection(configured, tmp_path):
    """weather-stuck-pending-runs after 15 s instead of 120, for the length of one test."""
    deployed = CHECKOUT / deploy.AUTOMATIONS / "stuck-pending-runs.yaml"
    text = deployed.read_text(encoding="utf-8")
    assert "  within: 120\n" in text
    (tmp_path / deployed.name).write_text(
        text.replace("  within: 120\n", f"  within: {QUICK_SECONDS}\n"), encoding="utf-8"
    )
    deploy.apply_automations(tmp_path)
    yield
    deploy.apply_automations(CHECKOUT / deploy.AUTOMATIONS)


def test_a_run_taken_by_a_worker_that_died_before_starting_it_is_marked_crashed(quick_pending_detection):
    with get_client(sync_client=True) as client:
        stuck = client.create_flow_run(taken, state=Pending())
        started = client.create_flow_run(taken, state=Pending())
        client.set_flow_run_state(started.id, Running())
        pending_since = time.monotonic()

        crashed = poll_until(
            lambda: run if (run := client.read_flow_run(stuck.id)).state.is_crashed() else None,
            timeout=QUICK_SECONDS + 120,
            interval=2,
            what="the run left Pending to be marked Crashed",
        )
        time.sleep(max(0.0, QUICK_SECONDS + 10 - (time.monotonic() - pending_since)))
        still = client.read_flow_run(started.id)
        client.set_flow_run_state(started.id, Completed(), force=True)

    assert "never started" in crashed.state.message
    assert still.state.is_running(), f"a run that started was touched: {still.state}"
