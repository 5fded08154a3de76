"""What a flow run needs at start and says at the end: settings, warehouse, summary, notification."""

from datetime import UTC, date, datetime

from prefect import runtime
from prefect.settings import PREFECT_UI_URL
from pydantic import SecretStr

from pipeline import embedded, notify
from pipeline.settings import Settings
from pipeline.tasks import StepFailed
from pipeline.window import Window, logical_date_for


def warehouse_dsn(settings: Settings) -> SecretStr:
    """The configured warehouse, or the embedded local Postgres when none is."""
    if settings.database_url is not None:
        return settings.database_url
    return SecretStr(embedded.start(settings.data_dir))


def scheduled_logical_date() -> date:
    """The logical date of the current flow run, from its *scheduled* start time."""
    scheduled = runtime.flow_run.scheduled_start_time
    return logical_date_for(datetime.fromisoformat(scheduled.isoformat()))


def run_link(flow_run_id: str | None) -> str | None:
    ui_url = PREFECT_UI_URL.value()
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui_url and flow_run_id else None


def window_data(window: Window | None) -> dict | None:
    if window is None:
        return None
    return {
        "first_day": window.first.isoformat(),
        "last_day": window.last.isoformat(),
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
    }


def notification_data(flow_run, result: object) -> dict:
    """The `data` of a run notification: run, window, rows, dbt counts, or the failed step."""
    data = {
        "deployment": runtime.deployment.name,
        "flow": runtime.flow_run.flow_name,
        "flow_run": {"id": str(flow_run.id), "name": flow_run.name, "url": run_link(str(flow_run.id))},
    }
    if isinstance(result, StepFailed):
        data |= {"window": window_data(result.window), "failed_step": result.step, "error": str(result)}
        outcome = getattr(result.cause, "outcome", None)
        if outcome is not None:
            data["dbt_tests"] = {
                "counts": outcome.counts,
                "failures": [{"name": f.name, "status": f.status, "failures": f.failures} for f in outcome.failures],
            }
    elif isinstance(result, BaseException):
        data |= {"window": None, "failed_step": "start", "error": str(result).strip().splitlines()[0][:500]}
    elif isinstance(result, dict):
        data |= result
    return data


def send_run_notification(flow, flow_run, state) -> None:
    """Flow state hook: report a finished run to the webhook, if one is configured."""
    settings = Settings()
    result = state.result(raise_on_failure=False)
    event_type = notify.RUN_FAILED if state.is_failed() else notify.RUN_SUCCEEDED
    if isinstance(result, dict) and result.get("kind") == "backfill":
        event_type = notify.BACKFILL_COMPLETED if not state.is_failed() else event_type
    data = notification_data(flow_run, result)
    if settings.webhook_url is None:
        return
    event = notify.build_event(event_type, data, datetime.now(UTC))
    notify.deliver(
        settings.webhook_url.get_secret_value(),
        event,
        notify.message_id(event_type, str(flow_run.id)),
        settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
    )
