"""The Prefect server restarted (on its Postgres database) while a spread backfill's chunk runs are in flight."""

from collections import Counter
from datetime import date

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun

from pipeline.source_server import FaultPlan
from tests.support import poll_until
from tests.support.backfills import chunk_runs, window_state

# Days no other e2e module loads: four chunks of the default 28 days in three chunk runs (one per
# slot of the chunk limit: the middle run loads two chunks), all in flight at once.
FIRST, LAST = date(2023, 6, 1), date(2023, 8, 31)
RUNS = 3
# Each chunk's one download takes this long, so the chunk runs are mid-extract when the server goes.
SLOW_SECONDS = 10.0


def create_backfill_run(**parameters) -> FlowRun:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("backfill-weather/backfill")
        return client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"start_date": FIRST.isoformat(), "end_date": LAST.isoformat(), **parameters},
        )


@pytest.fixture
def forget_window(warehouse):
    """Leave the shared warehouse as the other modules expect it: no ledger rows for these days."""
    yield
    warehouse.execute("delete from ops.load_ledger where day between %s and %s", [FIRST, LAST])


def test_spread_backfill_survives_a_server_restart_with_every_chunk_landed_once(
    prefect_server, configured, worker, warehouse, source, forget_window
):
    source.faults = FaultPlan(slow=1.0, slow_seconds=SLOW_SECONDS)
    try:
        backfill = create_backfill_run(spread=True)
        in_flight = poll_until(
            lambda: [run for run in chunk_runs(backfill.id) if run.state.is_running()],
            timeout=150,
            interval=0.5,
            what=lambda: f"chunk runs of {backfill.id} running:\n{worker.log_tail()}",
        )
        prefect_server.restart()
        final = worker.wait_for_final_state(backfill.id, timeout=300)
    finally:
        source.faults = FaultPlan()
    runs = chunk_runs(backfill.id)
    spread_raw, spread_mart, loaded_by = window_state(warehouse, FIRST, LAST)
    # The same days backfilled again in the backfill's own process: what they must hold.
    reference = worker.wait_for_final_state(create_backfill_run(reprocess="all").id, timeout=240)
    reference_raw, reference_mart, _ = window_state(warehouse, FIRST, LAST)

    assert final.state.is_completed(), f"{final.state.message}\n{worker.log_tail()}"
    assert reference.state.is_completed(), f"{reference.state.message}\n{worker.log_tail()}"
    # The runs in flight carried on through the restart: their own run ended Completed, not a rerun.
    assert {run.id for run in in_flight} <= {run.id for run in runs if run.state.is_completed()}, [
        (run.name, run.state_name) for run in runs
    ]
    # Each chunk run's days completed exactly once, whether it carried on through the restart or ran again.
    completed = Counter((run.parameters["first"], run.parameters["last"]) for run in runs if run.state.is_completed())
    assert len(completed) == RUNS and set(completed.values()) == {1}, [(r.parameters, r.state_name) for r in runs]
    assert set(loaded_by.values()) <= {run.id for run in runs if run.state.is_completed()}
    assert len(spread_raw) == (LAST - FIRST).days + 1
    assert (spread_raw, spread_mart) == (reference_raw, reference_mart)
