"""A webhook endpoint for the alerting scenarios: records what it gets, checks signatures."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline import notify


class Receiver:
    """A webhook endpoint on this machine that records what it gets and answers 204."""

    def __init__(self, port: int = 0, secret: str | None = None, token: str | None = None):
        self.secret = secret or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.token = token or secrets.token_hex(8)
        self.received: list[tuple[dict, bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hooks/{self.token}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reopen(self) -> Receiver:
        """The same endpoint, back on the same port, after `close()`."""
        return Receiver(self.port, self.secret, self.token)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self) -> dict[str, str]:
        """The pipeline's settings that send its alerts here."""
        return {"PIPELINE_WEBHOOK_URL": self.url, "PIPELINE_WEBHOOK_SECRET": self.secret}

    def events(self, kind: str) -> list[dict]:
        """The messages of type `kind` received so far."""
        return [event for event in (json.loads(body) for _, body in self.received) if event["type"] == kind]

    def verified(self) -> bool:
        """Every message carries a valid Standard Webhooks signature."""
        return all(
            headers.get("webhook-signature")
            == notify.sign(self.secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
            for headers, body in self.received
        )
