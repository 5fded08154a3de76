"""A local HTTP endpoint that records what it receives and answers with the statuses a test chooses."""

import logging
import re
import secrets
import threading
from dataclasses import dataclass

from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

# What the receiver answers once the statuses a test queued are used up.
ACCEPTED = 204


@dataclass(frozen=True)
class Delivery:
    """One request as it arrived, and what a Standard Webhooks consumer made of it then."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    event: dict | None  # the verified JSON body, when the receiver has a secret and the signature held
    rejection: str | None  # why verification failed, when it did

    def verified(self) -> dict:
        """The event, which the receiver verified on arrival (signature and timestamp); fails the test if not."""
        assert self.rejection is None, f"delivery {self.headers.get('webhook-id')} rejected: {self.rejection}"
        assert self.event is not None, "the receiver has no secret to verify deliveries with"
        return self.event


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 that records every request, at any path.

    With a `secret`, each delivery is verified on arrival by the `standardwebhooks` reference consumer,
    which rejects timestamps more than five minutes off its own clock: verifying later could fail a
    delivery that was fresh when it came. `port` and `token` reopen an endpoint at the same URL.
    """

    def __init__(self, secret: str | None = None, port: int = 0, token: str | None = None):
        self.secret = secret
        self.token = token or secrets.token_hex(8)
        self.deliveries: list[Delivery] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        self._webhook = Webhook(secret) if secret else None
        # Werkzeug logs each request line, URL and token included; tests assert no log quotes the token.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server = HTTPServer(host="127.0.0.1", port=port, threaded=True)
        self.server.expect_request(re.compile("/")).respond_with_handler(self._answer)
        self.server.start()
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}/hooks/{self.token}"

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order, then with 204 again."""
        with self._lock:
            self._statuses.extend(statuses)

    def fail_first(self, count: int, status: int = 503) -> None:
        """Answer the next `count` requests with `status`, as a receiver that is briefly down."""
        self.answer(*[status] * count)

    @property
    def paths(self) -> list[str]:
        return [delivery.path for delivery in self.deliveries]

    def events(self) -> list[dict]:
        """Every delivery's verified event, in order of arrival."""
        return [delivery.verified() for delivery in self.deliveries]

    def close(self) -> None:
        if self.server.is_running():
            self.server.stop()

    def __enter__(self) -> "WebhookReceiver":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _answer(self, request: Request) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = request.get_data()
        event, rejection = None, None
        if self._webhook is not None:
            try:
                event = self._webhook.verify(body, headers)
            except WebhookVerificationError as exc:
                rejection = str(exc)
            except Exception as exc:  # malformed headers: the library raises what it happens to hit
                rejection = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.deliveries.append(Delivery(request.path, headers, body, event, rejection))
            status = self._statuses.pop(0) if self._statuses else ACCEPTED
        return Response(status=status)
