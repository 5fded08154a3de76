"""The load ledger (ops.load_ledger): per day, what loaded, what failed, what dbt has published.

Loads write it in their own transaction (`pipeline.load`); planners read it (`pipeline.backfill`,
the daily run's revisit of incomplete days, `pipeline gaps`); alerts ask it whether a day landed.
"""

from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

import psycopg

from pipeline.warehouse import hourly_query, query, table_exists
from pipeline.window import Window

# The ledger's key for this project's one source.
SOURCE = "open-meteo-archive"


class DayStatus(NamedTuple):
    """A day's ledger entry: last attempt's status, whether it ever loaded, whether dbt has seen it.

    `locations` are those the day holds rows for; None for days loaded before the ledger
    kept them (they held every location of the file then).
    """

    status: str
    loaded: bool
    transformed: bool
    checksum: str | None = None
    locations: frozenset[str] | None = None


def status(conn: psycopg.Connection, window: Window) -> dict[date, DayStatus]:
    """`{day: DayStatus}` for the days of `window` that the ledger knows (none before the first load)."""
    if not table_exists(conn, "ops.load_ledger"):
        return {}
    rows = conn.execute(query("ledger_status"), {"source": SOURCE, "first_day": window.first, "last_day": window.last})
    return {
        day: DayStatus(status, loaded, transformed, checksum, None if held is None else frozenset(held))
        for day, status, loaded, transformed, checksum, held in rows
    }


def stored_days(conn: psycopg.Connection, window: Window, location_ids: list[str]) -> dict[date, tuple[int, str]]:
    """`{day: (row_count, checksum)}` of what the last load of each day of `window` wrote for `location_ids`."""
    rows = conn.execute(query("stored_days"), {"source": SOURCE, "days": window.days, "locations": location_ids})
    return {day: (row_count, checksum) for day, row_count, checksum in rows}


def record_success(
    conn: psycopg.Connection,
    window: Window,
    days: Sequence[date],
    checksums: Sequence[str],
    flow_run_id: str | None,
) -> None:
    """Record the load of `days` (inside the load's transaction: the ledger commits with the rows)."""
    conn.execute(
        hourly_query("record_success"),
        {
            "source": SOURCE,
            "days": list(days),
            "checksums": list(checksums),
            "start": window.start,
            "end": window.end,
            "flow_run_id": flow_run_id,
        },
    )


def record_failure(
    conn: psycopg.Connection, days: Sequence[date], error: str, flow_run_id: str | None, content_failed: bool = False
) -> None:
    """Record a failed attempt at `days`. A day that landed keeps its status (the attempt rolled back), unless
    `content_failed`: its stored rows are what failed (a data test), so the day itself is failed."""
    params = {"source": SOURCE, "days": list(days), "error": error[:2000], "flow_run_id": flow_run_id}
    with conn.transaction():
        conn.execute(query("record_failure"), params | {"content_failed": content_failed})


def incomplete_days(conn: psycopg.Connection, before: date) -> list[date]:
    """Days before `before` whose values are still incomplete: past the revision horizon, the archive
    will not fill them by itself, so someone should hear about it."""
    if not table_exists(conn, "ops.load_ledger"):
        return []
    return [day for (day,) in conn.execute(query("incomplete_days"), {"source": SOURCE, "before": before})]


def mark_transformed(conn: psycopg.Connection, window: Window, dbt_started_at: datetime) -> None:
    """Record that the marts now reflect every load of `window` committed before dbt started."""
    with conn.transaction():
        conn.execute(
            query("mark_transformed"),
            {"source": SOURCE, "first_day": window.first, "last_day": window.last, "dbt_started_at": dbt_started_at},
        )
