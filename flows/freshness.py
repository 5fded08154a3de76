"""Freshness check: alert once when the daily run for a logical date has not landed by its deadline."""

from datetime import date, datetime

from prefect import flow, runtime
from prefect.logging import get_run_logger

from blocks import resolve_resources
from pipeline import alerts, freshness

DAILY_DEPLOYMENT = freshness.DAILY_DEPLOYMENT


@flow(name="check-freshness", timeout_seconds=600)
def check_freshness(logical_date: date | None = None, deployment: str = DAILY_DEPLOYMENT) -> freshness.Freshness:
    """Is logical date D (default: the latest whose deadline has passed) in the marts? If not, alert once.

    The ledger is the truth here, not the Prefect API: it also catches a worker that is
    down, a paused deployment or a deleted schedule, where no run ever exists to fail.
    """
    resources = resolve_resources()
    scheduled = datetime.fromisoformat(runtime.flow_run.scheduled_start_time.isoformat())
    day = logical_date or alerts.due_logical_date(scheduled, resources.settings.deadline)
    result = freshness.check(resources, day, deployment, freshness.lookup_run, runtime.flow_run.id)
    if result.late:
        get_run_logger().warning("%s for %s has not landed (run: %s)", deployment, day, result.run_state)
    return result
