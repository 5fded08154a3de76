"""Dead man's switch: the daily run pings a monitor (Healthchecks.io, Cronitor) when it ends.

The monitor alerts when the pings stop, which covers what nothing inside the pipeline can
report: the VM is off, the server lost its schedule, the whole stack is gone.
"""

import logging

import httpx
from pydantic import SecretStr

# Healthchecks.io shows the request body with the ping: room for the one-line reason.
MAX_BODY = 10_000

logger = logging.getLogger("pipeline.heartbeat")


def ping_url(url: str, failed: bool) -> str:
    """The URL to ping: `url` on success, `<url>/fail` on failure (query string kept)."""
    if not failed:
        return url
    parsed = httpx.URL(url)
    return str(parsed.copy_with(path=parsed.path.rstrip("/") + "/fail"))


def ping(url: SecretStr | None, failed: bool, message: str = "", timeout: float = 10.0) -> bool:
    """POST the run's outcome to the monitor; returns whether it answered 2xx. Never raises.

    The URL identifies the check and often holds a key: it is never logged.
    """
    if url is None:
        return False
    try:
        response = httpx.post(
            ping_url(url.get_secret_value(), failed), content=message[:MAX_BODY].encode(), timeout=timeout
        )
    except Exception as exc:  # a heartbeat must never fail the run it reports
        logger.warning("heartbeat not sent: %s", type(exc).__name__)
        return False
    if response.status_code >= 300:
        logger.warning("heartbeat not accepted: HTTP %s", response.status_code)
        return False
    return True
