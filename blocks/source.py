"""The source API block: where the Open-Meteo-compatible archive lives and how hard to call it."""

import functools
import ssl

import httpx
from prefect.blocks.core import Block
from pydantic import Field, field_validator

from pipeline import defaults


class SourceApi(Block):
    """An Open-Meteo-compatible archive API: base URL, request timeout, rate limit."""

    _block_type_name = "Source API"
    _description = "An Open-Meteo-compatible archive API ({base_url}/v1/archive) and the limits to call it with."

    base_url: str = Field(default=defaults.SOURCE_URL, description="Base URL, without /v1/archive.")
    timeout_seconds: float = Field(default=defaults.HTTP_TIMEOUT_SECONDS, gt=0)
    rate_limit: str = Field(
        default=defaults.SOURCE_RATE_LIMIT,
        description="Name of the Prefect global concurrency limit (with slot decay) that paces calls; empty: none.",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    def client(self) -> httpx.Client:
        """An HTTP client bound to the API's base URL and timeout."""
        return httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout_seconds,
            headers={"user-agent": "weather-pipeline"},
            verify=tls_context(),
        )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context httpx builds for every new client (certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR),
    built once per process: loading the roots takes ~30 ms, paid on every request before."""
    return httpx.create_ssl_context()
