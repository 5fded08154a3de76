import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from pipeline.notify import (
    RUN_FAILED,
    RUN_LATE,
    Attempt,
    build_event,
    compose,
    message_id,
    post,
    sign,
    signed_headers,
    slack_message,
)

# The example published with the Standard Webhooks spec: a public test vector, not a key of ours.
SPEC_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_sign_matches_the_standard_webhooks_reference_vector():
    signature = sign(SPEC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_sign_id_timestamp_and_body():
    key = base64.b64encode(b"k" * 24).decode()
    headers = signed_headers("whsec_" + key, "msg_1", b"{}", now=1700000000.7)
    expected = base64.b64encode(hmac.new(b"k" * 24, b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"] == f"v1,{expected}"


def test_signed_headers_without_a_secret_are_unsigned():
    assert "webhook-signature" not in signed_headers(None, "msg_1", b"{}", now=0)


def test_message_id_is_stable_per_event_and_differs_between_events():
    assert message_id(RUN_FAILED, "run-1") == message_id(RUN_FAILED, "run-1")
    assert message_id(RUN_FAILED, "run-1") != message_id(RUN_FAILED, "run-2")


def test_build_event_has_the_contract_shape():
    event = build_event(RUN_FAILED, {"failed_step": "load"}, datetime(2024, 3, 10, 6, 1, tzinfo=UTC))
    assert event == {
        "type": "pipeline.run.failed",
        "timestamp": "2024-03-10T06:01:00+00:00",
        "data": {"failed_step": "load"},
    }


def test_build_event_rejects_unknown_types():
    with pytest.raises(ValueError, match="unknown notification type"):
        build_event("pipeline.run.maybe", {}, datetime.now(UTC))


def test_slack_message_summarises_a_failure_with_step_error_and_link():
    event = build_event(
        RUN_FAILED,
        {
            "window": {"first_day": "2024-03-04", "last_day": "2024-03-09"},
            "failed_step": "extract",
            "error": "source API answered HTTP 400",
            "flow_run": {"name": "brave-otter", "url": "http://prefect/runs/flow-run/1"},
        },
        datetime(2024, 3, 10, 6, 1, tzinfo=UTC),
    )

    message = slack_message(event)

    assert message["text"].splitlines() == [
        "*:x: weather pipeline failed* 2024-03-04..2024-03-09",
        "step `extract`: source API answered HTTP 400",
        "<http://prefect/runs/flow-run/1|flow run brave-otter>",
    ]
    assert message["blocks"][0]["text"]["text"] == message["text"]


def test_a_secret_copied_without_its_base64_padding_signs_as_the_padded_one_and_verifies():
    padded = "whsec_" + base64.b64encode(b"twenty-five bytes of key!").decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=")
    body = b'{"type": "pipeline.run.failed"}'
    assert sign(unpadded, "msg_1", 1_700_000_000, body) == sign(padded, "msg_1", 1_700_000_000, body)
    # The reference Standard Webhooks consumer accepts what we send with either form.
    headers = signed_headers(unpadded, "msg_1", body, datetime.now(UTC).timestamp())
    assert Webhook(unpadded).verify(body, headers) == {"type": "pipeline.run.failed"}


def test_a_secret_that_is_not_base64_fails_the_delivery_without_raising_or_quoting_it():
    attempt = post("http://127.0.0.1:9/hook", b"{}", "msg_1", secret="whsec_not*base64!")
    assert attempt == Attempt(False, "webhook secret is not base64 (whsec_<base64>)", False)
    assert "not*base64" not in attempt.outcome


def test_compose_sends_the_contract_event_unless_the_format_is_slack():
    now = datetime(2024, 3, 10, 6, 5, tzinfo=UTC)
    data = {"logical_date": "2024-03-09"}

    standard = compose(RUN_LATE, data, now)
    slack = compose(RUN_LATE, data, now, "slack")

    assert standard == build_event(RUN_LATE, data, now)
    assert set(slack) == {"text", "blocks"} and "late" in slack["text"]
