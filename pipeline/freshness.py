"""The freshness check: is a logical date in the marts by its deadline? If not, alert once.

It needs the warehouse and the webhook only: the Prefect API, when reachable, adds the state
of the day's run to the alert, and "unknown" stands in for it when it is not.
"""

import logging
from collections.abc import Callable
from datetime import date

from prefect.exceptions import ObjectNotFound
from prefect.settings import (
    PREFECT_API_REQUEST_TIMEOUT,
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)
from pydantic import BaseModel, ConfigDict

from blocks import Resources
from pipeline import alerts, notify, outbox, warehouse
from pipeline.lookups import SeenRun, daily_run_for

DAILY_DEPLOYMENT = "daily-weather/daily"

logger = logging.getLogger("pipeline.freshness")

RunLookup = Callable[[date, str], SeenRun | None]


class Freshness(BaseModel):
    """What the check found for one logical date."""

    model_config = ConfigDict(frozen=True)

    logical_date: date
    late: bool
    # Whether this check sent the late alert (False: the day landed, or it was alerted before).
    alerted: bool = False
    # The day's daily run as the Prefect server knows it: a state name, "none" or "unknown".
    run_state: str | None = None


def check(
    resources: Resources, day: date, deployment: str, run_lookup: RunLookup, flow_run_id: str | None = None
) -> Freshness:
    """Alert once if `day` has not landed; deliver whatever else the outbox holds either way."""
    settings = resources.settings
    with resources.warehouse.connect(autocommit=True) as conn:
        warehouse.migrate(conn)
        if alerts.landed(conn, day):
            outbox.deliver_due(conn, resources)
            return Freshness(logical_date=day, late=False)
        run = run_lookup(day, deployment)
        data = {
            "deployment": deployment,
            "logical_date": day.isoformat(),
            "deadline": alerts.deadline_at(day, settings.deadline).isoformat(),
            "run_state": run.state if run else "none",
            "flow_run": run.data() if run else None,
        }
        sent = alerts.send(conn, resources, [alerts.Alert(notify.RUN_LATE, data, deployment, day, "late", flow_run_id)])
    logger.warning("%s for %s has not landed (run: %s)", deployment, day, data["run_state"])
    return Freshness(logical_date=day, late=True, alerted=bool(sent), run_state=data["run_state"])


def lookup_run(day: date, deployment: str) -> SeenRun | None:
    """The day's run as the Prefect server knows it; `unknown` when it cannot say."""
    try:
        return daily_run_for(day, deployment)
    except ObjectNotFound:  # the deployment itself is gone: no run exists
        return None
    except Exception as exc:  # no server, or no such deployment: the ledger still says the day is late
        logger.warning("cannot read %s runs from Prefect: %s", deployment, type(exc).__name__)
        return SeenRun.unknown(type(exc).__name__)


def bounded_lookup(timeout_seconds: float) -> RunLookup:
    """`lookup_run` that gives up after about `timeout_seconds`, and never starts a temporary server."""

    def lookup(day: date, deployment: str) -> SeenRun | None:
        if not PREFECT_API_URL.value():  # without a server to ask, Prefect would start one (~20 s)
            return SeenRun.unknown("PREFECT_API_URL is not set")
        with temporary_settings({PREFECT_API_REQUEST_TIMEOUT: timeout_seconds, PREFECT_CLIENT_MAX_RETRIES: 0}):
            return lookup_run(day, deployment)

    return lookup
