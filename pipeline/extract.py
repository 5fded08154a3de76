"""Fetch hourly observations from an Open-Meteo-compatible archive API."""

from dataclasses import dataclass
from datetime import timedelta

import httpx
import numpy as np
import orjson

from pipeline.locations import Location
from pipeline.window import Window

VARIABLES = (
    "temperature_2m",
    "relative_humidity_2m",
    "dew_point_2m",
    "precipitation",
    "surface_pressure",
    "cloud_cover",
    "wind_speed_10m",
    "wind_direction_10m",
)
ARCHIVE_PATH = "/v1/archive"
_NUMERIC_OR_NULL = {float, int, type(None)}


class SourceError(Exception):
    """The source API did not give us usable observations."""


class TransientSourceError(SourceError):
    """Worth retrying: timeouts, connection errors, 5xx, 429 per-minute limit."""


class PermanentSourceError(SourceError):
    """Retrying cannot help: a 4xx, a daily or hourly quota, or a payload that fails validation."""


@dataclass(frozen=True)
class Observations:
    """One request's answer: `values[location, hour, variable]`, NaN where the API sent null."""

    window: Window
    location_ids: tuple[str, ...]
    values: np.ndarray

    @property
    def row_count(self) -> int:
        return self.values.shape[0] * self.values.shape[1]


def batch_locations(locations: tuple[Location, ...], per_request: int) -> list[tuple[Location, ...]]:
    """Group locations into requests of at most `per_request` each."""
    if per_request < 1:
        raise ValueError(f"locations_per_request must be >= 1, got {per_request}")
    return [locations[i : i + per_request] for i in range(0, len(locations), per_request)]


def request_params(locations: tuple[Location, ...], window: Window) -> dict[str, str]:
    """Query parameters for one archive request."""
    return {
        "latitude": ",".join(repr(loc.latitude) for loc in locations),
        "longitude": ",".join(repr(loc.longitude) for loc in locations),
        "start_date": window.first.isoformat(),
        "end_date": window.last.isoformat(),
        "hourly": ",".join(VARIABLES),
        "timezone": "UTC",
    }


def fetch(client: httpx.Client, locations: tuple[Location, ...], window: Window) -> Observations:
    """GET one archive request and validate it; errors are classified transient or permanent."""
    where = f"locations {locations[0].location_id}..{locations[-1].location_id}, window {window}"
    try:
        response = client.get(ARCHIVE_PATH, params=request_params(locations, window))
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise TransientSourceError(f"source API unreachable for {where}: {type(exc).__name__}") from None
    check_status(response.status_code, response.content, where)
    return parse_payload(response.content, locations, window)


def check_status(status: int, body: bytes, where: str) -> None:
    """Raise for a non-200 answer, quoting the API's own reason."""
    if status == 200:
        return
    reason = _reason(body)
    message = f"source API answered HTTP {status} for {where}: {reason}"
    # 429 "Minutely…" clears within a minute; "Hourly…"/"Daily…" do not, and hammering makes it worse.
    if status >= 500 or status == 408 or (status == 429 and reason.startswith("Minutely")):
        raise TransientSourceError(message)
    raise PermanentSourceError(message)


def _reason(body: bytes) -> str:
    try:
        reason = orjson.loads(body).get("reason")
    except (orjson.JSONDecodeError, AttributeError):
        reason = None
    if isinstance(reason, str) and reason:
        return reason.splitlines()[0][:300]
    return body[:200].decode("utf-8", "replace").splitlines()[0] if body.strip() else "(empty body)"


def expected_times(window: Window) -> list[str]:
    """The `hourly.time` strings a complete answer for `window` has, in the API's format."""
    start = window.start.replace(tzinfo=None)
    return [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(len(window) * 24)]


def parse_payload(body: bytes, locations: tuple[Location, ...], window: Window) -> Observations:
    """Validate an archive answer and turn it into one array.

    The API answers an object for one location and an array for several, in request
    order; it reports grid-cell centres, not the coordinates asked for, so answers are
    matched to locations by position only.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PermanentSourceError(f"source API sent invalid JSON for window {window}: {exc}") from None
    answers = [document] if isinstance(document, dict) else document
    if not isinstance(answers, list) or len(answers) != len(locations):
        got = len(answers) if isinstance(answers, list) else type(document).__name__
        raise PermanentSourceError(
            f"source API answered {got} locations for window {window}, expected {len(locations)}"
        )
    times = expected_times(window)
    values = np.empty((len(locations), len(times), len(VARIABLES)), dtype=np.float64)
    for index, (location, answer) in enumerate(zip(locations, answers, strict=True)):
        values[index] = _answer_values(answer, times, f"location {location.location_id!r}, window {window}")
    return Observations(window, tuple(loc.location_id for loc in locations), values)


def _answer_values(answer: object, times: list[str], where: str) -> np.ndarray:
    hourly = answer.get("hourly") if isinstance(answer, dict) else None
    if not isinstance(hourly, dict):
        raise PermanentSourceError(f"source API answer for {where} has no 'hourly' object")
    got_times = hourly.get("time")
    if got_times != times:
        raise PermanentSourceError(f"source API answer for {where}: {_describe_time_mismatch(got_times, times)}")
    columns = np.empty((len(times), len(VARIABLES)), dtype=np.float64)
    for position, variable in enumerate(VARIABLES):
        column = hourly.get(variable)
        if not isinstance(column, list) or len(column) != len(times):
            size = len(column) if isinstance(column, list) else "no"
            raise PermanentSourceError(
                f"source API answer for {where}: {variable} has {size} values, expected {len(times)}"
            )
        # numpy would quietly turn "1.5" into 1.5; a string (or a bool) means the payload is wrong.
        if not set(map(type, column)) <= _NUMERIC_OR_NULL:
            raise PermanentSourceError(f"source API answer for {where}: {variable} has non-numeric values")
        columns[:, position] = np.array(column, dtype=np.float64)  # None becomes NaN, loaded as NULL
    if np.isinf(columns).any():
        raise PermanentSourceError(f"source API answer for {where}: infinite values")
    return columns


def _describe_time_mismatch(got: object, expected: list[str]) -> str:
    if not isinstance(got, list):
        return "hourly.time is missing"
    if len(got) != len(expected):
        return f"hourly.time has {len(got)} hours, expected {len(expected)} ({expected[0]}..{expected[-1]})"
    first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    return f"hourly.time[{first}] is {got[first]!r}, expected {expected[first]!r}"
