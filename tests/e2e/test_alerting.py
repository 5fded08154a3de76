"""Alerting through a real server and worker: failures, crashes and missed deadlines reach a signed webhook."""

import base64
import json
import secrets
from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Scheduled
from pydantic import SecretStr

from blocks import WEBHOOK, NotificationWebhook
from pipeline import notify
from pipeline.source_server import FaultPlan
from tests.support import WebhookReceiver, poll_until

pytestmark = pytest.mark.e2e

# Days no other e2e module loads or alerts on, one per test.
FAILED_DAY = date(2024, 5, 1)
CRASHED_DAY = date(2024, 5, 2)
LATE_DAY = date(2024, 5, 3)
# Runs are slow on a busy 2-core machine; these bound a hang, not the expected duration.
RUN_TIMEOUT_SECONDS = 150
DELIVERY_TIMEOUT_SECONDS = 60
# Far ahead, so no worker ever picks the run up: only its state matters.
NEVER = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def forget_alerting_days(warehouse):
    """Leave the shared warehouse as the other modules expect it: no ledger or alert rows for these days."""
    yield
    days = [FAILED_DAY, CRASHED_DAY, LATE_DAY]
    if warehouse.execute("select to_regclass('ops.alerts') is not null").fetchone()[0]:
        warehouse.execute("delete from ops.alerts where logical_date = any(%s)", [days])
        warehouse.execute("delete from ops.load_ledger where day = any(%s)", [days])


@pytest.fixture(scope="module")
def receiver(configured):
    """A local webhook endpoint, written into the weather-webhook block that deployment runs read."""
    with WebhookReceiver("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()) as receiver:
        NotificationWebhook(url=SecretStr(receiver.url), signing_key=SecretStr(receiver.secret)).save(
            WEBHOOK, overwrite=True
        )
        yield receiver
        # Later modules expect no weather-webhook document, as `pipeline deploy` left it.
        NotificationWebhook.delete(WEBHOOK)


def events(receiver, event_type: str, **data) -> list[dict]:
    """The verified events of `event_type` whose data holds every item of `data`."""
    found = []
    for event in receiver.events():
        if event["type"] == event_type and data.items() <= event["data"].items():
            found.append(event)
    return found


def wait_for_event(receiver, event_type: str, timeout: float = DELIVERY_TIMEOUT_SECONDS, **data) -> dict:
    found = poll_until(
        lambda: events(receiver, event_type, **data),
        timeout=timeout,
        interval=0.5,
        what=lambda: f"{event_type} with {data}; received {[json.loads(d.body)['type'] for d in receiver.deliveries]}",
    )
    return found[0]


def run_deployment(name: str, parameters: dict, state=None) -> UUID:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(name)
        return client.create_flow_run_from_deployment(deployment.id, parameters=parameters, state=state).id


def report_runs_for(flow_run_id: UUID) -> list:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("report-run/report-run")
        runs = client.read_flow_runs(limit=200)
    return [r for r in runs if r.deployment_id == deployment.id and r.parameters.get("flow_run_id") == str(flow_run_id)]


def wait_for_report_run(flow_run_id: UUID, worker, timeout: float = RUN_TIMEOUT_SECONDS):
    runs = poll_until(
        lambda: report_runs_for(flow_run_id),
        timeout=timeout,
        interval=1,
        what=lambda: f"the crash automation to start a report-run for {flow_run_id}:\n{worker.log_tail()}",
    )
    return worker.wait_for_final_state(runs[0].id)


def test_failed_daily_run_sends_a_signed_failure_naming_extract(receiver, worker, source):
    source.faults = FaultPlan(daily_limit=1.0)
    try:
        run_id = run_deployment("daily-weather/daily", {"logical_date": FAILED_DAY.isoformat(), "lookback_days": 0})
        final = worker.wait_for_final_state(run_id)
    finally:
        source.faults = FaultPlan()

    event = wait_for_event(receiver, notify.RUN_FAILED, failed_step="extract")

    assert final.state.is_failed(), final.state.message
    assert event["data"]["flow_run"]["id"] == str(run_id)
    assert event["data"]["window"]["last_day"] == FAILED_DAY.isoformat()


def test_crashed_daily_run_is_reported_once_by_the_crash_automation(receiver, worker):
    run_id = run_deployment(
        "daily-weather/daily",
        {"logical_date": CRASHED_DAY.isoformat(), "lookback_days": 0},
        state=Scheduled(scheduled_time=NEVER),
    )
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Crashed(message="process killed"), force=True)

    report = wait_for_report_run(run_id, worker)
    event = wait_for_event(receiver, notify.RUN_FAILED, failed_step="crashed")
    # A second report of the same run, as a repeated automation firing would start, sends nothing.
    repeat = worker.wait_for_final_state(run_deployment("report-run/report-run", {"flow_run_id": str(run_id)}))

    assert report.state.is_completed(), report.state.message
    assert repeat.state.is_completed(), repeat.state.message
    assert len(events(receiver, notify.RUN_FAILED, failed_step="crashed")) == 1
    assert event["data"]["flow_run"]["id"] == str(run_id)
    assert event["data"]["logical_date"] == CRASHED_DAY.isoformat()
    assert event["data"]["deployment"] == "daily"
    assert event["data"]["flow_run"]["url"].endswith(f"/runs/flow-run/{run_id}")


def test_freshness_deployment_run_twice_alerts_once_for_a_day_without_a_run(receiver, worker):
    runs = [
        worker.wait_for_final_state(run_deployment("check-freshness/freshness", {"logical_date": LATE_DAY.isoformat()}))
        for _ in range(2)
    ]

    [event] = events(receiver, notify.RUN_LATE, logical_date=LATE_DAY.isoformat())
    assert all(run.state.is_completed() for run in runs), [run.state.message for run in runs]
    assert event["data"]["run_state"] == "none"
    assert event["data"]["deployment"] == "daily-weather/daily"
