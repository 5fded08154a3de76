"""Alerts: one per (deployment, logical date, kind) until the day recovers, and when a late day is due."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg

from blocks import Resources
from pipeline import outbox
from pipeline.ledger import SOURCE
from pipeline.warehouse import query, table_exists


@dataclass(frozen=True)
class Alert:
    """A notification sent at most once per (deployment, logical date, kind) until that day recovers."""

    event_type: str
    data: dict
    # `<flow>/<deployment>`: whose alert it is; `<flow>/<deployment>/<parent run id>` for a run that
    # another run started, whose alerts are once per parent run.
    deployment: str
    logical_date: date
    # "failed", "late", "incomplete", "crashed": what went wrong with the day.
    kind: str
    flow_run_id: str | None = None

    def message_key(self, claimed: datetime) -> str:
        """The key of the alert's `webhook-id`: a day alerted again after recovering is a new message."""
        return f"{self.deployment}/{self.logical_date}/{self.kind}/{claimed.isoformat()}"


def send(conn: psycopg.Connection, resources: Resources, alerts: Iterable[Alert]) -> list[Alert]:
    """Claim each alert and write its message to the outbox in one transaction, then deliver what is due.

    Returns the alerts claimed now; the others had been sent already. The claim and the message
    commit together, so a claim never exists without a message that later commands deliver.
    `conn` must be in autocommit mode.
    """
    sent = []
    for alert in alerts:
        with conn.transaction():
            claimed = claim(conn, alert.deployment, alert.logical_date, alert.kind, alert.flow_run_id)
            if claimed is None:
                continue
            key = alert.message_key(claimed)
            outbox.enqueue(conn, resources, alert.event_type, alert.data, key, datetime.now(UTC))
        sent.append(alert)
    outbox.deliver_due(conn, resources)
    return sent


def claim(
    conn: psycopg.Connection, deployment: str, logical_date: date, kind: str, flow_run_id: str | None
) -> datetime | None:
    """When the alert was claimed, the first time it is; None for every repeat of it until the day recovers.

    Before the warehouse is set up (a run that failed that early) every alert goes out.
    """
    if not table_exists(conn, "ops.alerts"):
        return datetime.now(UTC)
    with conn.transaction():
        row = conn.execute(
            query("claim_alert"),
            {"deployment": deployment, "logical_date": logical_date, "kind": kind, "flow_run_id": flow_run_id},
        ).fetchone()
    return row[0] if row else None


def recover(conn: psycopg.Connection, flow: str, logical_date: date) -> list[str]:
    """Close the open alerts of a logical date that has now landed; returns their kinds."""
    if not table_exists(conn, "ops.alerts"):
        return []
    with conn.transaction():
        rows = conn.execute(query("claim_recovery"), {"flow": flow, "logical_date": logical_date})
        return sorted(kind for (kind,) in rows)


def landed(conn: psycopg.Connection, day: date) -> bool:
    """Whether a day is loaded and the marts reflect it."""
    row = conn.execute(query("day_loaded"), {"source": SOURCE, "day": day}).fetchone()
    return bool(row and row[0])


def due_logical_date(now: datetime, deadline: time) -> date:
    """The latest logical date whose deadline has passed at `now`.

    The run for D is scheduled on D+1 and must have completed by `deadline` (UTC) that day.
    """
    if now.tzinfo is None:
        raise ValueError(f"now {now.isoformat()} has no time zone")
    now = now.astimezone(UTC)
    return now.date() - timedelta(days=1 if now.time() >= deadline else 2)


def deadline_at(logical_date: date, deadline: time) -> datetime:
    return datetime.combine(logical_date + timedelta(days=1), deadline, tzinfo=UTC)
