"""Freshness check: alert once when the daily run for a logical date has not landed by its deadline."""

from datetime import date, datetime

from prefect import flow, runtime
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_run_logger

from blocks import resolve_settings
from pipeline import alerts, notify, warehouse
from pipeline.runs import daily_run_for, publish, warehouse_dsn

DAILY_DEPLOYMENT = "daily-weather/daily"


@flow(name="check-freshness")
def check_freshness(logical_date: date | None = None, deployment: str = DAILY_DEPLOYMENT) -> dict:
    """Is logical date D (default: the latest whose deadline has passed) in the marts? If not, alert once.

    The ledger is the truth here, not the Prefect API: it also catches a worker that is
    down, a paused deployment or a deleted schedule, where no run ever exists to fail.
    """
    settings = resolve_settings()
    scheduled = datetime.fromisoformat(runtime.flow_run.scheduled_start_time.isoformat())
    day = logical_date or alerts.due_logical_date(scheduled, settings.deadline)
    with warehouse.connect(warehouse_dsn(settings).get_secret_value()) as conn:
        warehouse.migrate(conn)
        if alerts.landed(conn, day):
            return {"logical_date": day.isoformat(), "late": False, "alerted": False}
        run = _daily_run(day, deployment)
        data = {
            "deployment": deployment,
            "logical_date": day.isoformat(),
            "deadline": alerts.deadline_at(day, settings.deadline).isoformat(),
            "run_state": run["state"] if run else "none",
            "flow_run": run,
        }
        first = alerts.claim(conn, deployment, day, "late", runtime.flow_run.id)
    get_run_logger().warning("%s for %s has not landed (run: %s)", deployment, day, data["run_state"])
    if first:
        publish(settings, notify.RUN_LATE, data, key=f"{deployment}/{day}/late")
    return {"logical_date": day.isoformat(), "late": True, "alerted": first, "run_state": data["run_state"]}


def _daily_run(day: date, deployment: str) -> dict | None:
    try:
        return daily_run_for(day, deployment)
    except ObjectNotFound:  # the deployment itself is gone: no run exists
        return None
    except Exception as exc:  # no server, or no such deployment: the ledger still says the day is late
        get_run_logger().warning("cannot read %s runs from Prefect: %s", deployment, type(exc).__name__)
        return {"state": "unknown", "error": type(exc).__name__}
