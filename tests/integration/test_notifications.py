"""Run notifications reach a real local HTTP receiver, signed per Standard Webhooks."""

import base64
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Crashed

from blocks import Resources
from flows.daily import daily_weather
from pipeline import notify, outbox, warehouse
from pipeline.cli import main
from pipeline.lookups import KnownRun
from pipeline.runs import ended_run_alert, send_alert
from pipeline.settings import Settings
from pipeline.source_server import FaultPlan
from tests.support import WebhookReceiver

DAY = date(2024, 3, 9)


@pytest.fixture
def webhook_secret():
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture
def receiver(webhook_secret):
    """The endpoint deliveries go to; it verifies each one on arrival against `webhook_secret`."""
    with WebhookReceiver(webhook_secret) as receiver:
        yield receiver


@pytest.fixture
def notifying(pipeline_env, monkeypatch, receiver, webhook_secret):
    monkeypatch.setenv("PIPELINE_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("PIPELINE_WEBHOOK_SECRET", webhook_secret)
    return receiver


def test_a_successful_run_sends_a_signed_succeeded_notification(notifying):
    state = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    assert state.is_completed()
    [delivery] = notifying.deliveries
    event = delivery.verified()
    assert event["type"] == "pipeline.run.succeeded"
    data = event["data"]
    assert data["flow_run"]["id"] == str(state.state_details.flow_run_id)
    assert data["window"]["first_day"] == data["window"]["last_day"] == "2024-03-09"
    assert data["rows_loaded"] == 5 * 24
    assert data["dbt_tests"]["counts"]["pass"] > 0


def test_a_failed_run_names_the_step_and_error_and_leaks_no_secret(
    notifying, webhook_secret, source, caplog, database_url
):
    source.faults = FaultPlan(daily_limit=1.0)

    state = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    assert state.is_failed()
    [delivery] = notifying.deliveries
    event = delivery.verified()
    assert event["type"] == "pipeline.run.failed"
    assert event["data"]["failed_step"] == "extract"
    assert "Daily API request limit exceeded" in event["data"]["error"]
    assert event["data"]["window"]["first_day"] == "2024-03-09"
    produced = delivery.body.decode() + caplog.text + str(state.result(raise_on_failure=False))
    for secret in (webhook_secret, webhook_secret.removeprefix("whsec_"), notifying.token):
        assert secret not in produced


def test_delivery_retries_5xx_with_the_same_webhook_id(receiver, webhook_secret):
    receiver.fail_first(2)
    event = notify.build_event(notify.RUN_FAILED, {"x": 1}, datetime.now(UTC))

    delivered = notify.deliver(receiver.url, event, "msg_fixed", webhook_secret, attempts=3, backoff=0.01)

    assert delivered
    assert [delivery.headers["webhook-id"] for delivery in receiver.deliveries] == ["msg_fixed"] * 3
    receiver.events()  # every attempt verifies


def test_a_receiver_that_is_down_does_not_change_the_run_state(pipeline_env, monkeypatch, receiver):
    url = receiver.url
    receiver.close()
    monkeypatch.setenv("PIPELINE_WEBHOOK_URL", url)

    state = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    assert state.is_completed()


def test_a_day_failing_twice_alerts_once(notifying, source):
    source.faults = FaultPlan(daily_limit=1.0)

    for _ in range(2):
        assert daily_weather(logical_date=DAY, lookback_days=0, return_state=True).is_failed()

    assert [json.loads(delivery.body)["type"] for delivery in notifying.deliveries] == ["pipeline.run.failed"]


def test_crashed_chunk_runs_alert_once_per_backfill_and_again_for_a_later_backfill_the_same_day(notifying):
    # What report-run sends for each chunk run a lost host took: two of one spread backfill, then
    # one of a later backfill on the same day (the server's runs are stood in for by their records).
    resources = Resources.build(Settings())
    first_backfill, later_backfill = uuid4(), uuid4()
    crashed = [
        KnownRun(
            FlowRun(flow_id=uuid4(), expected_start_time=datetime(2024, 3, 10, 6, tzinfo=UTC), state=Crashed()),
            "backfill-chunk",
            "backfill-chunk",
            parent,
        )
        for parent in (first_backfill, first_backfill, later_backfill)
    ]

    sent = [send_alert(resources, ended_run_alert(chunk_run, "crashed")) for chunk_run in crashed]

    assert sent == [True, False, True]
    alerted = [delivery.verified()["data"]["flow_run"]["id"] for delivery in notifying.deliveries]
    assert alerted == [str(crashed[0].run.id), str(crashed[2].run.id)]


def test_a_late_day_alerts_once_then_reports_recovery(notifying, capsys):
    assert main(["check-freshness", "--date", str(DAY)]) == 1
    assert main(["check-freshness", "--date", str(DAY)]) == 1
    out = capsys.readouterr().out
    assert f"{DAY}: LATE (daily run: none); alert sent" in out
    assert f"{DAY}: LATE (daily run: none); already alerted" in out

    [delivery] = notifying.deliveries
    late = delivery.verified()
    assert late["type"] == "pipeline.run.late"
    assert late["data"]["logical_date"] == str(DAY)
    assert late["data"]["deadline"] == "2024-03-10T07:00:00+00:00"
    assert late["data"]["run_state"] == "none"

    assert daily_weather(logical_date=DAY, lookback_days=0, return_state=True).is_completed()
    recovered = notifying.deliveries[-1].verified()
    assert recovered["type"] == "pipeline.run.succeeded"
    assert recovered["data"]["recovered"] == ["late"]
    assert main(["check-freshness", "--date", str(DAY)]) == 0
    assert len(notifying.deliveries) == 2


def test_a_failure_raised_while_the_receiver_is_down_arrives_once_signed_after_it_comes_back(
    notifying, webhook_secret, source, monkeypatch, db, capsys
):
    port, token = notifying.port, notifying.token
    notifying.close()
    monkeypatch.setenv("PIPELINE_OUTBOX_RETRY_SECONDS", "0")
    source.faults = FaultPlan(daily_limit=1.0)

    for _ in range(2):  # the second failure of the day is a repeat of the first event: not queued again
        assert daily_weather(logical_date=DAY, lookback_days=0, return_state=True).is_failed()
    [(msg_id, attempts, delivered_at)] = db.execute(
        "select message_id, attempts, delivered_at from ops.outbox"
    ).fetchall()
    assert main(["alerts"]) == 1
    listed = capsys.readouterr().out
    with WebhookReceiver(webhook_secret, port, token) as back:
        assert main(["gaps", "--since", str(DAY)]) == 1  # any later command delivers what waits
        assert main(["alerts"]) == 0
        assert main(["gaps", "--since", str(DAY)]) == 1

    assert attempts == 2 and delivered_at is None
    assert "pipeline.run.failed" in listed and "failed" in listed and "ConnectError" in listed
    [delivery] = back.deliveries
    event = delivery.verified()
    assert delivery.headers["webhook-id"] == msg_id
    assert event["type"] == "pipeline.run.failed"
    assert event["data"]["failed_step"] == "extract"
    [(delivered,)] = db.execute("select delivered_at is not null from ops.outbox").fetchall()
    assert delivered
    assert token not in listed and webhook_secret not in listed


def test_a_day_still_incomplete_past_the_revision_horizon_is_alerted_once(notifying, source, monkeypatch):
    # The archive has DAY only until noon, and never fills the afternoon in.
    source.faults = FaultPlan(available_until=datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC))
    assert daily_weather(logical_date=DAY, lookback_days=0, return_state=True).is_completed()
    source.faults = FaultPlan()
    monkeypatch.setenv("PIPELINE_REVISION_HORIZON_DAYS", "2")

    for later in (3, 4):  # both runs find DAY past the horizon; only the first reports it
        state = daily_weather(logical_date=DAY + timedelta(days=later), lookback_days=0, return_state=True)
        assert state.is_completed()

    sent = [delivery for delivery in notifying.deliveries if b"pipeline.day.incomplete" in delivery.body]
    [delivery] = sent
    event = delivery.verified()
    assert event["type"] == "pipeline.day.incomplete"
    assert event["data"]["logical_date"] == "2024-03-09"
    assert event["data"]["command"] == "pipeline backfill --start 2024-03-09 --end 2024-03-09 --reprocess incomplete"


def test_a_day_that_fails_again_after_recovering_is_a_new_alert(notifying, source):
    for faults in (FaultPlan(daily_limit=1.0), FaultPlan(), FaultPlan(daily_limit=1.0)):
        source.faults = faults
        daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    events = notifying.events()
    assert [event["type"] for event in events] == [
        "pipeline.run.failed",
        "pipeline.run.succeeded",
        "pipeline.run.failed",
    ]
    assert events[1]["data"]["recovered"] == ["failed"]
    assert len({delivery.headers["webhook-id"] for delivery in notifying.deliveries}) == 3


def test_outbox_retries_back_off_and_keep_the_webhook_id(notifying, db):
    resources = Resources.build(Settings())
    notifying.fail_first(1)
    warehouse.migrate(db)
    with db.transaction():
        outbox.enqueue(db, resources, notify.RUN_LATE, {"logical_date": str(DAY)}, "k", datetime.now(UTC))

    first = outbox.deliver_due(db, resources)
    not_yet = outbox.deliver_due(db, resources)  # not due: the next attempt waits its delay
    db.execute("update ops.outbox set next_attempt_at = now()")
    second = outbox.deliver_due(db, resources)

    assert (first, not_yet, second) == (0, 0, 1)
    [(attempts, last_error)] = db.execute("select attempts, last_error from ops.outbox").fetchall()
    assert attempts == 2 and last_error is None
    ids = [delivery.headers["webhook-id"] for delivery in notifying.deliveries]
    assert len(ids) == 2 and len(set(ids)) == 1
    notifying.events()  # both attempts verify


def test_check_freshness_alerts_with_the_prefect_server_unreachable(notifying):
    closed = WebhookReceiver()  # a port that answered once and is now closed
    closed.close()
    env = os.environ | {"PREFECT_API_URL": f"http://127.0.0.1:{closed.port}/api"}
    pipeline = os.path.join(os.path.dirname(sys.executable), "pipeline")

    result = subprocess.run(
        [pipeline, "check-freshness", "--date", str(DAY)], env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == f"{DAY}: LATE (daily run: unknown); alert sent"
    assert "Traceback" not in result.stderr
    [delivery] = notifying.deliveries
    late = delivery.verified()
    assert late["type"] == "pipeline.run.late"
    assert late["data"]["run_state"] == "unknown"


def test_the_daily_run_pings_its_heartbeat_on_success_and_fail_on_failure(pipeline_env, monkeypatch, receiver, source):
    monkeypatch.setenv("PIPELINE_HEARTBEAT_URL", f"http://127.0.0.1:{receiver.port}/ping/daily")

    succeeded = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)
    source.faults = FaultPlan(daily_limit=1.0)
    failed = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    assert succeeded.is_completed() and failed.is_failed()
    assert receiver.paths == ["/ping/daily", "/ping/daily/fail"]
    assert "Daily API request limit exceeded" in receiver.deliveries[1].body.decode()


def test_a_heartbeat_monitor_that_is_down_does_not_change_the_run_state(pipeline_env, monkeypatch):
    closed = WebhookReceiver()
    closed.close()
    monkeypatch.setenv("PIPELINE_HEARTBEAT_URL", f"http://127.0.0.1:{closed.port}/ping/daily")

    assert daily_weather(logical_date=DAY, lookback_days=0, return_state=True).is_completed()


def test_a_run_that_cannot_reach_the_warehouse_still_alerts_directly(notifying, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")

    state = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    assert state.is_failed()
    [delivery] = notifying.deliveries
    event = delivery.verified()
    assert event["type"] == "pipeline.run.failed"
    assert event["data"]["failed_step"] == "prepare"
    assert "cannot connect to the warehouse" in event["data"]["error"]


def test_a_run_past_its_time_limit_fails_saying_so(notifying, source, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_DAILY_TIMEOUT_SECONDS", "1")
    source.faults = FaultPlan(slow=1.0, slow_seconds=1.5)

    code = main(["run", "--date", str(DAY)])

    assert code == 1
    assert (
        "pipeline run failed: the run exceeded PIPELINE_DAILY_TIMEOUT_SECONDS=1 s"
        in capsys.readouterr().err.splitlines()
    )
    [delivery] = notifying.deliveries
    event = json.loads(delivery.body)
    assert (event["type"], event["data"]["failed_step"]) == ("pipeline.run.failed", "timeout")
    assert event["data"]["error"] == "the run exceeded PIPELINE_DAILY_TIMEOUT_SECONDS=1 s"


def test_outbox_delivers_older_messages_first_once_the_receiver_is_back(notifying, db):
    # A failure queued while the receiver was down waits out its backoff; the next message is due at once.
    resources = Resources.build(Settings())
    warehouse.migrate(db)
    notifying.fail_first(1)
    with db.transaction():
        outbox.enqueue(db, resources, notify.RUN_FAILED, {"logical_date": "2024-03-05"}, "older", datetime.now(UTC))
    assert outbox.deliver_due(db, resources) == 0
    with db.transaction():
        outbox.enqueue(db, resources, notify.RUN_SUCCEEDED, {"logical_date": "2024-03-06"}, "newer", datetime.now(UTC))
        outbox.enqueue(db, resources, notify.RUN_LATE, {"logical_date": "2024-03-07"}, "newest", datetime.now(UTC))
    # Even one that is not due yet: a delivery makes everything waiting due.
    db.execute(
        "update ops.outbox set next_attempt_at = now() + interval '1 hour' where event_type = %s", [notify.RUN_LATE]
    )

    delivered = outbox.deliver_due(db, resources)

    assert delivered == 3
    received = [(event["type"], event["data"]["logical_date"]) for event in notifying.events()]
    assert received == [
        ("pipeline.run.failed", "2024-03-05"),  # the failed first attempt
        ("pipeline.run.failed", "2024-03-05"),
        ("pipeline.run.succeeded", "2024-03-06"),
        ("pipeline.run.late", "2024-03-07"),
    ]
    assert db.execute("select count(*) from ops.outbox where delivered_at is null").fetchone()[0] == 0


def test_outbox_dead_letters_a_message_after_its_attempts_and_reports_it_to_the_heartbeat(
    notifying, db, monkeypatch, capsys
):
    monitor = WebhookReceiver()
    monkeypatch.setenv("PIPELINE_HEARTBEAT_URL", f"http://127.0.0.1:{monitor.port}/ping/daily")
    monkeypatch.setenv("PIPELINE_OUTBOX_RETRY_SECONDS", "0")
    monkeypatch.setenv("PIPELINE_OUTBOX_DEAD_AFTER_ATTEMPTS", "2")
    resources = Resources.build(Settings())
    warehouse.migrate(db)
    notifying.fail_first(2)
    with db.transaction():
        outbox.enqueue(db, resources, notify.RUN_FAILED, {"logical_date": "2024-03-05"}, "dead", datetime.now(UTC))
    [(dead_id,)] = db.execute("select id from ops.outbox").fetchall()

    tried = [outbox.deliver_due(db, resources) for _ in range(3)]  # the third finds nothing to try
    with db.transaction():
        outbox.enqueue(db, resources, notify.RUN_LATE, {"logical_date": "2024-03-06"}, "later", datetime.now(UTC))
    later = outbox.deliver_due(db, resources)  # a dead letter holds nothing up
    listed_code = main(["alerts"])
    listed = capsys.readouterr().out
    resent_code = main(["alerts", "--resend", str(dead_id)])
    resent = capsys.readouterr().out
    unknown_code = main(["alerts", "--resend", str(dead_id + 1000)])
    unknown = capsys.readouterr().err

    assert tried == [0, 0, 0] and later == 1
    assert [event["type"] for event in notifying.events()] == [
        "pipeline.run.failed",
        "pipeline.run.failed",
        "pipeline.run.late",
        "pipeline.run.failed",  # by hand, with the same webhook-id
    ]
    assert len({notifying.deliveries[i].headers["webhook-id"] for i in (0, 1, 3)}) == 1
    [ping] = monitor.deliveries
    monitor.close()
    assert ping.path == "/ping/daily/fail"
    assert f"pipeline alerts --resend {dead_id}" in ping.body.decode()
    assert listed_code == 1
    assert f"{dead_id:>6}  dead " in listed and "HTTP 503" in listed
    assert (resent_code, f"notification {dead_id}: delivered (HTTP 204)") == (0, resent.splitlines()[0])
    assert "no undelivered notifications" in resent
    assert unknown_code == 2 and f"no undelivered notification with id {dead_id + 1000}" in unknown


def test_outbox_dead_letters_a_message_older_than_its_age_limit_at_its_next_failure(notifying, db, monkeypatch):
    monkeypatch.setenv("PIPELINE_OUTBOX_DEAD_AFTER_HOURS", "1")
    resources = Resources.build(Settings())
    warehouse.migrate(db)
    notifying.fail_first(1)
    with db.transaction():
        outbox.enqueue(db, resources, notify.RUN_FAILED, {"logical_date": "2024-03-05"}, "old", datetime.now(UTC))
    db.execute("update ops.outbox set created_at = now() - interval '2 hours'")

    outbox.deliver_due(db, resources)

    [(attempts, dead)] = db.execute("select attempts, dead_at is not null from ops.outbox").fetchall()
    assert (attempts, dead) == (1, True)
