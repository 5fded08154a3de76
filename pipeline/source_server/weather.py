"""Deterministic hourly weather for any grid cell and hour, encoded as the archive API answers."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import date
from functools import cached_property, lru_cache

import numpy as np
import orjson

from pipeline.source_server.faults import payload_break
from pipeline.source_server.query import UNITS, ArchiveQuery, first_hour, hour_count, time_strings

# Fixed rather than measured so that equal requests get byte-identical bodies.
GENERATION_TIME_MS = 0.1

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
# A climatology by latitude: annual mean temperature at sea level (°C) and half the gap between
# the warmest and the coldest month, per hemisphere. Figures near those of coastal and temperate
# cities (Berlin: mean ~9 °C, ±8; Cape Town ~17 °C, ±4), so demo tables look like weather; the
# south is more oceanic (milder seasons) except over Antarctica.
_CLIMATE_LATITUDES = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
_MEAN_NORTH = (27.0, 27.0, 25.0, 20.0, 15.0, 10.0, 5.5, 0.0, -10.0, -18.0)
_MEAN_SOUTH = (27.0, 26.0, 24.0, 19.0, 14.0, 8.0, 2.0, -8.0, -25.0, -40.0)
_SEASON_NORTH = (0.5, 1.5, 4.0, 7.0, 9.0, 8.5, 8.0, 9.5, 14.0, 16.0)
_SEASON_SOUTH = (0.5, 1.0, 2.5, 4.5, 5.5, 6.5, 6.0, 9.0, 13.0, 15.0)
_LAPSE_RATE = 0.0065  # °C per metre of elevation


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
        answer["hourly"]["time"] = list(time_strings(first_hour(start), hour_count(start, end)))
    return answer


def archive_objects(query: ArchiveQuery, first_null_hour: int | None = None) -> Iterator[dict]:
    """Yield one answer object per location, in request order, ready for orjson.

    Args:
        first_null_hour: hours since 1970 from which values are null, as the archive lags behind.
    """
    first = first_hour(query.start_date)
    count = hour_count(query.start_date, query.end_date)
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
    breaks = None if fault is None else payload_break(fault)
    answers = archive_objects(query, first_null_hour)
    if breaks is not None and query.variables:
        answers = breaks(answers, query, only_on)
    parts = [orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY) for answer in answers]
    # An answer that lost a location stays an array: `[]` is the one that lost its only object.
    if len(parts) == 1 == len(query.latitudes):
        return parts[0]
    return b"[" + b",".join(parts) + b"]"


@lru_cache(maxsize=64)
def _time_fragment(first: int, count: int) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(list(time_strings(first, count))))


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
        """The variable `name` (one of `UNITS`, each a property below) rounded as the real API rounds it."""
        # The API writes percentages and directions as whole numbers.
        dtype = np.int32 if UNITS[name] in ("%", "°") else np.float64
        # orjson only serialises C-contiguous arrays, and fancy indexing may hand back another layout.
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
        # Lowland: the server knows no terrain, and a city put on a random mountain reads as broken weather.
        return np.rint(10.0 + 290.0 * _uniform(bits) ** 4)

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
        hemisphere = np.where(self.lat >= 0, 1.0, -1.0)
        north = self.lat >= 0
        latitude = np.abs(self.lat)
        mean = np.where(
            north,
            np.interp(latitude, _CLIMATE_LATITUDES, _MEAN_NORTH),
            np.interp(latitude, _CLIMATE_LATITUDES, _MEAN_SOUTH),
        )
        amplitude = np.where(
            north,
            np.interp(latitude, _CLIMATE_LATITUDES, _SEASON_NORTH),
            np.interp(latitude, _CLIMATE_LATITUDES, _SEASON_SOUTH),
        )
        # +1 at the hemisphere's warmest time of year, -1 half a year later.
        season = hemisphere * np.cos(_TWO_PI * (self.hours / 24.0 - _WARMEST_DAY) / _YEAR_DAYS)[None, :]
        # Wider days in summer and in deserts, narrower under cloud.
        daily_range = (2.0 + 3.0 * (1.0 - self.sin_lat) + 3.0 * self.dryness) * (1.0 + 0.25 * season)
        daily_range = daily_range * (1.0 - 0.3 * self.wetness)
        value = (
            mean
            - _LAPSE_RATE * self.elevation
            + amplitude * season
            + daily_range * self.diurnal
            # Weather systems passing over days, and spells lasting a week or two.
            + 3.0 * self._smooth(0x7E3_0001, 72)
            + 1.5 * self._smooth(0x7E3_0003, 240)
            + 0.3 * self._noise(0x7E3_0002)
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
    def sea_level_pressure(self) -> np.ndarray:
        return 1013.5 + 12.0 * self._smooth(0x9A_0001, 120) + 4.0 * self._smooth(0x9A_0002, 24) - 7.0 * self.wetness

    @cached_property
    def pressure_msl(self) -> np.ndarray:
        return np.round(self.sea_level_pressure, 1) + 0.0

    @cached_property
    def snow_share(self) -> np.ndarray:
        """The share of precipitation falling as snow: all of it at 0 °C and below, none from 2 °C."""
        return np.clip((2.0 - self.temperature_2m) / 2.0, 0.0, 1.0)

    @cached_property
    def rain(self) -> np.ndarray:
        return np.round(self.precipitation * (1.0 - self.snow_share), 1) + 0.0

    @cached_property
    def snowfall(self) -> np.ndarray:
        # The API reports fresh snow in cm, 0.7 cm per mm of water, to 2 decimals.
        return np.round(np.maximum(self.precipitation - self.rain, 0.0) * 0.7, 2) + 0.0

    @cached_property
    def apparent_temperature(self) -> np.ndarray:
        # Steadman's formula, as Open-Meteo computes it: humid air feels warmer, wind (m/s) colder.
        temperature = self.temperature_2m
        saturation = 6.105 * np.exp(17.27 * temperature / (237.7 + temperature))  # hPa
        vapour_pressure = self.relative_humidity_2m / 100.0 * saturation
        value = temperature + 0.33 * vapour_pressure - 0.70 * self.wind_speed_10m / 3.6 - 4.0
        return np.round(value, 1) + 0.0

    @cached_property
    def surface_pressure(self) -> np.ndarray:
        return np.round(self.sea_level_pressure * np.exp(-self.elevation / 8434.0), 1) + 0.0

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
    def shortwave_radiation(self) -> np.ndarray:
        """Sunlight on level ground over the preceding hour, W/m²: the sun's height by latitude, season and
        local solar time, dimmed by cloud."""
        middle = self.hours - 0.5
        # The sun stands highest over the tropic of Cancer at the June solstice (day 172 of the year).
        declination = np.radians(23.44) * np.cos(_TWO_PI * (middle / 24.0 - 172.0) / _YEAR_DAYS)[None, :]
        hour_angle = _TWO_PI * ((middle % 24) - 12.0)[None, :] / 24.0 + np.radians(self.lon)
        latitude = np.radians(self.lat)
        sun_height = np.sin(latitude) * np.sin(declination) + np.cos(latitude) * np.cos(declination) * np.cos(
            hour_angle
        )
        clear_sky = 1000.0 * np.clip(sun_height, 0.0, None) ** 1.15
        return np.round(clear_sky * (1.0 - 0.75 * (self.cloud_cover / 100.0) ** 3.4), 1) + 0.0

    @cached_property
    def wind_speed_100m(self) -> np.ndarray:
        # Stronger aloft: the 1/7 power law gives 10^(1/7) ~ 1.39 times the speed at 10 m.
        value = self.wind_speed_10m * 1.39 * (1.0 + 0.1 * self._smooth(0x52_0001, 12))
        return np.round(value, 1) + 0.0

    @cached_property
    def wind_gusts_10m(self) -> np.ndarray:
        # Gusts run 1.4 to 2 times the mean wind, most in the turbulent afternoon.
        factor = 1.4 + 0.4 * self._noise(0x53_0001) + 0.15 * np.clip(self.diurnal, 0.0, None)
        return np.round(self.wind_speed_10m * factor + 2.0, 1) + 0.0

    @cached_property
    def wind_direction_100m(self) -> np.ndarray:
        # Friction backs the wind near the ground: aloft it has turned clockwise in the north, anticlockwise
        # in the south.
        turn = np.where(self.lat >= 0, 15.0, -15.0) + 10.0 * (self._noise(0xD2_0001) - 0.5)
        return np.rint(np.mod(self.wind_direction_10m + turn, 360.0))

    @cached_property
    def wind_direction_10m(self) -> np.ndarray:
        # Trade winds blow from the east, the mid-latitude westerlies from the west.
        prevailing = np.where(np.abs(self.lat) < 30.0, 90.0, 270.0)
        value = prevailing + 150.0 * self._smooth(0xD1_0001, 40) + 30.0 * (self._noise(0xD1_0002) - 0.5)
        return np.rint(np.mod(value, 360.0))
