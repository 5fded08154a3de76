"""What a flow run says at the end: summary, notification, alerts."""

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from prefect import Flow, get_client, runtime
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.objects import FlowRun, State
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_UI_URL

from blocks import Resources, resolve_resources
from pipeline import alerts, heartbeat, notify, outbox
from pipeline.errors import StepFailed, first_line
from pipeline.summary import Kind, RunSummary, WindowSummary
from pipeline.window import logical_date_for

logger = logging.getLogger("pipeline.runs")


def scheduled_logical_date() -> date:
    """The logical date of the current flow run, from its *scheduled* start time."""
    scheduled = runtime.flow_run.scheduled_start_time
    return logical_date_for(datetime.fromisoformat(scheduled.isoformat()))


def run_link(flow_run_id: str | None) -> str | None:
    ui_url = PREFECT_UI_URL.value()
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui_url and flow_run_id else None


def notification_data(flow_run, result: object) -> dict:
    """The `data` of a run notification: run, window, rows, dbt counts, or the failed step."""
    data = {
        "deployment": runtime.deployment.name,
        "flow": runtime.flow_run.flow_name,
        "flow_run": {"id": str(flow_run.id), "name": flow_run.name, "url": run_link(str(flow_run.id))},
    }
    if isinstance(result, StepFailed):
        window = WindowSummary.of(result.window)
        data |= {"window": window.model_dump(mode="json") if window else None, "failed_step": result.step}
        data["error"] = str(result)
        outcome = getattr(result.cause, "outcome", None)
        if outcome is not None:
            data["dbt_tests"] = {
                "counts": outcome.counts,
                "failures": [{"name": f.name, "status": f.status, "failures": f.failures} for f in outcome.failures],
            }
    elif isinstance(result, BaseException):
        # A flow run past its timeout_seconds ends with a TimeoutError that no step caught.
        failed_step = "timeout" if isinstance(result, TimeoutError) else "start"
        data |= {"window": None, "failed_step": failed_step, "error": first_line(result)[:500]}
    elif isinstance(result, RunSummary):
        data |= result.data()
    return data


def deployment_key() -> str:
    """`<flow>/<deployment>`, or `<flow>/local` for a run started by hand."""
    return f"{runtime.flow_run.flow_name}/{runtime.deployment.name or 'local'}"


def run_notifier(kind: Kind) -> Callable[[Flow, FlowRun, State], None]:
    """The state hook of the `kind` flow: `send_run_notification` for its runs."""

    def notify_run(flow: Flow, flow_run: FlowRun, state: State) -> None:
        send_run_notification(kind, flow, flow_run, state)

    return notify_run


def send_run_notification(kind: Kind, flow: Flow, flow_run: FlowRun, state: State) -> None:
    """Report a finished run, once per (deployment, logical date) for failures.

    The message goes to the outbox in the transaction that claims (or closes) its alert, so a
    claim never exists without a message that later commands deliver until the receiver takes it.
    """
    resources = resolve_resources()
    settings = resources.settings
    result = state.result(raise_on_failure=False)
    failed = state.is_failed()
    backfill = kind == "backfill"
    event_type = notify.RUN_FAILED if failed else notify.BACKFILL_COMPLETED if backfill else notify.RUN_SUCCEEDED
    data = notification_data(flow_run, result)
    if isinstance(result, TimeoutError) and state.message:  # "Flow run exceeded timeout of …", not "Scope …"
        data["error"] = state.message
    logical_date = _logical_date(result)
    key = str(flow_run.id)
    if not backfill:
        heartbeat.ping(settings.heartbeat_url, failed, data.get("error") or f"{flow.name} {state.name}")
    try:
        with resources.warehouse.connect(autocommit=True) as conn:
            with conn.transaction():
                if logical_date is not None and not backfill:
                    if not failed:
                        data["recovered"] = alerts.recover(conn, flow.name, logical_date)
                    elif claimed := alerts.claim(conn, deployment_key(), logical_date, "failed", key):
                        # A run retried after a recovery can fail again: that is a new message.
                        key = f"{key}/{claimed.isoformat()}"
                    else:
                        logger.info("failure of %s for %s already alerted", deployment_key(), logical_date)
                        event_type = None
                queued = event_type is not None and outbox.available(conn)
                if queued:
                    outbox.enqueue(conn, resources, event_type, data, key, datetime.now(UTC))
            outbox.deliver_due(conn, resources)
        if queued or event_type is None:
            return
    except Exception as exc:  # the warehouse may be why the run failed: alert without deduplication
        logger.warning("alert bookkeeping unavailable (%s); notifying anyway", type(exc).__name__)
    if event_type is not None:
        publish(resources, event_type, data, key=key)


def alert_incomplete_days(resources: Resources, days: list[date], horizon_days: int) -> list[date]:
    """One `pipeline.day.incomplete` per day still incomplete past the revision horizon; returns the days
    alerted now. Claimed and queued in one transaction per day, so a day is reported once, and surely."""
    alerted = []
    with resources.warehouse.connect(autocommit=True) as conn:
        for day in days:
            with conn.transaction():
                if alerts.claim(conn, deployment_key(), day, "incomplete", str(runtime.flow_run.id)) is None:
                    continue
                data = {
                    "deployment": runtime.deployment.name,
                    "logical_date": day.isoformat(),
                    "revision_horizon_days": horizon_days,
                    "error": f"{day} still has missing values {horizon_days} days on; the archive will not fill it now",
                    "command": f"pipeline backfill --start {day} --end {day} --reprocess incomplete",
                }
                outbox.enqueue(conn, resources, notify.DAY_INCOMPLETE, data, f"incomplete/{day}", datetime.now(UTC))
            alerted.append(day)
        outbox.deliver_due(conn, resources)
    return alerted


def publish(resources: Resources, event_type: str, data: dict, key: str) -> bool:
    """Send one notification to the configured webhook; log it when there is none."""
    if resources.webhook is None:
        logger.info("notification %s (no PIPELINE_WEBHOOK_URL configured)", event_type)
        return False
    event = notify.build_event(event_type, data, datetime.now(UTC))
    return resources.webhook.deliver(
        notify.slack_message(event) if resources.settings.webhook_format == "slack" else event,
        notify.message_id(event_type, key),
    )


def _logical_date(result: object) -> date | None:
    if isinstance(result, StepFailed) and result.window is not None:
        return result.window.last
    if isinstance(result, RunSummary):
        return result.logical_date
    return None


def daily_run_for(logical_date: date, deployment_name: str) -> dict | None:
    """The newest flow run of the daily deployment scheduled for `logical_date`, as the Prefect server knows it."""
    scheduled_from = datetime.combine(logical_date + timedelta(days=1), time(), tzinfo=UTC)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(deployment_name)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    after_=scheduled_from, before_=scheduled_from + timedelta(days=1) - timedelta(microseconds=1)
                ),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    if not runs:
        return None
    run = runs[0]
    return {"id": str(run.id), "name": run.name, "state": run.state_name, "url": run_link(str(run.id))}
