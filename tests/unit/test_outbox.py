from datetime import UTC, datetime

import orjson
import pytest
from pydantic import SecretStr

from pipeline import notify, outbox
from pipeline.settings import Settings

NOW = datetime(2024, 3, 10, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(0, 0.0), (1, 60.0), (2, 120.0), (3, 240.0), (6, 1920.0), (7, 3600.0), (500, 3600.0)],
)
def test_retry_delay_doubles_from_the_base_up_to_an_hour(attempts, expected):
    assert outbox.retry_delay(attempts, base=60.0) == expected


def test_retry_delay_with_a_zero_base_retries_at_once():
    assert outbox.retry_delay(5, base=0.0) == 0.0


def test_render_stores_the_contract_event_without_the_url_or_secret():
    settings = Settings(
        webhook_url=SecretStr("https://hooks.example/T0KEN"), webhook_secret=SecretStr("whsec_c2VjcmV0")
    )

    body = outbox.render(settings, notify.RUN_FAILED, {"logical_date": "2024-03-09"}, NOW)

    assert orjson.loads(body) == {
        "type": "pipeline.run.failed",
        "timestamp": "2024-03-10T06:30:00+00:00",
        "data": {"logical_date": "2024-03-09"},
    }
    assert b"T0KEN" not in body and b"c2VjcmV0" not in body


def test_render_in_slack_format_stores_the_slack_message():
    settings = Settings(webhook_format="slack")

    body = orjson.loads(outbox.render(settings, notify.RUN_LATE, {"logical_date": "2024-03-09"}, NOW))

    assert set(body) == {"text", "blocks"}
    assert "late" in body["text"]


def test_pending_state_is_failed_once_an_attempt_was_made():
    pending = outbox.Pending(1, "msg_x", notify.RUN_LATE, NOW, 0, None, None, NOW)
    tried = outbox.Pending(1, "msg_x", notify.RUN_LATE, NOW, 2, NOW, "ConnectError", NOW)

    dead = outbox.Pending(1, "msg_x", notify.RUN_LATE, NOW, 24, NOW, "HTTP 503", NOW, NOW)

    assert (pending.state, tried.state, dead.state) == ("pending", "failed", "dead")
