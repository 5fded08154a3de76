"""The archive API over HTTP: a threaded server that draws a fault per request and answers."""

from __future__ import annotations

import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import orjson

from pipeline.source_server.faults import PAYLOAD_FAULTS, FaultPlan
from pipeline.source_server.query import ARCHIVE_PATH, ArchiveQuery, BadRequest, first_hour, parse_query
from pipeline.source_server.weather import encode_archive

MINUTELY_LIMIT_REASON = "Minutely API request limit exceeded. Please try again in one minute."
DAILY_LIMIT_REASON = "Daily API request limit exceeded. Please try again tomorrow."

_SERVER_ERROR_STATUSES = (500, 502, 503)
_JSON = "application/json; charset=utf-8"
_NO_FAULTS = FaultPlan()


class SourceServer:
    """An HTTP server on a background thread that answers {url}/v1/archive."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan = _NO_FAULTS,
        *,
        log_requests: bool = False,
    ) -> None:
        self.log_requests = log_requests
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._requests = 0
        self._request_times: list[float] = []
        self._faults_injected: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.faults = faults
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.source = self

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        # A new plan restarts its seeded sequence, so runs under the same plan see the same faults.
        with self._lock:
            self._faults = plan
            self._rng = random.Random(plan.seed)

    @property
    def requests(self) -> int:
        """Archive requests received."""
        with self._lock:
            return self._requests

    @property
    def request_times(self) -> list[float]:
        """When each archive request arrived (time.monotonic()), to check the pace callers keep."""
        with self._lock:
            return list(self._request_times)

    @property
    def faults_injected(self) -> dict[str, int]:
        """Faults applied so far, by kind."""
        with self._lock:
            return dict(self._faults_injected)

    def reset_counters(self) -> None:
        with self._lock:
            self._requests = 0
            self._request_times = []
            self._faults_injected = {}

    def start(self) -> SourceServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="source-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> SourceServer:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _track(self, connection: socket.socket) -> None:
        """Keep the open connections, so stop() can cut those a slow fault holds."""
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _draw(self, query: ArchiveQuery | None) -> tuple[FaultPlan, str | None, int]:
        """Count the request and draw its fault; untargeted requests leave the seeded sequence as it was."""
        with self._lock:
            self._requests += 1
            self._request_times.append(time.monotonic())
            plan = self._faults
            if not plan.targets(query):
                return plan, None, 200
            fault = plan.pick(self._rng)
            status = self._rng.choice(_SERVER_ERROR_STATUSES) if fault == "server_error" else 200
            return plan, fault, status

    def _count(self, fault: str) -> None:
        with self._lock:
            self._faults_injected[fault] = self._faults_injected.get(fault, 0) + 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    source: SourceServer

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.source._track(self.connection)

    def finish(self) -> None:
        self.server.source._untrack(self.connection)
        super().finish()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != ARCHIVE_PATH:
            self._send_error(404, f"Not Found: {url.path}")
            return
        source = self.server.source
        # Parsed first because a targeted plan draws by the query's days; an invalid query
        # still gets its 400 only after any 5xx, 429 or reset fault.
        try:
            query: ArchiveQuery | BadRequest = parse_query(url.query)
        except BadRequest as error:
            query = error
        plan, fault, status = source._draw(None if isinstance(query, BadRequest) else query)
        if fault in _TRANSPORT_FAULTS:
            source._count(fault)
            if _TRANSPORT_FAULTS[fault](self, plan, status):
                return
        if isinstance(query, BadRequest):
            self._send_error(400, str(query))
            return
        first_null_hour = plan.first_null_hour()
        if first_null_hour is not None and first_null_hour < first_hour(query.end_date) + 24 and query.variables:
            source._count("recent_nulls")
        payload_fault = fault if fault in PAYLOAD_FAULTS and query.variables else None
        body = encode_archive(query, first_null_hour, payload_fault, plan.only_on)
        if payload_fault is not None:
            source._count(payload_fault)
        if fault == "malformed":
            source._count(fault)
            body = body[: len(body) // 2]
        self._send(200, body, _JSON)

    def _send_server_error(self, status: int) -> None:
        if status == 500:
            self._send_error(500, "Internal Server Error")
            return
        # Gateway errors come from the reverse proxy in front of the API, as HTML.
        title = f"{status} {'Bad Gateway' if status == 502 else 'Service Temporarily Unavailable'}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        self._send(status, page.encode(), "text/html")

    def _send_error(self, status: int, reason: str) -> None:
        self._send(status, orjson.dumps({"error": True, "reason": reason}), _JSON)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:
            self.close_connection = True

    def _reset(self) -> None:
        # Linger 0 makes close() send a TCP RST instead of an orderly FIN.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        if self.server.source.log_requests:
            super().log_message(format, *args)


def _reset(handler: _Handler, plan: FaultPlan, status: int) -> bool:
    handler._reset()
    return True


def _slow(handler: _Handler, plan: FaultPlan, status: int) -> bool:
    # A server stopping mid-wait cuts the connection; otherwise the request goes on to its answer.
    if handler.server.source._stopping.wait(plan.slow_seconds):
        handler._reset()
        return True
    return False


def _server_error(handler: _Handler, plan: FaultPlan, status: int) -> bool:
    handler._send_server_error(status)
    return True


def _limited(reason: str) -> Callable[[_Handler, FaultPlan, int], bool]:
    def answer(handler: _Handler, plan: FaultPlan, status: int) -> bool:
        handler._send_error(429, reason)
        return True

    return answer


# Faults that act before the query's validation; each returns whether it has answered the request.
_TRANSPORT_FAULTS: dict[str, Callable[[_Handler, FaultPlan, int], bool]] = {
    "reset": _reset,
    "slow": _slow,
    "server_error": _server_error,
    "rate_limited": _limited(MINUTELY_LIMIT_REASON),
    "daily_limit": _limited(DAILY_LIMIT_REASON),
}


def serve(host: str = "127.0.0.1", port: int = 8080, faults: FaultPlan = _NO_FAULTS) -> None:
    """Serve the archive API in the foreground until interrupted, logging one line per request."""
    server = SourceServer(host, port, faults, log_requests=True)
    sys.stderr.write(f"Serving the archive API at {server.url}{ARCHIVE_PATH}\n")
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
