"""The archive API's call budgets: per minute, per hour and per day, as the public API counts calls.

The minute is kept by the Prefect rate limit (slot decay); the hour and the day are counted in
`ops.api_calls`, so a backfill can stop before it spends them and leave a share of the day for
the daily runs. Both are counted per UTC hour and UTC day.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import psycopg

from pipeline.backfill import Chunk
from pipeline.extract import VARIABLES
from pipeline.settings import Settings
from pipeline.warehouse import query, table_exists


class Warehouse(Protocol):
    """What the budgets need of a warehouse (the block, in a run): a connection."""

    def connect(self) -> psycopg.Connection: ...


@dataclass(frozen=True)
class Limits:
    per_minute: int
    per_hour: int
    per_day: int
    # Calls of each day a backfill leaves for the daily runs.
    daily_reserve: int


@dataclass(frozen=True)
class Usage:
    hour: int
    day: int


@dataclass(frozen=True)
class Admission:
    """How many of a backfill's chunks fit in what is left now, and when the rest can start."""

    chunks: int
    calls: int
    spent: str | None = None  # "hourly" or "daily": the budget that stopped the rest
    resume_after: datetime | None = None


def limits(settings: Settings) -> Limits | None:
    """The API's limits from the settings; None when they do not apply (no rate limit: a local API)."""
    if not settings.source_rate_limit:
        return None
    return Limits(
        settings.api_calls_per_minute,
        settings.api_calls_per_hour,
        settings.api_calls_per_day,
        round(settings.api_calls_per_day * settings.backfill_daily_reserve),
    )


@dataclass(frozen=True)
class Budget:
    """What a backfill's chunks cost, and how many of them (the leading ones) fit in the API's budgets now."""

    costs: tuple[int, ...]
    admitted: int
    # The budgets against the plan, for the run's log; None without limits (a local API).
    description: str | None = None
    # Why the chunks past `admitted` wait, and until when.
    stopped: str | None = None

    @property
    def calls(self) -> int:
        return sum(self.costs)


def call_weight(n_locations: int, n_days: int, n_variables: int = len(VARIABLES)) -> int:
    """How many calls the public API counts for one request (per location, per 14 days, per 10 variables)."""
    return n_locations * math.ceil(max(1.0, n_days / 14) * max(1.0, n_variables / 10))


def chunk_calls(chunks: Sequence[Chunk], locations: int, per_request: int) -> list[int]:
    """Calls each chunk costs: one request per batch of the locations it fetches, weighted as the API counts it."""
    costs = []
    for chunk in chunks:
        fetched = chunk.size(locations)
        sizes = [per_request] * (fetched // per_request) + ([fetched % per_request] if fetched % per_request else [])
        costs.append(sum(call_weight(size, len(chunk.days)) for size in sizes))
    return costs


def budget(warehouse: Warehouse, settings: Settings, chunks: Sequence[Chunk], locations: int, now: datetime) -> Budget:
    """The chunks' cost, and against the public API the leading chunks that fit in this hour's and today's calls."""
    costs = tuple(chunk_calls(chunks, locations, settings.locations_per_request))
    api = limits(settings)
    if api is None:
        return Budget(costs, len(costs))
    used = current_usage(warehouse, now)
    admission = admit(costs, used, api, now)
    return Budget(
        costs,
        admission.chunks,
        describe(costs, used, api, now),
        stopped_message(admission) if admission.spent else None,
    )


def hour_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(now: datetime) -> datetime:
    return hour_start(now).replace(hour=0)


def admit(costs: Sequence[int], usage: Usage, limits: Limits, now: datetime) -> Admission:
    """The leading chunks whose calls fit in this hour's and today's budgets (less the daily reserve)."""
    hour_left = limits.per_hour - usage.hour
    day_left = limits.per_day - limits.daily_reserve - usage.day
    taken = 0
    for index, calls in enumerate(costs):
        if taken + calls > day_left:
            return Admission(index, taken, "daily", day_start(now) + timedelta(days=1))
        if taken + calls > hour_left:
            return Admission(index, taken, "hourly", hour_start(now) + timedelta(hours=1))
        taken += calls
    return Admission(len(costs), taken)


def describe(costs: Sequence[int], usage: Usage, limits: Limits, now: datetime) -> str:
    """The plan's calls against each budget, for `--dry-run` and the run's log."""
    planned = sum(costs)
    minutes = -(-planned // limits.per_minute)
    lines = [
        f"API budget: {planned:,} calls planned; "
        f"this hour {usage.hour:,} used of {limits.per_hour:,}; "
        f"today {usage.day:,} used of {limits.per_day:,} ({limits.daily_reserve:,} kept for daily runs); "
        f"at {limits.per_minute:,} calls/min, {minutes} min at least"
    ]
    admission = admit(costs, usage, limits, now)
    if admission.spent:
        lines.append(
            f"only {admission.chunks} of {len(costs)} chunks ({admission.calls:,} calls) fit in the {admission.spent} "
            f"budget now: the backfill will stop after them; resume after {_hhmm(admission.resume_after)} UTC "
            "with the same command"
        )
    return "\n".join(lines)


def stopped_message(admission: Admission) -> str:
    return (
        f"the API's {admission.spent} call budget is spent; resume after {_hhmm(admission.resume_after)} UTC "
        "with the same command (loaded days are skipped)"
    )


def _hhmm(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "?"


def usage(conn: psycopg.Connection, now: datetime) -> Usage:
    """Calls recorded in the current UTC hour and day (none before the first migration)."""
    if not table_exists(conn, "ops.api_calls"):
        return Usage(0, 0)
    hour, day = conn.execute(
        query("api_calls_used"), {"hour_start": hour_start(now), "day_start": day_start(now)}
    ).fetchone()
    return Usage(int(hour), int(day))


def current_usage(warehouse: Warehouse, now: datetime) -> Usage:
    with warehouse.connect() as conn:
        return usage(conn, now)


def record(conn: psycopg.Connection, calls: int, flow_run_id: str | None) -> None:
    """Count calls about to be made; counted before they are made, a failed call counts too, as for the API."""
    if calls > 0:
        with conn.transaction():
            conn.execute(query("record_api_calls"), {"calls": calls, "flow_run_id": flow_run_id})
