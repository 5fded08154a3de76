"""The archive API's request shape: the query string, its validation and its UTC hour axis."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from urllib.parse import parse_qs

import numpy as np

ARCHIVE_PATH = "/v1/archive"
FIRST_DATE = date(1940, 1, 1)
LAST_DATE = date(2099, 12, 31)

# The archive API's hourly variables this server answers, with the units the API reports:
# those the pipeline loads (extract.VARIABLES) and the common ones it may load next. Each has
# a generator in `weather`; any other name is refused with a 400, as the real API does.
UNITS = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "dew_point_2m": "°C",
    "apparent_temperature": "°C",
    "precipitation": "mm",
    "rain": "mm",
    "snowfall": "cm",
    "pressure_msl": "hPa",
    "surface_pressure": "hPa",
    "cloud_cover": "%",
    "shortwave_radiation": "W/m²",
    "wind_speed_10m": "km/h",
    "wind_speed_100m": "km/h",
    "wind_direction_10m": "°",
    "wind_direction_100m": "°",
    "wind_gusts_10m": "km/h",
}
VARIABLES = tuple(UNITS)

_EPOCH = date(1970, 1, 1)
_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
_BAD_DATE = "Invalid date format. Make sure to use 'YYYY-MM-DD'"


class BadRequest(ValueError):
    """A request the archive API answers with HTTP 400; the message is the reason."""


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


def iso_date(raw: str) -> date:
    """Read a date written exactly as YYYY-MM-DD; raises ValueError otherwise."""
    # date.fromisoformat alone also takes 20240303 and 2024-W09-7.
    if not _DATE_PATTERN.fullmatch(raw):
        raise ValueError(raw)
    return date.fromisoformat(raw)


def first_hour(day: date) -> int:
    """Hours since 1970 at the start of a UTC day."""
    return (day - _EPOCH).days * 24


def hour_count(start: date, end: date) -> int:
    """Hours from the start of `start` to the end of `end`."""
    return ((end - start).days + 1) * 24


@lru_cache(maxsize=64)
def time_strings(first: int, count: int) -> tuple[str, ...]:
    """The `time` column for `count` hours from hour `first` since 1970, as the API writes it."""
    hours = np.arange(first, first + count, dtype=np.int64).astype("datetime64[h]")
    return tuple(np.datetime_as_string(hours, unit="m").tolist())


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
    try:
        return iso_date(raw)
    except ValueError:
        raise BadRequest(_BAD_DATE) from None
