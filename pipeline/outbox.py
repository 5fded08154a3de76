"""The notification outbox: every notification is written to `ops.outbox`, then delivered until a 2xx."""

import logging
from dataclasses import dataclass
from datetime import datetime

import orjson
import psycopg

from blocks import Resources
from pipeline import heartbeat, notify
from pipeline.settings import Settings
from pipeline.warehouse import query, table_exists

RETRY_CAP_SECONDS = 3600.0
# Messages one command tries at most: a long outage must not turn every command into a sweep.
BATCH = 100

logger = logging.getLogger("pipeline.outbox")


@dataclass(frozen=True)
class Pending:
    """An undelivered message, as `pipeline alerts` lists it."""

    id: int
    message_id: str
    event_type: str
    created_at: datetime
    attempts: int
    last_attempt_at: datetime | None
    last_error: str | None
    next_attempt_at: datetime
    dead_at: datetime | None = None

    @property
    def state(self) -> str:
        if self.dead_at is not None:
            return "dead"
        return "failed" if self.attempts else "pending"


def retry_delay(attempts: int, base: float, cap: float = RETRY_CAP_SECONDS) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base, 2×base, 4×base, … at most `cap`."""
    if attempts < 1:
        return 0.0
    return min(base * 2 ** min(attempts - 1, 32), cap)


def render(settings: Settings, event_type: str, data: dict, now: datetime) -> bytes:
    """The body the receiver gets, in the configured format; it is stored and re-sent byte for byte."""
    return orjson.dumps(notify.compose(event_type, data, now, settings.webhook_format))


def available(conn: psycopg.Connection) -> bool:
    """Whether the outbox exists (it does not before the first migration)."""
    return table_exists(conn, "ops.outbox")


def enqueue(
    conn: psycopg.Connection, resources: Resources, event_type: str, data: dict, key: str, now: datetime
) -> str | None:
    """Write one notification to the outbox, in the caller's transaction; returns its `webhook-id`.

    Without a webhook nothing is queued: the event is only logged.
    """
    if resources.webhook is None:
        logger.info("notification %s (no PIPELINE_WEBHOOK_URL configured)", event_type)
        return None
    msg_id = notify.message_id(event_type, key)
    body = render(resources.settings, event_type, data, now).decode()
    conn.execute(query("outbox_enqueue"), {"message_id": msg_id, "event_type": event_type, "body": body})
    return msg_id


def deliver_due(conn: psycopg.Connection, resources: Resources, limit: int = BATCH) -> int:
    """Deliver the waiting messages in the order they were written, once any is due; returns how many were.

    A delivery makes every message still waiting due at once, so the receiver, back after an
    outage, gets what it missed oldest first and before anything newer. `conn` must be in
    autocommit mode: each message is locked, sent and updated in its own transaction, so a crash
    loses at most one attempt's bookkeeping (the message is sent again, with the same
    `webhook-id`). Stops at the first receiver that is down: the rest would fail too.
    """
    webhook = resources.webhook
    if webhook is None or not available(conn):
        return 0
    delivered, after = 0, 0
    for _ in range(limit):
        with conn.transaction():
            row = conn.execute(query("outbox_next_due"), {"after": after}).fetchone()
            if row is None:
                break
            row_id, msg_id, event_type, body, attempts = row
            after = row_id
            attempt = webhook.post(body.encode(), msg_id)
            if attempt.accepted:
                conn.execute(query("outbox_delivered"), {"id": row_id})
                conn.execute(query("outbox_release"))
                delivered += 1
                continue
            retry_in = retry_delay(attempts + 1, resources.settings.outbox_retry_seconds)
            tries, dead = _record_failure(conn, resources.settings, row_id, attempt.outcome, retry_in)
        if dead:
            _report_dead_letter(resources.settings, row_id, event_type, msg_id, tries, attempt.outcome)
        else:
            # The URL may hold a token: name the message and the outcome only.
            logger.warning(
                "notification %s %s not delivered (%s); next attempt in %.0f s",
                event_type,
                msg_id,
                attempt.outcome,
                retry_in,
            )
        if attempt.retryable:
            break
    return delivered


def resend(conn: psycopg.Connection, resources: Resources, message: int) -> notify.Attempt:
    """Send one undelivered message now, dead-lettered or not; then, if it went, whatever else waits.

    `conn` must be in autocommit mode. A message that fails again keeps its place (and its dead letter).
    """
    webhook = resources.webhook
    if webhook is None:
        raise ValueError("no webhook configured (PIPELINE_WEBHOOK_URL or the weather-webhook block)")
    with conn.transaction():
        row = conn.execute(query("outbox_resend"), {"id": message}).fetchone() if available(conn) else None
        if row is None:
            raise ValueError(f"no undelivered notification with id {message} (see: pipeline alerts)")
        row_id, msg_id, _, body, attempts = row
        attempt = webhook.post(body.encode(), msg_id)
        if attempt.accepted:
            conn.execute(query("outbox_delivered"), {"id": row_id})
            conn.execute(query("outbox_release"))
        else:
            retry_in = retry_delay(attempts + 1, resources.settings.outbox_retry_seconds)
            _record_failure(conn, resources.settings, row_id, attempt.outcome, retry_in)
    if attempt.accepted:
        deliver_due(conn, resources)
    return attempt


def _record_failure(
    conn: psycopg.Connection, settings: Settings, row_id: int, outcome: str, retry_in: float
) -> tuple[int, bool]:
    """Count a failed attempt; returns the attempts so far and whether the message is now dead-lettered."""
    tries, dead = conn.execute(
        query("outbox_failed"),
        {
            "id": row_id,
            "error": outcome,
            "retry_in": retry_in,
            "dead_after_attempts": settings.outbox_dead_after_attempts,
            "dead_after_seconds": settings.outbox_dead_after_hours * 3600,
        },
    ).fetchone()
    return tries, dead


def _report_dead_letter(
    settings: Settings, row_id: int, event_type: str, msg_id: str, tries: int, outcome: str
) -> None:
    """Say a message will not be retried any more: in the log and on the heartbeat monitor's /fail."""
    text = (
        f"notification {row_id} ({event_type} {msg_id}) dead-lettered after {tries} attempts ({outcome}); "
        f"re-send it with: pipeline alerts --resend {row_id}"
    )
    logger.error("%s", text)
    heartbeat.ping(settings.heartbeat_url, failed=True, message=text)


def undelivered(conn: psycopg.Connection) -> list[Pending]:
    if not available(conn):
        return []
    return [Pending(*row) for row in conn.execute(query("outbox_undelivered"))]


def flush(resources: Resources) -> int:
    """Deliver what is due, for commands that do not otherwise notify; never raises."""
    if resources.webhook is None:
        return 0
    try:
        with resources.warehouse.connect(autocommit=True) as conn:
            return deliver_due(conn, resources)
    except Exception as exc:  # a command's own outcome matters more than a late notification
        logger.warning("outbox not delivered: %s", type(exc).__name__)
        return 0
