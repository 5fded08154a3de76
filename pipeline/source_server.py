"""A local server that answers like the public Open-Meteo archive API, with deterministic data."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import random
import re
import socket
import struct
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property, lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson

ARCHIVE_PATH = "/v1/archive"
FAULTS_ENV = "PIPELINE_SOURCE_FAULTS"
FIRST_DATE = date(1940, 1, 1)
LAST_DATE = date(2099, 12, 31)

UNITS = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "dew_point_2m": "°C",
    "precipitation": "mm",
    "surface_pressure": "hPa",
    "cloud_cover": "%",
    "wind_speed_10m": "km/h",
    "wind_direction_10m": "°",
}
VARIABLES = tuple(UNITS)

RATE_FAULTS = (
    "server_error",
    "rate_limited",
    "daily_limit",
    "slow",
    "malformed",
    "unequal",
    "reset",
    "missing_hours",
    "wrong_types",
    "dropped_location",
    "hot_day",
)
# Faults that answer 200 with well-formed JSON that breaks the archive's contract, or
# (hot_day) keeps to it but carries implausible values: 99 °C at the first location,
# on the `only_on` date when there is one, which only the data tests can catch.
PAYLOAD_FAULTS = ("unequal", "missing_hours", "wrong_types", "dropped_location", "hot_day")
HOT_DAY_TEMPERATURE = 99.0
MINUTELY_LIMIT_REASON = "Minutely API request limit exceeded. Please try again in one minute."
DAILY_LIMIT_REASON = "Daily API request limit exceeded. Please try again tomorrow."

# Fixed rather than measured so that equal requests get byte-identical bodies.
GENERATION_TIME_MS = 0.1

_EPOCH = date(1970, 1, 1)
_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
_SERVER_ERROR_STATUSES = (500, 502, 503)
_JSON = "application/json; charset=utf-8"
# Locations generated together; keeps the working arrays small enough to stay in cache.
_BLOCK_VALUES = 1 << 15

_MASK64 = (1 << 64) - 1
_K_CELL = np.uint64(0x9E3779B97F4A7C15)
_K_TIME = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_PI = 2.0 * math.pi
_YEAR_DAYS = 365.2425
_WARMEST_DAY = 200  # day of year of the northern summer peak


class BadRequest(ValueError):
    """A request the archive API answers with HTTP 400; the message is the reason."""


@dataclass(frozen=True)
class FaultPlan:
    """Rates of injected failures; at most one applies per request.

    `only_on` aims the faults at the requests whose days include that date, so a drill
    can break one logical date and leave the rest of a backfill alone.
    """

    server_error: float = 0.0
    rate_limited: float = 0.0
    daily_limit: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 30.0
    malformed: float = 0.0
    unequal: float = 0.0
    reset: float = 0.0
    missing_hours: float = 0.0
    wrong_types: float = 0.0
    dropped_location: float = 0.0
    hot_day: float = 0.0
    recent_null_hours: int = 0
    available_until: datetime | None = None
    only_on: date | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in RATE_FAULTS:
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {name}={rate!r} must be between 0 and 1")
        total = sum(getattr(self, name) for name in RATE_FAULTS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"fault rates add up to {total:g}; at most one fault applies per request, so the sum must be <= 1"
            )
        if not self.slow_seconds >= 0:
            raise ValueError(f"slow_seconds={self.slow_seconds!r} must be >= 0")
        if self.recent_null_hours < 0:
            raise ValueError(f"recent_null_hours={self.recent_null_hours!r} must be >= 0")
        if self.available_until is not None:
            if self.available_until.tzinfo is None:
                raise ValueError("available_until must be timezone-aware")
            object.__setattr__(self, "available_until", self.available_until.astimezone(UTC))
        if isinstance(self.only_on, datetime):
            raise ValueError("only_on must be a date, not a datetime")

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Read a plan like "server_error=0.2,slow=0.05,slow_seconds=2,only_on=2024-03-03,seed=7".

        A naive available_until is UTC.
        """
        fields = {field.name: field for field in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep:
                raise ValueError(f"fault setting {item!r} is not key=value")
            if key not in fields:
                raise ValueError(f"unknown fault setting {key!r}; expected one of {', '.join(fields)}")
            if key in values:
                raise ValueError(f"fault setting {key!r} given twice")
            try:
                values[key] = _parse_fault_value(key, raw)
            except ValueError:
                raise ValueError(f"bad value for fault setting {key}: {raw!r}") from None
        return cls(**values)

    @classmethod
    def from_env(cls) -> FaultPlan:
        """Read the plan from PIPELINE_SOURCE_FAULTS; unset or empty means no faults."""
        return cls.parse(os.environ.get(FAULTS_ENV, ""))

    def targets(self, query: ArchiveQuery | None) -> bool:
        """Whether a request draws a fault at all; None stands for a query that failed validation."""
        if self.only_on is None:
            return True
        return query is not None and query.start_date <= self.only_on <= query.end_date

    def pick(self, rng: random.Random) -> str | None:
        """Draw the fault for one request, or None."""
        draw = rng.random()
        for name in RATE_FAULTS:
            rate = getattr(self, name)
            if draw < rate:
                return name
            draw -= rate
        return None

    def first_null_hour(self) -> int | None:
        """Hours since 1970 from which values are null, or None when nothing lags."""
        if self.available_until is None:
            return None
        seconds = self.available_until.timestamp()
        return math.ceil(seconds / 3600) - self.recent_null_hours


def _parse_fault_value(key: str, raw: str) -> object:
    if key in ("recent_null_hours", "seed"):
        return int(raw)
    if key == "available_until":
        moment = datetime.fromisoformat(raw)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if key == "only_on":
        if not _DATE_PATTERN.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


@dataclass(frozen=True)
class ArchiveQuery:
    """A validated archive request."""

    latitudes: tuple[float, ...]
    longitudes: tuple[float, ...]
    start_date: date
    end_date: date
    variables: tuple[str, ...]


def parse_query(query: str) -> ArchiveQuery:
    """Validate a /v1/archive query string the way the real API does; raises BadRequest."""
    params = parse_qs(query, keep_blank_values=True)

    def joined(name: str) -> str | None:
        return ",".join(params[name]) if name in params else None

    latitudes = _coordinates("latitude", joined("latitude"), 90)
    longitudes = _coordinates("longitude", joined("longitude"), 180)
    if len(latitudes) != len(longitudes):
        raise BadRequest("Parameter 'latitude' and 'longitude' must have the same number of elements")
    start_raw, end_raw = joined("start_date"), joined("end_date")
    if not start_raw or not end_raw:
        raise BadRequest("Parameters 'start_date' and 'end_date' are required, formatted as 'YYYY-MM-DD'")
    start, end = _date(start_raw), _date(end_raw)
    for name, day in (("start_date", start), ("end_date", end)):
        if not FIRST_DATE <= day <= LAST_DATE:
            raise BadRequest(f"Parameter '{name}' is out of allowed range from {FIRST_DATE} to {LAST_DATE}")
    if end < start:
        raise BadRequest("End-date must be larger or equals than start-date")
    variables = tuple(dict.fromkeys(name.strip() for name in (joined("hourly") or "").split(",") if name.strip()))
    for name in variables:
        if name not in UNITS:
            raise BadRequest(f"Cannot initialize WeatherVariable from invalid String value {name} for key hourly")
    if params.get("daily", [""]) != [""]:
        raise BadRequest("Parameter 'daily' is not supported by this server; request 'hourly' variables")
    timezone = joined("timezone")
    if timezone is not None and timezone.upper() not in ("UTC", "GMT"):
        raise BadRequest(f"Invalid timezone {timezone!r}; this server answers in 'UTC' or 'GMT' only")
    return ArchiveQuery(latitudes, longitudes, start, end, variables)


def _coordinates(name: str, raw: str | None, limit: int) -> tuple[float, ...]:
    if raw is None or not raw.strip():
        raise BadRequest(f"Parameter '{name}' is required")
    values = []
    for item in raw.split(","):
        try:
            value = float(item)
        except ValueError:
            raise BadRequest(
                f"Parameter '{name}' must be a number or a comma-separated list of numbers, got {item.strip()!r}"
            ) from None
        if not -limit <= value <= limit:
            raise BadRequest(f"{name.capitalize()} must be in range of -{limit} to {limit}°. Given: {value}.")
        values.append(value)
    return tuple(values)


def _date(raw: str) -> date:
    if not _DATE_PATTERN.fullmatch(raw):
        raise BadRequest("Invalid date format. Make sure to use 'YYYY-MM-DD'")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest("Invalid date format. Make sure to use 'YYYY-MM-DD'") from None


def generate(
    latitude: float,
    longitude: float,
    start_date: date | str,
    end_date: date | str,
    variables: Sequence[str],
) -> dict:
    """Return the archive answer for one location, before JSON encoding.

    Args:
        start_date: first day (UTC), inclusive.
        end_date: last day (UTC), inclusive.
    """
    start = date.fromisoformat(start_date) if isinstance(start_date, str) else start_date
    end = date.fromisoformat(end_date) if isinstance(end_date, str) else end_date
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError(f"coordinates out of range: {latitude}, {longitude}")
    if end < start:
        raise ValueError(f"end_date {end} is before start_date {start}")
    unknown = [name for name in variables if name not in UNITS]
    if unknown:
        raise ValueError(f"unknown hourly variables: {', '.join(unknown)}")
    query = ArchiveQuery((latitude,), (longitude,), start, end, tuple(dict.fromkeys(variables)))
    answer = next(archive_objects(query))
    if "hourly" in answer:
        answer["hourly"]["time"] = list(_time_strings(_first_hour(start), _hour_count(start, end)))
    return answer


def archive_objects(query: ArchiveQuery, first_null_hour: int | None = None) -> Iterator[dict]:
    """Yield one answer object per location, in request order, ready for orjson.

    Args:
        first_null_hour: hours since 1970 from which values are null, as the archive lags behind.
    """
    first = _first_hour(query.start_date)
    count = _hour_count(query.start_date, query.end_date)
    hours = np.arange(first, first + count, dtype=np.int64)
    time = _time_fragment(first, count)
    present = count if first_null_hour is None else min(count, max(0, first_null_hour - first))
    iy = np.rint(np.asarray(query.latitudes, dtype=np.float64) * 4).astype(np.int64)
    ix = np.rint(np.asarray(query.longitudes, dtype=np.float64) * 4).astype(np.int64)
    block = max(1, _BLOCK_VALUES // count)
    for low in range(0, len(iy), block):
        weather = _Weather(iy[low : low + block], ix[low : low + block], hours)
        columns = {name: weather.values(name) for name in query.variables}
        elevations = weather.elevation[:, 0].tolist()
        for row, elevation in enumerate(elevations):
            hourly: dict[str, object] = {"time": time}
            for name, column in columns.items():
                values = column[row]
                hourly[name] = values if present == count else values[:present].tolist() + [None] * (count - present)
            answer = {
                "latitude": round(int(iy[low + row]) / 4, 4),
                "longitude": round(int(ix[low + row]) / 4, 4),
                "generationtime_ms": GENERATION_TIME_MS,
                "utc_offset_seconds": 0,
                "timezone": "GMT",
                "timezone_abbreviation": "GMT",
                "elevation": elevation,
            }
            if query.variables:
                answer["hourly_units"] = {"time": "iso8601"} | {name: UNITS[name] for name in query.variables}
                answer["hourly"] = hourly
            yield answer


def encode_archive(
    query: ArchiveQuery, first_null_hour: int | None = None, fault: str | None = None, only_on: date | None = None
) -> bytes:
    """Encode the answer: an object for one location, an array for several.

    Args:
        fault: one of PAYLOAD_FAULTS to break the answer with; ignored without hourly variables,
            as such an answer has nothing to break.
        only_on: the day a `hot_day` fault heats (every day of the answer when None).
    """
    if fault is not None and fault not in PAYLOAD_FAULTS:
        raise ValueError(f"unknown payload fault {fault!r}; expected one of {', '.join(PAYLOAD_FAULTS)}")
    if not query.variables:
        fault = None
    answers = archive_objects(query, first_null_hour)
    if fault == "dropped_location":
        # An array even for one location asked for: `[]` is the answer that lost its only object.
        kept = itertools.islice(answers, len(query.latitudes) - 1)
        return b"[" + b",".join(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY) for answer in kept) + b"]"
    parts = []
    for answer in answers:
        if fault is not None and not parts:
            _break_hourly(answer["hourly"], query, fault, only_on)
        parts.append(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY))
    if len(parts) == 1:
        return parts[0]
    return b"[" + b",".join(parts) + b"]"


def _break_hourly(hourly: dict, query: ArchiveQuery, fault: str, only_on: date | None = None) -> None:
    """Apply a payload fault to one location's hourly object, in place."""
    names = query.variables
    if fault == "hot_day":
        if "temperature_2m" in hourly:
            values = list(hourly["temperature_2m"])
            first = 0 if only_on is None else (only_on - query.start_date).days * 24
            hours = len(values) if only_on is None else 24
            for hour in range(max(first, 0), min(first + hours, len(values))):
                values[hour] = HOT_DAY_TEMPERATURE
            hourly["temperature_2m"] = values
        return
    if fault == "unequal":
        hourly[names[-1]] = hourly[names[-1]][:-1]
    elif fault == "missing_hours":
        # The shared time fragment is cached, so the shorter list is built anew rather than cut.
        count = _hour_count(query.start_date, query.end_date)
        hourly["time"] = list(_time_strings(_first_hour(query.start_date), count - 1))
        for name in names:
            hourly[name] = hourly[name][:-1]
    elif fault == "wrong_types":
        column = hourly[names[0]]
        values = column.tolist() if isinstance(column, np.ndarray) else list(column)
        values[0] = orjson.dumps(values[0]).decode()
        hourly[names[0]] = values


def _first_hour(day: date) -> int:
    return (day - _EPOCH).days * 24


def _hour_count(start: date, end: date) -> int:
    return ((end - start).days + 1) * 24


@lru_cache(maxsize=64)
def _time_strings(first_hour: int, count: int) -> tuple[str, ...]:
    hours = np.arange(first_hour, first_hour + count, dtype=np.int64).astype("datetime64[h]")
    return tuple(np.datetime_as_string(hours, unit="m").tolist())


@lru_cache(maxsize=64)
def _time_fragment(first_hour: int, count: int) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(list(_time_strings(first_hour, count))))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def _uniform(bits: np.ndarray) -> np.ndarray:
    return (bits >> _S11).astype(np.float64) * (1.0 / (1 << 53))


class _Weather:
    """Hourly fields for a block of grid cells over a run of UTC hours; each field is cells × hours."""

    def __init__(self, iy: np.ndarray, ix: np.ndarray, hours: np.ndarray) -> None:
        self.hours = hours
        self.lat = (iy / 4.0)[:, None]
        self.lon = (ix / 4.0)[:, None]
        self.cell = ((iy + 360) * 1441 + (ix + 720)).astype(np.uint64)[:, None] * _K_CELL
        self.sin_lat = np.sin(np.radians(np.abs(self.lat)))
        self.shape = (len(iy), len(hours))

    def values(self, name: str) -> np.ndarray:
        """The variable rounded as the real API rounds it."""
        # orjson only serialises C-contiguous arrays, and fancy indexing may hand back another layout.
        dtype = np.int32 if name in ("relative_humidity_2m", "cloud_cover", "wind_direction_10m") else np.float64
        return np.ascontiguousarray(getattr(self, name), dtype=dtype)

    def _seed(self, stream: int) -> np.ndarray:
        return _mix(self.cell + np.uint64(stream & _MASK64))

    def _noise(self, stream: int) -> np.ndarray:
        """Hourly white noise in [0, 1)."""
        times = self.hours.astype(np.uint64) * _K_TIME
        return _uniform(_mix(self._seed(stream) + times[None, :]))

    def _smooth(self, stream: int, period: int) -> np.ndarray:
        """Noise in [-1, 1) that drifts between random values every `period` hours."""
        knot = self.hours // period
        first = int(knot[0])
        knots = np.arange(first, int(knot[-1]) + 2, dtype=np.int64).astype(np.uint64) * _K_TIME
        at_knots = _uniform(_mix(self._seed(stream) + knots[None, :])) * 2.0 - 1.0
        index = knot - first
        frac = (self.hours - knot * period) / period
        weight = frac * frac * (3.0 - 2.0 * frac)
        before = at_knots[:, index]
        return before + (at_knots[:, index + 1] - before) * weight

    @cached_property
    def elevation(self) -> np.ndarray:
        bits = _mix(self._seed(0x5EED_E1E7))
        return np.rint(3000.0 * _uniform(bits) ** 6 + 40.0 * _uniform(_mix(bits)))

    @cached_property
    def wetness(self) -> np.ndarray:
        return 0.7 * self._smooth(0x3E7_0001, 48) + 0.3 * self._smooth(0x3E7_0002, 6)

    @cached_property
    def dryness(self) -> np.ndarray:
        # Subtropical deserts around 25° latitude.
        return np.exp(-(((np.abs(self.lat) - 25.0) / 10.0) ** 2))

    @cached_property
    def diurnal(self) -> np.ndarray:
        """Cosine peaking at 15:00 local solar time, where solar time is UTC + longitude / 15."""
        utc = _TWO_PI * ((self.hours % 24) - 15.0) / 24.0
        offset = _TWO_PI * self.lon / 360.0
        return np.cos(utc)[None, :] * np.cos(offset) - np.sin(utc)[None, :] * np.sin(offset)

    @cached_property
    def temperature_2m(self) -> np.ndarray:
        s2 = self.sin_lat**2
        mean = 27.0 - 30.0 * s2 - 17.0 * s2**4 - 0.0065 * self.elevation
        hemisphere = np.where(self.lat >= 0, 1.0, -1.0)
        season = np.cos(_TWO_PI * (self.hours / 24.0 - _WARMEST_DAY) / _YEAR_DAYS)[None, :]
        daily_range = (2.0 + 4.0 * (1.0 - self.sin_lat)) * (1.0 - 0.3 * self.wetness)
        value = (
            mean
            + (1.0 + 20.0 * s2) * hemisphere * season
            + daily_range * self.diurnal
            + 4.0 * self._smooth(0x7E3_0001, 72)
            + 0.6 * self._noise(0x7E3_0002)
        )
        return np.round(np.clip(value, -60.0, 55.0), 1) + 0.0

    @cached_property
    def relative_humidity_2m(self) -> np.ndarray:
        value = 72.0 - 22.0 * self.dryness + 18.0 * self.wetness - 14.0 * self.diurnal + 8.0 * self._noise(0x4E_0001)
        return np.rint(np.clip(value, 3.0, 100.0))

    @cached_property
    def dew_point_2m(self) -> np.ndarray:
        # Magnus formula; deriving it from the rounded values keeps it at or below the temperature.
        temperature = self.temperature_2m
        gamma = np.log(self.relative_humidity_2m / 100.0) + 17.625 * temperature / (243.04 + temperature)
        value = 243.04 * gamma / (17.625 - gamma)
        return np.minimum(np.round(value, 1), temperature) + 0.0

    @cached_property
    def precipitation(self) -> np.ndarray:
        trigger = self.wetness + 0.6 * self._noise(0x9E_0001) - 0.3
        amount = -np.log1p(-self._noise(0x9E_0002)) * (0.3 + 3.0 * (trigger - 0.5)) * (1.0 - 0.6 * self.dryness)
        return np.where(trigger > 0.5, np.round(amount, 1), 0.0) + 0.0

    @cached_property
    def surface_pressure(self) -> np.ndarray:
        sea_level = (
            1013.5 + 12.0 * self._smooth(0x9A_0001, 120) + 4.0 * self._smooth(0x9A_0002, 24) - 7.0 * self.wetness
        )
        return np.round(sea_level * np.exp(-self.elevation / 8434.0), 1) + 0.0

    @cached_property
    def cloud_cover(self) -> np.ndarray:
        value = 45.0 + 80.0 * self.wetness - 25.0 * self.dryness + 20.0 * (self._noise(0xC1_0001) - 0.5)
        return np.rint(np.clip(value, 0.0, 100.0))

    @cached_property
    def wind_speed_10m(self) -> np.ndarray:
        base = 7.0 + 9.0 * self.sin_lat
        value = (
            base
            * np.exp(0.55 * self._smooth(0x51_0001, 30) + 0.25 * np.abs(self.wetness))
            * (1.0 + 0.15 * self.diurnal)
        )
        return np.round(np.clip(value, 0.0, 150.0), 1) + 0.0

    @cached_property
    def wind_direction_10m(self) -> np.ndarray:
        # Trade winds blow from the east, the mid-latitude westerlies from the west.
        prevailing = np.where(np.abs(self.lat) < 30.0, 90.0, 270.0)
        value = prevailing + 150.0 * self._smooth(0xD1_0001, 40) + 30.0 * (self._noise(0xD1_0002) - 0.5)
        return np.rint(np.mod(value, 360.0))


class SourceServer:
    """An HTTP server on a background thread that answers {url}/v1/archive."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan = FaultPlan(),
        *,
        log_requests: bool = False,
    ) -> None:
        self.log_requests = log_requests
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._requests = 0
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
    def faults_injected(self) -> dict[str, int]:
        """Faults applied so far, by kind."""
        with self._lock:
            return dict(self._faults_injected)

    def reset_counters(self) -> None:
        with self._lock:
            self._requests = 0
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

    def _draw(self, query: ArchiveQuery | None) -> tuple[FaultPlan, str | None, int]:
        """Count the request and draw its fault; untargeted requests leave the seeded sequence as it was."""
        with self._lock:
            self._requests += 1
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
        with self.server.source._lock:
            self.server.source._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.source._lock:
            self.server.source._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != ARCHIVE_PATH:
            self._send_json(404, {"error": True, "reason": f"Not Found: {url.path}"})
            return
        source = self.server.source
        # Parsed first because a targeted plan draws by the query's days; an invalid query
        # still gets its 400 only after any 5xx, 429 or reset fault.
        try:
            query: ArchiveQuery | BadRequest = parse_query(url.query)
        except BadRequest as error:
            query = error
        plan, fault, status = source._draw(None if isinstance(query, BadRequest) else query)
        if fault == "reset":
            source._count(fault)
            self._reset()
            return
        if fault == "slow":
            source._count(fault)
            if source._stopping.wait(plan.slow_seconds):
                self._reset()
                return
        if fault == "server_error":
            source._count(fault)
            self._send_server_error(status)
            return
        if fault in ("rate_limited", "daily_limit"):
            source._count(fault)
            reason = MINUTELY_LIMIT_REASON if fault == "rate_limited" else DAILY_LIMIT_REASON
            self._send_json(429, {"error": True, "reason": reason})
            return
        if isinstance(query, BadRequest):
            self._send_json(400, {"error": True, "reason": str(query)})
            return
        first_null_hour = plan.first_null_hour()
        if first_null_hour is not None and first_null_hour < _first_hour(query.end_date) + 24 and query.variables:
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
            self._send_json(500, {"error": True, "reason": "Internal Server Error"})
            return
        # Gateway errors come from the reverse proxy in front of the API, as HTML.
        title = f"{status} {'Bad Gateway' if status == 502 else 'Service Temporarily Unavailable'}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        self._send(status, page.encode(), "text/html")

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, orjson.dumps(payload), _JSON)

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


def serve(host: str = "127.0.0.1", port: int = 8080, faults: FaultPlan = FaultPlan()) -> None:
    """Serve the archive API in the foreground until interrupted, logging one line per request."""
    server = SourceServer(host, port, faults, log_requests=True)
    sys.stderr.write(f"Serving the archive API at {server.url}{ARCHIVE_PATH}\n")
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
