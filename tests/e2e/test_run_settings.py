"""Settings in a worker's environment reach the deployment runs it starts."""

from datetime import UTC, date, datetime

import pytest

from pipeline.source_server import FaultPlan
from tests.e2e.test_prefect_yaml import create_daily_run

pytestmark = pytest.mark.e2e

# A day no other e2e module loads; the run scheduled the next morning processes it.
SLOW_DAY = date(2024, 6, 1)


@pytest.fixture
def slow_source(source, warehouse):
    """Every request for SLOW_DAY answers only after 20 s; the shared warehouse forgets the day afterwards."""
    source.faults = FaultPlan(slow=1.0, slow_seconds=20, only_on=SLOW_DAY)
    yield source
    source.faults = FaultPlan()
    warehouse.execute("delete from ops.load_ledger where day = %s", [SLOW_DAY])
    if warehouse.execute("select to_regclass('ops.alerts') is not null").fetchone()[0]:
        warehouse.execute("delete from ops.alerts where logical_date = %s", [SLOW_DAY])


def test_daily_timeout_from_the_workers_environment_ends_a_slow_deployment_run(slow_source, worker, new_worker):
    # The deployment carries no timeout: only the environment of the worker that runs it does.
    timed = new_worker(name="worker-timeout")
    timed.env["PIPELINE_DAILY_TIMEOUT_SECONDS"] = "5"
    worker.stop()
    timed.start()
    try:
        run = create_daily_run(datetime(2024, 6, 2, 6, tzinfo=UTC), lookback_days=0)
        final = timed.wait_for_final_state(run.id)
    finally:
        timed.stop()
        worker.start()

    assert (final.state.type.value, final.state.name) == ("FAILED", "TimedOut"), timed.log_tail()
    assert "PIPELINE_DAILY_TIMEOUT_SECONDS=5 s" in final.state.message
    # Stopped at the limit, not when the source finally answered.
    assert (final.end_time - final.start_time).total_seconds() < 20
