"""Injected failures: the fault plan, its text form, and the faults that break a 200 answer."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import orjson

from pipeline.source_server.query import ArchiveQuery, first_hour, hour_count, iso_date, time_strings

FAULTS_ENV = "PIPELINE_SOURCE_FAULTS"
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
HOT_DAY_TEMPERATURE = 99.0


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
                values[key] = _SETTING_PARSERS.get(key, _rate)(raw)
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


def _rate(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


def _moment(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Settings not listed here are rates or seconds.
_SETTING_PARSERS: dict[str, Callable[[str], object]] = {
    "recent_null_hours": int,
    "seed": int,
    "available_until": _moment,
    "only_on": iso_date,
}


def _heat_day(hourly: dict, query: ArchiveQuery, only_on: date | None) -> None:
    if "temperature_2m" not in hourly:
        return
    values = list(hourly["temperature_2m"])
    first = 0 if only_on is None else (only_on - query.start_date).days * 24
    hours = len(values) if only_on is None else 24
    for hour in range(max(first, 0), min(first + hours, len(values))):
        values[hour] = HOT_DAY_TEMPERATURE
    hourly["temperature_2m"] = values


def _shorten_last_column(hourly: dict, query: ArchiveQuery, only_on: date | None) -> None:
    name = query.variables[-1]
    hourly[name] = hourly[name][:-1]


def _drop_last_hour(hourly: dict, query: ArchiveQuery, only_on: date | None) -> None:
    # The shared time fragment is cached, so the shorter list is built anew rather than cut.
    count = hour_count(query.start_date, query.end_date)
    hourly["time"] = list(time_strings(first_hour(query.start_date), count - 1))
    for name in query.variables:
        hourly[name] = hourly[name][:-1]


def _quote_first_value(hourly: dict, query: ArchiveQuery, only_on: date | None) -> None:
    name = query.variables[0]
    column = hourly[name]
    values = column.tolist() if isinstance(column, np.ndarray) else list(column)
    values[0] = orjson.dumps(values[0]).decode()
    hourly[name] = values


Answers = Iterator[dict]
HourlyBreak = Callable[[dict, ArchiveQuery, date | None], None]
AnswersBreak = Callable[[Answers, ArchiveQuery, date | None], Answers]


def _in_first_answer(breaks: HourlyBreak) -> AnswersBreak:
    def apply(answers: Answers, query: ArchiveQuery, only_on: date | None) -> Answers:
        for index, answer in enumerate(answers):
            if index == 0:
                breaks(answer["hourly"], query, only_on)
            yield answer

    return apply


def _drop_last_location(answers: Answers, query: ArchiveQuery, only_on: date | None) -> Answers:
    return itertools.islice(answers, len(query.latitudes) - 1)


# Faults that answer 200 with well-formed JSON that breaks the archive's contract, or
# (hot_day) keeps to it but carries implausible values: 99 °C at the first location,
# on the `only_on` date when there is one, which only the data tests can catch.
_PAYLOAD_BREAKS: dict[str, AnswersBreak] = {
    "unequal": _in_first_answer(_shorten_last_column),
    "missing_hours": _in_first_answer(_drop_last_hour),
    "wrong_types": _in_first_answer(_quote_first_value),
    "dropped_location": _drop_last_location,
    "hot_day": _in_first_answer(_heat_day),
}
PAYLOAD_FAULTS = tuple(_PAYLOAD_BREAKS)


def payload_break(fault: str) -> AnswersBreak:
    """The function that applies one of PAYLOAD_FAULTS to a query's stream of answer objects."""
    try:
        return _PAYLOAD_BREAKS[fault]
    except KeyError:
        raise ValueError(f"unknown payload fault {fault!r}; expected one of {', '.join(PAYLOAD_FAULTS)}") from None
