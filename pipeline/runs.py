"""What a flow run says at the end: summary, notification, alerts."""

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

from prefect import Flow, runtime
from prefect.client.schemas.objects import FlowRun, State
from prefect.flow_engine import FlowRunTimeoutError

from blocks import Resources, release_run_resources, run_resources
from pipeline import alerts, heartbeat, lookups, notify, outbox, warehouse
from pipeline.errors import StepFailed, first_line
from pipeline.lookups import KnownRun, run_link
from pipeline.summary import Kind, RunSummary, WindowSummary

logger = logging.getLogger("pipeline.runs")


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
        # A flow run past its time limit ends with a TimeoutError that no step caught.
        failed_step = "timeout" if isinstance(result, TimeoutError) else "start"
        data |= {"window": None, "failed_step": failed_step, "error": first_line(result)[:500]}
    elif isinstance(result, RunSummary):
        data |= result.data()
    return data


def deployment_key() -> str:
    """The current run's `<flow>/<deployment>` (`<flow>/local` when started by hand)."""
    return lookups.deployment_key(runtime.flow_run.flow_name, runtime.deployment.name)


def run_notifier(kind: Kind) -> Callable[[Flow, FlowRun, State], None]:
    """The state hook of the `kind` flow: `send_run_notification` for its runs."""

    def notify_run(flow: Flow, flow_run: FlowRun, state: State) -> None:
        try:
            send_run_notification(kind, flow, flow_run, state)
        finally:  # the run's last use of its resources
            release_run_resources(str(flow_run.id))

    return notify_run


def send_run_notification(kind: Kind, flow: Flow, flow_run: FlowRun, state: State) -> None:
    """Report a finished run, once per (deployment, logical date) for failures.

    The message goes to the outbox in the transaction that claims (or closes) its alert, so a
    claim never exists without a message that later commands deliver until the receiver takes it.
    The run's own resources serve it, the ones its body used (one warehouse engine per run).
    """
    resources = run_resources(str(flow_run.id))
    settings = resources.settings
    result = state.result(raise_on_failure=False)
    failed = state.is_failed()
    backfill = kind == "backfill"
    event_type = notify.RUN_FAILED if failed else notify.BACKFILL_COMPLETED if backfill else notify.RUN_SUCCEEDED
    data = notification_data(flow_run, result)
    if isinstance(result, FlowRunTimeoutError) and state.message:  # "Flow run exceeded timeout of …", not "Scope …"
        data["error"] = state.message
    logical_date = _logical_date(result)
    key = str(flow_run.id)
    if not backfill:
        heartbeat.ping(settings.heartbeat_url, failed, data.get("error") or f"{flow.name} {state.name}")
    # Failures of a daily run are alerts, once per day until it recovers; everything else is a message.
    alert = None
    if failed and logical_date is not None and not backfill:
        alert = alerts.Alert(event_type, data, deployment_key(), logical_date, "failed", key)
    try:
        with resources.warehouse.connect(autocommit=True) as conn:
            # A run that failed before the first migration has no outbox: it notifies directly.
            if outbox.available(conn):
                if alert is not None:
                    if not alerts.send(conn, resources, [alert]):
                        logger.info("failure of %s for %s already alerted", deployment_key(), logical_date)
                    return
                with conn.transaction():
                    if logical_date is not None and not backfill:
                        data["recovered"] = alerts.recover(conn, flow.name, logical_date)
                    outbox.enqueue(conn, resources, event_type, data, key, datetime.now(UTC))
                outbox.deliver_due(conn, resources)
                return
    except Exception as exc:  # the warehouse may be why the run failed: alert without deduplication
        logger.warning("alert bookkeeping unavailable (%s); notifying anyway", type(exc).__name__)
    publish(resources, event_type, data, key=key)


def alert_incomplete_days(resources: Resources, days: list[date], horizon_days: int) -> list[date]:
    """One `pipeline.day.incomplete` per day still incomplete past the revision horizon; returns the days
    alerted now."""
    incomplete = [
        alerts.Alert(
            notify.DAY_INCOMPLETE,
            {
                "deployment": runtime.deployment.name,
                "logical_date": day.isoformat(),
                "revision_horizon_days": horizon_days,
                "error": f"{day} still has missing values {horizon_days} days on; the archive will not fill it now",
                "command": f"pipeline backfill --start {day} --end {day} --reprocess incomplete",
            },
            deployment_key(),
            day,
            "incomplete",
            str(runtime.flow_run.id),
        )
        for day in days
    ]
    with resources.warehouse.connect(autocommit=True) as conn:
        return [alert.logical_date for alert in alerts.send(conn, resources, incomplete)]


def ended_run_alert(ended: KnownRun, kind: str) -> alerts.Alert:
    """The `pipeline.run.failed` of a run that ended as `kind` without reaching its own state hook (a crash)."""
    run = ended.run
    flow_run_id = str(run.id)
    data = {
        "deployment": ended.deployment_name,
        "flow": ended.flow_name,
        "flow_run": {"id": flow_run_id, "name": run.name, "state": run.state_name, "url": run_link(flow_run_id)},
        "logical_date": ended.logical_date.isoformat(),
        "failed_step": kind,
        "error": run.state.message if run.state else None,
    }
    # A run that another started (a spread backfill's chunk run) alerts once for that run, however many
    # of its runs one lost host took, and again for a later backfill the same day; a run of its own,
    # once per logical date.
    scope = f"{ended.key}/{ended.parent_run_id}" if ended.parent_run_id else ended.key
    return alerts.Alert(notify.RUN_FAILED, data, scope, ended.logical_date, kind, flow_run_id)


def send_alert(resources: Resources, alert: alerts.Alert) -> bool:
    """Send `alert` unless it was sent before, from a run that may precede the warehouse's first migration."""
    with resources.warehouse.connect(autocommit=True) as conn:
        # Without ops.alerts every claim succeeds: a crash before the first load must dedupe too.
        warehouse.migrate(conn)
        return bool(alerts.send(conn, resources, [alert]))


def publish(resources: Resources, event_type: str, data: dict, key: str) -> bool:
    """Send one notification to the configured webhook; log it when there is none."""
    if resources.webhook is None:
        logger.info("notification %s (no PIPELINE_WEBHOOK_URL configured)", event_type)
        return False
    message = notify.compose(event_type, data, datetime.now(UTC), resources.settings.webhook_format)
    return resources.webhook.deliver(message, notify.message_id(event_type, key))


def _logical_date(result: object) -> date | None:
    if isinstance(result, StepFailed) and result.window is not None:
        return result.window.last
    if isinstance(result, RunSummary):
        return result.logical_date
    return None
