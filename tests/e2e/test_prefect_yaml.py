"""prefect.yaml through a real Prefect server and process worker: deploy, schedule, limits, crashes."""

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Crashed, Scheduled

from pipeline import warehouse as wh
from tests.support import poll_until
from tests.support.checkouts import copy_checkout, install_virtualenv

CHECKOUT = Path(__file__).resolve().parents[2]
POOL = "weather-pool"
# The daily run the scheduler creates at 06:00Z on 2024-03-10 processes 2024-03-09.
MARCH_10_0600 = datetime(2024, 3, 10, 6, 0, tzinfo=UTC)
MARCH_9 = date(2024, 3, 9)


def snapshot(conn) -> dict:
    """What a run leaves in the warehouse, minus who wrote it and when."""
    return {
        "raw": wh.day_checksums(conn, "raw"),
        "mart": wh.day_checksums(conn, "mart"),
        "ledger": conn.execute("select day, status, row_count, checksum from ops.load_ledger order by day").fetchall(),
    }


def ledger_run_ids(conn) -> dict:
    return dict(conn.execute("select day, flow_run_id from ops.load_ledger").fetchall())


@pytest.fixture(scope="module")
def reference(worker, warehouse):
    """One `daily` run scheduled for 06:00Z on 2024-03-10, and the warehouse it leaves."""
    run = create_daily_run(MARCH_10_0600, lookback_days=0)
    final = worker.wait_for_final_state(run.id)
    assert final.state.is_completed(), f"{final.state.message}\n{worker.log_tail()}"
    return final, snapshot(warehouse)


def test_prefect_deploy_all_succeeds_from_the_checkout(configured, prefect_api):
    # As on a fresh VM: no terminal, no work pool named anywhere but the project's defaults.
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_DEFAULT_WORK_POOL_NAME"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy", "--all"],
        cwd=CHECKOUT,
        env=env | {"PREFECT_API_URL": prefect_api},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deployment 'daily-weather/daily' successfully created" in result.stdout
    assert "Deployment 'backfill-weather/backfill' successfully created" in result.stdout


def test_pipeline_deploy_reports_every_step_without_secrets(configured, database_url):
    report = "\n".join(configured)

    assert f"work pool {POOL}:" in report
    assert "rate limit open-meteo-api: 600 slots, 10 freed per second" in report
    assert "weather-warehouse: saved" in report
    assert "weather-source-api: saved" in report
    assert "deployments to pool weather-pool: daily-weather/daily, backfill-weather/backfill" in report
    assert "automation weather-crashed-runs:" in report
    assert database_url not in report


def test_daily_deployment_has_the_declared_schedule_parameters_and_limit(configured):
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("daily-weather/daily")

    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 * * *", "UTC")
    assert schedule.active
    assert deployment.parameters == {"logical_date": None, "lookback_days": None}
    assert deployment.enforce_parameter_schema
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    assert (deployment.work_pool_name, deployment.work_queue_name) == (POOL, "daily")
    assert deployment.pull_steps == [{"pipeline.checkout.set_working_directory": {}}]


def test_work_pool_serves_the_daily_queue_before_the_backfill_queue(configured):
    with get_client(sync_client=True) as client:
        priorities = {queue.name: queue.priority for queue in client.read_work_queues(work_pool_name=POOL)}

    assert priorities["daily"] == 1
    assert priorities["backfill"] > priorities["daily"]


def test_backfill_deployment_has_no_schedule_its_own_limit_and_requires_dates(configured):
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("backfill-weather/backfill")
        with pytest.raises(PrefectHTTPStatusError) as rejected:
            client.create_flow_run_from_deployment(deployment.id, parameters={"reprocess": "all"})
        # Scheduled far ahead so no worker picks it up: only its acceptance matters here.
        accepted = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"start_date": "2024-03-01", "end_date": "2024-03-02"},
            state=Scheduled(scheduled_time=datetime(2100, 1, 1, tzinfo=UTC)),
        )
        client.delete_flow_run(accepted.id)

    assert deployment.schedules == []
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.global_concurrency_limit.id != _daily_limit_id()
    assert (deployment.work_pool_name, deployment.work_queue_name) == (POOL, "backfill")
    assert rejected.value.response.status_code == 409
    assert "start_date" in rejected.value.response.text


def _daily_limit_id():
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name("daily-weather/daily").global_concurrency_limit.id


def test_daily_run_scheduled_at_0600_on_march_10_loads_march_9(reference, warehouse, locations_file):
    run, loaded = reference
    hours = 24 * (len(locations_file.read_text(encoding="utf-8").splitlines()) - 1)
    observed = warehouse.execute(
        "select count(*), count(distinct (location_id, observed_at)), min(observed_at), max(observed_at)"
        " from raw.hourly_weather"
    ).fetchone()

    assert run.parameters == {"logical_date": None, "lookback_days": 0}
    assert [(day, status, rows) for day, status, rows, _ in loaded["ledger"]] == [(MARCH_9, "succeeded", hours)]
    assert ledger_run_ids(warehouse) == {MARCH_9: run.id}
    assert observed == (
        hours,
        hours,
        datetime(2024, 3, 9, 0, tzinfo=UTC),
        datetime(2024, 3, 9, 23, tzinfo=UTC),
    )
    assert list(loaded["mart"]) == [MARCH_9]


def test_daily_runs_for_the_same_day_queue_one_behind_the_other_and_converge(reference, worker, warehouse):
    _, loaded = reference
    runs = [create_daily_run(MARCH_10_0600, lookback_days=0) for _ in range(2)]
    finals = sorted((worker.wait_for_final_state(run.id) for run in runs), key=lambda run: run.start_time)
    with get_client(sync_client=True) as client:
        state_names = {state.name for run in runs for state in client.read_flow_run_states(run.id)}

    assert [run.state.name for run in finals] == ["Completed", "Completed"]
    # ENQUEUE: the second waited for the first's slot instead of running alongside or being cancelled.
    assert "AwaitingConcurrencySlot" in state_names
    assert finals[0].end_time <= finals[1].start_time
    assert snapshot(warehouse) == loaded
    assert ledger_run_ids(warehouse) == {MARCH_9: finals[1].id}


def test_daily_run_cut_short_by_a_killed_worker_converges_when_retried(reference, worker, warehouse, prefect_api):
    _, loaded = reference
    run = create_daily_run(MARCH_10_0600, lookback_days=0)
    worker.wait_for_running(run.id)
    _wait_for_first_task_run(run.id)

    worker.kill()
    with get_client(sync_client=True) as client:
        stranded = client.read_flow_run(run.id)
        # What the weather-crashed-runs automation does once the run's heartbeats stop.
        client.set_flow_run_state(run.id, Crashed(message="worker killed"), force=True)
    worker.start()
    retry = subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), "flow-run", "retry", str(run.id)],
        env=os.environ | {"PREFECT_API_URL": prefect_api},
        capture_output=True,
        text=True,
        timeout=120,
    )
    final = worker.wait_for_final_state(run.id)

    assert stranded.state.is_running()
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert final.state.is_completed(), f"{final.state.message}\n{worker.log_tail()}"
    assert final.run_count == 2
    assert snapshot(warehouse) == loaded
    assert ledger_run_ids(warehouse) == {MARCH_9: run.id}


def _wait_for_first_task_run(flow_run_id, timeout: float = 60.0) -> None:
    with get_client(sync_client=True) as client:
        poll_until(
            lambda: client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))),
            timeout=timeout,
            interval=0.1,
            what=f"run {flow_run_id} to start a task",
        )


def create_daily_run(scheduled_time: datetime, **parameters) -> FlowRun:
    """A run of the `daily` deployment, as the scheduler creates it for `scheduled_time`."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("daily-weather/daily")
        return client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, state=Scheduled(scheduled_time=scheduled_time)
        )


def test_daily_run_completes_while_a_long_backfill_holds_its_slot(reference, worker, warehouse, database_url):
    # A backfill held mid-load: this session takes the load lock of its first day, so the
    # backfill stays Running for as long as the test wants, like a year-long backfill would.
    february = (date(2024, 2, 1), date(2024, 2, 14))
    with psycopg.connect(database_url) as blocker:
        blocker.execute(
            "select pg_advisory_xact_lock(hashtext('raw.hourly_weather'), %s::date - date '2000-01-01')", (february[0],)
        )
        backfill = create_backfill_run(*february)
        worker.wait_for_running(backfill.id)
        _wait_for_lock_waiter(warehouse)
        second_backfill = create_backfill_run(*february)
        daily = create_daily_run(MARCH_10_0600, lookback_days=0)
        daily_final = worker.wait_for_final_state(daily.id)
        with get_client(sync_client=True) as client:
            backfill_meanwhile = client.read_flow_run(backfill.id)
        second_meanwhile = worker.wait_for(
            second_backfill.id, lambda run: run.state_name == "AwaitingConcurrencySlot", "AwaitingConcurrencySlot", 30.0
        )
        blocker.rollback()
    backfill_final = worker.wait_for_final_state(backfill.id)
    second_final = worker.wait_for_final_state(second_backfill.id)
    loaded_days = {day for day, status, *_ in snapshot(warehouse)["ledger"] if status == "succeeded"}

    assert daily_final.state.is_completed(), f"{daily_final.state.message}\n{worker.log_tail()}"
    assert backfill_meanwhile.state.is_running()
    # The backfill deployment's own limit queues the second backfill; the daily queue never waits on it.
    assert second_meanwhile.state_name == "AwaitingConcurrencySlot"
    assert backfill_final.state.is_completed(), f"{backfill_final.state.message}\n{worker.log_tail()}"
    assert second_final.state.is_completed()
    assert second_final.start_time >= backfill_final.end_time
    assert {date(2024, 2, d) for d in range(1, 15)} | {MARCH_9} <= loaded_days


def create_backfill_run(start: date, end: date) -> FlowRun:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("backfill-weather/backfill")
        return client.create_flow_run_from_deployment(
            deployment.id, parameters={"start_date": start.isoformat(), "end_date": end.isoformat()}
        )


def _wait_for_lock_waiter(conn, timeout: float = 60.0) -> None:
    """Until some session waits on an advisory lock: the backfill has reached its load."""
    poll_until(
        lambda: conn.execute(
            "select exists (select from pg_locks where locktype = 'advisory' and not granted)"
        ).fetchone()[0],
        timeout=timeout,
        interval=0.2,
        what="a load to wait on the held day lock",
    )


def test_workers_started_anywhere_run_the_deployment_from_their_own_checkouts(
    worker, new_worker, warehouse, tmp_path_factory
):
    # Deployed once, by plain `prefect deploy --all` from this checkout (the `configured` fixture).
    # A second VM: the same files in another folder, its own virtualenv, its worker started elsewhere.
    other = tmp_path_factory.mktemp("second-vm") / "srv" / "weather"
    copy_checkout(CHECKOUT, other)
    second = new_worker(python=install_virtualenv(other), cwd=tmp_path_factory.mktemp("cwd"), name="worker-b")
    worker.stop()
    second.start()
    try:
        on_second = create_daily_run(datetime(2024, 3, 12, 6, tzinfo=UTC), lookback_days=0)
        second_final = second.wait_for_final_state(on_second.id)
    finally:
        second.stop()
        worker.start()
    on_first = create_daily_run(datetime(2024, 3, 13, 6, tzinfo=UTC), lookback_days=0)
    first_final = worker.wait_for_final_state(on_first.id)
    run_ids = ledger_run_ids(warehouse)

    assert worker.cwd == Path("/") and worker.python == sys.executable
    assert second_final.state.is_completed(), f"{second_final.state.message}\n{second.log_tail()}"
    assert first_final.state.is_completed(), f"{first_final.state.message}\n{worker.log_tail()}"
    assert (run_ids[date(2024, 3, 11)], run_ids[date(2024, 3, 12)]) == (on_second.id, on_first.id)
    # The second worker's run built dbt in its own checkout, not in the one that deployed.
    assert (other / "dbt_project" / "target" / "run_results.json").is_file()
