"""Notifications: the webhook contract, Standard Webhooks signing, and delivery that never raises."""

import base64
import hashlib
import hmac
import logging
import time
import uuid
from datetime import UTC, date, datetime
from typing import NamedTuple

import httpx
import orjson
from pydantic import BaseModel, ConfigDict

RUN_SUCCEEDED = "pipeline.run.succeeded"
RUN_FAILED = "pipeline.run.failed"
RUN_LATE = "pipeline.run.late"
BACKFILL_COMPLETED = "pipeline.backfill.completed"
# A day the archive left with missing values past its revision horizon: it will not fill it now.
DAY_INCOMPLETE = "pipeline.day.incomplete"
EVENT_TYPES = (RUN_SUCCEEDED, RUN_FAILED, RUN_LATE, BACKFILL_COMPLETED, DAY_INCOMPLETE)

logger = logging.getLogger("pipeline.notify")


class _Part(BaseModel):
    # Read back from an event: fields this code does not show are ignored, not refused.
    model_config = ConfigDict(frozen=True, extra="ignore")


class EventWindow(_Part):
    first_day: date
    last_day: date


class EventRun(_Part):
    name: str | None = None
    url: str | None = None


class EventData(_Part):
    """The fields of an event's `data` that a person reads in its message; each kind of event sets some."""

    window: EventWindow | None = None
    logical_date: date | None = None
    failed_step: str | None = None
    error: str | None = None
    rows_loaded: int | None = None
    flow_run: EventRun | None = None

    @property
    def days(self) -> str:
        """The window's days ("2024-03-04..2024-03-09"), else the logical date, else nothing."""
        if self.window is not None:
            return f"{self.window.first_day}..{self.window.last_day}"
        return self.logical_date.isoformat() if self.logical_date else ""


def build_event(event_type: str, data: dict, now: datetime) -> dict:
    """The JSON document every notification sends."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown notification type {event_type!r}, expected one of {EVENT_TYPES}")
    return {"type": event_type, "timestamp": now.astimezone(UTC).isoformat(), "data": data}


def compose(event_type: str, data: dict, now: datetime, webhook_format: str = "standard") -> dict:
    """What the receiver gets: the event of the JSON contract, or ("slack") the same event as a Slack message."""
    event = build_event(event_type, data, now)
    return slack_message(event) if webhook_format == "slack" else event


def message_id(event_type: str, key: str) -> str:
    """A stable id for one event: deliveries and re-sends of it carry the same `webhook-id`."""
    return "msg_" + uuid.uuid5(uuid.NAMESPACE_URL, f"{event_type}/{key}").hex


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; raises binascii.Error when it is not base64."""
    encoded = secret.removeprefix("whsec_")
    # Secrets are often copied without their base64 padding; Standard Webhooks consumers accept that.
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature` per Standard Webhooks: v1,base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))."""
    mac = hmac.new(signing_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str | None, msg_id: str, body: bytes, now: float) -> dict[str, str]:
    timestamp = int(now)
    headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


class Attempt(NamedTuple):
    """The outcome of one POST: accepted (2xx), or why not, and whether trying again can help."""

    accepted: bool
    outcome: str
    retryable: bool


def post(url: str, body: bytes, msg_id: str, secret: str | None = None, timeout: float = 10.0) -> Attempt:
    """POST a body once, signed with the current time; never raises.

    The outcome never quotes the URL or the exception text: the URL may hold a token.
    """
    try:
        headers = signed_headers(secret, msg_id, body, time.time())
    except ValueError:  # binascii.Error: a secret that is not base64 (the text would quote it)
        return Attempt(False, "webhook secret is not base64 (whsec_<base64>)", False)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return Attempt(False, type(exc).__name__, True)
    except Exception as exc:  # a bad URL, say: report it, never raise into the pipeline
        return Attempt(False, type(exc).__name__, False)
    status = response.status_code
    return Attempt(status < 300, f"HTTP {status}", status >= 500 or status == 429)


def deliver(
    url: str,
    event: dict,
    msg_id: str,
    secret: str | None = None,
    attempts: int = 3,
    timeout: float = 10.0,
    backoff: float = 1.0,
) -> bool:
    """POST an event, retrying 5xx and network errors with the same id; returns whether it was accepted.

    Never raises: a notification failure must not change the outcome of the run it reports.
    """
    body = orjson.dumps(event)
    for attempt in range(1, attempts + 1):
        result = post(url, body, msg_id, secret, timeout)
        if result.accepted:
            return True
        if not result.retryable:
            break
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    # The URL may hold a token: log the event and the outcome, never the URL.
    logger.warning("notification %s %s not delivered: %s", event["type"], msg_id, result.outcome)
    return False


def slack_message(event: dict) -> dict:
    """The same event as a Slack incoming-webhook message."""
    data = EventData.model_validate(event["data"])
    title = {
        RUN_SUCCEEDED: ":white_check_mark: weather pipeline succeeded",
        RUN_FAILED: ":x: weather pipeline failed",
        RUN_LATE: ":hourglass: weather pipeline is late",
        BACKFILL_COMPLETED: ":white_check_mark: weather backfill completed",
        DAY_INCOMPLETE: ":warning: weather day still incomplete past the revision horizon",
    }[event["type"]]
    lines = [f"*{title}* {data.days}".strip()]
    if data.failed_step:
        lines.append(f"step `{data.failed_step}`: {data.error or ''}")
    if data.rows_loaded is not None:
        lines.append(f"{data.rows_loaded:,} rows loaded")
    if data.flow_run is not None and data.flow_run.url:
        lines.append(f"<{data.flow_run.url}|flow run {data.flow_run.name or ''}>")
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
